//! Rule: cluster names resolve but external names do not, and the upstream resolver queried
//! from a DNS pod's own network namespace fails too: the upstream is down or an ACL blocks it.

use dns_doctor_schema::ServerRole;

use super::finding::{EvidenceRef, Finding, Severity};
use super::observed::{answered_ok, describe_query, Tally};
use super::Context;

pub const ID: &str = "upstream-failing";

pub fn rule(cx: &Context<'_>) -> Option<Finding> {
    let o = cx.observed.as_ref()?;
    let cluster = o.cluster_dns_names_tally(true);
    let external = o.cluster_dns_names_tally(false);
    // Names outside the cluster domain are forwarded upstream. Some of them may still get a
    // cached NXDOMAIN; none resolving and most failing is the upstream's signature.
    let resolved = o
        .to_cluster_dns()
        .filter(|q| !o.is_cluster_name(&q.qname))
        .any(|q| answered_ok(q) && !q.answers.is_empty());
    if !cluster.mostly_ok()
        || resolved
        || external.sent == 0
        || external.failed() * 2 < external.sent
    {
        return None;
    }
    let mut evidence = vec![
        EvidenceRef::new(
            "check:queries",
            format!("cluster names via the cluster DNS: {cluster}"),
        ),
        EvidenceRef::new(
            "check:external-name",
            format!("external names via the cluster DNS: {external}"),
        ),
    ];
    evidence.extend(
        o.to_cluster_dns()
            .filter(|q| !o.is_cluster_name(&q.qname) && !answered_ok(q))
            .take(2)
            .map(|q| EvidenceRef::new("probe", describe_query(q))),
    );
    if let Some(f) = super::corefile_view::root_forward(cx.topology) {
        evidence.push(EvidenceRef::new(
            "api:corefile",
            format!("the Corefile forwards . to {}", f.describe()),
        ));
    }
    let mut upstream_failed = None;
    for u in &cx.evidence.upstream_probes {
        let t = Tally::of(
            u.report
                .queries
                .iter()
                .filter(|q| q.role == ServerRole::Upstream),
        );
        if t.sent == 0 {
            continue;
        }
        upstream_failed = Some(upstream_failed.unwrap_or(true) && t.all_failed());
        let servers: Vec<String> = {
            let mut s: Vec<String> = Vec::new();
            for q in u
                .report
                .queries
                .iter()
                .filter(|q| q.role == ServerRole::Upstream)
            {
                let a = q.server.to_string();
                if !s.contains(&a) {
                    s.push(a);
                }
            }
            s
        };
        evidence.push(EvidenceRef::new(
            format!("probe:upstream:{}", u.dns_pod),
            format!(
                "upstream {} queried from the DNS pod's network: {t}",
                servers.join(", ")
            ),
        ));
    }
    for p in &cx.topology.dns_pods {
        for l in p.log_lines.iter().filter(|l| l.kind.is_upstream()).take(2) {
            evidence.push(EvidenceRef::new(format!("logs:{}", p.name), l.line.clone()));
        }
    }
    let summary = match upstream_failed {
        Some(false) => "cluster names resolve but external names fail, although the upstream answers the DNS pods directly: the DNS server's forwarding is broken (check the Corefile's forward)".to_string(),
        _ => "cluster names resolve but external names fail: the upstream DNS server fails or an ACL/firewall blocks the DNS pods from reaching it".to_string(),
    };
    Some(Finding {
        id: ID.into(),
        severity: Severity::Error,
        summary,
        evidence,
        remediation: vec![
            "Check that the upstream resolvers the Corefile forwards to (forward . <addresses>, or the DNS pods' /etc/resolv.conf) are up and answer queries from the DNS pods' addresses.".into(),
            "Check the upstream's ACL and every firewall or security group between the DNS pods' nodes and the upstream for UDP and TCP port 53.".into(),
            "If the upstream is replaced, update forward in the Corefile (ConfigMap coredns) and let CoreDNS reload it.".into(),
        ],
        loss_point: None,
        node_pair: None,
    })
}
