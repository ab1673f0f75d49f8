//! Which service data plane translates the DNS ClusterIP on the target's node, as the
//! node's dumps and the API show it: kube-proxy (in the mode its rules show), another data
//! plane whose DNAT rules are visible (an nftables table or iptables chain of its own), or
//! none visible (an eBPF data plane such as Cilium's kube-proxy replacement, or nothing).

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::node::iptables::{parse_iptables_save, Target};
use crate::node::kube_proxy_nftables::KUBE_PROXY_TABLE;
use crate::node::nftables::{parse_nft_ruleset, NftVerdict};

use super::finding::EvidenceRef;
use super::node_view::{NodeView, IP6TABLES_KEYS, IPTABLES_KEYS, IPVSADM_KEY, NFT_RULESET_KEY};
use super::Context;

/// What kind of data plane was seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DataPlaneKind {
    /// kube-proxy is deployed (pods, DaemonSet or ConfigMap) or its rules are on the node.
    KubeProxy,
    /// No kube-proxy; rules of something else DNAT the DNS ClusterIP on the node.
    Other,
    /// No kube-proxy, and no rule in iptables, nftables or IPVS translates the DNS
    /// ClusterIP on the node: an eBPF data plane, or none at all.
    NoneVisible,
    /// No kube-proxy, and the node's rules were not read.
    Unknown,
}

/// The service data plane of the target's node, for the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataPlane {
    pub kind: DataPlaneKind,
    /// kube-proxy's mode as its rules on the node show it: `iptables`, `nftables` or `ipvs`;
    /// None when no kube-proxy rule was seen.
    #[serde(default)]
    pub mode: Option<String>,
    /// The node whose dumps were read.
    #[serde(default)]
    pub node: Option<String>,
    /// What was seen, in one sentence.
    pub detail: String,
    /// For [`DataPlaneKind::Other`]: the rules that DNAT the DNS ClusterIP.
    #[serde(default)]
    pub rules: Vec<EvidenceRef>,
}

/// The data plane of the target's node; None when no cluster was examined (`analyze`).
pub fn data_plane(cx: &Context<'_>) -> Option<DataPlane> {
    let t = &cx.topology.target;
    if t.name.is_empty() {
        return None;
    }
    let node = cx.target_node();
    let node_name = node.map(|n| n.node.to_string()).or_else(|| t.node.clone());
    let kp = &cx.topology.kube_proxy;
    let hooked = node.and_then(|n| n.kube_proxy_hooked);
    if !kp.absent_by_design() || hooked == Some(true) {
        let mode = node.and_then(kube_proxy_mode);
        let on = node_name.as_deref().unwrap_or("the pod's node");
        let detail = match (mode, hooked) {
            (Some((m, Some(b))), _) => {
                format!("kube-proxy in {m} mode ({b} backend) translates ClusterIPs on {on}")
            }
            (Some((m, None)), _) => format!("kube-proxy in {m} mode translates ClusterIPs on {on}"),
            (None, Some(false)) => {
                format!("kube-proxy is deployed, but no kube-proxy rule is on {on}")
            }
            _ => format!("kube-proxy is deployed; its rules on {on} were not read"),
        };
        return Some(DataPlane {
            kind: DataPlaneKind::KubeProxy,
            mode: mode.map(|(m, _)| m.to_string()),
            node: node_name,
            detail,
            rules: Vec::new(),
        });
    }
    let Some(n) = node else {
        return Some(DataPlane {
            kind: DataPlaneKind::Unknown,
            mode: None,
            node: node_name,
            detail: "no kube-proxy in this cluster; the node's rules were not read, so what translates ClusterIPs is not known".into(),
            rules: Vec::new(),
        });
    };
    let ips = super::observed::cluster_dns_ips(cx.topology);
    let rules = other_translations(n, &ips);
    if rules.is_empty() {
        return Some(DataPlane {
            kind: DataPlaneKind::NoneVisible,
            mode: None,
            node: node_name,
            detail: format!(
                "no kube-proxy in this cluster, and no rule for the DNS ClusterIP in iptables, nftables or IPVS on {}: another data plane that these do not show (eBPF, e.g. Cilium's kube-proxy replacement) translates it, or none does",
                n.node
            ),
            rules: Vec::new(),
        });
    }
    let mut whose: Vec<&str> = Vec::new();
    for r in &rules {
        if !whose.contains(&r.owner.as_str()) {
            whose.push(&r.owner);
        }
    }
    Some(DataPlane {
        kind: DataPlaneKind::Other,
        mode: None,
        node: node_name,
        detail: format!(
            "no kube-proxy in this cluster; another data plane translates the DNS ClusterIP on {}: {}",
            n.node,
            whose.join(", ")
        ),
        rules: rules.into_iter().map(|r| r.rule).collect(),
    })
}

/// A rule outside kube-proxy that translates the DNS ClusterIP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtherTranslation {
    /// Whose rule it is: `nft table ip lb`, `iptables nat chain LB-SERVICES`.
    pub owner: String,
    /// The rule, as evidence (`line N: text` from its dump).
    pub rule: EvidenceRef,
}

