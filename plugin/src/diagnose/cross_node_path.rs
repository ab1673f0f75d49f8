//! Rule: the queries the pod sends to the DNS pods on another node leave the pod's node and
//! never arrive at that node (or their replies never come back), while DNS pods elsewhere
//! answer: the network between those two nodes drops pod traffic. A security group or
//! firewall between the nodes blocking the overlay's port, an MTU the encapsulated packets
//! do not fit, a broken overlay device or route.
//!
//! The captures say where each lost query was seen. Only queries whose destination is
//! known count: a sighting that names a DNS endpoint's address (the probe's direct queries,
//! and ClusterIP queries seen after the DNAT). Clocks of different nodes are never compared:
//! which node saw a query is all that matters.

use std::collections::BTreeMap;
use std::net::IpAddr;

use crate::capture::correlate::LostQuery;
use crate::evidence::CaptureKind;

use super::finding::{EvidenceRef, Finding, NodePair, Severity};
use super::{overlay_mtu, Context};

pub const ID: &str = "cross-node-path-broken";

/// The fewest lost queries that name a pair of nodes.
const MIN_LOST: usize = 2;

/// The node a capture point is on: the target pod's for its own capture, the named node for a
/// node capture, the DNS pod's node for a DNS pod capture.
pub(super) fn point_node<'a>(cx: &Context<'a>, name: &str) -> Option<&'a str> {
    let point = cx.captures.iter().find(|p| p.name == name)?;
    match point.kind {
        CaptureKind::Pod => cx.topology.target.node.as_deref(),
        CaptureKind::Node => {
            let node = name.strip_prefix("node-")?;
            cx.topology
                .target
                .node
                .as_deref()
                .into_iter()
                .chain(
                    cx.topology
                        .dns_pods
                        .iter()
                        .filter_map(|p| p.node.as_deref()),
                )
                .find(|n| *n == node)
        }
        CaptureKind::DnsPod => {
            let pod = name.strip_prefix("dns-")?;
            cx.topology
                .dns_pods
                .iter()
                .find(|p| p.name == pod)
                .and_then(|p| p.node.as_deref())
        }
    }
}

/// The DNS endpoint a lost query went to, and that endpoint's node: the first sighting
/// that names an endpoint's address (the probe's direct queries, and ClusterIP queries
/// seen after the DNAT).
pub(super) fn lost_query_endpoint<'a>(
    cx: &Context<'a>,
    l: &LostQuery,
) -> Option<(IpAddr, &'a str)> {
    l.sightings.iter().find_map(|s| {
        let ip = s.server.ip();
        cx.topology.endpoint_node(&ip).map(|n| (ip, n))
    })
}

/// Which way the packets were lost between the two nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Way {
    /// The query left the pod's node and never reached the DNS pod's node.
    Query,
    /// The DNS pod's node saw the answer; the pod's node never did.
    Reply,
}

#[derive(Default)]
struct Pair<'q> {
    lost: Vec<(&'q LostQuery, IpAddr)>,
    endpoints: Vec<IpAddr>,
}

/// `findings`: what the rules run before found; replies lost on a path that
/// `overlay-mtu-too-small` explains (too large for it) are left to that finding.
pub fn rule(cx: &Context<'_>, findings: &[Finding]) -> Option<Finding> {
    let c = cx.correlation?;
    let from = cx.topology.target.node.as_deref()?;
    let endpoint_node = |ip: IpAddr| cx.topology.endpoint_node(&ip);
    // Nodes with a capture that was read: only there can "never seen" be said.
    let captured: Vec<&str> = cx
        .captures
        .iter()
        .filter(|p| p.analysis.read_error.is_none())
        .filter_map(|p| point_node(cx, p.name))
        .collect();

    let mut pairs: BTreeMap<(&str, Way), Pair<'_>> = BTreeMap::new();
    // Lost queries per destination node, whatever happened to them.
    let mut lost_to: BTreeMap<&str, usize> = BTreeMap::new();
    for l in &c.lost {
        let Some((ep, to)) = lost_query_endpoint(cx, l) else {
            continue;
        };
        let seen_on = |node: &str| {
            l.sightings
                .iter()
                .any(|s| point_node(cx, &s.point) == Some(node))
        };
        let way = if !seen_on(to) && seen_on(from) {
            Some(Way::Query)
        } else if l
            .answered_at
            .as_deref()
            .is_some_and(|p| point_node(cx, p) == Some(to))
            && !l
                .sightings
                .iter()
                .any(|s| s.answered && point_node(cx, &s.point) == Some(from))
        {
            Some(Way::Reply)
        } else {
            None
        };
        // Explained loss is no part of what this rule weighs, not even in the share below.
        if way == Some(Way::Reply) && overlay_mtu::explains(findings, to, from) {
            continue;
        }
        *lost_to.entry(to).or_default() += 1;
        if to == from || !captured.contains(&to) {
            continue;
        }
        let Some(way) = way else {
            continue;
        };
        let pair = pairs.entry((to, way)).or_default();
        pair.lost.push((l, ep));
        if !pair.endpoints.contains(&ep) {
            pair.endpoints.push(ep);
        }
    }
    // The pair that explains most of the loss towards its node.
    let ((to, way), pair) = pairs
        .into_iter()
        .filter(|((to, _), p)| p.lost.len() >= MIN_LOST && p.lost.len() * 5 >= lost_to[to] * 4)
        .max_by_key(|(_, p)| p.lost.len())?;
    // And DNS pods on some other node must answer: else nothing sets this path apart.
    let o = cx.observed.as_ref()?;
    let per = o.per_endpoint();
    let answering_elsewhere: Vec<(IpAddr, &str)> = per
        .iter()
        .filter(|(_, t)| t.ok > 0 && t.mostly_ok())
        .filter_map(|(ip, _)| endpoint_node(*ip).map(|n| (*ip, n)))
        .filter(|(_, n)| *n != to)
        .collect();
    if answering_elsewhere.is_empty() {
        return None;
    }
    Some(finding(cx, from, to, way, &pair, &per, c.lost.len()))
}

