//! One node's snapshot, parsed once with the `node` parsers and looked up by the keys the
//! node probe writes: how kube-proxy translates the DNS ClusterIP there, and which filtering
//! rules could drop DNS.

use std::net::IpAddr;

use dns_doctor_schema::{CommandOutput, HttpProbe, NodeSnapshot};
use ipnet::IpNet;

use crate::evidence::NodeEvidence;
use crate::node::firewall::{ChainPolicy, DnsScope, DnsTouchingRule, TouchReason};
use crate::node::iptables::parse_iptables_save;
use crate::node::iptables_firewall::{chain_policies, dns_touching_rules};
use crate::node::ipvs::parse_ipvsadm;
use crate::node::kube_proxy_iptables::{kube_proxy_hooks, service_view};
use crate::node::kube_proxy_nftables::{nft_kube_proxy_state, nft_service_view, KUBE_PROXY_TABLE};
use crate::node::nftables::parse_nft_ruleset;
use crate::node::nftables_firewall::{nft_chain_policies, nft_dns_touching_rules};
use crate::node::service::{Protocol, ProxyEndpoint, ServicePort};
use crate::topology::Topology;

/// Command keys of the node probe for the two iptables backends.
pub const IPTABLES_KEYS: [&str; 2] = ["iptables-legacy-save", "iptables-nft-save"];
/// The same for IPv6, read when the cluster DNS has an IPv6 address.
pub const IP6TABLES_KEYS: [&str; 2] = ["ip6tables-legacy-save", "ip6tables-nft-save"];
pub const NFT_RULESET_KEY: &str = "nft-list-ruleset";
pub const IPVSADM_KEY: &str = "ipvsadm";
pub const CONNTRACK_BEFORE_KEY: &str = "conntrack-stats-before";
pub const CONNTRACK_AFTER_KEY: &str = "conntrack-stats-after";
pub const BRIDGE_NF_CALL_IPTABLES_PATH: &str = "/proc/sys/net/bridge/bridge-nf-call-iptables";
pub const CONNTRACK_COUNT_PATH: &str = "/proc/sys/net/netfilter/nf_conntrack_count";
pub const CONNTRACK_MAX_PATH: &str = "/proc/sys/net/netfilter/nf_conntrack_max";
pub const HEALTHZ_KEY: &str = "kube-proxy-healthz";

/// What one data plane dump says about one DNS service port.
#[derive(Debug, Clone, PartialEq)]
pub struct Translation {
    /// The command key of the dump, e.g. "iptables-nft-save".
    pub key: &'static str,
    pub service: ServicePort,
    /// The rule that catches the ClusterIP ("line N: text"), if any.
    pub service_rule: Option<String>,
    pub endpoints: Vec<ProxyEndpoint>,
    /// kube-proxy's "has no endpoints" REJECT (or nft element) for it, if any.
    pub no_endpoints_rule: Option<String>,
}

/// A filtering rule that could drop DNS, with the dump it is in.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeRule {
    pub key: &'static str,
    pub rule: DnsTouchingRule,
}

#[derive(Debug, Clone)]
pub struct NodeView<'a> {
    pub node: &'a str,
    pub snapshot: &'a NodeSnapshot,
    /// Whether kube-proxy's chains (iptables), table (nftables) or virtual servers (IPVS)
    /// are present and hooked in some dump; None when no dump could be read.
    pub kube_proxy_hooked: Option<bool>,
    /// Translations of the DNS service ports, from the dumps where kube-proxy's chains are.
    pub translations: Vec<Translation>,
    /// The iptables dumps (backends) in which kube-proxy's chains are hooked.
    pub hooked_in: Vec<&'static str>,
    firewall: Vec<NodeRule>,
    drop_policies: Vec<(&'static str, ChainPolicy)>,
}

/// The DNS service ports (ClusterIP × service ports) and the address scope for firewall
/// rules, derived from the topology.
#[derive(Debug, Clone)]
pub struct DnsTargets {
    pub service_ports: Vec<ServicePort>,
    pub scope: DnsScope,
}

