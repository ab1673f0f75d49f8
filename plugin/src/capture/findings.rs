//! Problems a single capture shows on its own, with the packets that show them.

use super::transactions::Example;
use super::CaptureAnalysis;
use serde::Serialize;

/// How bad a finding is. Warnings and errors make `analyze` exit 1.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Worth knowing, not a fault.
    Info,
    /// Degrades DNS (slow lookups, wasted queries) without failing it outright.
    Warning,
    /// Lookups fail.
    Error,
}

/// A problem seen in a capture.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// Stable identifier, e.g. `lost-queries`.
    pub id: &'static str,
    /// How bad.
    pub severity: Severity,
    /// One sentence saying what was seen, with counts.
    pub summary: String,
    /// Packets it rests on (frame numbers, times, addresses, names).
    pub evidence: Vec<String>,
    /// What to do.
    pub remediation: String,
}

/// One line of evidence for an example.
pub fn describe(e: &Example) -> String {
    format!(
        "frame {} at {}: {} -> {} id {} {}? {} — {}",
        e.frame, e.time, e.client, e.server, e.id, e.qtype, e.qname, e.detail
    )
}

/// `1 query was` / `2 queries were`.
fn count(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

fn evidence(examples: &[Example]) -> Vec<String> {
    examples.iter().map(describe).collect()
}

/// The findings of one capture, most severe first.
pub fn findings(c: &CaptureAnalysis) -> Vec<Finding> {
    let s = &c.analysis.summary;
    let p = &s.patterns;
    let ex = &c.analysis.examples;
    let mut out = Vec::new();
    if s.unanswered_transactions > 0 {
        let share = s.unanswered_transactions as f64 / s.transactions.max(1) as f64;
        out.push(Finding {
            id: "lost-queries",
            severity: if share >= 0.01 {
                Severity::Error
            } else {
                Severity::Warning
            },
            summary: format!(
                "{} of {} DNS queries ({:.1} %) were never answered",
                s.unanswered_transactions,
                s.transactions,
                share * 100.0
            ),
            evidence: evidence(&ex.lost),
            remediation: "Find where the queries die: capture at the node and at the DNS pods \
                as well (kubectl dns-doctor pod/NAME does this), then check that the DNS pods \
                are ready, that kube-proxy's rules send the DNS ClusterIP to live endpoints, \
                and that no firewall or security group drops port 53 between pod and DNS pods."
                .into(),
        });
    }
    if p.a_aaaa_one_missing > 0 {
        out.push(Finding {
            id: "a-aaaa-reply-missing",
            severity: Severity::Warning,
            summary: format!(
                "{} of {} parallel A/AAAA query pairs got only one of their two replies; \
                 the resolver waits its full timeout (5 s) for the other",
                p.a_aaaa_one_missing, p.a_aaaa_pairs
            ),
            evidence: evidence(&ex.a_aaaa_one_missing),
            remediation: "The usual cause is the conntrack race when two UDP packets of one \
                socket are translated at once (look for insert_failed in conntrack -S). Run \
                NodeLocal DNSCache, or for glibc clients set dnsConfig option \
                single-request-reopen (musl ignores it; use-vc or a local cache there)."
                .into(),
        });
    }
    if p.five_second_retries > 0 {
        out.push(Finding {
            id: "five-second-retries",
            severity: Severity::Warning,
            summary: format!(
                "{} retried about 5 s after going unanswered: lookups stall for the resolver \
                 timeout",
                count(p.five_second_retries, "query was", "queries were")
            ),
            evidence: evidence(&ex.five_second_retries),
            remediation: "Some first attempts are lost. Check for the A/AAAA conntrack race \
                (single-request-reopen for glibc, NodeLocal DNSCache), overloaded or \
                restarting DNS pods, and packet drops on the node."
                .into(),
        });
    }
    let tc_bad = p.truncated_tcp_failed + p.truncated_no_tcp;
    if tc_bad > 0 {
        out.push(Finding {
            id: "truncated-without-tcp",
            severity: if p.truncated_tcp_failed > 0 {
                Severity::Error
            } else {
                Severity::Warning
            },
            summary: format!(
                "{tc_bad} truncated UDP answers were not followed by a successful TCP retry \
                 ({} TCP retries failed, {} never tried, {} succeeded)",
                p.truncated_tcp_failed, p.truncated_no_tcp, p.truncated_tcp_ok
            ),
            evidence: evidence(&ex.truncated_without_tcp),
            remediation: "Large answers need DNS over TCP: allow TCP port 53 from pods to the \
                DNS pods and from the DNS pods to the upstream, wherever UDP 53 is allowed."
                .into(),
        });
    }
    if p.servfail > 0 {
        out.push(Finding {
            id: "servfail-answers",
            severity: Severity::Warning,
            summary: format!(
                "{} answered SERVFAIL",
                count(p.servfail, "query was", "queries were")
            ),
            evidence: evidence(
                &ex.server_errors
                    .iter()
                    .filter(|e| e.detail.contains("SERVFAIL"))
                    .cloned()
                    .collect::<Vec<_>>(),
            ),
            remediation: "The DNS server could not resolve these names: check the DNS pods' \
                logs for upstream timeouts and that the upstream resolvers in the Corefile \
                (forward) answer from the DNS pods' network."
                .into(),
        });
    }
    if p.refused > 0 {
        out.push(Finding {
            id: "refused-answers",
            severity: Severity::Warning,
            summary: format!(
                "{} answered REFUSED",
                count(p.refused, "query was", "queries were")
            ),
            evidence: evidence(
                &ex.server_errors
                    .iter()
                    .filter(|e| e.detail.contains("REFUSED"))
                    .cloned()
                    .collect::<Vec<_>>(),
            ),
            remediation: "The server refuses to answer these clients or names: check that the \
                pod uses the cluster DNS (dnsPolicy, resolv.conf) and the server's ACLs and \
                served zones."
                .into(),
        });
    }
    if p.search_path_lookups > 0 {
        let heavy =
            p.search_path_nxdomains >= 10 && p.search_path_nxdomains * 10 >= s.responses.max(1) * 3;
        out.push(Finding {
            id: "search-path-amplification",
            severity: if heavy {
                Severity::Warning
            } else {
                Severity::Info
            },
            summary: format!(
                "{} answered only after {} NXDOMAIN queries for search-path expansions of the \
                 name",
                count(p.search_path_lookups, "lookup was", "lookups were"),
                p.search_path_nxdomains
            ),
            evidence: evidence(&ex.search_path),
            remediation: "Names with fewer dots than ndots (5 in Kubernetes) are tried with \
                every search suffix first. Use fully qualified names with a trailing dot, or \
                lower ndots in the pod's dnsConfig (options: ndots: \"2\")."
                .into(),
        });
    }
    if let Some(err) = &c.read_error {
        out.push(Finding {
            id: "capture-damaged",
            severity: Severity::Info,
            summary: format!("the capture could not be read to its end: {err}"),
            evidence: vec![format!("{} frames read before the damage", c.stats.frames)],
            remediation: "Take the capture again and let tcpdump exit cleanly (-c or -G/-W, \
                or SIGINT) before copying the file."
                .into(),
        });
    }
    if s.dns_messages == 0 {
        out.push(Finding {
            id: "no-dns-traffic",
            severity: Severity::Info,
            summary: format!("no DNS message in {} frames", c.stats.frames),
            evidence: Vec::new(),
            remediation: "Capture with a filter such as `port 53` on the interface the pod's \
                traffic crosses (tcpdump -i any inside the pod's network namespace)."
                .into(),
        });
    }
    out.sort_by_key(|f| std::cmp::Reverse(f.severity));
    out
}
