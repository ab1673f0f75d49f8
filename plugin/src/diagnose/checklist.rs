//! The runbook's steps as a checklist: the cluster DNS runs (IP, Service, endpoints, pods),
//! the pod reaches it (TCP 53, UDP/TCP queries, each endpoint, an external name), the data
//! path (kube-proxy, node firewall), and the packet-level checks (captures, 5-second stalls).

use std::collections::BTreeSet;
use std::net::IpAddr;

use dns_doctor_schema::{ConnectOutcome, ServerRole, Transport};

use crate::node::service::Protocol;
use crate::topology::ClusterDnsSource;

use super::check::{Check, CheckStatus};
use super::data_plane::DataPlaneKind;
use super::observed::{answered_ok, Tally};
use super::Context;

fn status_of(t: &Tally) -> CheckStatus {
    if t.sent == 0 {
        CheckStatus::Skipped
    } else if t.mostly_ok() {
        CheckStatus::Pass
    } else if t.mostly_failed() {
        CheckStatus::Fail
    } else {
        CheckStatus::Warn
    }
}

/// Addresses as the checklist shows them; "none" rather than an empty list.
fn list(ips: &[IpAddr]) -> String {
    if ips.is_empty() {
        return "none".into();
    }
    let v: Vec<String> = ips.iter().map(|i| i.to_string()).collect();
    v.join(", ")
}

/// A TCP connect's outcome as the checklist and findings say it.
pub fn connect_label(o: ConnectOutcome) -> &'static str {
    match o {
        ConnectOutcome::Connected => "connected",
        ConnectOutcome::Refused => "refused",
        ConnectOutcome::TimedOut => "timed out",
        ConnectOutcome::Unreachable => "unreachable",
        ConnectOutcome::Error => "error",
    }
}

const NO_PROBE: &str = "the pod probe did not run";
const NO_NODES: &str = "no node snapshot (node checks off or not permitted)";

/// Every runbook step, in the runbook's order.
pub fn checklist(cx: &Context<'_>) -> Vec<Check> {
    vec![
        cluster_dns_ip(cx),
        pod_nameservers(cx),
        super::app_lookups::check(cx),
        dns_service(cx),
        endpoints_present(cx),
        dns_pods(cx),
        tcp_connect(cx),
        queries(cx),
        endpoints_direct(cx),
        external_name(cx),
        kube_proxy(cx),
        node_firewall(cx),
        captures(cx),
        five_second(cx),
    ]
}

/// `, redirected in the pod to local port 15053` when the pod's own rules send DNS to `ip`
/// elsewhere first; empty otherwise.
fn redirected(redirects: &[super::pod_netns_rules::Hit], ip: IpAddr) -> String {
    super::pod_netns_rules::first_hop(redirects, ip)
        .map(|hop| format!(", redirected in the pod to {hop}"))
        .unwrap_or_default()
}

/// The pod's resolv.conf: its nameservers are the cluster DNS (or a NodeLocal cache in
/// front of it) and they answer.
fn pod_nameservers(cx: &Context<'_>) -> Check {
    const T: &str = "resolv.conf names the cluster DNS, which answers";
    let Some(o) = &cx.observed else {
        return Check::new("pod-nameservers", T, CheckStatus::Skipped, NO_PROBE);
    };
    let Some(conf) = o.resolv_conf() else {
        return Check::new(
            "pod-nameservers",
            T,
            CheckStatus::Skipped,
            "the probe could not read the pod's resolv.conf",
        );
    };
    let cluster = o.cluster_dns_ips();
    let local = cx.topology.node_local_dns.as_ref().map(|n| n.local_ip);
    let redirects = super::pod_netns_rules::redirects(cx);
    let mut foreign = false;
    let mut parts = Vec::new();
    for ns in conf.nameservers.iter().map(|n| n.address) {
        let what = if cluster.contains(&ns) {
            "the cluster DNS"
        } else if local == Some(ns) {
            "NodeLocal DNSCache"
        } else {
            foreign = true;
            "not the cluster DNS"
        };
        let t = Tally::of(o.to_nameservers().filter(|q| q.server.ip() == ns));
        parts.push(format!("{ns} ({what}{}): {t}", redirected(&redirects, ns)));
    }
    if parts.is_empty() {
        return Check::new(
            "pod-nameservers",
            T,
            CheckStatus::Fail,
            "resolv.conf has no nameserver line",
        );
    }
    let by_design = cx.topology.bypasses_cluster_dns_by_design().is_some();
    let status = match status_of(&Tally::of(o.to_nameservers())) {
        CheckStatus::Pass if foreign && !by_design => CheckStatus::Warn,
        s => s,
    };
    Check::new("pod-nameservers", T, status, parts.join("; "))
}

