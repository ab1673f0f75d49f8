//! Rule: answers too large for UDP come back truncated and the TCP retry fails, so large
//! answers never arrive.

use dns_doctor_schema::Transport;

use super::finding::{EvidenceRef, Finding, Severity};
use super::observed::{answered_ok, describe_query};
use super::Context;

pub const ID: &str = "truncated-no-tcp";

pub fn rule(cx: &Context<'_>) -> Option<Finding> {
    let mut evidence = Vec::new();
    if let Some(o) = &cx.observed {
        for q in o
            .report
            .queries
            .iter()
            .filter(|q| q.transport == Transport::Udp && q.truncated)
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
    for c in cx.captures {
        let p = &c.analysis.analysis.summary.patterns;
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
