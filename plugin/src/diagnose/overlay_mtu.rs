//! Rule: the large DNS answers from the DNS pods on another node leave that node and never
//! reach the pod's node, while the small ones do. The overlay (VXLAN, Geneve, IP-in-IP)
//! assumes a path that carries its encapsulated frames; when the network between the nodes
//! carries less (a lower underlay MTU, a cloud network that drops large frames without
//! sending ICMP "fragmentation needed"), small packets cross and the full-size ones vanish:
//! names with big answers hang, every other name works.
//!
//! The captures say which point saw each answer and how large it was. Only answers whose
//! source is known count: a sighting that names a DNS endpoint's address. Clocks of
//! different nodes are never compared: which node saw an answer is all that matters. When
//! some lost answer is no larger than one that arrived, size does not set the lost ones
//! apart, and the loss is left to `cross-node-path-broken`.

use std::collections::BTreeMap;
use std::net::IpAddr;

use crate::capture::correlate::{LostQuery, Sighting};

use super::cross_node_path::{lost_query_endpoint, point_node};
use super::finding::{EvidenceRef, Finding, NodePair, Severity};
use super::Context;

pub const ID: &str = "overlay-mtu-too-small";

/// The fewest lost large answers over UDP that name a pair of nodes. One answer over TCP
/// is enough: TCP sent it again and again, and the path lost every copy.
const MIN_LOST: usize = 2;

/// A lost answer: seen leaving the DNS pod's node, never on the pod's node.
struct Lost<'q> {
    query: &'q LostQuery,
    endpoint: IpAddr,
    /// Size of the answer where it was seen; None when no sighting knew it.
    size: Option<u32>,
    /// The points on the DNS pod's node that saw the answer.
    seen_at: Vec<&'q str>,
}

/// What the pod's node received from the DNS pods on one node, at one capture point.
struct Arrived<'c> {
    point: &'c str,
    answers: u64,
    largest: u32,
}

#[derive(Default)]
struct FromNode<'q> {
    lost: Vec<Lost<'q>>,
    arrived: Vec<Arrived<'q>>,
}

/// One finding per node whose DNS pods' large answers never reach the target pod's node.
pub fn rule(cx: &Context<'_>) -> Vec<Finding> {
    let (Some(c), Some(to)) = (cx.correlation, cx.topology.target.node.as_deref()) else {
        return Vec::new();
    };
    let endpoint_node = |ip: IpAddr| cx.topology.endpoint_node(&ip);
    // "Never seen on the pod's node" needs a capture there that was read to its end.
    if !cx
        .captures
        .iter()
        .any(|p| p.analysis.read_error.is_none() && point_node(cx, p.name) == Some(to))
    {
        return Vec::new();
    }
    let mut by_node: BTreeMap<&str, FromNode<'_>> = BTreeMap::new();
    for l in &c.lost {
        let Some((endpoint, from)) = lost_query_endpoint(cx, l) else {
            continue;
        };
        if from == to {
            continue;
        }
        if !answered_on(cx, l, to).is_empty() {
            continue;
        }
        let leaving = answered_on(cx, l, from);
        if leaving.is_empty() {
            continue;
        }
        by_node.entry(from).or_default().lost.push(Lost {
            query: l,
            endpoint,
            size: leaving.iter().filter_map(|s| s.response_size).max(),
            seen_at: leaving.iter().map(|s| s.point.as_str()).collect(),
        });
    }
    for d in &c.delivered {
        let Some(from) = endpoint_node(d.server) else {
            continue;
        };
        if point_node(cx, &d.point) != Some(to) {
            continue;
        }
        if let Some(n) = by_node.get_mut(from) {
            n.arrived.push(Arrived {
                point: &d.point,
                answers: d.answers,
                largest: d.largest,
            });
        }
    }
    by_node
        .iter()
        .filter_map(|(from, n)| finding(cx, from, to, n))
        .collect()
}

/// The sightings of `l` on `node` that saw its answer.
fn answered_on<'q>(cx: &Context<'_>, l: &'q LostQuery, node: &str) -> Vec<&'q Sighting> {
    l.sightings
        .iter()
        .filter(|s| s.answered && point_node(cx, &s.point) == Some(node))
        .collect()
}

/// Whether a finding of this rule explains the loss of answers from `from` to `to`: the
/// rules that would blame the same loss on something else defer to it.
pub fn explains(findings: &[Finding], from: &str, to: &str) -> bool {
    findings.iter().any(|f| {
        f.id == ID
            && f.node_pair
                .as_ref()
                .is_some_and(|p| p.from == from && p.to == to)
    })
}

