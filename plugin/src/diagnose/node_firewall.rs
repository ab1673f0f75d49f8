//! Rule: the pod's DNS queries leave the pod but die on a node: a DROP/REJECT rule there
//! touches port 53 or the pod/service ranges, and (when captured) the lost queries were last
//! seen at the pod or on the node. Without a rule on the node, a loss point on the node is
//! the security-group case: something between the nodes drops them.
//!
//! A firewall on one DNS replica's node only is the same cause in another shape: lookups
//! fail only when the ClusterIP picks a replica there. Asked directly, those replicas fail
//! while others answer, the queries lost to them reached their node's capture and never the
//! DNS pod's, and that node's rules drop DNS.

use std::collections::BTreeMap;
use std::net::IpAddr;

use dns_doctor_schema::Transport;

use crate::capture::correlate::LostQuery;
use crate::evidence::CaptureKind;

use super::finding::{EvidenceRef, Finding, Severity};
use super::Context;

pub const ID: &str = "node-firewall";

/// The share of the queries lost to a replica that must have died on its node, in percent.
const DIED_ON_NODE_PERCENT: usize = 80;

/// `findings`: those of the rules before this one. A NetworkPolicy that blocks the pod's DNS
/// drops it where a firewall without a rule would be guessed.
pub fn rule(cx: &Context<'_>, findings: &[Finding]) -> Option<Finding> {
    let policy_blocks = findings
        .iter()
        .any(|f| f.id == super::network_policy_blocks_dns::ID);
    every_lookup(cx, policy_blocks).or_else(|| on_a_replicas_node(cx))
}

/// Every lookup through the cluster DNS dies: a firewall on the pod's path. Without a rule
/// that drops DNS, not when `policy_blocks` explains the loss.
fn every_lookup(cx: &Context<'_>, policy_blocks: bool) -> Option<Finding> {
    let o = cx.observed.as_ref()?;
    let udp = o.cluster_dns_tally(Transport::Udp);
    let tcp = o.cluster_dns_tally(Transport::Tcp);
    // Both transports dead: a block on one transport only is `udp-blocked`.
    let both_dead = udp.mostly_failed() && (tcp.sent == 0 || tcp.mostly_failed());
    if !both_dead || udp.timed_out == 0 && udp.refused == 0 {
        return None;
    }
    let mut evidence = vec![
        EvidenceRef::new("check:queries", format!("UDP to the cluster DNS: {udp}")),
        EvidenceRef::new("check:queries", format!("TCP to the cluster DNS: {tcp}")),
    ];
    let mut rules = Vec::new();
    for n in &cx.nodes {
        for r in n.dns_touching_rules() {
            rules.push(EvidenceRef::new(
                n.source(r.key),
                format!(
                    "line {} ({} {}): {}",
                    r.rule.line, r.rule.table, r.rule.chain, r.rule.text
                ),
            ));
        }
        for (key, p) in n.drop_policies() {
            if !rules.is_empty() {
                rules.push(EvidenceRef::new(
                    n.source(key),
                    format!("{} {} policy {}", p.table, p.chain, p.policy),
                ));
            }
        }
    }
    let loss = cx
        .main_loss_point()
        .filter(|(_, kind, _, _)| matches!(kind, CaptureKind::Pod | CaptureKind::Node));
    if rules.is_empty() && loss.is_none() {
        return None;
    }
    // Without a rule, endpoints that answer directly point at the ClusterIP path (kube-proxy),
    // not at a firewall between the nodes; and with no ready DNS pod, losses on the node are
    // the DNS pods' failure, not a firewall's.
    let direct = super::observed::Tally::of(o.to_endpoints());
    let dns_pods_ready = !cx.topology.ready_endpoint_ips().is_empty();
    if rules.is_empty() && (!direct.mostly_failed() || !dns_pods_ready || policy_blocks) {
        return None;
    }
    // Security groups and NACLs drop silently; queries refused (ICMP port unreachable, RST)
    // reached a host where nothing listens on that port, which no node rule explains.
    if rules.is_empty() && udp.refused > udp.timed_out {
        return None;
    }
    if let Some((name, _, count, total)) = loss {
        evidence.push(EvidenceRef::new(
            format!("capture:{name}"),
            format!("{count} of {total} lost queries were last seen at {name}, none of them at a DNS pod"),
        ));
        let examples = cx
            .correlation
            .iter()
            .flat_map(|c| c.lost.iter())
            .filter(|l| l.last_seen_at == name)
            .take(3);
        evidence.extend(examples.filter_map(|l| unanswered_example(name, l)));
    }
    let with_rule = !rules.is_empty();
    evidence.extend(rules);
    let summary = if with_rule {
        "DNS queries leave the pod and die on the node: a firewall rule there drops DNS to the cluster range".to_string()
    } else {
        "DNS queries leave the node and never reach the DNS pods: a firewall or security group between the nodes drops them".to_string()
    };
    Some(Finding {
        id: ID.into(),
        severity: Severity::Error,
        summary,
        evidence,
        remediation: vec![
            "Open the node firewall for the cluster IP range and the pod range on UDP and TCP 53 (remove or narrow the DROP/REJECT rule shown).".into(),
            "Check the security groups / NACLs of the nodes: pods on one node must reach DNS pods on every other node on UDP and TCP 53.".into(),
        ],
        loss_point: loss.map(|(name, _, _, _)| name.to_string()),
        node_pair: None,
    })
}