fn finding(
    cx: &Context<'_>,
    from: &str,
    to: &str,
    way: Way,
    pair: &Pair<'_>,
    per: &[(IpAddr, super::observed::Tally)],
    all_lost: usize,
) -> Finding {
    let pod_of = |ip: &IpAddr| cx.topology.endpoint_pod_name(ip);
    let targets: Vec<String> = pair
        .endpoints
        .iter()
        .map(|ip| format!("{} ({ip})", pod_of(ip)))
        .collect();
    let mut evidence = Vec::new();
    let n = pair.lost.len();
    let (summary, pair_dir, detail) = match way {
        Way::Query => (
            format!(
                "DNS queries from {from} to the DNS pods on {to} leave {from} and never reach {to}: the network between these two nodes drops pod traffic"
            ),
            NodePair {
                from: from.into(),
                to: to.into(),
            },
            format!(
                "{n} of {all_lost} lost queries went to {} on {to}: seen on {from}, never by a capture on {to}",
                targets.join(", ")
            ),
        ),
        Way::Reply => (
            format!(
                "The DNS pods on {to} answer the queries from {from}, but the replies never reach {from}: the network between these two nodes drops pod traffic towards {from}"
            ),
            NodePair {
                from: to.into(),
                to: from.into(),
            },
            format!(
                "{n} of {all_lost} lost queries went to {} on {to}: answered there, the answer never seen on {from}",
                targets.join(", ")
            ),
        ),
    };
    evidence.push(EvidenceRef::new("capture:correlation", detail));
    for (l, ep) in pair.lost.iter().take(3) {
        let seen = l.points();
        evidence.push(EvidenceRef::new(
            "capture:correlation",
            format!(
                "id {} {} {} to {ep}: seen at {}{}",
                l.id,
                l.qtype,
                l.qname,
                seen.join(", "),
                l.answered_at
                    .as_deref()
                    .map(|p| format!("; answered at {p}"))
                    .unwrap_or_default()
            ),
        ));
    }
    for (ip, t) in per {
        let node = cx.topology.endpoint_node(ip).unwrap_or("?");
        evidence.push(EvidenceRef::new(
            "check:endpoints-direct",
            format!("endpoint {ip} ({}) on {node}: {t}", pod_of(ip)),
        ));
    }
    for ip in &pair.endpoints {
        if let Some(p) = cx
            .topology
            .endpoints
            .iter()
            .find(|e| e.ip == *ip)
            .and_then(|e| cx.topology.dns_pod_of(e))
        {
            if p.ready {
                evidence.push(EvidenceRef::new(
                    "api",
                    format!(
                        "{}/{} on {to} is Ready: its own node reaches it, so the DNS server itself works",
                        p.namespace, p.name
                    ),
                ));
            }
        }
    }
    Finding {
        id: ID.into(),
        severity: Severity::Error,
        summary,
        evidence,
        remediation: vec![
            format!("Check the firewall or security group between {from} and {to}, both ways, for the pod network's traffic between nodes: the overlay's port (VXLAN UDP 8472 for flannel, 4789 for most others; Geneve UDP 6081; IP-in-IP, protocol 4; WireGuard UDP 51820), or the pod ranges themselves where they are routed without an overlay."),
            format!("Check the overlay on both nodes: its device (flannel.1, vxlan.calico, cilium_vxlan, ...) is up, {from} routes {to}'s pod range through it, and the path between the nodes carries the encapsulated packets (an MTU too small for them drops the large ones)."),
            format!("Confirm from a pod on {from}: a pod on {to} does not answer (ping or dig it directly) while pods on the other nodes do; move DNS replicas away from {to} until the path is repaired."),
        ],
        loss_point: Some(format!("between {} and {}", pair_dir.from, pair_dir.to)),
        node_pair: Some(pair_dir),
    }
}

