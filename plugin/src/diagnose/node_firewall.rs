//! Rule: the pod's DNS queries leave the pod but die on a node: a DROP/REJECT rule there
//! touches port 53 or the pod/service ranges, and (when captured) the lost queries were last
//! seen at the pod or on the node. Without a rule on the node, a loss point on the node is
//! the security-group case: something between the nodes drops them.

use dns_doctor_schema::Transport;

use crate::evidence::CaptureKind;

use super::finding::{EvidenceRef, Finding, Severity};
use super::Context;

pub const ID: &str = "node-firewall";

pub fn rule(cx: &Context<'_>) -> Option<Finding> {
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
    if rules.is_empty() && (!direct.mostly_failed() || !dns_pods_ready) {
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
        for l in examples {
            if let Some(s) = l.sightings.last() {
                evidence.push(EvidenceRef::new(
                    format!("capture:{name}"),
                    format!(
                        "id {} {} {} at {}: {} -> {}, no answer",
                        l.id, l.qtype, l.qname, s.time, s.client, s.server
                    ),
                ));
            }
        }
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
