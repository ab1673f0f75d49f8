//! What the pod's applications experience, as findings: names that do not resolve, resolve
//! to the wrong address, or resolve slowly; nameservers in the pod's resolv.conf that never
//! answer. These are symptoms: when a rule names a cause, it comes first (see
//! [`super::order`]); when none does, they keep the run from ever reading as healthy.

use std::net::IpAddr;

use super::app_lookup::{AppLookup, LookupVerdict, SLOW_MS};
use super::check::{Check, CheckStatus};
use super::finding::{EvidenceRef, Finding, Severity};
use super::observed::Tally;
use super::Context;
use crate::dns_config::names::is_cluster_name;

pub const ID_FAILS: &str = "name-lookup-fails";
pub const ID_WRONG: &str = "wrong-answer";
pub const ID_SLOW: &str = "slow-lookup";
pub const ID_NAMESERVER: &str = "nameserver-not-answering";
pub const ID_UNEXPLAINED: &str = "check-not-passing";

/// Findings that describe what the pod experiences rather than why.
pub const SYMPTOMS: &[&str] = &[ID_FAILS, ID_WRONG, ID_SLOW, ID_UNEXPLAINED];

fn evidence_of(lookups: &[&AppLookup]) -> Vec<EvidenceRef> {
    let mut ev = Vec::new();
    for l in lookups {
        ev.push(EvidenceRef::new("check:app-lookups", l.describe()));
        // The steps that cost time or ended the walk, at most a few per name.
        for s in l.steps.iter().filter(|s| s.cost_ms >= 100.0).take(4) {
            ev.push(EvidenceRef::new(
                "check:app-lookups",
                format!(
                    "  {} at {}: {} ({:.0} ms)",
                    s.qname, s.server, s.result, s.cost_ms
                ),
            ));
        }
    }
    ev
}

fn names(lookups: &[&AppLookup]) -> String {
    let v: Vec<&str> = lookups.iter().map(|l| l.name.as_str()).collect();
    v.join(", ")
}

/// The lookups to judge: all of them, except cluster names for a pod that by design
/// does not use the cluster DNS (a DNS server pod resolves through its upstream).
pub fn judged<'c>(cx: &'c Context<'_>) -> impl Iterator<Item = &'c AppLookup> {
    let by_design = cx.topology.bypasses_cluster_dns_by_design().is_some();
    let domain = cx.topology.cluster_dns.domain.clone();
    cx.lookups
        .iter()
        .filter(move |l| !(by_design && is_cluster_name(&l.name, &domain)))
}

/// One finding per kind of bad lookup.
pub fn rule(cx: &Context<'_>) -> Vec<Finding> {
    let mut out = Vec::new();
    let with =
        |v: LookupVerdict| -> Vec<&AppLookup> { judged(cx).filter(|l| l.verdict == v).collect() };
    let failing = with(LookupVerdict::Fails);
    if !failing.is_empty() {
        let why = failing[0].failure.clone().unwrap_or_default();
        out.push(Finding {
            id: ID_FAILS.into(),
            severity: Severity::Error,
            summary: format!(
                "the pod's applications cannot resolve {}: {why}",
                names(&failing)
            ),
            evidence: evidence_of(&failing),
            remediation: fails_remediation(&failing),
            loss_point: None,
            node_pair: None,
        });
    }
    let wrong = with(LookupVerdict::Wrong);
    if !wrong.is_empty() {
        out.push(Finding {
            id: ID_WRONG.into(),
            severity: Severity::Error,
            summary: format!(
                "{} resolves to an address the API does not give that name",
                names(&wrong)
            ),
            evidence: evidence_of(&wrong),
            remediation: vec![
                "Look for what rewrites the answer: `rewrite`, `hosts`, `template` or `file` blocks and stub domains in the Corefile; a nameserver in the pod's dnsConfig that is not the cluster DNS; a search domain that matches first (the evidence shows which candidate answered).".into(),
                "If the Service was recreated, wait out the DNS cache TTL or restart the DNS pods, and check that they watch the API (their logs).".into(),
            ],
            loss_point: None,
            node_pair: None,
        });
    }
    let slow = with(LookupVerdict::Slow);
    if !slow.is_empty() {
        let worst = slow.iter().map(|l| l.wall_ms).fold(0.0, f64::max);
        out.push(Finding {
            id: ID_SLOW.into(),
            severity: Severity::Warning,
            summary: format!(
                "lookups of {} take up to {:.1} s from the pod (more than {:.0} ms)",
                names(&slow),
                worst / 1000.0,
                SLOW_MS
            ),
            evidence: evidence_of(&slow),
            remediation: vec![
                "The steps listed cost the time: a nameserver that does not answer is waited out (`timeout` in resolv.conf, 5 s by default) before the next is asked; a reply that never comes for A or AAAA costs the same.".into(),
                "Remove nameservers that do not answer from the pod's dnsConfig, and lower ndots or use fully qualified names (a trailing dot) so fewer search candidates are tried.".into(),
            ],
            loss_point: None,
            node_pair: None,
        });
    }
    out.extend(silent_nameservers(cx));
    out
}

fn fails_remediation(failing: &[&AppLookup]) -> Vec<String> {
    let mut r = Vec::new();
    if failing
        .iter()
        .any(|l| l.failure.as_deref() == Some("NXDOMAIN"))
    {
        r.push("The name does not exist where the resolver asked: check the Service's name and namespace, the pod's search list and ndots, and that the kubelet's clusterDomain is the zone the DNS server serves.".into());
    }
    if failing.iter().any(|l| {
        l.failure
            .as_deref()
            .is_some_and(|f| f.contains("answer") || f.contains("SERVFAIL"))
    }) {
        r.push("The pod's nameservers give no usable answer: follow the checklist below (Service, endpoints, DNS pods, kube-proxy, node firewall) to the first step that fails.".into());
    }
    if r.is_empty() {
        r.push("Resolve the name from the pod with the same resolver (`getent hosts NAME`) and compare with the evidence.".into());
    }
    r
}