fn finding(cx: &Context<'_>, from: &str, to: &str, n: &FromNode<'_>) -> Option<Finding> {
    let sized: Vec<(&Lost<'_>, u32)> = n
        .lost
        .iter()
        .filter_map(|l| l.size.map(|s| (l, s)))
        .collect();
    let over_tcp = sized
        .iter()
        .any(|(l, _)| l.query.transport == crate::capture::Transport::Tcp);
    if sized.len() < MIN_LOST && !over_tcp {
        return None;
    }
    let largest_arrived = n.arrived.iter().map(|a| a.largest).max()?;
    let smallest_lost = sized.iter().map(|(_, s)| *s).min()?;
    let largest_lost = sized.iter().map(|(_, s)| *s).max()?;
    if smallest_lost <= largest_arrived {
        return None;
    }
    let pod_of = |ip: &IpAddr| cx.topology.endpoint_pod_name(ip);
    let mut endpoints: Vec<IpAddr> = sized.iter().map(|(l, _)| l.endpoint).collect();
    endpoints.sort();
    endpoints.dedup();
    let targets: Vec<String> = endpoints
        .iter()
        .map(|ip| format!("{} ({ip})", pod_of(ip)))
        .collect();
    let mut leaving: Vec<&str> = sized
        .iter()
        .flat_map(|(l, _)| l.seen_at.iter().copied())
        .collect();
    leaving.sort_unstable();
    leaving.dedup();
    let mut evidence = vec![EvidenceRef::new(
        "capture:correlation",
        format!(
            "{} lost answers from {} on {from}, {smallest_lost} to {largest_lost} bytes: seen leaving at {}, never seen on {to}",
            sized.len(),
            targets.join(", "),
            leaving.join(", ")
        ),
    )];
    for (l, size) in sized.iter().take(3) {
        let q = l.query;
        evidence.push(EvidenceRef::new(
            "capture:correlation",
            format!(
                "id {} {} {} to {}: a {size}-byte answer seen at {}; the query seen at {}",
                q.id,
                q.qtype,
                q.qname,
                l.endpoint,
                l.seen_at.join(", "),
                q.points().join(", ")
            ),
        ));
    }
    for a in &n.arrived {
        evidence.push(EvidenceRef::new(
            format!("capture:{}", a.point),
            format!(
                "{} answers from the DNS pods on {from} arrived here, the largest {} bytes",
                a.answers, a.largest
            ),
        ));
    }
    let size_unknown = n.lost.len() - sized.len();
    if size_unknown > 0 {
        evidence.push(EvidenceRef::new(
            "capture:correlation",
            format!("{size_unknown} more lost answers from {from} have no known size and are not counted"),
        ));
    }
    Some(Finding {
        id: ID.into(),
        severity: Severity::Error,
        summary: format!(
            "DNS answers larger than {largest_arrived} bytes from the DNS pods on {from} never reach {to}, while smaller ones do (the smallest lost was {smallest_lost} bytes): the path between the nodes carries smaller packets than the overlay's MTU"
        ),
        evidence,
        remediation: vec![
            "Set the CNI's MTU to the path MTU between the nodes minus the encapsulation overhead (VXLAN over IPv4: 50 bytes, so 1450 on a 1500-byte path; Geneve ~50-60, IP-in-IP 20, WireGuard 60-80): flannel's `MTU` in its net-conf (or the iface MTU it derives it from), Calico's `veth_mtu` / the Installation's `calicoNetwork.mtu`, Cilium's `mtu`; then restart the pods so their interfaces take it.".into(),
            format!("Check what the network between {from} and {to} carries: the nodes' interface MTUs (`ip link`), then from {from} `ping -M do -s 1422 <{to}'s node IP>` (1422 + 28 = 1450 bytes; lower -s until it passes) and `tracepath <{to}'s node IP>` to find the path MTU."),
            format!("Allow ICMP \"fragmentation needed\" (type 3 code 4; ICMPv6 \"packet too big\", type 2) between {from} and {to} in the security groups and firewalls, so path MTU discovery can shrink the packets instead of losing them."),
            "As a stopgap, keep answers small: CoreDNS's `bufsize` plugin (e.g. `bufsize 1232`, or lower) caps the UDP answers, and fewer records per name keep TCP answers in small segments.".into(),
        ],
        loss_point: Some(format!("between {from} and {to}")),
        node_pair: Some(NodePair {
            from: from.into(),
            to: to.into(),
        }),
    })
}

#[cfg(test)]
mod tests {
    use dns_doctor_schema::{QueryOutcome, ServerRole, Transport};

    use super::*;
    use crate::capture::correlate::{Delivered, MatchKind};
    use crate::capture::transactions::Example;
    use crate::capture::Timestamp;
    use crate::diagnose::testkit::two_nodes::run_with;
    use crate::diagnose::testkit::*;
    use crate::diagnose::{cross_node_path, order, truncated_no_tcp, Diagnosis};

    /// A name whose answer is too large for one small packet.
    const BIG_NAME: &str = "big.default.svc.cluster.local.";

    /// The pod on node-1 with coredns-a, coredns-b alone on node-2. The probe's queries all
    /// get their answers, except the big name over TCP from coredns-b and from the
    /// ClusterIP (which sent that connection to coredns-b): over UDP that name comes back
    /// truncated, which is small.
    fn two_nodes() -> Scenario {
        let mut s = healthy();
        s.topology.endpoints[1].node = Some("node-2".into());
        s.topology.dns_pods[1].node = Some("node-2".into());
        let mut id = 900;
        for (server, role) in [
            (CLUSTER_IP, ServerRole::Nameserver),
            (EP_A, ServerRole::Endpoint),
            (EP_B, ServerRole::Endpoint),
        ] {
            for transport in [Transport::Udp, Transport::Tcp] {
                id += 1;
                let mut q = query(server, role, transport, BIG_NAME, "TXT", id);
                q.rcode = Some("NOERROR".into());
                match transport {
                    Transport::Udp => q.truncated = true,
                    Transport::Tcp if server != EP_A => {
                        q.outcome = QueryOutcome::TimedOut;
                        q.rcode = None;
                        q.latency_ms = 2000.0;
                    }
                    Transport::Tcp => q.answers = vec!["TXT \"...\"".into()],
                }
                s.probe().queries.push(q);
            }
        }
        s
    }

    /// A query from the pod to coredns-b, seen at every point on its way; coredns-b's
    /// capture saw it answered with `size` bytes (None: the size is not known).
    fn lost(id: u16, size: Option<u32>) -> LostQuery {
        let points = ["pod-web-0", "node-node-1", "node-node-2", "dns-coredns-b"];
        LostQuery {
            transport: crate::capture::Transport::Udp,
            id,
            qname: BIG_NAME.into(),
            qtype: "TXT".into(),
            sightings: points
                .iter()
                .enumerate()
                .map(|(i, p)| {
                    let answered = *p == "dns-coredns-b";
                    Sighting {
                        point: p.to_string(),
                        // Each node's own clock, far apart: only which node saw it counts.
                        time: Timestamp::from_nanos(
                            1_764_000_000_000_000_000 + i as i64 * 3_000_000_000,
                        ),
                        client: "10.244.0.5:40001".parse().unwrap(),
                        server: sock(EP_B),
                        answered,
                        rcode: answered.then(|| "NOERROR".into()),
                        response_size: size.filter(|_| answered),
                        matched_by: MatchKind::Exact,
                    }
                })
                .collect(),
            last_seen_at: "dns-coredns-b".into(),
            answered_at: Some("dns-coredns-b".into()),
        }
    }

    /// Answers that reached `point` from `server`.
    fn arrived(point: &str, server: &str, answers: u64, largest: u32) -> Delivered {
        Delivered {
            point: point.into(),
            server: ip(server),
            answers,
            largest,
        }
    }

    /// What the pod's side saw arrive in the field case: small answers from both replicas.
    fn small_answers_arrive() -> Vec<Delivered> {
        vec![
            arrived("pod-web-0", EP_A, 14, 700),
            arrived("pod-web-0", EP_B, 12, 512),
            arrived("node-node-1", EP_B, 12, 512),
            // What coredns-b sent, seen on its own node: not an answer that arrived.
            arrived("dns-coredns-b", EP_B, 15, 1700),
        ]
    }

    fn run(s: &Scenario, lost: Vec<LostQuery>, delivered: Vec<Delivered>) -> Diagnosis {
        run_with(s, lost, delivered, capture_analysis(0))
    }

    fn ids(d: &Diagnosis) -> Vec<&str> {
        d.findings.iter().map(|f| f.id.as_str()).collect()
    }

    /// The field case: three large answers lost, small ones arriving.
    fn field_case(s: &Scenario) -> Diagnosis {
        run(
            s,
            vec![
                lost(1, Some(1600)),
                lost(2, Some(1700)),
                lost(3, Some(1650)),
            ],
            small_answers_arrive(),
        )
    }

    /// The control beside each case where the rule must stay silent: the same scenario,
    /// with the field case's captures, is one where it speaks.
    fn assert_fires_on_field_case(s: &Scenario) {
        let d = field_case(s);
        assert_eq!(ids(&d).first(), Some(&ID), "{:?}", ids(&d));
    }

    #[test]
    fn large_answers_lost_from_node_2_while_small_ones_arrive_name_the_pair_and_the_size() {
        let s = two_nodes();
        let d = field_case(&s);
        let top = d.root_cause().expect("lost answers are never healthy");
        assert_eq!(top.id, ID, "{:?}", ids(&d));
        assert_eq!(top.severity, Severity::Error);
        assert_eq!(
            top.node_pair,
            Some(NodePair {
                from: "node-2".into(),
                to: "node-1".into()
            })
        );
        assert_eq!(
            top.summary,
            "DNS answers larger than 512 bytes from the DNS pods on node-2 never reach node-1, while smaller ones do (the smallest lost was 1600 bytes): the path between the nodes carries smaller packets than the overlay's MTU"
        );
        assert_eq!(top.loss_point.as_deref(), Some("between node-2 and node-1"));
        let text: Vec<String> = top
            .evidence
            .iter()
            .map(|e| format!("{}: {}", e.source, e.detail))
            .collect();
        let text = text.join("\n");
        assert!(text.contains("capture:correlation: 3 lost answers from kube-system/coredns-b (10.244.0.3) on node-2, 1600 to 1700 bytes: seen leaving at dns-coredns-b, never seen on node-1"), "{text}");
        assert!(text.contains("id 1 TXT big.default.svc.cluster.local. to 10.244.0.3: a 1600-byte answer seen at dns-coredns-b; the query seen at pod-web-0, node-node-1, node-node-2, dns-coredns-b"), "{text}");
        assert!(
            text.contains("capture:pod-web-0: 12 answers from the DNS pods on node-2 arrived here, the largest 512 bytes"),
            "{text}"
        );
        // coredns-a's larger answers are from node-1 itself: not set beside node-2's.
        assert!(!text.contains("the largest 700"), "{text}");
        let fixes = top.remediation.join("\n");
        for fix in [
            "VXLAN over IPv4: 50 bytes",
            "veth_mtu",
            "ping -M do -s 1422",
            "tracepath",
            "type 3 code 4",
            "bufsize",
        ] {
            assert!(fixes.contains(fix), "{fix} missing from {fixes}");
        }
        // The same lost replies are what the path rule and the TCP rule would report:
        // neither claims them, nor ranks above.
        assert!(!ids(&d).contains(&cross_node_path::ID), "{:?}", ids(&d));
        assert!(!ids(&d).contains(&truncated_no_tcp::ID), "{:?}", ids(&d));
    }

    #[test]
    fn a_lost_answer_no_larger_than_one_that_arrived_is_general_loss() {
        let s = two_nodes();
        assert_fires_on_field_case(&s);
        let d = run(
            &s,
            vec![lost(1, Some(1600)), lost(2, Some(1700)), lost(3, Some(512))],
            small_answers_arrive(),
        );
        assert!(!ids(&d).contains(&ID), "{:?}", ids(&d));
        // The loss is then the path's, as a whole.
        assert_eq!(
            d.root_cause().map(|f| f.id.as_str()),
            Some(cross_node_path::ID)
        );
    }

    #[test]
    fn without_any_answer_arriving_from_that_node_size_proves_nothing() {
        let s = two_nodes();
        assert_fires_on_field_case(&s);
        let only_from_node_1 = vec![
            arrived("pod-web-0", EP_A, 14, 700),
            arrived("dns-coredns-b", EP_B, 15, 1700),
        ];
        let d = run(
            &s,
            vec![lost(1, Some(1600)), lost(2, Some(1700))],
            only_from_node_1,
        );
        assert!(!ids(&d).contains(&ID), "{:?}", ids(&d));
    }

    #[test]
    fn one_lost_large_answer_over_udp_is_not_enough() {
        let s = two_nodes();
        assert_fires_on_field_case(&s);
        let d = run(&s, vec![lost(1, Some(1600))], small_answers_arrive());
        assert!(!ids(&d).contains(&ID), "{:?}", ids(&d));
    }

    #[test]
    fn one_lost_large_answer_over_tcp_is_enough() {
        let s = two_nodes();
        let mut one = lost(1, Some(1600));
        one.transport = crate::capture::Transport::Tcp;
        let d = run(&s, vec![one], small_answers_arrive());
        let top = d.root_cause().expect("never healthy");
        assert_eq!(top.id, ID, "{:?}", ids(&d));
        assert_eq!(
            top.node_pair,
            Some(NodePair {
                from: "node-2".into(),
                to: "node-1".into()
            })
        );
    }

    #[test]
    fn lost_answers_of_unknown_size_count_neither_way() {
        let s = two_nodes();
        assert_fires_on_field_case(&s);
        let d = run(
            &s,
            vec![lost(1, None), lost(2, None), lost(3, None)],
            small_answers_arrive(),
        );
        assert!(!ids(&d).contains(&ID), "{:?}", ids(&d));
        // With one sized large answer beside them, still too few.
        let d = run(
            &s,
            vec![lost(1, Some(1600)), lost(2, None), lost(3, None)],
            small_answers_arrive(),
        );
        assert!(!ids(&d).contains(&ID), "{:?}", ids(&d));
    }

    #[test]
    fn the_mtu_finding_outranks_the_path_and_tcp_findings() {
        let finding = |id: &str| Finding {
            id: id.into(),
            severity: Severity::Error,
            summary: String::new(),
            evidence: Vec::new(),
            remediation: Vec::new(),
            loss_point: None,
            node_pair: None,
        };
        let mut findings = vec![
            finding(truncated_no_tcp::ID),
            finding(cross_node_path::ID),
            finding(ID),
        ];
        order(&mut findings);
        assert_eq!(findings[0].id, ID);
    }

    #[test]
    fn a_failed_tcp_retry_the_mtu_finding_does_not_explain_is_still_reported() {
        let mut s = two_nodes();
        // coredns-a is on the pod's own node: no path between nodes in the way.
        s.set_queries(
            |q| q.server.ip() == ip(EP_A) && q.transport == Transport::Tcp && q.qname == BIG_NAME,
            QueryOutcome::TimedOut,
            None,
        );
        let d = run(
            &s,
            vec![lost(1, Some(1600)), lost(2, Some(1700))],
            small_answers_arrive(),
        );
        assert_eq!(ids(&d).first(), Some(&ID), "{:?}", ids(&d));
        let tcp = d
            .findings
            .iter()
            .find(|f| f.id == truncated_no_tcp::ID)
            .expect("the retry to coredns-a is not explained by node-2's path");
        assert!(
            tcp.evidence.iter().all(|e| !e.detail.contains(EP_B)),
            "{:?}",
            tcp.evidence
        );
    }

    /// The pod's capture saw truncated answers whose TCP retry failed: to the DNS pod on
    /// the node whose large answers are lost, that is the MTU; to the one on the pod's own
    /// node, it is not.
    #[test]
    fn a_captures_failed_tcp_retries_count_only_where_the_mtu_does_not_explain_them() {
        let mut s = two_nodes();
        // Only the capture speaks of truncation here: the probe's big name is left out.
        s.probe().queries.retain(|q| q.qname != BIG_NAME);
        let pod_capture = |server: &str| {
            let mut a = capture_analysis(0);
            a.analysis.summary.patterns.truncated_tcp_failed = 2;
            a.analysis.examples.truncated_without_tcp = [11, 12]
                .into_iter()
                .map(|id| Example {
                    time: Timestamp::from_nanos(1_764_000_000_000_000_000),
                    frame: u64::from(id),
                    client: "10.244.0.5:40001".parse().unwrap(),
                    server: sock(server),
                    id,
                    qname: BIG_NAME.into(),
                    qtype: "TXT".into(),
                    detail: "truncated; the TCP retry was not answered".into(),
                })
                .collect();
            a
        };
        let lost_large = || vec![lost(1, Some(1600)), lost(2, Some(1700))];
        let d = run_with(&s, lost_large(), small_answers_arrive(), pod_capture(EP_B));
        assert_eq!(ids(&d).first(), Some(&ID), "{:?}", ids(&d));
        assert!(!ids(&d).contains(&truncated_no_tcp::ID), "{:?}", ids(&d));
        let d = run_with(&s, lost_large(), small_answers_arrive(), pod_capture(EP_A));
        assert_eq!(ids(&d).first(), Some(&ID), "{:?}", ids(&d));
        assert!(ids(&d).contains(&truncated_no_tcp::ID), "{:?}", ids(&d));
    }
}