fn cluster_dns_ip(cx: &Context<'_>) -> Check {
    const T: &str = "The cluster DNS IP is known";
    let d = &cx.topology.cluster_dns;
    // Without a target pod no cluster was examined (`analyze` of a capture file): the step
    // was not run, so it did not fail.
    if d.ips.is_empty() && cx.topology.target.name.is_empty() {
        return Check::new(
            "cluster-dns-ip",
            T,
            CheckStatus::Skipped,
            "no cluster examined (captures only)",
        );
    }
    if d.ips.is_empty() {
        return Check::new(
            "cluster-dns-ip",
            T,
            CheckStatus::Fail,
            "no clusterDNS from the kubelet nor a nameserver in the pod's resolv.conf",
        );
    }
    let from = match d.source {
        ClusterDnsSource::KubeletConfigz => "the kubelet's clusterDNS (configz)",
        ClusterDnsSource::PodResolvConf => "the pod's resolv.conf",
        ClusterDnsSource::KubeDnsService => "Service kube-system/kube-dns",
        ClusterDnsSource::Unknown => "an unknown source",
    };
    Check::new(
        "cluster-dns-ip",
        T,
        CheckStatus::Pass,
        format!("{} from {from}", list(&d.ips)),
    )
}

fn dns_service(cx: &Context<'_>) -> Check {
    const T: &str = "A Service owns the cluster DNS IP";
    if cx.topology.cluster_dns.ips.is_empty() {
        return Check::new(
            "dns-service",
            T,
            CheckStatus::Skipped,
            "no cluster DNS IP to look up",
        );
    }
    match &cx.topology.dns_service {
        Some(s) => {
            let ports: Vec<String> = s
                .ports
                .iter()
                .map(|p| format!("{}/{}", p.port, p.protocol))
                .collect();
            Check::new(
                "dns-service",
                T,
                CheckStatus::Pass,
                format!(
                    "{}/{} {} ({})",
                    s.namespace,
                    s.name,
                    s.cluster_ip,
                    ports.join(",")
                ),
            )
        }
        None if cx
            .topology
            .node_local_dns
            .as_ref()
            .is_some_and(|nl| cx.topology.cluster_dns.ips.contains(&nl.local_ip)) =>
        {
            Check::new(
                "dns-service",
                T,
                CheckStatus::Skipped,
                "the cluster DNS IP is NodeLocal DNSCache's link-local address, owned by no Service",
            )
        }
        None => Check::new(
            "dns-service",
            T,
            CheckStatus::Fail,
            format!(
                "no Service has ClusterIP {}",
                list(&cx.topology.cluster_dns.ips)
            ),
        ),
    }
}

fn endpoints_present(cx: &Context<'_>) -> Check {
    const T: &str = "The DNS Service has ready endpoints";
    if cx.topology.dns_service.is_none() {
        return Check::new(
            "endpoints-present",
            T,
            CheckStatus::Skipped,
            "no DNS Service",
        );
    }
    let ready = cx.topology.ready_endpoint_ips();
    let not_ready: Vec<IpAddr> = cx
        .topology
        .endpoints
        .iter()
        .filter(|e| !e.ready)
        .map(|e| e.ip)
        .collect();
    let mut detail = format!("{} ready: {}", ready.len(), list(&ready));
    if !not_ready.is_empty() {
        detail.push_str(&format!(
            "; {} not ready: {}",
            not_ready.len(),
            list(&not_ready)
        ));
    }
    let status = match (ready.is_empty(), not_ready.is_empty()) {
        (true, _) => CheckStatus::Fail,
        (false, true) => CheckStatus::Pass,
        (false, false) => CheckStatus::Warn,
    };
    Check::new("endpoints-present", T, status, detail)
}

fn dns_pods(cx: &Context<'_>) -> Check {
    const T: &str = "The DNS pods are running and ready";
    let pods = &cx.topology.dns_pods;
    if pods.is_empty() {
        let status = if cx.topology.dns_service.is_some() {
            CheckStatus::Fail
        } else {
            CheckStatus::Skipped
        };
        return Check::new("dns-pods", T, status, "no DNS pod found");
    }
    let ready = pods.iter().filter(|p| p.ready).count();
    let restarts: u32 = pods.iter().map(|p| p.restarts).sum();
    let mut detail = format!("{ready}/{} ready, {restarts} restarts", pods.len());
    for p in pods.iter().filter(|p| !p.ready) {
        detail.push_str(&format!(
            "; {} {}",
            p.name,
            p.waiting_reason.as_deref().unwrap_or(&p.phase)
        ));
    }
    let status = if ready == pods.len() {
        CheckStatus::Pass
    } else if ready == 0 {
        CheckStatus::Fail
    } else {
        CheckStatus::Warn
    };
    Check::new("dns-pods", T, status, detail)
}