impl DnsTargets {
    pub fn from_topology(topology: &Topology) -> Self {
        let cluster_ips = super::observed::cluster_dns_ips(topology);
        let mut ports: Vec<(u16, Protocol)> = topology
            .dns_service
            .iter()
            .flat_map(|s| s.ports.iter())
            .filter(|p| p.port == 53)
            .filter_map(|p| Protocol::parse(&p.protocol).map(|proto| (p.port, proto)))
            .collect();
        if ports.is_empty() {
            ports = vec![(53, Protocol::Udp), (53, Protocol::Tcp)];
        }
        let service_ports = cluster_ips
            .iter()
            .flat_map(|ip| {
                ports
                    .iter()
                    .map(|(p, proto)| ServicePort::new(*ip, *p, *proto))
            })
            .collect();
        // Without the cluster's CIDRs, the addresses known to be in them stand for them: a
        // rule on 10.244.0.0/24 still overlaps the pod 10.244.0.5/32.
        let host = |ip: &IpAddr| IpNet::from(*ip);
        let mut pod_ips: Vec<IpAddr> = topology.endpoints.iter().map(|e| e.ip).collect();
        pod_ips.extend(topology.target.ip.filter(|_| !topology.target.host_network));
        let mut dns_addresses = cluster_ips.clone();
        dns_addresses.extend(topology.endpoints.iter().map(|e| e.ip));
        dns_addresses.extend(topology.node_local_dns.iter().map(|n| n.local_ip));
        let scope = DnsScope::new(
            pod_ips.iter().map(host).collect(),
            cluster_ips.iter().map(host).collect(),
            dns_addresses,
        );
        Self {
            service_ports,
            scope,
        }
    }
}

fn rule_line(line: usize, text: &str) -> String {
    format!("line {line}: {text}")
}

impl<'a> NodeView<'a> {
    pub fn new(e: &'a NodeEvidence, targets: &DnsTargets) -> Self {
        let mut view = Self {
            node: &e.node,
            snapshot: &e.snapshot,
            kube_proxy_hooked: None,
            translations: Vec::new(),
            hooked_in: Vec::new(),
            firewall: Vec::new(),
            drop_policies: Vec::new(),
        };
        let v6 = targets.service_ports.iter().any(|p| p.ip.is_ipv6());
        let keys = IPTABLES_KEYS
            .iter()
            .chain(IP6TABLES_KEYS.iter().filter(|_| v6));
        for &key in keys {
            let Some(out) = view.command(key) else {
                continue;
            };
            let Ok(save) = parse_iptables_save(&out.stdout) else {
                continue;
            };
            let hooked = kube_proxy_hooks(&save).translates_pod_traffic();
            view.kube_proxy_hooked = Some(view.kube_proxy_hooked.unwrap_or(false) || hooked);
            if hooked {
                view.hooked_in.push(key);
                for sp in &targets.service_ports {
                    let v = service_view(&save, sp);
                    view.translations.push(Translation {
                        key,
                        service: *sp,
                        service_rule: v.service_rule.as_ref().map(|r| rule_line(r.line, &r.text)),
                        no_endpoints_rule: v
                            .no_endpoints_rules
                            .first()
                            .map(|r| rule_line(r.line, &r.text)),
                        endpoints: v.endpoints,
                    });
                }
            }
            view.firewall.extend(
                dns_touching_rules(&save, &targets.scope)
                    .into_iter()
                    .filter(is_foreign_block)
                    .map(|rule| NodeRule { key, rule }),
            );
            view.drop_policies.extend(
                chain_policies(&save)
                    .into_iter()
                    .filter(ChainPolicy::is_drop)
                    .map(|p| (key, p)),
            );
        }
        view.read_nft(targets);
        view.read_ipvs(targets);
        view
    }

