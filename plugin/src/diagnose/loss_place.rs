//! Where the pod's lost queries die, from the captures (and, without them, from what the
//! probe's direct queries rule out), with the next thing to check there. Used when no rule
//! proves a cause: "unknown cause" without a place is not an answer.

use dns_doctor_schema::QueryOutcome;

use crate::evidence::CaptureKind;

use super::observed::Tally;
use super::Context;

/// A stretch of the path between the pod and the DNS pods.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    /// The queries never appeared on the pod's interfaces.
    InsidePod,
    /// Seen leaving the pod, never on its node.
    PodToNode,
    /// Seen on a node, never at a DNS pod.
    NodeToDnsPod,
    /// Seen at a DNS pod, never answered there.
    AtDnsPod,
    /// Answered at a DNS pod (or a node), the reply never reached the pod.
    WayBack,
    /// No capture: the ClusterIP fails while the endpoints answer when asked directly.
    ServiceTranslation,
    /// No capture: neither the ClusterIP nor the endpoints answer.
    PodToDnsPods,
}

/// The place, the capture point after which the packets vanished (when captures say),
/// what was seen, and what to check next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LossPlace {
    pub place: Place,
    pub point: Option<String>,
    pub seen: String,
    pub next: &'static str,
}

impl Place {
    /// The place in a few words, as a headline ends: "... die inside the pod".
    pub fn words(self) -> &'static str {
        match self {
            Self::InsidePod => "inside the pod's network namespace (they never left the pod)",
            Self::PodToNode => "between the pod and its node",
            Self::NodeToDnsPod => "after the node, before any DNS pod",
            Self::AtDnsPod => "at the DNS pods, which got them and did not answer",
            Self::WayBack => {
                "on the way back: the DNS pods answered, the replies never reached the pod"
            }
            Self::ServiceTranslation => "in the ClusterIP's translation on the pod's node",
            Self::PodToDnsPods => "somewhere between the pod and every DNS pod",
        }
    }

    fn next(self) -> &'static str {
        match self {
            Self::InsidePod => "Look inside the pod: NetworkPolicy enforced in the pod, a sidecar or init container that redirects or drops port 53, iptables rules in the pod's network namespace.",
            Self::PodToNode => "Look at the pod's interface and the CNI on its node: the veth, the bridge, the CNI plugin's own filtering.",
            Self::NodeToDnsPod => "Look at the node and the path to the DNS pods' nodes: node firewall and security groups (UDP and TCP 53, the overlay's port between nodes), kube-proxy's rules for the ClusterIP, routes.",
            Self::AtDnsPod => "Look at the DNS pods: their logs, CPU throttling or OOM kills, a NetworkPolicy on their ingress, rules in their network namespace.",
            Self::WayBack => "Look at the return path: reverse NAT (conntrack, bridge-nf-call-iptables), asymmetric routing and rp_filter on the nodes, a firewall dropping replies from port 53.",
            Self::ServiceTranslation => "Check kube-proxy (or the cluster's service data plane) on the pod's node: its rules for the DNS ClusterIP and its health.",
            Self::PodToDnsPods => "Capture at the pod, its node and the DNS pods (run again without --no-capture) to find the stretch where the queries die.",
        }
    }
}

/// Where the queries die, when some were lost.
pub fn locate(cx: &Context<'_>) -> Option<LossPlace> {
    let o = cx.observed.as_ref()?;
    let lost_by_probe = o
        .to_cluster_dns()
        .chain(o.to_nameservers())
        .filter(|q| q.outcome == QueryOutcome::TimedOut)
        .count();
    if lost_by_probe == 0 {
        return None;
    }
    // The pod's own capture saw no query at all while the probe's timed out: they never
    // reached an interface of the pod.
    if let Some(pod) = cx.pod_capture() {
        if pod.analysis.read_error.is_none() && pod.analysis.analysis.summary.queries == 0 {
            return Some(at(
                Place::InsidePod,
                Some(pod.name.to_string()),
                format!(
                    "{lost_by_probe} probe queries timed out; the capture inside the pod ({}) saw none of them leave",
                    pod.name
                ),
            ));
        }
    }
    if let (Some(c), Some((name, kind, count, total))) = (cx.correlation, cx.main_loss_point()) {
        let answered_somewhere = c.lost.iter().filter(|l| l.answered_at.is_some()).count();
        let (place, seen) = if answered_somewhere * 2 > c.lost.len() {
            (
                Place::WayBack,
                format!("{answered_somewhere} of {} lost queries were answered at some capture point and never reached the pod", c.lost.len()),
            )
        } else {
            let place = match kind {
                CaptureKind::Pod => Place::PodToNode,
                CaptureKind::Node => Place::NodeToDnsPod,
                CaptureKind::DnsPod => Place::AtDnsPod,
            };
            (
                place,
                format!("{count} of {total} lost queries were last seen at {name}"),
            )
        };
        return Some(at(place, Some(name.to_string()), seen));
    }
    // No capture to follow them: what the direct queries rule out.
    let direct = Tally::of(o.to_endpoints());
    let place = if direct.sent > 0 && direct.mostly_ok() {
        Place::ServiceTranslation
    } else {
        Place::PodToDnsPods
    };
    let seen = if direct.sent > 0 {
        format!("no capture followed the queries; the DNS endpoints asked directly: {direct}")
    } else {
        "no capture followed the queries and no endpoint was asked directly".to_string()
    };
    Some(at(place, None, seen))
}

fn at(place: Place, point: Option<String>, seen: String) -> LossPlace {
    LossPlace {
        place,
        point,
        seen,
        next: place.next(),
    }
}