fn tcp_connect(cx: &Context<'_>) -> Check {
    const T: &str = "The pod connects to the cluster DNS on TCP 53 (telnet)";
    let Some(o) = &cx.observed else {
        return Check::new("tcp-connect", T, CheckStatus::Skipped, NO_PROBE);
    };
    let connects: Vec<_> = o.cluster_dns_connects().collect();
    if connects.is_empty() {
        return Check::new(
            "tcp-connect",
            T,
            CheckStatus::Skipped,
            "no TCP connect to the cluster DNS was tried",
        );
    }
    let ok = connects
        .iter()
        .filter(|c| c.outcome == ConnectOutcome::Connected)
        .count();
    let redirects = super::pod_netns_rules::redirects(cx);
    let parts: Vec<String> = connects
        .iter()
        .map(|c| {
            let via = super::pod_netns_rules::first_hop(&redirects, c.target.ip())
                .map(|hop| format!(" (redirected in the pod to {hop})"))
                .unwrap_or_default();
            format!(
                "{}{via} {} in {:.0} ms",
                c.target,
                connect_label(c.outcome),
                c.latency_ms
            )
        })
        .collect();
    let status = if ok == connects.len() {
        CheckStatus::Pass
    } else if ok == 0 {
        CheckStatus::Fail
    } else {
        CheckStatus::Warn
    };
    Check::new("tcp-connect", T, status, parts.join("; "))
}

fn queries(cx: &Context<'_>) -> Check {
    const T: &str = "Queries for cluster names over UDP and TCP succeed";
    let Some(o) = &cx.observed else {
        return Check::new("queries", T, CheckStatus::Skipped, NO_PROBE);
    };
    let udp = Tally::of(
        o.to_cluster_dns()
            .filter(|q| q.transport == Transport::Udp && o.is_cluster_name(&q.qname)),
    );
    let tcp = Tally::of(
        o.to_cluster_dns()
            .filter(|q| q.transport == Transport::Tcp && o.is_cluster_name(&q.qname)),
    );
    let all = Tally::of(o.to_cluster_dns().filter(|q| o.is_cluster_name(&q.qname)));
    if all.sent == 0 {
        return Check::new(
            "queries",
            T,
            CheckStatus::Skipped,
            "no query for a cluster name was sent to the cluster DNS",
        );
    }
    let redirects = super::pod_netns_rules::redirects(cx);
    let hops: BTreeSet<String> = o
        .cluster_dns_ips()
        .into_iter()
        .filter_map(|ip| {
            super::pod_netns_rules::first_hop(&redirects, ip).map(|hop| format!("{ip} -> {hop}"))
        })
        .collect();
    let via = if hops.is_empty() {
        String::new()
    } else {
        format!(
            "; redirected in the pod: {}",
            hops.into_iter().collect::<Vec<_>>().join(", ")
        )
    };
    Check::new(
        "queries",
        T,
        status_of(&all),
        format!("UDP {udp}; TCP {tcp}{via}"),
    )
}

fn endpoints_direct(cx: &Context<'_>) -> Check {
    const T: &str = "Each DNS endpoint answers when asked directly";
    let Some(o) = &cx.observed else {
        return Check::new("endpoints-direct", T, CheckStatus::Skipped, NO_PROBE);
    };
    // The ClusterIP leads to the ready endpoints only: they are judged; not-ready ones are
    // listed for the record (the dns-pods step fails for them).
    let per = o.per_endpoint();
    let not_ready: Vec<String> = o
        .per_not_ready_endpoint()
        .iter()
        .map(|(ip, t)| format!("{ip}: {t}"))
        .collect();
    let not_ready =
        (!not_ready.is_empty()).then(|| format!("not ready, not judged: {}", not_ready.join("; ")));
    if per.is_empty() {
        let mut detail = "no ready endpoint was queried directly".to_string();
        if let Some(n) = not_ready {
            detail.push_str(&format!("; {n}"));
        }
        return Check::new("endpoints-direct", T, CheckStatus::Skipped, detail);
    }
    let broken = per.iter().filter(|(_, t)| t.all_failed()).count();
    let partial = per.iter().filter(|(_, t)| !t.all_ok()).count();
    let mut parts: Vec<String> = per.iter().map(|(ip, t)| format!("{ip}: {t}")).collect();
    parts.extend(not_ready);
    let status = if broken == per.len() {
        CheckStatus::Fail
    } else if partial > 0 {
        CheckStatus::Warn
    } else {
        CheckStatus::Pass
    };
    Check::new("endpoints-direct", T, status, parts.join("; "))
}

