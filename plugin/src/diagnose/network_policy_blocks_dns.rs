//! Rule: a NetworkPolicy keeps the pod's DNS queries from the DNS pods: the policies
//! selecting the pod do not allow egress to a ready DNS pod on the port it listens on, or the
//! policies selecting the DNS pods do not allow ingress from the pod. Judged on the ports of
//! the EndpointSlices (after the ClusterIP translation), not the Service's: a policy that
//! allows 53 while CoreDNS listens on 5353 behind a targetPort blocks DNS.

use std::collections::BTreeSet;

use dns_doctor_schema::Transport;

use crate::topology::{DnsPodInfo, NetworkPolicyInfo, Topology};

use super::finding::{EvidenceRef, Finding, Severity};
use super::network_policy_eval::{
    describe_rules, describe_selector, judge, DestPort, Direction, Judgement, PolicyPod,
    NAMESPACE_NAME_LABEL,
};
use super::Context;

pub const ID: &str = "network-policy-blocks-dns";

const PROTOCOLS: [&str; 2] = ["UDP", "TCP"];

/// One flow the policies deny: pod to one DNS endpoint, one protocol, one direction.
struct Blocked<'p> {
    direction: Direction,
    protocol: &'static str,
    port: u16,
    endpoint: String,
    policies: Vec<&'p NetworkPolicyInfo>,
}

