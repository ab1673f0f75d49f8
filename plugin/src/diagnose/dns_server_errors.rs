//! Rule: the pod's capture shows its DNS server answering SERVFAIL or REFUSED. The server
//! is reached and replies, but gives no answer for these names.

use super::finding::{EvidenceRef, Finding, Severity};
use super::Context;

pub const ID: &str = "dns-server-errors";

/// `found` are the findings of the rules run before: when `upstream-failing` is among them,
/// it already explains the SERVFAIL answers (the server cannot reach its upstream).
pub fn rule(cx: &Context<'_>, found: &[Finding]) -> Option<Finding> {
    if found.iter().any(|f| f.id == super::upstream_failing::ID) {
        return None;
    }
    let c = cx.pod_capture()?;
    let p = &c.analysis.analysis.summary.patterns;
    if p.servfail + p.refused == 0 {
        return None;
    }
    let mut seen = Vec::new();
    let mut remediation = Vec::new();
    if p.servfail > 0 {
        seen.push(format!("{} answered SERVFAIL", queries(p.servfail)));
        remediation.push("SERVFAIL: the DNS server could not resolve these names; check the DNS pods' logs for upstream timeouts and errors.".to_string());
        remediation.push("Check that the upstream resolvers in the Corefile (forward) answer queries from the DNS pods' network.".into());
    }
    if p.refused > 0 {
        seen.push(format!("{} answered REFUSED", queries(p.refused)));
        remediation.push("REFUSED: the server will not answer these clients or names; check that the pod uses the cluster DNS (its dnsPolicy and resolv.conf).".into());
        remediation.push(
            "Check the server's ACLs and the zones it serves (the Corefile's server blocks)."
                .into(),
        );
    }
    let seen = seen.join(", ");
    let mut evidence = vec![EvidenceRef::new(c.source(), seen.clone())];
    evidence.extend(
        c.analysis
            .analysis
            .examples
            .server_errors
            .iter()
            .map(|e| c.example(e)),
    );
    Some(Finding {
        id: ID.into(),
        severity: Severity::Warning,
        summary: format!("the DNS server answers with errors: {seen}"),
        evidence,
        remediation,
        loss_point: None,
        node_pair: None,
    })
}

/// `1 query` / `2 queries`.
fn queries(n: u64) -> String {
    format!("{n} {}", if n == 1 { "query" } else { "queries" })
}