fn external_name(cx: &Context<'_>) -> Check {
    const T: &str = "An external name resolves through the cluster DNS";
    let Some(o) = &cx.observed else {
        return Check::new("external-name", T, CheckStatus::Skipped, NO_PROBE);
    };
    let t = o.cluster_dns_names_tally(false);
    if t.sent == 0 {
        return Check::new(
            "external-name",
            T,
            CheckStatus::Skipped,
            "no external name was queried",
        );
    }
    // An NXDOMAIN for a search candidate outside the cluster domain is normal; what counts is
    // that some external name resolved and nothing timed out or failed.
    let resolved: BTreeSet<&str> = o
        .to_cluster_dns()
        .filter(|q| !o.is_cluster_name(&q.qname) && answered_ok(q) && !q.answers.is_empty())
        .map(|q| q.qname.as_str())
        .collect();
    let status = match (resolved.is_empty(), t.all_ok()) {
        (false, true) => CheckStatus::Pass,
        (false, false) => CheckStatus::Warn,
        (true, _) => CheckStatus::Fail,
    };
    let resolved: Vec<&str> = resolved.into_iter().collect();
    let detail = if resolved.is_empty() {
        format!("no external name resolved; {t}")
    } else {
        format!("{} resolved; {t}", resolved.join(", "))
    };
    Check::new("external-name", T, status, detail)
}

fn kube_proxy(cx: &Context<'_>) -> Check {
    const T: &str = "kube-proxy runs and its rules match the EndpointSlices";
    let mut problems = Vec::new();
    let mut notes = Vec::new();
    if let Some(node) = cx.topology.target.node.as_deref() {
        match cx
            .topology
            .kube_proxy
            .pods
            .iter()
            .find(|p| p.node.as_deref() == Some(node))
        {
            Some(p) if p.phase == "Running" && p.ready => {
                notes.push(format!("{} running on {node}", p.name))
            }
            Some(p) => problems.push(format!(
                "{} on {node}: {}, ready {}",
                p.name, p.phase, p.ready
            )),
            None if cx.topology.kube_proxy.pods.is_empty() => {
                notes.push("no kube-proxy pods (another data plane?)".to_string())
            }
            None => problems.push(format!("no kube-proxy pod on {node}")),
        }
    }
    // Without kube-proxy (an eBPF data plane such as Cilium's kube-proxy replacement, or
    // rules of another data plane) the absence of its rules is expected: the step says what
    // translates the ClusterIP, and passes when the ClusterIP answers.
    if let Some(plane) = super::data_plane::data_plane(cx)
        .filter(|p| matches!(p.kind, DataPlaneKind::Other | DataPlaneKind::NoneVisible))
    {
        let clusterip_ok = cx
            .observed
            .as_ref()
            .map(|o| Tally::of(o.to_cluster_dns()).mostly_ok());
        let detail = plane.detail;
        return match clusterip_ok {
            Some(true) => Check::new(
                "kube-proxy",
                T,
                CheckStatus::Pass,
                format!("{detail}; the DNS ClusterIP answers"),
            ),
            Some(false) => Check::new(
                "kube-proxy",
                T,
                CheckStatus::Fail,
                format!("{detail}; the DNS ClusterIP does not answer"),
            ),
            None => Check::new(
                "kube-proxy",
                T,
                CheckStatus::Skipped,
                format!("{detail}; check it with its own tools (e.g. `cilium service list`)"),
            ),
        };
    }
    let ready: BTreeSet<IpAddr> = cx.topology.ready_endpoint_ips().into_iter().collect();
    for n in &cx.nodes {
        match n.kube_proxy_hooked {
            None => notes.push(format!("{}: rules not readable", n.node)),
            Some(false) => problems.push(format!("{}: no kube-proxy rules", n.node)),
            // Queries to a NodeLocal DNSCache address are not NATed by kube-proxy.
            Some(true)
                if n.translations.iter().all(|t| t.service_rule.is_none())
                    && cx.topology.dns_service.is_none() =>
            {
                notes.push(format!(
                    "{}: kube-proxy rules present; the cluster DNS IP is not a Service",
                    n.node
                ))
            }
            Some(true) => {
                let eps: BTreeSet<IpAddr> = n
                    .endpoints_for(Protocol::Udp)
                    .iter()
                    .map(|e| e.address)
                    .collect();
                if eps == ready {
                    notes.push(format!(
                        "{}: ClusterIP -> {}",
                        n.node,
                        list(&eps.into_iter().collect::<Vec<_>>())
                    ));
                } else {
                    problems.push(format!(
                        "{}: ClusterIP -> [{}], EndpointSlices ready [{}]",
                        n.node,
                        list(&eps.into_iter().collect::<Vec<_>>()),
                        list(&ready.iter().copied().collect::<Vec<_>>())
                    ));
                }
            }
        }
    }
    if cx.nodes.is_empty() {
        notes.push(NO_NODES.to_string());
    }
    let status = if !problems.is_empty() {
        CheckStatus::Fail
    } else if cx.nodes.is_empty() {
        CheckStatus::Skipped
    } else {
        CheckStatus::Pass
    };
    problems.extend(notes);
    Check::new("kube-proxy", T, status, problems.join("; "))
}

