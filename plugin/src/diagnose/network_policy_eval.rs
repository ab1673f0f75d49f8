//! NetworkPolicy semantics over plain values: whether the policies let one pod reach
//! another on one port, in one direction, and which policies decide it.
//!
//! As Kubernetes defines it: a pod is isolated in a direction when some policy of its
//! namespace selects it and applies to that direction (`policyTypes`; when unset, Ingress
//! always and Egress when the policy has egress rules). An isolated pod's traffic in that
//! direction is allowed when a rule of any of those policies allows it (the union). A rule
//! with no peers allows every peer, one with no ports every port; a peer with only a
//! podSelector means pods of the policy's own namespace; an empty selector matches all.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnet::IpNet;

use crate::topology::{
    IpBlock, NetworkPolicyInfo, PolicyPeer, PolicyPort, PolicyRule, Selector, Topology,
};

/// The label every namespace carries (since Kubernetes 1.21), naming it.
pub const NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";

/// A pod as policies see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyPod {
    pub namespace: String,
    pub labels: BTreeMap<String, String>,
    pub namespace_labels: BTreeMap<String, String>,
    pub ip: Option<IpAddr>,
}

impl PolicyPod {
    /// A pod of `namespace`, with that namespace's labels as discovery read them, else the
    /// one label every namespace has.
    pub fn new(
        topology: &Topology,
        namespace: &str,
        labels: &BTreeMap<String, String>,
        ip: Option<IpAddr>,
    ) -> Self {
        let namespace_labels = topology
            .namespace_labels
            .get(namespace)
            .cloned()
            .unwrap_or_else(|| {
                BTreeMap::from([(NAMESPACE_NAME_LABEL.to_string(), namespace.to_string())])
            });
        Self {
            namespace: namespace.to_string(),
            labels: labels.clone(),
            namespace_labels,
            ip,
        }
    }
}

/// The port traffic goes to, and the names the destination pod gives that port (a policy
/// may name a port instead of numbering it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DestPort {
    /// `UDP` or `TCP`.
    pub protocol: String,
    pub port: u16,
    pub names: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Direction {
    /// Leaving the client, judged by the policies selecting it.
    Egress,
    /// Entering the server, judged by the policies selecting it.
    Ingress,
}

impl Direction {
    pub fn label(self) -> &'static str {
        match self {
            Self::Egress => "egress",
            Self::Ingress => "ingress",
        }
    }
}

/// How the policies on one side judge a flow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Judgement<'p> {
    /// No policy selects the pod for this direction: everything is allowed.
    NotIsolated,
    /// A rule of this policy allows it.
    Allowed(&'p NetworkPolicyInfo),
    /// These policies isolate the pod and none of their rules allows the flow.
    Denied(Vec<&'p NetworkPolicyInfo>),
}

/// Judges traffic from `from` to `to` on `port` in one direction: egress by the policies
/// selecting `from`, ingress by those selecting `to`.
pub fn judge<'p>(
    policies: &'p [NetworkPolicyInfo],
    direction: Direction,
    from: &PolicyPod,
    to: &PolicyPod,
    port: &DestPort,
) -> Judgement<'p> {
    let (subject, peer) = match direction {
        Direction::Egress => (from, to),
        Direction::Ingress => (to, from),
    };
    let isolating: Vec<&NetworkPolicyInfo> = policies
        .iter()
        .filter(|p| {
            p.namespace == subject.namespace
                && applies(p, direction)
                && selects(&p.pod_selector, &subject.labels)
        })
        .collect();
    if isolating.is_empty() {
        return Judgement::NotIsolated;
    }
    match isolating.iter().find(|p| {
        rules(p, direction)
            .iter()
            .any(|r| rule_allows(r, &p.namespace, peer, port))
    }) {
        Some(p) => Judgement::Allowed(p),
        None => Judgement::Denied(isolating),
    }
}

/// Whether the policy isolates the pods it selects in `direction`.
pub fn applies(p: &NetworkPolicyInfo, direction: Direction) -> bool {
    let has = |t: &str| p.policy_types.iter().any(|x| x.eq_ignore_ascii_case(t));
    match direction {
        Direction::Ingress => has("Ingress") || p.policy_types.is_empty(),
        Direction::Egress => has("Egress") || (p.policy_types.is_empty() && !p.egress.is_empty()),
    }
}