#[cfg(test)]
mod tests {
    use dns_doctor_schema::QueryOutcome;

    use super::*;
    use crate::diagnose::one_replica_broken;
    use crate::diagnose::testkit::two_nodes::{lost, run, two_nodes};
    use crate::diagnose::testkit::*;

    #[test]
    fn queries_that_leave_the_pods_node_and_never_reach_the_replicas_node_name_both_nodes() {
        let s = two_nodes();
        let d = run(
            &s,
            (1..=4)
                .map(|id| lost(id, &["pod-web-0", "node-node-1"], None))
                .collect(),
        );
        let top = d.root_cause().expect("a broken path is never healthy");
        assert_eq!(top.id, ID, "{:?}", d.findings);
        assert_eq!(top.severity, Severity::Error);
        assert_eq!(
            top.node_pair,
            Some(NodePair {
                from: "node-1".into(),
                to: "node-2".into()
            })
        );
        assert!(
            top.summary.contains("leave node-1 and never reach node-2"),
            "{}",
            top.summary
        );
        assert_eq!(top.loss_point.as_deref(), Some("between node-1 and node-2"));
        let text: Vec<&str> = top.evidence.iter().map(|e| e.detail.as_str()).collect();
        let text = text.join("\n");
        assert!(text.contains("4 of 4 lost queries went to kube-system/coredns-b (10.244.0.3) on node-2: seen on node-1, never by a capture on node-2"), "{text}");
        assert!(
            text.contains("endpoint 10.244.0.2 (kube-system/coredns-a) on node-1: "),
            "{text}"
        );
        assert!(text.contains("coredns-b on node-2 is Ready"), "{text}");
        assert!(top.remediation[0].contains("VXLAN UDP 8472"));
        // The replica that looks broken from here is still reported, below the cause.
        assert!(d.findings.iter().any(|f| f.id == one_replica_broken::ID));
    }

    #[test]
    fn replies_lost_on_the_way_back_name_the_pair_the_other_way() {
        let s = two_nodes();
        let d = run(
            &s,
            (1..=3)
                .map(|id| {
                    lost(
                        id,
                        &["pod-web-0", "node-node-1", "node-node-2", "dns-coredns-b"],
                        Some("dns-coredns-b"),
                    )
                })
                .collect(),
        );
        let top = d.root_cause().expect("never healthy");
        assert_eq!(top.id, ID, "{:?}", d.findings);
        assert_eq!(
            top.node_pair,
            Some(NodePair {
                from: "node-2".into(),
                to: "node-1".into()
            })
        );
        assert!(
            top.summary.contains("replies never reach node-1"),
            "{}",
            top.summary
        );
    }

    #[test]
    fn queries_that_reach_the_replicas_node_blame_the_replica_not_the_path() {
        let s = two_nodes();
        let d = run(
            &s,
            (1..=4)
                .map(|id| {
                    lost(
                        id,
                        &["pod-web-0", "node-node-1", "node-node-2", "dns-coredns-b"],
                        None,
                    )
                })
                .collect(),
        );
        assert!(!d.findings.iter().any(|f| f.id == ID), "{:?}", d.findings);
        assert_eq!(
            d.root_cause().map(|f| f.id.as_str()),
            Some(one_replica_broken::ID)
        );
    }

    #[test]
    fn without_a_capture_on_the_replicas_node_the_path_is_not_blamed() {
        let mut s = two_nodes();
        // coredns-b runs on node-3, where nothing was captured (no node pod there, and its
        // own capture point is not among the captures): "never seen there" proves nothing.
        s.topology.endpoints[1].node = Some("node-3".into());
        s.topology.dns_pods[1].node = Some("node-3".into());
        s.topology.dns_pods[1].name = "coredns-c".into();
        s.topology.endpoints[1].pod = Some("kube-system/coredns-c".into());
        let d = run(
            &s,
            (1..=4)
                .map(|id| lost(id, &["pod-web-0", "node-node-1"], None))
                .collect(),
        );
        assert!(!d.findings.iter().any(|f| f.id == ID), "{:?}", d.findings);
    }

    #[test]
    fn when_no_replica_answers_anywhere_the_path_is_not_singled_out() {
        let mut s = two_nodes();
        s.set_queries(|q| q.server.ip() == ip(EP_A), QueryOutcome::TimedOut, None);
        let d = run(
            &s,
            (1..=4)
                .map(|id| lost(id, &["pod-web-0", "node-node-1"], None))
                .collect(),
        );
        assert!(!d.findings.iter().any(|f| f.id == ID), "{:?}", d.findings);
    }
}
