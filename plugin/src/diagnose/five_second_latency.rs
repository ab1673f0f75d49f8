//! Rule: lookups stall for the resolver's 5-second timeout because one of the two parallel
//! A/AAAA replies never comes (the conntrack insert race when both packets of one socket
//! are NATed at once, or a rule dropping part of the DNS traffic).

use dns_doctor_schema::ServerRole;

use super::finding::{EvidenceRef, Finding, Severity};
use super::libc_advice;
use super::Context;

pub const ID: &str = "five-second-latency";

pub fn rule(cx: &Context<'_>) -> Option<Finding> {
    let mut evidence = Vec::new();
    let mut probe_missing = 0u32;
    let mut probe_rounds = 0u32;
    if let Some(o) = &cx.observed {
        let ips = o.cluster_dns_ips();
        for t in o
            .report
            .parallel
            .iter()
            .filter(|t| t.role == ServerRole::Nameserver && ips.contains(&t.server.ip()))
        {
            let s = &t.same_socket;
            let one = s.a_missing + s.aaaa_missing;
            probe_missing += one;
            probe_rounds += s.rounds;
            let sep = &t.separate_sockets;
            evidence.push(EvidenceRef::new(
                "check:five-second",
                format!(
                    "parallel A+AAAA for {} to {}, one socket: {one} of {} rounds lost one reply ({} A, {} AAAA); one socket per query: {} of {} rounds",
                    t.qname, t.server, s.rounds, s.a_missing, s.aaaa_missing,
                    sep.a_missing + sep.aaaa_missing, sep.rounds
                ),
            ));
        }
    }
    let mut capture_signs = 0u64;
    if let Some(c) = cx.pod_capture() {
        let p = &c.analysis.analysis.summary.patterns;
        if p.a_aaaa_one_missing > 0 || p.five_second_retries > 0 {
            capture_signs += p.a_aaaa_one_missing + p.five_second_retries;
            let mut seen = Vec::new();
            if p.a_aaaa_one_missing > 0 {
                seen.push(format!(
                    "{} of {} A/AAAA pairs got one reply only",
                    p.a_aaaa_one_missing, p.a_aaaa_pairs
                ));
            }
            if p.five_second_retries > 0 {
                seen.push(format!(
                    "{} queries retried after ~5 s",
                    p.five_second_retries
                ));
            }
            evidence.push(EvidenceRef::new(c.source(), seen.join("; ")));
            evidence.extend(
                c.analysis
                    .analysis
                    .examples
                    .a_aaaa_one_missing
                    .iter()
                    .chain(c.analysis.analysis.examples.five_second_retries.iter())
                    .take(3)
                    .map(|e| c.example(e)),
            );
        }
    }
    if probe_missing == 0 && capture_signs == 0 {
        return None;
    }
    // When the one-socket rounds lost nothing and some server the pod asks answers nothing
    // at all (the cluster DNS when every query fails, one broken replica, a dead NodeLocal
    // cache), retries after the resolver timeout are that server's failure, named by
    // another rule, not the conntrack race.
    let silent_server = cx
        .observed
        .as_ref()
        .is_some_and(|o| !o.silent_servers().is_empty());
    if probe_missing == 0 && silent_server {
        return None;
    }
    for n in &cx.nodes {
        if let Some(d) = super::conntrack_table_near_full::stats_delta(n) {
            if d.insert_failed() > 0 || d.drop() > 0 {
                evidence.push(EvidenceRef::new(
                    n.source("conntrack-stats"),
                    format!(
                        "conntrack -S over {} ms: insert_failed +{}, drop +{}",
                        n.snapshot.conntrack_window_ms,
                        d.insert_failed(),
                        d.drop()
                    ),
                ));
            }
        }
        for r in n.dns_touching_rules() {
            if r.rule
                .reasons
                .contains(&crate::node::firewall::TouchReason::PayloadMatch)
            {
                evidence.push(EvidenceRef::new(
                    n.source(r.key),
                    format!(
                        "line {}: {} (drops DNS by payload, e.g. AAAA queries)",
                        r.rule.line, r.rule.text
                    ),
                ));
            }
        }
    }
    let resolv = cx.observed.as_ref().and_then(|o| o.resolv_conf());
    if let Some(r) = &resolv {
        evidence.push(EvidenceRef::new(
            "probe:resolv.conf",
            format!(
                "options: timeout {} s, attempts {}, single-request-reopen {}, use-vc {}",
                r.timeout_secs,
                r.attempts,
                if r.single_request_reopen {
                    "set"
                } else {
                    "not set"
                },
                if r.use_vc { "set" } else { "not set" },
            ),
        ));
    }
    let reopen_set = resolv.as_ref().is_some_and(|r| r.single_request_reopen);
    let libc = cx.observed.as_ref().map(|o| o.report.libc.kind);
    let libc_label = libc_advice::resolver_name(libc);
    let remediation = vec![
        "Run NodeLocal DNSCache, so pods query a cache on their node without DNAT and the conntrack race cannot hit them.".to_string(),
        libc_advice::lost_parallel_reply(libc, reopen_set),
        "If a firewall rule drops part of the DNS traffic (e.g. AAAA queries), remove it.".into(),
    ];

    let severity = if probe_missing > 0 {
        Severity::Error
    } else {
        Severity::Warning
    };
    let measured = if probe_missing > 0 {
        format!("{probe_missing} of {probe_rounds} parallel A/AAAA rounds lost one reply")
    } else {
        format!("{capture_signs} lookups in the capture lost one reply or were retried after 5 s")
    };
    Some(Finding {
        id: ID.into(),
        severity,
        summary: format!(
            "5-second DNS latency: {measured}; the resolver ({libc_label}) waits its full timeout for the missing one (conntrack race on parallel A/AAAA queries)"
        ),
        evidence,
        remediation,
        loss_point: None,
        node_pair: None,
    })
}
