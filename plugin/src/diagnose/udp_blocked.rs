//! Rule: DNS over UDP fails while DNS over TCP to the same address works, so something on
//! the path (node firewall, network policy, security group, ACL) drops UDP port 53.

use dns_doctor_schema::Transport;

use super::finding::{EvidenceRef, Finding, Severity};
use super::libc_advice;
use super::Context;

pub const ID: &str = "udp-blocked";

pub fn rule(cx: &Context<'_>) -> Option<Finding> {
    let o = cx.observed.as_ref()?;
    let udp = o.cluster_dns_tally(Transport::Udp);
    let tcp = o.cluster_dns_tally(Transport::Tcp);
    if !udp.mostly_failed() || !tcp.mostly_ok() {
        return None;
    }
    if o.cluster_dns_tcp_connects_ok() == Some(false) {
        return None;
    }
    let ips: Vec<String> = o.cluster_dns_ips().iter().map(|i| i.to_string()).collect();
    let mut evidence = vec![
        EvidenceRef::new("check:queries", format!("UDP to the cluster DNS: {udp}")),
        EvidenceRef::new("check:queries", format!("TCP to the cluster DNS: {tcp}")),
    ];
    if o.cluster_dns_tcp_connects_ok() == Some(true) {
        evidence.push(EvidenceRef::new(
            "check:tcp-connect",
            "TCP connect to port 53 succeeds",
        ));
    }
    let ep_udp =
        super::observed::Tally::of(o.to_endpoints().filter(|q| q.transport == Transport::Udp));
    if ep_udp.sent > 0 {
        evidence.push(EvidenceRef::new(
            "check:endpoints-direct",
            format!("UDP straight to the DNS endpoints: {ep_udp}"),
        ));
    }
    let mut loss_point = None;
    for n in &cx.nodes {
        for r in n.dns_touching_rules() {
            if r.rule.text.contains("udp") {
                evidence.push(EvidenceRef::new(
                    n.source(r.key),
                    format!("line {}: {}", r.rule.line, r.rule.text),
                ));
                loss_point.get_or_insert_with(|| format!("node {}", n.node));
            }
        }
    }
    Some(Finding {
        id: ID.into(),
        severity: Severity::Error,
        summary: format!(
            "DNS over UDP to {} fails while TCP works: a firewall or ACL drops UDP port 53",
            ips.join(", ")
        ),
        evidence,
        remediation: std::iter::once(
            "Allow UDP port 53 from the pod range to the DNS pods and the DNS ClusterIP wherever TCP 53 is allowed: node firewall (iptables/nftables), NetworkPolicies in the pod's and the DNS namespace, and the cloud security groups / NACLs between nodes.".to_string(),
        )
        .chain(libc_advice::tcp_instead_of_udp(Some(o.report.libc.kind)))
        .collect(),
        loss_point,
        node_pair: None,
    })
}
