//! `nft list ruleset` dumps taken from real nft in network namespaces by
//! scripts/capture-node-fixtures (kube-proxy nftables-mode rulesets, a node firewall table,
//! and an iptables-nft ruleset as nft prints it). One `Case` line per fixture.

use std::path::PathBuf;

use dns_doctor::node::firewall::{BlockVerdict, DnsScope, TouchReason};
use dns_doctor::node::kube_proxy_nftables::{nft_kube_proxy_state, nft_service_view};
use dns_doctor::node::nftables::{parse_nft_ruleset, NftRuleset};
use dns_doctor::node::nftables_firewall::{nft_chain_policies, nft_dns_touching_rules};
use dns_doctor::node::service::{Protocol, ServicePort};

#[derive(Debug, Clone, Copy)]
enum Dns {
    Endpoints(&'static [&'static str]),
    NoEndpoints,
    /// No kube-proxy table (another data plane, or kube-proxy down and cleaned up).
    NoTable,
}

struct Case {
    file: &'static str,
    dns: Dns,
    /// (table, chain, text fragment) of DNS-touching drop/reject rules that must be found.
    blockers: &'static [(&'static str, &'static str, &'static str)],
}

const KUBE_DNS: &[&str] = &["10.244.0.2:53", "10.244.0.3:53"];

#[rustfmt::skip]
const CASES: &[Case] = &[
    Case { file: "nft-kube-proxy-healthy.txt", dns: Dns::Endpoints(KUBE_DNS), blockers: &[] },
    Case { file: "nft-kube-proxy-no-endpoints.txt", dns: Dns::NoEndpoints, blockers: &[] },
    Case {
        file: "nft-kube-proxy-node-firewall.txt",
        dns: Dns::Endpoints(KUBE_DNS),
        blockers: &[
            ("inet node-firewall", "forward", "ip daddr 10.244.0.0/24 udp dport 53"),
            ("inet node-firewall", "forward", "ip daddr 10.244.0.0/24 tcp dport 53"),
            ("inet node-firewall", "dns-guard", "reject with icmpx admin-prohibited"),
        ],
    },
    Case {
        file: "nft-iptables-nft-node-firewall.txt",
        dns: Dns::NoTable,
        blockers: &[
            ("ip filter", "NODE-FIREWALL", "udp dport 53"),
            ("ip filter", "NODE-FIREWALL", "tcp dport 53"),
            ("ip filter", "INPUT", "reject with tcp reset"),
        ],
    },
];

fn load(name: &str) -> NftRuleset {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/node")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    parse_nft_ruleset(&text).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn dns(protocol: Protocol) -> ServicePort {
    ServicePort::new("10.96.0.10".parse().unwrap(), 53, protocol)
}

fn scope() -> DnsScope {
    DnsScope::new(
        vec!["10.244.0.0/16".parse().unwrap()],
        vec!["10.96.0.0/16".parse().unwrap()],
        vec!["10.96.0.10".parse().unwrap()],
    )
}