fn node_firewall(cx: &Context<'_>) -> Check {
    const T: &str = "No node firewall rule drops DNS";
    if cx.nodes.is_empty() {
        return Check::new("node-firewall", T, CheckStatus::Skipped, NO_NODES);
    }
    let mut found = Vec::new();
    for n in &cx.nodes {
        for r in n.dns_touching_rules() {
            found.push(format!("{} line {}: {}", n.node, r.rule.line, r.rule.text));
        }
    }
    if found.is_empty() {
        let names: Vec<&str> = cx.nodes.iter().map(|n| n.node).collect();
        Check::new(
            "node-firewall",
            T,
            CheckStatus::Pass,
            format!("no DROP/REJECT touching DNS on {}", names.join(", ")),
        )
    } else {
        Check::new("node-firewall", T, CheckStatus::Fail, found.join("; "))
    }
}

fn captures(cx: &Context<'_>) -> Check {
    const T: &str = "Packets captured at the pod, the nodes and the DNS pods";
    let caps = &cx.evidence.captures;
    if caps.is_empty() {
        return Check::new("captures", T, CheckStatus::Skipped, "no capture taken");
    }
    let ok: Vec<&str> = caps
        .iter()
        .filter(|c| c.error.is_none())
        .map(|c| c.name.as_str())
        .collect();
    let failed: Vec<String> = caps
        .iter()
        .filter_map(|c| c.error.as_ref().map(|e| format!("{}: {e}", c.name)))
        .collect();
    let mut detail = format!("{} points: {}", ok.len(), ok.join(", "));
    if let Some(c) = cx.correlation {
        detail.push_str(&format!("; {} lost queries", c.lost.len()));
    }
    if !failed.is_empty() {
        detail.push_str(&format!("; failed: {}", failed.join("; ")));
    }
    let status = if failed.is_empty() {
        CheckStatus::Pass
    } else if ok.is_empty() {
        CheckStatus::Fail
    } else {
        CheckStatus::Warn
    };
    Check::new("captures", T, status, detail)
}

fn five_second(cx: &Context<'_>) -> Check {
    const T: &str = "No 5-second stalls (parallel A/AAAA rounds, conntrack)";
    let mut parts = Vec::new();
    let mut missing = 0u32;
    let mut silent_rounds = 0u32;
    let mut any = false;
    if let Some(o) = &cx.observed {
        for t in o
            .report
            .parallel
            .iter()
            .filter(|t| t.role == ServerRole::Nameserver)
        {
            any = true;
            let s = &t.same_socket;
            missing += s.a_missing + s.aaaa_missing;
            let mut part = format!(
                "{}: {} of {} rounds lost one reply",
                t.server,
                s.a_missing + s.aaaa_missing,
                s.rounds
            );
            if s.both_missing > 0 {
                silent_rounds += s.both_missing;
                part.push_str(&format!(", {} got no reply at all", s.both_missing));
            }
            parts.push(part);
        }
    }
    let mut conntrack_bad = false;
    for n in &cx.nodes {
        if let Some(d) = super::conntrack_table_near_full::stats_delta(n) {
            any = true;
            conntrack_bad |= d.insert_failed() > 0;
            parts.push(format!(
                "{}: insert_failed +{}, drop +{}",
                n.node,
                d.insert_failed(),
                d.drop()
            ));
        }
    }
    if !any {
        return Check::new(
            "five-second",
            T,
            CheckStatus::Skipped,
            "no parallel test nor conntrack counters",
        );
    }
    // Rounds without any reply show nothing about stalls: the server did not answer at all.
    let status = if missing > 0 {
        CheckStatus::Fail
    } else if conntrack_bad || silent_rounds > 0 {
        CheckStatus::Warn
    } else {
        CheckStatus::Pass
    };
    Check::new("five-second", T, status, parts.join("; "))
}
