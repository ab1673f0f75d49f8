//! kube-proxy's nftables mode read back from `nft list ruleset`: for one service port, the
//! `service-ips` map → service chain → endpoint chains → `dnat to` path, the
//! `no-endpoint-services` entry, and whether the `services` chain is hooked.

use serde::Serialize;

use super::nftables::{NftRuleset, NftTable, NftVerdict};
use super::service::{parse_dnat_destination, ProxyEndpoint, ServicePort};

/// kube-proxy's table name (family `ip` for IPv4, `ip6` for IPv6).
pub const KUBE_PROXY_TABLE: &str = "kube-proxy";

/// What the ruleset says kube-proxy does with one service port.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NftServiceView {
    pub service: ServicePort,
    /// The `service-ips` element value, e.g. `goto service-FY5PMXPG-kube-system/kube-dns/udp/dns`.
    pub service_ips_entry: Option<String>,
    pub service_chain: Option<String>,
    pub endpoints: Vec<ProxyEndpoint>,
    /// True when the service chain has affinity (`ip saddr @affinity-...`) shortcuts.
    pub session_affinity: bool,
    /// The `no-endpoint-services` element for this port: (verdict text, comment).
    pub no_endpoints_entry: Option<(String, Option<String>)>,
}

impl NftServiceView {
    pub fn has_no_endpoints(&self) -> bool {
        self.no_endpoints_entry.is_some() && self.endpoints.is_empty()
    }

    pub fn is_translated(&self) -> bool {
        !self.endpoints.is_empty()
    }
}

/// Whether kube-proxy's nftables table exists and its `services` chain is hooked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NftKubeProxyState {
    pub table_present: bool,
    /// A nat prerouting base chain jumps to `services`.
    pub hooked_from_prerouting: bool,
    /// A nat output base chain jumps to `services`.
    pub hooked_from_output: bool,
    /// Number of `service-ips` elements.
    pub service_entries: usize,
}

fn kube_proxy_table<'a>(rs: &'a NftRuleset, service: &ServicePort) -> Option<&'a NftTable> {
    let family = if service.ip.is_ipv4() { "ip" } else { "ip6" };
    rs.table(family, KUBE_PROXY_TABLE)
}

/// Splits a `service-ips` key `10.96.0.10 . udp . 53` into its parts.
fn key_matches(key: &str, service: &ServicePort) -> bool {
    let parts: Vec<&str> = key.split(" . ").map(str::trim).collect();
    match parts.as_slice() {
        [ip, proto, port] => {
            ip.parse::<std::net::IpAddr>().ok() == Some(service.ip)
                && proto.eq_ignore_ascii_case(service.protocol.as_str())
                && port.parse::<u16>().ok() == Some(service.port)
        }
        _ => false,
    }
}

fn verdict_chain(value: &str) -> Option<&str> {
    value
        .strip_prefix("goto ")
        .or_else(|| value.strip_prefix("jump "))
        .map(str::trim)
}

/// Follows kube-proxy's nftables structures for `service`.
pub fn nft_service_view(rs: &NftRuleset, service: &ServicePort) -> NftServiceView {
    let mut view = NftServiceView {
        service: *service,
        service_ips_entry: None,
        service_chain: None,
        endpoints: Vec::new(),
        session_affinity: false,
        no_endpoints_entry: None,
    };
    let Some(table) = kube_proxy_table(rs, service) else {
        return view;
    };
    if let Some(map) = table.set("no-endpoint-services") {
        if let Some(e) = map.elements.iter().find(|e| key_matches(&e.key, service)) {
            view.no_endpoints_entry =
                Some((e.value.clone().unwrap_or_default(), e.comment.clone()));
        }
    }
    let Some(entry) = table
        .set("service-ips")
        .and_then(|m| m.elements.iter().find(|e| key_matches(&e.key, service)))
    else {
        return view;
    };
    view.service_ips_entry = entry.value.clone();
    let Some(chain_name) = entry.value.as_deref().and_then(verdict_chain) else {
        return view;
    };
    view.service_chain = Some(chain_name.to_string());
    let Some(chain) = table.chain(chain_name) else {
        return view;
    };
    for rule in &chain.rules {
        match &rule.verdict {
            Some(NftVerdict::Vmap { entries }) => {
                let n = entries.len();
                for (_, verdict) in entries {
                    if let Some(ep) = verdict_chain(verdict) {
                        push_endpoint(table, ep, Some(1.0 / n as f64), &mut view);
                    }
                }
            }
            Some(NftVerdict::Goto { chain }) | Some(NftVerdict::Jump { chain })
                if chain.starts_with("endpoint-") =>
            {
                // An affinity shortcut: `ip saddr @affinity-... goto endpoint-...`.
                view.session_affinity = true;
                push_endpoint(table, chain, None, &mut view);
            }
            _ => {}
        }
    }
    view
}

fn push_endpoint(
    table: &NftTable,
    chain: &str,
    probability: Option<f64>,
    view: &mut NftServiceView,
) {
    if let Some(existing) = view.endpoints.iter_mut().find(|e| e.source == chain) {
        if existing.probability.is_none() {
            existing.probability = probability;
        }
        return;
    }
    let Some(dest) = table.chain(chain).and_then(|c| {
        c.rules.iter().find_map(|r| match &r.verdict {
            Some(NftVerdict::Dnat { to }) => parse_dnat_destination(to),
            _ => None,
        })
    }) else {
        return;
    };
    view.endpoints.push(ProxyEndpoint {
        address: dest.0,
        port: dest.1,
        probability,
        source: chain.to_string(),
    });
}

/// Reports whether kube-proxy's table for `family` (`ip` or `ip6`) exists and is hooked.
pub fn nft_kube_proxy_state(rs: &NftRuleset, family: &str) -> NftKubeProxyState {
    let Some(table) = rs.table(family, KUBE_PROXY_TABLE) else {
        return NftKubeProxyState {
            table_present: false,
            hooked_from_prerouting: false,
            hooked_from_output: false,
            service_entries: 0,
        };
    };
    let hooked = |hook: &str| {
        table.chains.iter().any(|c| {
            c.hook.as_ref().is_some_and(|h| h.kind == "nat" && h.hook == hook)
                && c.rules.iter().any(|r| {
                    matches!(&r.verdict, Some(NftVerdict::Jump { chain }) | Some(NftVerdict::Goto { chain }) if chain == "services")
                })
        })
    };
    NftKubeProxyState {
        table_present: true,
        hooked_from_prerouting: hooked("prerouting"),
        hooked_from_output: hooked("output"),
        service_entries: table.set("service-ips").map_or(0, |s| s.elements.len()),
    }
}