pub fn rule(cx: &Context<'_>) -> Option<Finding> {
    let topo = cx.topology;
    let t = &topo.target;
    // Policies do not govern host-network pods; with NodeLocal DNSCache the pod talks to the
    // node's cache, and the cache, not the pod, to the DNS pods.
    if topo.network_policies.is_empty()
        || t.host_network
        || topo.node_local_dns.is_some()
        || topo.bypasses_cluster_dns_by_design().is_some()
    {
        return None;
    }
    let client = PolicyPod::new(topo, &t.namespace, &t.labels, t.ip);
    let mut blocked: Vec<Blocked> = Vec::new();
    // Per protocol: how many ready endpoints were judged, and on which ports.
    let mut judged = [0usize; 2];
    let mut ports: [BTreeSet<u16>; 2] = Default::default();
    for ep in topo.endpoints.iter().filter(|e| e.ready) {
        // Without the pod, its labels are unknown and selectors cannot be judged.
        let Some(pod) = topo.dns_pod_of(ep) else {
            continue;
        };
        let server = PolicyPod::new(topo, &pod.namespace, &pod.labels, Some(ep.ip));
        for (i, protocol) in PROTOCOLS.into_iter().enumerate() {
            let Some(port) = topo.endpoint_dns_port(ep, protocol) else {
                continue;
            };
            judged[i] += 1;
            ports[i].insert(port);
            let dest = DestPort {
                protocol: protocol.into(),
                port,
                names: port_names(topo, pod, protocol, port),
            };
            for direction in [Direction::Egress, Direction::Ingress] {
                if let Judgement::Denied(policies) =
                    judge(&topo.network_policies, direction, &client, &server, &dest)
                {
                    blocked.push(Blocked {
                        direction,
                        protocol,
                        port,
                        endpoint: format!("{}:{port} ({}/{})", ep.ip, pod.namespace, pod.name),
                        policies,
                    });
                }
            }
        }
    }
    if blocked.is_empty() {
        return None;
    }

    // Which endpoints each protocol cannot reach at all (in either direction).
    let unreachable = |protocol: &str| -> usize {
        blocked
            .iter()
            .filter(|b| b.protocol == protocol)
            .map(|b| b.endpoint.as_str())
            .collect::<BTreeSet<_>>()
            .len()
    };
    let mut policies: Vec<&NetworkPolicyInfo> = Vec::new();
    for p in blocked.iter().flat_map(|b| b.policies.iter().copied()) {
        if !policies.contains(&p) {
            policies.push(p);
        }
    }
    let mut evidence: Vec<EvidenceRef> = Vec::new();
    for p in &policies {
        let directions: BTreeSet<Direction> = blocked
            .iter()
            .filter(|b| b.policies.contains(p))
            .map(|b| b.direction)
            .collect();
        for d in directions {
            evidence.push(EvidenceRef::new(
                "api",
                format!(
                    "NetworkPolicy {}/{} selects {} (podSelector {}), policyTypes [{}]; {}",
                    p.namespace,
                    p.name,
                    match d {
                        Direction::Egress => format!("the pod {}/{}", t.namespace, t.name),
                        Direction::Ingress => "the DNS pods".to_string(),
                    },
                    describe_selector(&p.pod_selector),
                    p.policy_types.join(", "),
                    describe_rules(p, d)
                ),
            ));
        }
    }
    for b in &blocked {
        let names: Vec<String> = b
            .policies
            .iter()
            .map(|p| format!("{}/{}", p.namespace, p.name))
            .collect();
        evidence.push(EvidenceRef::new(
            "api",
            format!(
                "{} {} to {}: not allowed by {}",
                b.direction.label(),
                b.protocol,
                b.endpoint,
                names.join(", ")
            ),
        ));
    }
    if let Some(svc) = &topo.dns_service {
        for (i, protocol) in PROTOCOLS.into_iter().enumerate() {
            let Some(sp) = svc.dns_port(protocol) else {
                continue;
            };
            if ports[i].iter().any(|p| *p != sp.port) {
                evidence.push(EvidenceRef::new(
                    "api",
                    format!(
                        "the Service {}/{} takes {protocol} {} but the DNS pods listen on {} (targetPort {}): policies see the pod port, after the ClusterIP translation",
                        svc.namespace,
                        svc.name,
                        sp.port,
                        join(&ports[i]),
                        sp.target_port.as_deref().unwrap_or("-")
                    ),
                ));
            }
        }
    }

    // Error when the pod's lookups fail: applications ask over UDP first, so a UDP block
    // that the probe sees is an outage; a TCP block alone breaks only large answers. A block
    // the probe's queries pass through is one the network plugin does not enforce (yet).
    let mut failing = cx
        .observed
        .as_ref()
        .is_some_and(|o| super::observed::Tally::of(o.to_cluster_dns()).mostly_failed());
    let mut not_enforced = Vec::new();
    for (i, protocol) in PROTOCOLS.into_iter().enumerate() {
        let n = unreachable(protocol);
        if n == 0 {
            continue;
        }
        let transport = if i == 0 {
            Transport::Udp
        } else {
            Transport::Tcp
        };
        match cx.observed.as_ref().map(|o| o.cluster_dns_tally(transport)) {
            Some(tally) if tally.sent > 0 => {
                evidence.push(EvidenceRef::new(
                    "check:queries",
                    format!("{protocol} to the cluster DNS: {tally}"),
                ));
                failing |= i == 0 && tally.mostly_failed();
                if n == judged[i] && tally.mostly_ok() {
                    not_enforced.push(protocol);
                }
            }
            // Without the probe, a policy that blocks UDP to every DNS pod is an outage.
            _ => failing |= i == 0 && n == judged[i],
        }
    }
    if !not_enforced.is_empty() {
        evidence.push(EvidenceRef::new(
            "check:queries",
            format!(
                "{} queries are answered although the policies deny them: the network plugin does not enforce NetworkPolicy (yet); they fail once it does",
                not_enforced.join(" and ")
            ),
        ));
    }
    let severity = if failing {
        Severity::Error
    } else {
        Severity::Warning
    };

    let what = |direction: Direction| -> Option<String> {
        let mut v = Vec::new();
        for protocol in PROTOCOLS {
            let ports: BTreeSet<u16> = blocked
                .iter()
                .filter(|b| b.direction == direction && b.protocol == protocol)
                .map(|b| b.port)
                .collect();
            if !ports.is_empty() {
                v.push(format!("{protocol} {}", join(&ports)));
            }
        }
        (!v.is_empty()).then(|| v.join(" and "))
    };
    let mut parts = Vec::new();
    if let Some(w) = what(Direction::Egress) {
        parts.push(format!("egress from the pod to the DNS pods on {w}"));
    }
    if let Some(w) = what(Direction::Ingress) {
        parts.push(format!("ingress to the DNS pods from the pod on {w}"));
    }
    let names: Vec<String> = policies
        .iter()
        .map(|p| format!("{}/{}", p.namespace, p.name))
        .collect();
    let noun = if names.len() == 1 {
        "NetworkPolicy"
    } else {
        "NetworkPolicies"
    };
    let summary = format!(
        "{noun} {} block{} the pod's DNS: {} not allowed",
        names.join(", "),
        if names.len() == 1 { "s" } else { "" },
        parts.join("; ")
    );

    let udp_port = ports[0].iter().next().copied().unwrap_or(53);
    let tcp_port = ports[1].iter().next().copied().unwrap_or(udp_port);
    let dns_ns = topo
        .dns_service
        .as_ref()
        .map(|s| s.namespace.clone())
        .or_else(|| topo.dns_pods.first().map(|p| p.namespace.clone()))
        .unwrap_or_else(|| "kube-system".into());
    let dns_app = topo
        .dns_pods
        .iter()
        .find_map(|p| p.labels.get("k8s-app").cloned());
    let mut remediation = Vec::new();
    let egress_policies = names_in(&blocked, Direction::Egress);
    if !egress_policies.is_empty() {
        remediation.push(format!(
            "Allow DNS out of the pod: add this egress rule to {} (a policy's egress rules add up with the other policies selecting the pod), on the port the DNS pods listen on{}:\n{}",
            egress_policies.join(", "),
            if udp_port == 53 && tcp_port == 53 { String::new() } else { ", not the Service port".to_string() },
            egress_snippet(&dns_ns, dns_app.as_deref(), udp_port, tcp_port)
        ));
    }
    let ingress_policies = names_in(&blocked, Direction::Ingress);
    if !ingress_policies.is_empty() {
        remediation.push(format!(
            "Allow DNS into the DNS pods: add this ingress rule to {} (every namespace's pods need DNS; narrow the namespaceSelector to {} if you must):\n{}",
            ingress_policies.join(", "),
            t.namespace,
            ingress_snippet(udp_port, tcp_port)
        ));
    }
    Some(Finding {
        id: ID.into(),
        severity,
        summary,
        evidence,
        remediation,
        loss_point: None,
        node_pair: None,
    })
}