#[test]
fn every_ruleset_gives_the_expected_kube_proxy_view_and_blockers() {
    for case in CASES {
        let rs = load(case.file);
        let state = nft_kube_proxy_state(&rs, "ip");
        for protocol in [Protocol::Udp, Protocol::Tcp] {
            let view = nft_service_view(&rs, &dns(protocol));
            match case.dns {
                Dns::Endpoints(want) => {
                    assert!(
                        state.hooked_from_prerouting && state.hooked_from_output,
                        "{}",
                        case.file
                    );
                    let got: Vec<String> = view
                        .endpoints
                        .iter()
                        .map(|e| format!("{}:{}", e.address, e.port.unwrap_or(0)))
                        .collect();
                    assert_eq!(got, want, "{} {protocol}", case.file);
                    assert!(
                        view.endpoints.iter().all(|e| e.probability == Some(0.5)),
                        "{}",
                        case.file
                    );
                    assert!(view.no_endpoints_entry.is_none(), "{}", case.file);
                    let chain = view.service_chain.as_deref().unwrap_or_default();
                    assert!(
                        chain.ends_with(&format!(
                            "kube-system/kube-dns/{protocol}/{}",
                            if protocol == Protocol::Udp {
                                "dns"
                            } else {
                                "dns-tcp"
                            }
                        )),
                        "{}: {chain}",
                        case.file
                    );
                }
                Dns::NoEndpoints => {
                    assert!(
                        state.table_present && state.hooked_from_prerouting,
                        "{}",
                        case.file
                    );
                    assert!(view.has_no_endpoints(), "{} {protocol}", case.file);
                    let (verdict, comment) = view.no_endpoints_entry.clone().unwrap();
                    assert_eq!(verdict, "goto reject-chain");
                    assert!(comment
                        .unwrap_or_default()
                        .starts_with("kube-system/kube-dns:dns"));
                }
                Dns::NoTable => {
                    assert!(!state.table_present, "{}", case.file);
                    assert!(
                        !view.is_translated() && view.no_endpoints_entry.is_none(),
                        "{}",
                        case.file
                    );
                }
            }
        }
        let rules = nft_dns_touching_rules(&rs, &scope());
        for (table, chain, fragment) in case.blockers {
            assert!(
                rules
                    .iter()
                    .any(|r| r.table == *table && r.chain == *chain && r.text.contains(fragment)),
                "{}: blocker {table}/{chain} `{fragment}` not found in {rules:#?}",
                case.file
            );
        }
    }
}

#[test]
fn service_ips_map_lists_every_service() {
    let rs = load("nft-kube-proxy-healthy.txt");
    let state = nft_kube_proxy_state(&rs, "ip");
    assert_eq!(state.service_entries, 4);
    assert!(!nft_kube_proxy_state(&rs, "ip6").table_present);
    let api = nft_service_view(
        &rs,
        &ServicePort::new("10.96.0.1".parse().unwrap(), 443, Protocol::Tcp),
    );
    assert_eq!(api.endpoints.len(), 1);
    assert_eq!(api.endpoints[0].port, Some(6443));
    assert_eq!(api.endpoints[0].probability, Some(1.0));
}

#[test]
fn firewall_reasons_policies_and_kube_proxy_checks() {
    let rs = load("nft-kube-proxy-node-firewall.txt");
    let rules = nft_dns_touching_rules(&rs, &scope());
    let udp = rules
        .iter()
        .find(|r| r.chain == "forward" && r.text.contains("udp dport 53"))
        .unwrap();
    assert_eq!(udp.verdict, BlockVerdict::Drop);
    assert_eq!(
        udp.reasons,
        vec![TouchReason::DnsPort, TouchReason::PodCidr]
    );
    assert_eq!(udp.packets, Some(0));
    let guard = rules.iter().find(|r| r.chain == "dns-guard").unwrap();
    assert_eq!(guard.reached_from, vec!["forward"]);
    assert_eq!(guard.reasons, vec![TouchReason::DnsPort]);
    // kube-proxy's own reject for unknown ports of a ClusterIP resolves @cluster-ips.
    let cip = rules
        .iter()
        .find(|r| {
            r.table == "ip kube-proxy"
                && r.chain == "cluster-ips-check"
                && r.text.contains("@cluster-ips")
        })
        .unwrap();
    assert!(cip.reasons.contains(&TouchReason::DnsAddress));
    let input = nft_chain_policies(&rs)
        .into_iter()
        .find(|p| p.table == "inet node-firewall" && p.chain == "input")
        .unwrap();
    assert!(input.is_drop());
    // The input chain's drop policy is a policy, not a rule: no rule in it blocks port 53.
    assert!(rules.iter().all(|r| r.chain != "input"));
}

#[test]
fn iptables_nft_ruleset_policy_is_visible_through_nft() {
    let rs = load("nft-iptables-nft-node-firewall.txt");
    let forward = nft_chain_policies(&rs)
        .into_iter()
        .find(|p| p.table == "ip filter" && p.chain == "FORWARD")
        .unwrap();
    assert!(forward.is_drop());
}
