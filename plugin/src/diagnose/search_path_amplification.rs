//! Rule: names with fewer dots than ndots are tried with every search suffix first, so one
//! lookup costs many queries and NXDOMAIN answers. Measured by the pod probe's search
//! expansion; without the probe, seen in the pod's capture as answered lookups preceded by
//! NXDOMAIN answers for the name with search suffixes.

use super::finding::{EvidenceRef, Finding, Severity};
use super::Context;

pub const ID: &str = "search-path-amplification";

/// Kubernetes' default resolv.conf (three cluster search suffixes, ndots 5) costs 8 queries
/// for an external name: more than that means extra suffixes or a higher ndots.
pub const DEFAULT_QUERIES_PER_LOOKUP: u32 = 8;

pub fn rule(cx: &Context<'_>) -> Option<Finding> {
    let Some(o) = cx.observed.as_ref() else {
        return from_capture(cx);
    };
    let worst = o
        .report
        .search_expansion
        .iter()
        .filter(|e| e.candidates.len() > 1)
        .max_by_key(|e| e.queries_per_lookup)?;
    let mut evidence: Vec<EvidenceRef> = o
        .report
        .search_expansion
        .iter()
        .filter(|e| e.candidates.len() > 1)
        .map(|e| {
            EvidenceRef::new(
                "probe:search-expansion",
                format!(
                    "{}: {} queries per lookup, tries {}",
                    e.name,
                    e.queries_per_lookup,
                    e.candidates.join(", ")
                ),
            )
        })
        .collect();
    if let Some(r) = o.resolv_conf() {
        evidence.push(EvidenceRef::new(
            "probe:resolv.conf",
            format!("ndots {}, search {}", r.ndots, r.search.join(" ")),
        ));
    }
    if let Some(c) = cx.pod_capture() {
        let p = &c.analysis.analysis.summary.patterns;
        if p.search_path_lookups > 0 {
            evidence.push(EvidenceRef::new(
                c.source(),
                format!(
                    "{} lookups answered only after {} NXDOMAIN answers for search-path expansions",
                    p.search_path_lookups, p.search_path_nxdomains
                ),
            ));
        }
    }
    let severity = if worst.queries_per_lookup > DEFAULT_QUERIES_PER_LOOKUP {
        Severity::Warning
    } else {
        Severity::Info
    };
    Some(Finding {
        id: ID.into(),
        severity,
        summary: format!(
            "search-path amplification: one lookup of {} costs {} queries ({} names tried)",
            worst.name,
            worst.queries_per_lookup,
            worst.candidates.len()
        ),
        evidence,
        remediation: remediation(cx),
        loss_point: None,
        node_pair: None,
    })
}

/// The capture-only branch. Without the pod's resolv.conf the cost per lookup is unknown,
/// so it is a warning when the expansions' NXDOMAIN answers are a large share of all
/// answers (at least 10, and 30 % of the responses), info otherwise.
fn from_capture(cx: &Context<'_>) -> Option<Finding> {
    let c = cx.pod_capture()?;
    let s = &c.analysis.analysis.summary;
    let p = &s.patterns;
    if p.search_path_lookups == 0 {
        return None;
    }
    let heavy =
        p.search_path_nxdomains >= 10 && p.search_path_nxdomains * 10 >= s.responses.max(1) * 3;
    let mut evidence = vec![EvidenceRef::new(
        c.source(),
        format!(
            "{} answered only after {} NXDOMAIN answers for search-path expansions, of {} responses",
            lookups(p.search_path_lookups), p.search_path_nxdomains, s.responses
        ),
    )];
    evidence.extend(
        c.analysis
            .analysis
            .examples
            .search_path
            .iter()
            .take(3)
            .map(|e| c.example(e)),
    );
    Some(Finding {
        id: ID.into(),
        severity: if heavy {
            Severity::Warning
        } else {
            Severity::Info
        },
        summary: format!(
            "search-path amplification: {} answered only after {} NXDOMAIN answers for search-path expansions of the name",
            lookups(p.search_path_lookups), p.search_path_nxdomains
        ),
        evidence,
        remediation: remediation(cx),
        loss_point: None,
        node_pair: None,
    })
}

/// `1 lookup` / `2 lookups`.
fn lookups(n: u64) -> String {
    format!("{n} {}", if n == 1 { "lookup" } else { "lookups" })
}

fn remediation(cx: &Context<'_>) -> Vec<String> {
    vec![
        "Use fully qualified names with a trailing dot (e.g. `api.example.com.`) in the application's configuration.".into(),
        "Or lower ndots in the pod's spec.dnsConfig.options (e.g. name: ndots, value: \"2\").".into(),
        extra_searches_advice(cx),
    ]
}

/// Where the extra search domains come from: the pod's own spec.dnsConfig, or the node.
fn extra_searches_advice(cx: &Context<'_>) -> String {
    let domain = match cx.topology.cluster_dns.domain.trim_end_matches('.') {
        "" => "cluster.local",
        d => d,
    };
    let is_cluster_suffix = |s: &str| {
        let s = s.trim_end_matches('.');
        s == domain || s.ends_with(&format!(".{domain}"))
    };
    let own: Vec<&str> = cx
        .topology
        .target
        .dns_config
        .iter()
        .flat_map(|c| c.searches.iter().map(String::as_str))
        .filter(|s| !is_cluster_suffix(s))
        .collect();
    if own.is_empty() {
        "Remove search domains the pods do not need (beyond the cluster's three they come from the node's resolv.conf).".into()
    } else {
        format!(
            "Remove the search domains the pod does not need from its spec.dnsConfig.searches ({}).",
            own.join(", ")
        )
    }
}
