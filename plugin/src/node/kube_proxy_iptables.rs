//! kube-proxy's iptables mode read back from an `iptables-save` dump: for one service port,
//! the KUBE-SERVICES → KUBE-SVC → KUBE-SEP → DNAT path and its endpoints, the "has no
//! endpoints" REJECT, and whether kube-proxy's chains exist and are hooked at all.

use std::collections::HashSet;
use std::net::IpAddr;

use serde::Serialize;

use super::iptables::{IptablesSave, Rule, Table, Target};
use super::service::{parse_dnat_destination, Protocol, ProxyEndpoint, ServicePort};

/// Where a rule sits, for evidence.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RuleRef {
    pub table: String,
    pub chain: String,
    pub line: usize,
    pub text: String,
    pub comment: Option<String>,
    pub packets: Option<u64>,
}

impl RuleRef {
    fn new(table: &str, rule: &Rule) -> Self {
        RuleRef {
            table: table.to_string(),
            chain: rule.chain.clone(),
            line: rule.line,
            text: rule.text.clone(),
            comment: rule.comment().map(str::to_string),
            packets: rule.counters.map(|c| c.packets),
        }
    }
}

/// What the dump says kube-proxy does with one service port.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IptablesServiceView {
    pub service: ServicePort,
    /// The nat KUBE-SERVICES rule that catches the service port, if any.
    pub service_rule: Option<RuleRef>,
    /// The chain it jumps to (`KUBE-SVC-...`, or `KUBE-SVL-...` for internalTrafficPolicy Local).
    pub service_chain: Option<String>,
    /// kube-proxy's name for the service port (`kube-system/kube-dns:dns`), from the comment.
    pub service_port_name: Option<String>,
    /// Endpoints in rule order, with the probability of each being chosen for a new flow.
    pub endpoints: Vec<ProxyEndpoint>,
    /// True when some endpoint rules are session-affinity checks (`-m recent --rcheck`).
    pub session_affinity: bool,
    /// filter-table REJECT/DROP rules in KUBE-SERVICES / KUBE-EXTERNAL-SERVICES for this
    /// service port: kube-proxy's "has no endpoints" rules.
    pub no_endpoints_rules: Vec<RuleRef>,
}

impl IptablesServiceView {
    /// kube-proxy knows the service but has no endpoint for it.
    pub fn has_no_endpoints(&self) -> bool {
        !self.no_endpoints_rules.is_empty() && self.endpoints.is_empty()
    }

    /// The service port is translated to at least one endpoint.
    pub fn is_translated(&self) -> bool {
        !self.endpoints.is_empty()
    }
}

/// Follows kube-proxy's chains for `service` and returns what a new flow to it meets.
pub fn service_view(save: &IptablesSave, service: &ServicePort) -> IptablesServiceView {
    let mut view = IptablesServiceView {
        service: *service,
        service_rule: None,
        service_chain: None,
        service_port_name: None,
        endpoints: Vec::new(),
        session_affinity: false,
        no_endpoints_rules: Vec::new(),
    };
    if let Some(nat) = save.table("nat") {
        if let Some(rule) = nat
            .chain("KUBE-SERVICES")
            .into_iter()
            .flat_map(|c| &c.rules)
            .find(|r| rule_selects(r, service) && matches!(r.target, Some(Target::Chain { .. })))
        {
            view.service_rule = Some(RuleRef::new("nat", rule));
            view.service_port_name = rule.comment().map(service_port_name);
            if let Some(Target::Chain { name, .. }) = &rule.target {
                view.service_chain = Some(name.clone());
                collect_endpoints(nat, name, &mut view);
            }
        }
    }
    if let Some(filter) = save.table("filter") {
        for chain in ["KUBE-SERVICES", "KUBE-EXTERNAL-SERVICES"] {
            for rule in filter.chain(chain).into_iter().flat_map(|c| &c.rules) {
                let blocks = matches!(
                    rule.target,
                    Some(Target::Reject { .. }) | Some(Target::Drop)
                );
                if blocks && rule_selects(rule, service) {
                    if view.service_port_name.is_none() {
                        view.service_port_name = rule.comment().map(service_port_name);
                    }
                    view.no_endpoints_rules.push(RuleRef::new("filter", rule));
                }
            }
        }
    }
    view
}

/// kube-proxy comments read `ns/name:port cluster IP`, `ns/name:port has no endpoints` or
/// `ns/name:port -> ip:port`; the service port name is the first word.
fn service_port_name(comment: &str) -> String {
    comment
        .split_whitespace()
        .next()
        .unwrap_or(comment)
        .to_string()
}

fn protocol_matches(rule: &Rule, protocol: Protocol) -> bool {
    match &rule.protocol {
        None => true,
        Some(p) => {
            let same =
                p.value == "all" || p.value == "0" || Protocol::parse(&p.value) == Some(protocol);
            same != p.negated
        }
    }
}

