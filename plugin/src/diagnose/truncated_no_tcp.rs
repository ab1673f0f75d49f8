//! Rule: answers too large for UDP come back truncated and the TCP retry fails, so large
//! answers never arrive.
//!
//! A TCP retry also fails when the answer is too large for the path between the nodes:
//! the connection opens, the full-size segment of the answer is lost. Where
//! `overlay-mtu-too-small` names the node whose answers are lost that way, retries to the
//! DNS pods on that node (and to the cluster DNS address, which spreads over them) are
//! explained, and only the others count here.

use std::net::{IpAddr, SocketAddr};

use dns_doctor_schema::Transport;

use super::finding::{EvidenceRef, Finding, Severity};
use super::observed::{answered_ok, describe_query};
use super::{overlay_mtu, Context};

pub const ID: &str = "truncated-no-tcp";

/// `findings`: what the rules run before found (an `overlay-mtu-too-small` finding explains
/// failed retries towards its node).
pub fn rule(cx: &Context<'_>, findings: &[Finding]) -> Option<Finding> {
    let explained = |server: SocketAddr| explained_by_mtu(cx, findings, server.ip());
    let mut evidence = Vec::new();
    if let Some(o) = &cx.observed {
        for q in o
            .report
            .queries
            .iter()
            .filter(|q| q.transport == Transport::Udp && q.truncated && !explained(q.server))
        {
            let tcp_ok = o.report.queries.iter().any(|t| {
                t.transport == Transport::Tcp
                    && t.server == q.server
                    && t.qname == q.qname
                    && answered_ok(t)
            });
            if !tcp_ok {
                evidence.push(EvidenceRef::new("probe", describe_query(q)));
                evidence.extend(
                    o.report
                        .queries
                        .iter()
                        .filter(|t| {
                            t.transport == Transport::Tcp
                                && t.server == q.server
                                && t.qname == q.qname
                        })
                        .take(1)
                        .map(|t| EvidenceRef::new("probe", describe_query(t))),
                );
            }
        }
    }
    // A TCP retry that failed proves it; no TCP query after a truncated answer usually means
    // the connection never opened (RST or timeout before any DNS message), but could also be
    // a client that does not retry, so it alone is a warning.
    let mut proven = !evidence.is_empty();
    // Names the probe fetched over TCP: a client that took a truncated answer for one of
    // them and asked no more (the probe itself, which asks over TCP on its own; a DNS
    // server relaying the truncated answer of its upstream) saw no blocked TCP.
    let fetched_over_tcp = |qname: &str| {
        cx.observed.as_ref().is_some_and(|o| {
            o.report.queries.iter().any(|t| {
                t.transport == Transport::Tcp
                    && t.qname.eq_ignore_ascii_case(qname)
                    && answered_ok(t)
            })
        })
    };
    for c in cx.captures {
        let p = &c.analysis.analysis.summary.patterns;
        let examples = &c.analysis.analysis.examples.truncated_without_tcp;
        // The counts name no server; the examples do. When every example is explained,
        // so are the counts they stand for.
        if !examples.is_empty() && examples.iter().all(|e| explained(e.server)) {
            continue;
        }
        if p.truncated_tcp_failed == 0
            && !examples.is_empty()
            && examples.iter().all(|e| fetched_over_tcp(&e.qname))
        {
            continue;
        }
        proven |= p.truncated_tcp_failed > 0;
        if p.truncated_tcp_failed + p.truncated_no_tcp > 0 {
            evidence.push(EvidenceRef::new(
                c.source(),
                format!(
                    "{} truncated answers: TCP retry failed {}, never tried {}, succeeded {}",
                    p.truncated_tcp_failed + p.truncated_no_tcp + p.truncated_tcp_ok,
                    p.truncated_tcp_failed,
                    p.truncated_no_tcp,
                    p.truncated_tcp_ok
                ),
            ));
            evidence.extend(
                c.analysis
                    .analysis
                    .examples
                    .truncated_without_tcp
                    .iter()
                    .take(3)
                    .map(|e| c.example(e)),
            );
        }
    }
    if evidence.is_empty() {
        return None;
    }
    Some(Finding {
        id: ID.into(),
        severity: if proven {
            Severity::Error
        } else {
            Severity::Warning
        },
        summary: "truncated UDP answers cannot be fetched over TCP: TCP port 53 is blocked, so large answers never arrive".into(),
        evidence,
        remediation: vec![
            "Allow TCP port 53 wherever UDP 53 is allowed: from pods to the DNS ClusterIP and DNS pods, and from the DNS pods to the upstream (node firewall, NetworkPolicies, security groups).".into(),
            "Keep answers small where possible (fewer records per name).".into(),
        ],
        loss_point: None,
        node_pair: None,
    })
}

/// Whether a failed TCP retry to `server` is explained by an `overlay-mtu-too-small`
/// finding towards the target pod's node: the server is a DNS endpoint on the node whose
/// large answers are lost, or a cluster DNS address (whose connections may land there).
fn explained_by_mtu(cx: &Context<'_>, findings: &[Finding], server: IpAddr) -> bool {
    let Some(to) = cx.topology.target.node.as_deref() else {
        return false;
    };
    let on_lossy_node = cx
        .topology
        .endpoint_node(&server)
        .is_some_and(|from| overlay_mtu::explains(findings, from, to));
    let lossy_anywhere = findings
        .iter()
        .any(|f| f.id == overlay_mtu::ID && f.node_pair.as_ref().is_some_and(|p| p.to == to));
    on_lossy_node || (lossy_anywhere && cx.topology.cluster_dns.ips.contains(&server))
}