fn rules(p: &NetworkPolicyInfo, direction: Direction) -> &[PolicyRule] {
    match direction {
        Direction::Egress => &p.egress,
        Direction::Ingress => &p.ingress,
    }
}

/// Whether a label selector matches a set of labels.
pub fn selects(sel: &Selector, labels: &BTreeMap<String, String>) -> bool {
    sel.match_labels
        .iter()
        .all(|(k, v)| labels.get(k) == Some(v))
        && sel.match_expressions.iter().all(|r| {
            let value = labels.get(&r.key);
            match r.operator.as_str() {
                "In" => value.is_some_and(|v| r.values.contains(v)),
                "NotIn" => value.is_none_or(|v| !r.values.contains(v)),
                "Exists" => value.is_some(),
                "DoesNotExist" => value.is_none(),
                // The API server rejects other operators; nothing matches one.
                _ => false,
            }
        })
}

fn rule_allows(rule: &PolicyRule, policy_ns: &str, peer: &PolicyPod, port: &DestPort) -> bool {
    (rule.peers.is_empty() || rule.peers.iter().any(|p| peer_matches(p, policy_ns, peer)))
        && (rule.ports.is_empty() || rule.ports.iter().any(|p| port_matches(p, port)))
}

fn peer_matches(peer: &PolicyPeer, policy_ns: &str, pod: &PolicyPod) -> bool {
    if let Some(block) = &peer.ip_block {
        return pod.ip.is_some_and(|ip| in_block(block, ip));
    }
    let namespace_ok = match &peer.namespace_selector {
        None => pod.namespace == policy_ns,
        Some(s) => selects(s, &pod.namespace_labels),
    };
    namespace_ok
        && peer
            .pod_selector
            .as_ref()
            .is_none_or(|s| selects(s, &pod.labels))
}

fn in_block(block: &IpBlock, ip: IpAddr) -> bool {
    let contains = |cidr: &str| cidr.parse::<IpNet>().is_ok_and(|n| n.contains(&ip));
    contains(&block.cidr) && !block.except.iter().any(|e| contains(e))
}

fn port_matches(p: &PolicyPort, dest: &DestPort) -> bool {
    if !p.protocol.eq_ignore_ascii_case(&dest.protocol) {
        return false;
    }
    match p.port.as_deref() {
        None => true,
        Some(written) => match written.parse::<u16>() {
            Ok(first) => (first..=p.end_port.unwrap_or(first).max(first)).contains(&dest.port),
            Err(_) => dest.names.iter().any(|n| n == written),
        },
    }
}

/// A selector as `kubectl` shows one: `k8s-app=kube-dns,tier notin (a,b)`; `{}` when empty
/// (it matches everything).
pub fn describe_selector(sel: &Selector) -> String {
    let mut parts: Vec<String> = sel
        .match_labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    for r in &sel.match_expressions {
        parts.push(match r.operator.as_str() {
            "Exists" => r.key.clone(),
            "DoesNotExist" => format!("!{}", r.key),
            op => format!(
                "{} {} ({})",
                r.key,
                op.to_ascii_lowercase(),
                r.values.join(",")
            ),
        });
    }
    if parts.is_empty() {
        "{}".into()
    } else {
        parts.join(",")
    }
}

fn describe_peer(peer: &PolicyPeer) -> String {
    if let Some(b) = &peer.ip_block {
        return if b.except.is_empty() {
            format!("ipBlock {}", b.cidr)
        } else {
            format!("ipBlock {} except {}", b.cidr, b.except.join(","))
        };
    }
    let mut parts = Vec::new();
    if let Some(s) = &peer.namespace_selector {
        parts.push(format!("namespaceSelector {}", describe_selector(s)));
    }
    if let Some(s) = &peer.pod_selector {
        parts.push(format!("podSelector {}", describe_selector(s)));
    }
    parts.join(" + ")
}

fn describe_port(p: &PolicyPort) -> String {
    match (&p.port, p.end_port) {
        (None, _) => format!("{} any port", p.protocol),
        (Some(first), Some(end)) => format!("{} {first}-{end}", p.protocol),
        (Some(port), None) => format!("{} {port}", p.protocol),
    }
}