/// One lost query as evidence from the capture `point` where it was last seen.
fn unanswered_example(point: &str, l: &LostQuery) -> Option<EvidenceRef> {
    let s = l.sightings.last()?;
    Some(EvidenceRef::new(
        format!("capture:{point}"),
        format!(
            "id {} {} {} at {}: {} -> {}, no answer",
            l.id, l.qtype, l.qname, s.time, s.client, s.server
        ),
    ))
}

/// Lookups die only on the replicas of one node, and that node's rules drop DNS.
fn on_a_replicas_node(cx: &Context<'_>) -> Option<Finding> {
    let o = cx.observed.as_ref()?;
    let c = cx.correlation?;
    let broken = o.broken_endpoints();
    let mut by_node: BTreeMap<&str, Vec<IpAddr>> = BTreeMap::new();
    for (ip, _) in &broken {
        if let Some(node) = cx.topology.endpoint_node(ip) {
            by_node.entry(node).or_default().push(*ip);
        }
    }
    for (node, ips) in by_node {
        let Some(view) = cx.nodes.iter().find(|n| n.node == node) else {
            continue;
        };
        if view.dns_touching_rules().is_empty() {
            continue;
        }
        let point = format!("node-{node}");
        let lost: Vec<_> = c
            .lost
            .iter()
            .filter(|l| l.sightings.iter().any(|s| ips.contains(&s.server.ip())))
            .collect();
        let died: Vec<_> = lost
            .iter()
            .filter(|l| l.last_seen_at == point && l.answered_at.is_none())
            .collect();
        if died.is_empty() || died.len() * 100 < lost.len() * DIED_ON_NODE_PERCENT {
            continue;
        }
        let pods: Vec<String> = ips
            .iter()
            .map(|ip| format!("{} ({ip})", cx.topology.endpoint_pod_name(ip)))
            .collect();
        let mut evidence: Vec<EvidenceRef> = o
            .per_endpoint()
            .iter()
            .map(|(ip, t)| {
                let on = cx.topology.endpoint_node(ip).unwrap_or("an unknown node");
                EvidenceRef::new(
                    "check:endpoints-direct",
                    format!(
                        "endpoint {ip} ({}) on {on}: {t}",
                        cx.topology.endpoint_pod_name(ip)
                    ),
                )
            })
            .collect();
        evidence.push(EvidenceRef::new(
            format!("capture:{point}"),
            format!(
                "{} of {} queries lost to {} were last seen at {point}, never at the DNS pod",
                died.len(),
                lost.len(),
                pods.join(", ")
            ),
        ));
        evidence.extend(
            died.iter()
                .take(3)
                .filter_map(|l| unanswered_example(&point, l)),
        );
        for r in view.dns_touching_rules() {
            evidence.push(EvidenceRef::new(
                view.source(r.key),
                format!(
                    "line {} ({} {}): {}",
                    r.rule.line, r.rule.table, r.rule.chain, r.rule.text
                ),
            ));
        }
        return Some(Finding {
            id: ID.into(),
            severity: Severity::Error,
            summary: format!(
                "DNS queries to {} reach {node} and die there: a firewall rule on {node} drops DNS to its DNS pods, while the replicas elsewhere answer",
                pods.join(", ")
            ),
            evidence,
            remediation: vec![
                format!("Open the firewall of {node} for UDP and TCP 53 towards its pods (remove or narrow the DROP/REJECT rule shown)."),
                format!("Compare {node}'s rules with the other nodes': a host firewall (firewalld, ufw), a hardening script or configuration management that reached only this node."),
                format!("Until it is fixed, move the DNS replicas off {node} (cordon it, then delete them there) so the ClusterIP stops sending lookups into the drop."),
            ],
            loss_point: Some(point),
            node_pair: None,
        });
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnose::one_replica_broken;
    use crate::diagnose::testkit::two_nodes::{lost, run, two_nodes};
    use crate::diagnose::testkit::*;

    /// coredns-b's node drops DNS: the firewall fixture on node-2 only.
    fn firewall_on_node_2() -> Scenario {
        let mut s = two_nodes();
        let node2 = &mut s.evidence.nodes[1].snapshot;
        let dump = node2
            .commands
            .iter_mut()
            .find(|c| c.key == "iptables-legacy-save")
            .expect("a legacy dump");
        dump.stdout = IPT_NODE_FIREWALL.to_string();
        s
    }

    fn died_on_node_2(n: u16) -> Vec<crate::capture::correlate::LostQuery> {
        (1..=n)
            .map(|id| lost(id, &["pod-web-0", "node-node-1", "node-node-2"], None))
            .collect()
    }

    #[test]
    fn a_firewall_on_one_replicas_node_is_named_before_the_replica() {
        let d = run(&firewall_on_node_2(), died_on_node_2(4));
        let top = d.root_cause().expect("never healthy");
        assert_eq!(top.id, ID, "{:?}", d.findings);
        assert!(
            top.summary
                .contains("kube-system/coredns-b (10.244.0.3) reach node-2 and die there"),
            "{}",
            top.summary
        );
        assert_eq!(top.loss_point.as_deref(), Some("node-node-2"));
        let ev: Vec<&str> = top.evidence.iter().map(|e| e.detail.as_str()).collect();
        let ev = ev.join("\n");
        assert!(ev.contains("4 of 4 queries lost to kube-system/coredns-b (10.244.0.3) were last seen at node-node-2"), "{ev}");
        assert!(
            ev.contains("-d 10.244.0.0/24 -p udp -m udp --dport 53 -j DROP"),
            "{ev}"
        );
        assert!(top
            .evidence
            .iter()
            .any(|e| e.source == "node:node-2/iptables-legacy-save"));
        assert!(top.remediation[0].contains("firewall of node-2"));
        // The replica that looks broken is still reported, below its cause.
        assert!(d.findings.iter().any(|f| f.id == one_replica_broken::ID));
    }

    #[test]
    fn without_a_rule_on_that_node_the_replica_is_blamed() {
        let d = run(&two_nodes(), died_on_node_2(4));
        assert!(d.findings.iter().all(|f| f.id != ID), "{:?}", d.findings);
        assert!(d.findings.iter().any(|f| f.id == one_replica_broken::ID));
    }

    #[test]
    fn queries_that_reached_the_dns_pod_are_not_the_nodes_firewall() {
        let lost_in_pod = (1..=4)
            .map(|id| {
                lost(
                    id,
                    &["pod-web-0", "node-node-1", "node-node-2", "dns-coredns-b"],
                    None,
                )
            })
            .collect();
        let d = run(&firewall_on_node_2(), lost_in_pod);
        assert!(d.findings.iter().all(|f| f.id != ID), "{:?}", d.findings);
    }

    #[test]
    fn a_rule_on_another_node_does_not_explain_the_loss() {
        let mut s = two_nodes();
        s.set_node_command("iptables-legacy-save", IPT_NODE_FIREWALL);
        let d = run(&s, died_on_node_2(4));
        // node-1's rule would drop every lookup, which the probe did not see: not this shape.
        assert!(
            d.root_cause().is_none_or(|f| f.id != ID),
            "{:?}",
            d.findings
        );
    }
}