/// The names a named port in a policy may use for this port: the DNS container's
/// containerPort names, else (not declared) the Service port name.
fn port_names(topo: &Topology, pod: &DnsPodInfo, protocol: &str, port: u16) -> Vec<String> {
    if !pod.container_ports.is_empty() {
        return pod
            .container_ports
            .iter()
            .filter(|p| p.protocol.eq_ignore_ascii_case(protocol) && p.port == port)
            .filter_map(|p| p.name.clone())
            .collect();
    }
    topo.dns_service
        .as_ref()
        .and_then(|s| s.dns_port(protocol))
        .and_then(|p| p.name.clone())
        .into_iter()
        .collect()
}

fn names_in(blocked: &[Blocked], direction: Direction) -> Vec<String> {
    let mut v: Vec<String> = Vec::new();
    for p in blocked
        .iter()
        .filter(|b| b.direction == direction)
        .flat_map(|b| b.policies.iter())
    {
        let n = format!("{}/{}", p.namespace, p.name);
        if !v.contains(&n) {
            v.push(n);
        }
    }
    v
}

fn join(ports: &BTreeSet<u16>) -> String {
    ports
        .iter()
        .map(|p| p.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// An egress rule allowing UDP and TCP to the DNS pods, as YAML under `spec.egress`.
pub fn egress_snippet(dns_ns: &str, dns_app: Option<&str>, udp: u16, tcp: u16) -> String {
    let mut s = format!(
        "  egress:\n  - to:\n    - namespaceSelector:\n        matchLabels:\n          {NAMESPACE_NAME_LABEL}: {dns_ns}\n"
    );
    if let Some(app) = dns_app {
        s.push_str(&format!(
            "      podSelector:\n        matchLabels:\n          k8s-app: {app}\n"
        ));
    }
    s.push_str(&ports_snippet(udp, tcp));
    s
}

/// An ingress rule allowing UDP and TCP from every namespace, as YAML under `spec.ingress`.
pub fn ingress_snippet(udp: u16, tcp: u16) -> String {
    format!(
        "  ingress:\n  - from:\n    - namespaceSelector: {{}}\n{}",
        ports_snippet(udp, tcp)
    )
}

fn ports_snippet(udp: u16, tcp: u16) -> String {
    format!("    ports:\n    - protocol: UDP\n      port: {udp}\n    - protocol: TCP\n      port: {tcp}")
}