/// True when `rule`'s address, protocol and port matches select traffic to `service`.
fn rule_selects(rule: &Rule, service: &ServicePort) -> bool {
    let dest_ok = match &rule.destination {
        Some(d) => d.value.contains(&service.ip) != d.negated,
        // kube-proxy always writes -d for ClusterIP rules; a rule without one is a
        // catch-all (the NodePort jump), not a per-service rule.
        None => false,
    };
    let port_ok = match rule.destination_ports() {
        Some(p) => p.value.contains(service.port) != p.negated,
        None => false,
    };
    dest_ok && port_ok && protocol_matches(rule, service.protocol)
}

fn collect_endpoints(nat: &Table, svc_chain: &str, view: &mut IptablesServiceView) {
    let Some(chain) = nat.chain(svc_chain) else {
        return;
    };
    let mut seen = HashSet::new();
    let mut remaining = 1.0_f64;
    for rule in &chain.rules {
        let Some(Target::Chain { name, .. }) = &rule.target else {
            continue;
        };
        let Some(dest) = dnat_destination(nat, name) else {
            // KUBE-MARK-MASQ and other helpers do not translate.
            continue;
        };
        if rule.is_recent_check() {
            // Affinity rules only re-pick an endpoint chosen before; they take no share.
            view.session_affinity = true;
            continue;
        }
        let share = match rule.random_probability() {
            Some(p) => {
                let p = p.clamp(0.0, 1.0);
                let s = remaining * p;
                remaining *= 1.0 - p;
                s
            }
            None => std::mem::replace(&mut remaining, 0.0),
        };
        if !seen.insert(name.clone()) {
            continue;
        }
        view.endpoints.push(ProxyEndpoint {
            address: dest.0,
            port: dest.1,
            probability: Some(share),
            source: name.clone(),
        });
    }
}

/// The DNAT destination of an endpoint chain (`KUBE-SEP-...`).
fn dnat_destination(nat: &Table, chain: &str) -> Option<(IpAddr, Option<u16>)> {
    nat.chain(chain)?
        .rules
        .iter()
        .find_map(|r| match &r.target {
            Some(Target::Dnat {
                to_destination: Some(to),
            }) => parse_dnat_destination(to),
            _ => None,
        })
}

/// Whether kube-proxy's iptables chains are present and wired into the built-in chains.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KubeProxyHooks {
    /// nat KUBE-SERVICES exists.
    pub nat_services_chain: bool,
    /// nat PREROUTING jumps to KUBE-SERVICES (traffic from pods).
    pub hooked_from_prerouting: bool,
    /// nat OUTPUT jumps to KUBE-SERVICES (traffic from host-network processes).
    pub hooked_from_output: bool,
    /// filter KUBE-SERVICES exists (where "has no endpoints" rules live).
    pub filter_services_chain: bool,
    /// Number of KUBE-SVC-/KUBE-SVL- chains in nat.
    pub service_chains: usize,
    /// Number of KUBE-SEP- chains in nat.
    pub endpoint_chains: usize,
}

impl KubeProxyHooks {
    /// Service translation works only when the chain exists and pod traffic reaches it.
    pub fn translates_pod_traffic(&self) -> bool {
        self.nat_services_chain && self.hooked_from_prerouting
    }
}

/// Reports whether kube-proxy's chains exist and are jumped to; all false on a dump where
/// kube-proxy's rules were flushed (or on a node whose kube-proxy uses another mode or the
/// other iptables backend — compare both backends' dumps).
pub fn kube_proxy_hooks(save: &IptablesSave) -> KubeProxyHooks {
    let nat = save.table("nat");
    let jumps = |chain: &str| {
        nat.and_then(|t| t.chain(chain)).is_some_and(|c| {
            c.rules.iter().any(|r| {
                matches!(&r.target, Some(Target::Chain { name, .. }) if name == "KUBE-SERVICES")
            })
        })
    };
    let count = |prefixes: &[&str]| {
        nat.map(|t| {
            t.chains
                .iter()
                .filter(|c| prefixes.iter().any(|p| c.name.starts_with(p)))
                .count()
        })
        .unwrap_or(0)
    };
    KubeProxyHooks {
        nat_services_chain: nat.and_then(|t| t.chain("KUBE-SERVICES")).is_some(),
        hooked_from_prerouting: jumps("PREROUTING"),
        hooked_from_output: jumps("OUTPUT"),
        filter_services_chain: save
            .table("filter")
            .and_then(|t| t.chain("KUBE-SERVICES"))
            .is_some(),
        service_chains: count(&["KUBE-SVC-", "KUBE-SVL-"]),
        endpoint_chains: count(&["KUBE-SEP-"]),
    }
}