/// Nameservers in the pod's resolv.conf other than the cluster DNS that answer none of
/// the probe's queries: every lookup that reaches them waits out the timeout. (The cluster
/// DNS address and a NodeLocal cache have rules of their own that name the cause.)
fn silent_nameservers(cx: &Context<'_>) -> Option<Finding> {
    let o = cx.observed.as_ref()?;
    let conf = o.resolv_conf()?;
    let cluster = o.cluster_dns_ips();
    let local = cx.topology.node_local_dns.as_ref().map(|n| n.local_ip);
    let listed: Vec<IpAddr> = conf
        .effective_nameservers()
        .iter()
        .map(|n| n.address)
        .collect();
    let mut evidence = Vec::new();
    let mut first_silent = None;
    let mut silent = Vec::new();
    for (pos, ip) in listed.iter().enumerate() {
        if cluster.contains(ip) || Some(*ip) == local {
            continue;
        }
        let t = Tally::of(o.to_nameservers().filter(|q| q.server.ip() == *ip));
        if t.sent > 0 && t.ok == 0 {
            first_silent.get_or_insert(pos);
            silent.push(*ip);
            evidence.push(EvidenceRef::new(
                "check:pod-nameservers",
                format!(
                    "nameserver {} (line {} of {}): {t}",
                    ip,
                    pos + 1,
                    listed.len()
                ),
            ));
        }
    }
    let first = first_silent?;
    let timeout = conf.timeout_secs.max(1);
    // musl asks every nameserver at once: a silent one costs time only when all are.
    let musl = o.report.libc.kind == dns_doctor_schema::LibcKind::Musl;
    let costly = first == 0 && !musl;
    let cost = if costly {
        format!("with glibc every lookup first waits {timeout} s for it (the resolv.conf timeout) before asking the next")
    } else {
        "lookups reach it when an earlier nameserver fails, and then wait out the timeout"
            .to_string()
    };
    let silent_s: Vec<String> = silent.iter().map(IpAddr::to_string).collect();
    Some(Finding {
        id: ID_NAMESERVER.into(),
        severity: if costly { Severity::Error } else { Severity::Warning },
        summary: format!(
            "nameserver {} in the pod's resolv.conf never answers; {cost}",
            silent_s.join(", ")
        ),
        evidence,
        remediation: vec![
            "Remove the address from the pod's dnsConfig.nameservers (or fix the server it names); with dnsPolicy None every nameserver listed must answer cluster and external names.".into(),
            "If the address is meant to answer (a node-local cache, a sidecar), check that it listens on UDP and TCP 53 in the pod's network.".into(),
        ],
        loss_point: None,
        node_pair: None,
    })
}

/// The checklist step: every name resolves as the pod's applications ask it.
pub fn check(cx: &Context<'_>) -> Check {
    const T: &str = "The pod's own lookups give the right answer in < 1 s";
    if cx.observed.is_none() {
        return Check::new(
            "app-lookups",
            T,
            CheckStatus::Skipped,
            "the pod probe did not run",
        );
    }
    if cx.lookups.is_empty() {
        return Check::new(
            "app-lookups",
            T,
            CheckStatus::Skipped,
            "the probe resolved no name (or could not read the pod's resolv.conf)",
        );
    }
    let worst = judged(cx)
        .map(|l| l.verdict)
        .max()
        .unwrap_or(LookupVerdict::Ok);
    let status = match worst {
        LookupVerdict::Ok => CheckStatus::Pass,
        LookupVerdict::Slow | LookupVerdict::Unmeasured => CheckStatus::Warn,
        LookupVerdict::Wrong | LookupVerdict::Fails => CheckStatus::Fail,
    };
    let mut parts: Vec<String> = judged(cx).map(AppLookup::describe).collect();
    let skipped = cx.lookups.len() - judged(cx).count();
    if skipped > 0 {
        parts.push(format!(
            "{skipped} cluster name(s) not judged: the pod does not use the cluster DNS by design"
        ));
    }
    Check::new("app-lookups", T, status, parts.join("; "))
}

/// The last safety net: a checklist step that is WARN or FAIL while no finding says so.
/// The verdict is never healthy with a step that did not pass.
pub fn unexplained(checks: &[Check], found: &[Finding]) -> Option<Finding> {
    if found.iter().any(|f| f.severity >= Severity::Warning) {
        return None;
    }
    let bad: Vec<&Check> = checks
        .iter()
        .filter(|c| matches!(c.status, CheckStatus::Warn | CheckStatus::Fail))
        .collect();
    let first = bad.first()?;
    let failing = bad.iter().any(|c| c.status == CheckStatus::Fail);
    Some(Finding {
        id: ID_UNEXPLAINED.into(),
        severity: if failing { Severity::Error } else { Severity::Warning },
        summary: format!("runbook step \"{}\" did not pass: {}", first.title, first.detail),
        evidence: bad
            .iter()
            .map(|c| EvidenceRef::new(format!("check:{}", c.id), format!("{}: {}", c.status, c.detail)))
            .collect(),
        remediation: vec![
            "No rule named a cause for this step; read its evidence, and run again with --output-dir to keep the captures and node snapshots for a closer look.".into(),
        ],
        loss_point: None,
        node_pair: None,
    })
}