/// kube-proxy's mode as the node's dumps show it (`iptables`, `nftables`, `ipvs`), from the
/// dumps that translate the DNS ClusterIP (or, failing that, where its chains are hooked),
/// with the iptables backend for the iptables mode.
fn kube_proxy_mode(n: &NodeView<'_>) -> Option<(&'static str, Option<&'static str>)> {
    let keys: Vec<&str> = n.translations.iter().map(|t| t.key).collect();
    if keys.contains(&IPVSADM_KEY) {
        return Some(("ipvs", None));
    }
    if keys.contains(&NFT_RULESET_KEY) {
        return Some(("nftables", None));
    }
    let backend = |k: &str| match k {
        "iptables-nft-save" | "ip6tables-nft-save" => Some("iptables-nft"),
        "iptables-legacy-save" | "ip6tables-legacy-save" => Some("iptables-legacy"),
        _ => None,
    };
    keys.iter()
        .chain(n.hooked_in.iter())
        .find_map(|k| backend(k))
        .map(|b| ("iptables", Some(b)))
}

/// DNAT rules for one of `cluster_ips` outside kube-proxy's chains and table: iptables nat
/// rules in chains not named KUBE-*, and rules of nftables tables of their own (not
/// kube-proxy's, not the iptables-nft compat tables) that have a nat base chain.
pub fn other_translations(n: &NodeView<'_>, cluster_ips: &[IpAddr]) -> Vec<OtherTranslation> {
    let mut out = Vec::new();
    for key in IPTABLES_KEYS.iter().chain(IP6TABLES_KEYS.iter()) {
        let Some(save) = n
            .command(key)
            .and_then(|o| parse_iptables_save(&o.stdout).ok())
        else {
            continue;
        };
        let Some(nat) = save.table("nat") else {
            continue;
        };
        for chain in nat.chains.iter().filter(|c| !c.name.starts_with("KUBE-")) {
            for r in &chain.rules {
                let dnat = matches!(r.target, Some(Target::Dnat { .. }));
                let to_cluster_ip = r.destination.as_ref().is_some_and(|d| {
                    !d.negated && cluster_ips.iter().any(|ip| d.value.contains(ip))
                });
                if dnat && to_cluster_ip {
                    out.push(OtherTranslation {
                        owner: format!("iptables nat chain {}", chain.name),
                        rule: EvidenceRef::new(
                            n.source(key),
                            format!("line {}: {}", r.line, r.text),
                        ),
                    });
                }
            }
        }
    }
    let Some(rs) = n
        .command(NFT_RULESET_KEY)
        .and_then(|o| parse_nft_ruleset(&o.stdout).ok())
    else {
        return out;
    };
    let compat = ["filter", "nat", "mangle", "raw", "security"];
    for table in rs
        .tables
        .iter()
        .filter(|t| t.name != KUBE_PROXY_TABLE && !compat.contains(&t.name.as_str()))
        .filter(|t| {
            t.chains
                .iter()
                .any(|c| c.hook.as_ref().is_some_and(|h| h.kind == "nat"))
        })
    {
        for chain in &table.chains {
            for r in &chain.rules {
                let translates = matches!(
                    r.verdict,
                    Some(
                        NftVerdict::Dnat { .. }
                            | NftVerdict::Jump { .. }
                            | NftVerdict::Goto { .. }
                            | NftVerdict::Vmap { .. }
                            | NftVerdict::NamedVmap { .. }
                    )
                );
                let to_cluster_ip = r.matches.iter().any(|m| {
                    matches!(m.field.as_str(), "ip daddr" | "ip6 daddr")
                        && !m.negated
                        && m.values.iter().any(|v| {
                            v.parse::<IpAddr>()
                                .is_ok_and(|ip| cluster_ips.contains(&ip))
                        })
                });
                if translates && to_cluster_ip {
                    out.push(OtherTranslation {
                        owner: format!("nftables table {}", table.display_name()),
                        rule: EvidenceRef::new(
                            n.source(NFT_RULESET_KEY),
                            format!("line {}: {}", r.line, r.text),
                        ),
                    });
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use dns_doctor_schema::QueryOutcome;

    use super::super::testkit::*;
    use super::*;
    use crate::diagnose::{CheckStatus, Severity};

    // Dumps of the test cluster's node with kube-proxy removed (fixtures/node/README.md).
    const IPT_NFT_NO_KUBE_PROXY: &str =
        include_str!("../../tests/fixtures/node/iptables-nft-no-kube-proxy.txt");
    const NFT_NO_KUBE_PROXY: &str = include_str!("../../tests/fixtures/node/nft-no-kube-proxy.txt");
    const NFT_REPLACEMENT: &str =
        include_str!("../../tests/fixtures/node/nft-no-kube-proxy-replacement-dnat.txt");

    /// The cluster without kube-proxy: no pods, no DaemonSet, no ConfigMap, its rules gone
    /// from the node; `nft` is the node's `nft list ruleset`.
    fn without_kube_proxy(nft: &str) -> Scenario {
        let mut s = healthy();
        s.topology.kube_proxy.pods.clear();
        s.topology.kube_proxy.configured_mode = None;
        s.topology.kube_proxy.daemonset = false;
        s.set_node_command("iptables-legacy-save", "");
        s.set_node_command("iptables-nft-save", IPT_NFT_NO_KUBE_PROXY);
        s.set_node_command("nft-list-ruleset", nft);
        s
    }

    fn kube_proxy_check(d: &crate::diagnose::Diagnosis) -> crate::diagnose::Check {
        d.checklist
            .iter()
            .find(|c| c.id == "kube-proxy")
            .cloned()
            .expect("kube-proxy step")
    }

    #[test]
    fn kube_proxy_is_named_with_the_mode_its_rules_show() {
        let d = healthy().diagnose();
        let plane = d.data_plane.expect("a cluster was examined");
        assert_eq!(plane.kind, DataPlaneKind::KubeProxy);
        assert_eq!(plane.mode.as_deref(), Some("iptables"));
        assert_eq!(
            plane.detail,
            "kube-proxy in iptables mode (iptables-legacy backend) translates ClusterIPs on node-1"
        );
        let mut s = healthy();
        s.set_node_command("iptables-legacy-save", "");
        s.set_node_command("nft-list-ruleset", NFT_KUBE_PROXY_HEALTHY);
        let plane = s.diagnose().data_plane.unwrap();
        assert_eq!(plane.mode.as_deref(), Some("nftables"));
        // No cluster examined (`analyze`): nothing to say.
        let mut s = healthy();
        s.topology = crate::topology::Topology::default();
        assert_eq!(s.diagnose().data_plane, None);
    }

    #[test]
    fn a_replacement_data_plane_is_named_and_not_a_problem() {
        let d = without_kube_proxy(NFT_REPLACEMENT).diagnose();
        assert!(!d.has_problems(), "{:#?}", d.findings);
        let plane = d.data_plane.clone().unwrap();
        assert_eq!(plane.kind, DataPlaneKind::Other);
        assert_eq!(
            plane.detail,
            "no kube-proxy in this cluster; another data plane translates the DNS ClusterIP on node-1: nftables table ip dnsdoctor-lb"
        );
        let rules: Vec<&str> = plane.rules.iter().map(|r| r.detail.as_str()).collect();
        assert_eq!(
            rules,
            [
                "line 92: ip daddr 10.96.0.10 udp dport 53 dnat to numgen random mod 2 map { 0 : 10.244.0.36 , 1 : 10.244.0.35 }",
                "line 93: ip daddr 10.96.0.10 tcp dport 53 dnat to numgen random mod 2 map { 0 : 10.244.0.36 , 1 : 10.244.0.35 }",
            ]
        );
        let step = kube_proxy_check(&d);
        assert_eq!(step.status, CheckStatus::Pass);
        assert!(
            step.detail
                .ends_with("dnsdoctor-lb; the DNS ClusterIP answers"),
            "{}",
            step.detail
        );
    }

    #[test]
    fn nothing_translating_the_cluster_ip_without_kube_proxy_is_named() {
        let mut s = without_kube_proxy(NFT_NO_KUBE_PROXY);
        // Something invisible in the dumps (eBPF) translates it: healthy.
        let d = s.diagnose();
        assert!(!d.has_problems(), "{:#?}", d.findings);
        assert_eq!(
            d.data_plane.as_ref().unwrap().kind,
            DataPlaneKind::NoneVisible
        );
        assert_eq!(kube_proxy_check(&d).status, CheckStatus::Pass);
        // Nothing does: the ClusterIP times out, the endpoints answer.
        s.set_queries(is_cluster_dns, QueryOutcome::TimedOut, None);
        let d = s.diagnose();
        let f = &d.findings[0];
        assert_eq!(
            f.id,
            super::super::clusterip_not_translated::ID,
            "{:#?}",
            d.findings
        );
        assert_eq!(f.severity, Severity::Error);
        assert_eq!(
            f.summary,
            "nothing translates the DNS ClusterIP 10.96.0.10 on node node-1: the cluster has no kube-proxy and no other rule for it; queries to it die while the DNS pods answer directly"
        );
        let evidence: Vec<&str> = f.evidence.iter().map(|e| e.detail.as_str()).collect();
        assert!(evidence.iter().any(|e| e.starts_with("no rule translates 10.96.0.10 in iptables-legacy-save, iptables-nft-save, nft-list-ruleset")), "{evidence:?}");
        assert!(!d
            .findings
            .iter()
            .any(|f| f.id == super::super::kube_proxy_not_translating::ID));
        assert_eq!(kube_proxy_check(&d).status, CheckStatus::Fail);
        // A replacement whose rules are there but whose ClusterIP fails is not this.
        let mut s = without_kube_proxy(NFT_REPLACEMENT);
        s.set_queries(is_cluster_dns, QueryOutcome::TimedOut, None);
        let d = s.diagnose();
        assert!(!d
            .findings
            .iter()
            .any(|f| f.id == super::super::clusterip_not_translated::ID));
        assert!(d.has_problems());
    }
}