    fn read_nft(&mut self, targets: &DnsTargets) {
        let Some(out) = self.command(NFT_RULESET_KEY) else {
            return;
        };
        let Ok(rs) = parse_nft_ruleset(&out.stdout) else {
            return;
        };
        let hooked = ["ip", "ip6"].iter().any(|f| {
            let st = nft_kube_proxy_state(&rs, f);
            st.table_present && st.hooked_from_prerouting
        });
        // The iptables-nft backend also shows up in `nft list ruleset`; its rules were
        // already read from iptables-nft-save, so only kube-proxy's own table counts here.
        if hooked {
            self.kube_proxy_hooked = Some(true);
            for sp in &targets.service_ports {
                let v = nft_service_view(&rs, sp);
                self.translations.push(Translation {
                    key: NFT_RULESET_KEY,
                    service: *sp,
                    service_rule: v.service_ips_entry.clone(),
                    no_endpoints_rule: v.no_endpoints_entry.as_ref().map(|(verdict, comment)| {
                        format!("{verdict} {}", comment.as_deref().unwrap_or_default())
                            .trim()
                            .to_string()
                    }),
                    endpoints: v.endpoints,
                });
            }
        }
        self.firewall.extend(
            nft_dns_touching_rules(&rs, &targets.scope)
                .into_iter()
                .filter(|r| {
                    native_policy(&r.table)
                        && is_foreign_block(r)
                        && !r.table.ends_with(KUBE_PROXY_TABLE)
                })
                .map(|rule| NodeRule {
                    key: NFT_RULESET_KEY,
                    rule,
                }),
        );
        self.drop_policies.extend(
            nft_chain_policies(&rs)
                .into_iter()
                .filter(|p| p.is_drop() && native_policy(&p.table))
                .map(|p| (NFT_RULESET_KEY, p)),
        );
    }

    fn read_ipvs(&mut self, targets: &DnsTargets) {
        let Some(out) = self.command(IPVSADM_KEY) else {
            return;
        };
        let Ok(table) = parse_ipvsadm(&out.stdout) else {
            return;
        };
        if table.services.is_empty() {
            return;
        }
        self.kube_proxy_hooked = Some(true);
        for sp in &targets.service_ports {
            let Some(svc) = table.service(sp) else {
                continue;
            };
            self.translations.push(Translation {
                key: IPVSADM_KEY,
                service: *sp,
                service_rule: Some(format!("{} {sp} {}", svc.protocol, svc.scheduler)),
                no_endpoints_rule: None,
                endpoints: svc.endpoints(),
            });
        }
    }

    /// A command's output when it ran.
    pub fn command(&self, key: &str) -> Option<&'a CommandOutput> {
        self.snapshot
            .commands
            .iter()
            .find(|c| c.key == key && c.error.is_none())
    }

    /// A file's content, trimmed, when it could be read.
    pub fn file(&self, path: &str) -> Option<&'a str> {
        self.snapshot
            .files
            .iter()
            .find(|f| f.path == path)
            .and_then(|f| f.content.as_deref())
            .map(str::trim)
    }

    pub fn http(&self, key: &str) -> Option<&'a HttpProbe> {
        self.snapshot.http.iter().find(|h| h.key == key)
    }

    /// Evidence source label for one of this node's commands, e.g. `node:worker-1/iptables-nft-save`.
    pub fn source(&self, key: &str) -> String {
        format!("node:{}/{key}", self.node)
    }

    /// DROP/REJECT rules outside kube-proxy's own chains that DNS traffic could meet.
    pub fn dns_touching_rules(&self) -> &[NodeRule] {
        &self.firewall
    }

    /// Built-in chains whose policy is DROP (e.g. FORWARD DROP), with their dump.
    pub fn drop_policies(&self) -> &[(&'static str, ChainPolicy)] {
        &self.drop_policies
    }

    /// The endpoints the data plane sends a DNS service port to, over every dump that
    /// translates it.
    pub fn endpoints_for(&self, protocol: Protocol) -> Vec<&ProxyEndpoint> {
        self.translations
            .iter()
            .filter(|t| t.service.protocol == protocol)
            .flat_map(|t| t.endpoints.iter())
            .collect()
    }
}

/// Tables named like iptables' (`ip filter`, `ip6 nat`...) in an nft listing are the
/// iptables-nft backend, already read from iptables-nft-save.
fn native_policy(table: &str) -> bool {
    !["filter", "nat", "mangle", "raw", "security"]
        .iter()
        .any(|t| table.ends_with(&format!(" {t}")))
}

/// kube-proxy's own DROPs (INVALID conntrack state, localnet protection) are part of every
/// healthy node; blocks elsewhere, or unconditional ones, are what a person added.
fn is_foreign_block(r: &DnsTouchingRule) -> bool {
    if r.chain.starts_with("KUBE-") {
        return false;
    }
    let specific = r.reasons.iter().any(|x| *x != TouchReason::Unconditional);
    specific || r.conditions.is_empty()
}
