//! Rules in the pod's own network namespace that decide DNS before a packet leaves the
//! pod: a DROP/REJECT of port 53 (a NetworkPolicy some CNIs enforce there, a sidecar's
//! egress lockdown, a rule someone added), or a REDIRECT/DNAT of port 53 to another first
//! hop (a service mesh's DNS proxy). The probe reads them from inside the pod.

use std::collections::BTreeSet;
use std::net::IpAddr;

use crate::node::iptables::{parse_iptables_save, IptablesSave, Rule, Table, Target};

use super::app_lookup::LookupVerdict;
use super::finding::{EvidenceRef, Finding, Severity};
use super::Context;

pub const ID_DROPS: &str = "pod-netns-drops-dns";
pub const ID_REDIRECTS: &str = "dns-redirected-in-pod";

/// A rule of the pod's netns that meets DNS queries, with the dump it came from.
struct Hit<'a> {
    key: &'a str,
    rule: Rule,
}

pub fn rule(cx: &Context<'_>) -> Vec<Finding> {
    let Some(o) = cx.observed.as_ref() else {
        return Vec::new();
    };
    // A hostNetwork pod shares the node's namespace: its rules are the node's (kube-proxy's
    // DNAT of the ClusterIP among them), which the node checks read.
    if cx.topology.target.host_network {
        return Vec::new();
    }
    let mut servers: Vec<IpAddr> = o.cluster_dns_ips();
    if let Some(conf) = o.resolv_conf() {
        servers.extend(conf.nameservers.iter().map(|n| n.address));
    }
    let mut drops = Vec::new();
    let mut redirects = Vec::new();
    for out in &o.report.netns_rules {
        if out.exit_code != Some(0) || out.error.is_some() {
            continue;
        }
        let Ok(save) = parse_iptables_save(&out.stdout) else {
            continue;
        };
        for rule in reachable(&save, "filter", "OUTPUT") {
            if matches!(rule.target, Some(Target::Drop | Target::Reject { .. }))
                && meets_dns(&rule, &servers)
            {
                drops.push(Hit {
                    key: &out.key,
                    rule,
                });
            }
        }
        // kube-proxy's own chains translate Services; they are not a first hop of the pod.
        for rule in reachable(&save, "nat", "OUTPUT")
            .into_iter()
            .filter(|r| !r.chain.starts_with("KUBE-"))
        {
            let redirect = match &rule.target {
                Some(Target::Dnat { .. }) => true,
                Some(Target::Other { name, .. }) => name == "REDIRECT",
                _ => false,
            };
            if redirect && meets_dns(&rule, &servers) {
                redirects.push(Hit {
                    key: &out.key,
                    rule,
                });
            }
        }
    }
    let mut findings = Vec::new();
    let clusterip_dead = o
        .cluster_dns_tally(dns_doctor_schema::Transport::Udp)
        .mostly_failed();
    if !drops.is_empty() {
        findings.push(Finding {
            id: ID_DROPS.into(),
            severity: if clusterip_dead { Severity::Error } else { Severity::Warning },
            summary: "a rule in the pod's own network namespace drops DNS before it leaves the pod".into(),
            evidence: evidence(&drops),
            remediation: vec![
                "Find who wrote the rule (its comment and chain name: a CNI enforcing NetworkPolicy inside the pod, a sidecar or init container locking egress down) and allow UDP and TCP 53 to the cluster DNS there.".into(),
                "If it enforces a NetworkPolicy, add an egress rule allowing DNS to the DNS pods (see the NetworkPolicy finding, if any).".into(),
            ],
            loss_point: Some("the pod's network namespace".into()),
        });
    }
    if !redirects.is_empty() {
        let failing = cx
            .lookups
            .iter()
            .any(|l| matches!(l.verdict, LookupVerdict::Fails | LookupVerdict::Wrong));
        let targets: BTreeSet<String> =
            redirects.iter().map(|h| redirect_target(&h.rule)).collect();
        findings.push(Finding {
            id: ID_REDIRECTS.into(),
            severity: if failing { Severity::Error } else { Severity::Info },
            summary: format!(
                "DNS from the pod is redirected inside its network namespace to {}: the first hop is not the cluster DNS{}",
                targets.into_iter().collect::<Vec<_>>().join(", "),
                if failing { ", and lookups through it fail" } else { "" }
            ),
            evidence: evidence(&redirects),
            remediation: vec![
                "The probe's queries took the same redirect, so its results are what that first hop answers. If it is a service mesh's DNS proxy (e.g. Istio's on port 15053), check that proxy: its logs, its configuration for DNS capture, and that it forwards to the cluster DNS.".into(),
            ],
            loss_point: None,
        });
    }
    findings
}

fn evidence(hits: &[Hit<'_>]) -> Vec<EvidenceRef> {
    hits.iter()
        .map(|h| {
            EvidenceRef::new(
                format!("probe:netns/{}", h.key),
                format!("line {}: {}", h.rule.line, h.rule.text),
            )
        })
        .collect()
}

fn redirect_target(r: &Rule) -> String {
    match &r.target {
        Some(Target::Dnat {
            to_destination: Some(d),
        }) => d.clone(),
        Some(Target::Other { options, .. }) => options
            .iter()
            .find(|o| o.name == "to-ports")
            .map(|o| format!("local port {}", o.values.join(",")))
            .unwrap_or_else(|| "a local port".into()),
        _ => "another address".into(),
    }
}

/// Rules of `chain` and of the user chains it jumps to, in order.
fn reachable(save: &IptablesSave, table: &str, chain: &str) -> Vec<Rule> {
    let Some(t) = save.table(table) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut seen = BTreeSet::new();
    walk(t, chain, &mut seen, &mut out);
    out
}

fn walk(t: &Table, chain: &str, seen: &mut BTreeSet<String>, out: &mut Vec<Rule>) {
    if !seen.insert(chain.to_string()) {
        return;
    }
    let Some(c) = t.chain(chain) else { return };
    for r in &c.rules {
        if let Some(Target::Chain { name, .. }) = &r.target {
            walk(t, name, seen, out);
        } else {
            out.push(r.clone());
        }
    }
}

/// Whether a DNS query from the pod to one of `servers` meets the rule: UDP or TCP (or
/// any protocol), destination port 53 (or any), one of the servers (or any destination),
/// leaving by anything but loopback.
fn meets_dns(r: &Rule, servers: &[IpAddr]) -> bool {
    let proto_ok = match &r.protocol {
        None => true,
        Some(p) if p.negated => !matches!(p.value.as_str(), "udp" | "tcp"),
        Some(p) => matches!(p.value.as_str(), "udp" | "tcp" | "all"),
    };
    let port_ok = match r.destination_ports() {
        None => true,
        Some(p) => p.value.contains(53) != p.negated,
    };
    let dst_ok = match &r.destination {
        None => true,
        Some(d) => servers.iter().any(|ip| d.value.contains(ip)) != d.negated,
    };
    let out_ok = match &r.out_interface {
        None => true,
        Some(i) => (i.value == "lo") == i.negated,
    };
    proto_ok && port_ok && dst_ok && out_ok
}