/// A policy's rules in one direction, in a line: `egress: none (denies all)`, or
/// `egress: to namespaceSelector {} on UDP 53; to any peer on any port`.
pub fn describe_rules(p: &NetworkPolicyInfo, direction: Direction) -> String {
    let rules = rules(p, direction);
    let label = direction.label();
    if rules.is_empty() {
        return format!("{label}: none (denies all)");
    }
    let word = match direction {
        Direction::Egress => "to",
        Direction::Ingress => "from",
    };
    let v: Vec<String> = rules
        .iter()
        .map(|r| {
            let peers = if r.peers.is_empty() {
                "any peer".to_string()
            } else {
                r.peers
                    .iter()
                    .map(describe_peer)
                    .collect::<Vec<_>>()
                    .join(" or ")
            };
            let ports = if r.ports.is_empty() {
                "any port".to_string()
            } else {
                r.ports
                    .iter()
                    .map(describe_port)
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            format!("{word} {peers} on {ports}")
        })
        .collect();
    format!("{label}: {}", v.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topology::SelectorRequirement;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn pod(ns: &str, l: &[(&str, &str)], ip: &str) -> PolicyPod {
        PolicyPod {
            namespace: ns.into(),
            labels: labels(l),
            namespace_labels: labels(&[(NAMESPACE_NAME_LABEL, ns)]),
            ip: Some(ip.parse().unwrap()),
        }
    }

    fn udp(port: u16) -> DestPort {
        DestPort {
            protocol: "UDP".into(),
            port,
            names: vec!["dns".into()],
        }
    }

    fn expr(key: &str, op: &str, values: &[&str]) -> SelectorRequirement {
        SelectorRequirement {
            key: key.into(),
            operator: op.into(),
            values: values.iter().map(|v| v.to_string()).collect(),
        }
    }

    fn egress_policy(rules: Vec<PolicyRule>) -> NetworkPolicyInfo {
        NetworkPolicyInfo {
            namespace: "app".into(),
            name: "p".into(),
            policy_types: vec!["Egress".into()],
            egress: rules,
            ..NetworkPolicyInfo::default()
        }
    }

    fn port(protocol: &str, port: Option<&str>, end: Option<u16>) -> PolicyPort {
        PolicyPort {
            protocol: protocol.into(),
            port: port.map(str::to_string),
            end_port: end,
        }
    }

    #[test]
    fn selector_expressions_follow_kubernetes() {
        let l = labels(&[("app", "web"), ("tier", "front")]);
        let sel = |e: Vec<SelectorRequirement>| Selector {
            match_labels: BTreeMap::new(),
            match_expressions: e,
        };
        assert!(selects(&Selector::default(), &l));
        assert!(selects(&sel(vec![expr("app", "In", &["web", "api"])]), &l));
        assert!(!selects(&sel(vec![expr("app", "In", &["api"])]), &l));
        assert!(!selects(&sel(vec![expr("app", "NotIn", &["web"])]), &l));
        assert!(selects(&sel(vec![expr("missing", "NotIn", &["x"])]), &l));
        assert!(selects(&sel(vec![expr("tier", "Exists", &[])]), &l));
        assert!(!selects(&sel(vec![expr("tier", "DoesNotExist", &[])]), &l));
        assert!(selects(
            &sel(vec![expr("missing", "DoesNotExist", &[])]),
            &l
        ));
        assert!(!selects(&sel(vec![expr("app", "Matches", &["web"])]), &l));
        let both = Selector {
            match_labels: labels(&[("app", "web")]),
            match_expressions: vec![expr("tier", "In", &["back"])],
        };
        assert!(!selects(&both, &l));
    }

    #[test]
    fn unselected_pods_are_not_isolated_and_empty_rules_deny() {
        let client = pod("app", &[("app", "web")], "10.244.1.5");
        let dns = pod("kube-system", &[("k8s-app", "kube-dns")], "10.244.0.2");
        let mut deny = egress_policy(Vec::new());
        deny.pod_selector.match_labels = labels(&[("app", "db")]);
        let policies = [deny];
        assert_eq!(
            judge(&policies, Direction::Egress, &client, &dns, &udp(53)),
            Judgement::NotIsolated
        );
        let mut all = policies.clone();
        all[0].pod_selector = Selector::default();
        assert!(matches!(
            judge(&all, Direction::Egress, &client, &dns, &udp(53)),
            Judgement::Denied(p) if p.len() == 1
        ));
        // An ingress-only policy does not isolate egress.
        all[0].policy_types = vec!["Ingress".into()];
        assert_eq!(
            judge(&all, Direction::Egress, &client, &dns, &udp(53)),
            Judgement::NotIsolated
        );
    }

    #[test]
    fn peers_ports_ranges_names_and_ip_blocks() {
        let client = pod("app", &[], "10.244.1.5");
        let dns = pod("kube-system", &[("k8s-app", "kube-dns")], "10.244.0.2");
        let allow = |peers: Vec<PolicyPeer>, ports: Vec<PolicyPort>| {
            [egress_policy(vec![PolicyRule { peers, ports }])]
        };
        let allowed = |p: &[NetworkPolicyInfo], dest: &DestPort| {
            matches!(
                judge(p, Direction::Egress, &client, &dns, dest),
                Judgement::Allowed(_)
            )
        };
        // No peers, no ports: everything.
        assert!(allowed(&allow(vec![], vec![]), &udp(5353)));
        // A podSelector alone means the policy's own namespace, not kube-system.
        let own_ns = PolicyPeer {
            pod_selector: Some(Selector::default()),
            ..PolicyPeer::default()
        };
        assert!(!allowed(&allow(vec![own_ns], vec![]), &udp(53)));
        let kube_system = PolicyPeer {
            namespace_selector: Some(Selector {
                match_labels: labels(&[(NAMESPACE_NAME_LABEL, "kube-system")]),
                ..Selector::default()
            }),
            pod_selector: Some(Selector {
                match_labels: labels(&[("k8s-app", "kube-dns")]),
                ..Selector::default()
            }),
            ..PolicyPeer::default()
        };
        let p53 = vec![port("UDP", Some("53"), None)];
        assert!(allowed(
            &allow(vec![kube_system.clone()], p53.clone()),
            &udp(53)
        ));
        assert!(!allowed(&allow(vec![kube_system.clone()], p53), &udp(5353)));
        // TCP 53 does not allow UDP 53; the protocol defaults to TCP in discovery.
        assert!(!allowed(
            &allow(vec![], vec![port("TCP", Some("53"), None)]),
            &udp(53)
        ));
        assert!(allowed(
            &allow(vec![], vec![port("UDP", Some("50"), Some(6000))]),
            &udp(5353)
        ));
        assert!(allowed(
            &allow(vec![], vec![port("UDP", Some("dns"), None)]),
            &udp(5353)
        ));
        assert!(!allowed(
            &allow(vec![], vec![port("UDP", Some("dns-tcp"), None)]),
            &udp(5353)
        ));
        let block = |cidr: &str, except: &[&str]| PolicyPeer {
            ip_block: Some(IpBlock {
                cidr: cidr.into(),
                except: except.iter().map(|e| e.to_string()).collect(),
            }),
            ..PolicyPeer::default()
        };
        assert!(allowed(
            &allow(vec![block("10.244.0.0/16", &[])], vec![]),
            &udp(53)
        ));
        assert!(!allowed(
            &allow(vec![block("10.244.0.0/16", &["10.244.0.0/24"])], vec![]),
            &udp(53)
        ));
        assert!(!allowed(
            &allow(vec![block("not a cidr", &[])], vec![]),
            &udp(53)
        ));
    }

    #[test]
    fn ingress_is_judged_by_the_servers_policies() {
        let client = pod("app", &[], "10.244.1.5");
        let dns = pod("kube-system", &[("k8s-app", "kube-dns")], "10.244.0.2");
        let only_monitoring = NetworkPolicyInfo {
            namespace: "kube-system".into(),
            name: "dns-ingress".into(),
            pod_selector: Selector {
                match_labels: labels(&[("k8s-app", "kube-dns")]),
                ..Selector::default()
            },
            policy_types: Vec::new(),
            ingress: vec![PolicyRule {
                peers: vec![PolicyPeer {
                    namespace_selector: Some(Selector {
                        match_labels: labels(&[(NAMESPACE_NAME_LABEL, "monitoring")]),
                        ..Selector::default()
                    }),
                    ..PolicyPeer::default()
                }],
                ports: Vec::new(),
            }],
            egress: Vec::new(),
        };
        let policies = [only_monitoring];
        assert!(matches!(
            judge(&policies, Direction::Ingress, &client, &dns, &udp(53)),
            Judgement::Denied(_)
        ));
        // Its policyTypes default to Ingress only: egress of the DNS pods is free.
        assert_eq!(
            judge(&policies, Direction::Egress, &dns, &client, &udp(53)),
            Judgement::NotIsolated
        );
        assert_eq!(
            describe_rules(&policies[0], Direction::Ingress),
            "ingress: from namespaceSelector kubernetes.io/metadata.name=monitoring on any port"
        );
    }
}
