//! iptables-save dumps taken from real iptables (legacy and nft backends) in network
//! namespaces by scripts/capture-node-fixtures, read back through the parser and the
//! kube-proxy / firewall views. One `Case` line per fixture: adding a dump from a real node
//! is one line in `CASES`.

use std::net::IpAddr;
use std::path::PathBuf;

use dns_doctor::node::firewall::{BlockVerdict, DnsScope, DnsTouchingRule, TouchReason};
use dns_doctor::node::iptables::{parse_iptables_save, IptablesSave};
use dns_doctor::node::iptables_firewall::{chain_policies, dns_touching_rules};
use dns_doctor::node::kube_proxy_iptables::{kube_proxy_hooks, service_view};
use dns_doctor::node::service::{Protocol, ServicePort};

/// What kube-proxy does with 10.96.0.10:53 in a dump.
#[derive(Debug, Clone, Copy)]
enum Dns {
    /// Translated to these endpoints (`ip:port`), in rule order.
    Endpoints(&'static [&'static str]),
    /// kube-proxy's "has no endpoints" REJECT is present.
    NoEndpoints,
    /// No kube-proxy rule for the service at all.
    Untranslated,
}

struct Case {
    file: &'static str,
    dns: Dns,
    /// nat PREROUTING and OUTPUT jump to KUBE-SERVICES.
    hooked: bool,
    forward_policy: &'static str,
    /// (table, chain, comment-or-text fragment) of DNS-touching DROP/REJECT rules that must be
    /// found, beyond kube-proxy's own.
    blockers: &'static [(&'static str, &'static str, &'static str)],
}

const KUBE_DNS: &[&str] = &["10.244.0.2:53", "10.244.0.3:53"];

#[rustfmt::skip]
const CASES: &[Case] = &[
    Case { file: "iptables-legacy-healthy.txt", dns: Dns::Endpoints(KUBE_DNS), hooked: true, forward_policy: "ACCEPT", blockers: &[] },
    Case { file: "iptables-nft-healthy.txt", dns: Dns::Endpoints(KUBE_DNS), hooked: true, forward_policy: "ACCEPT", blockers: &[] },
    Case { file: "iptables-legacy-no-endpoints.txt", dns: Dns::NoEndpoints, hooked: true, forward_policy: "ACCEPT", blockers: &[] },
    Case { file: "iptables-nft-no-endpoints.txt", dns: Dns::NoEndpoints, hooked: true, forward_policy: "ACCEPT", blockers: &[] },
    Case { file: "iptables-legacy-node-firewall.txt", dns: Dns::Endpoints(KUBE_DNS), hooked: true, forward_policy: "DROP", blockers: NODE_FIREWALL },
    Case { file: "iptables-nft-node-firewall.txt", dns: Dns::Endpoints(KUBE_DNS), hooked: true, forward_policy: "DROP", blockers: NODE_FIREWALL },
    Case { file: "iptables-legacy-udp-blocked.txt", dns: Dns::Endpoints(KUBE_DNS), hooked: true, forward_policy: "ACCEPT", blockers: UDP_BLOCKED },
    Case { file: "iptables-nft-udp-blocked.txt", dns: Dns::Endpoints(KUBE_DNS), hooked: true, forward_policy: "ACCEPT", blockers: UDP_BLOCKED },
    Case { file: "iptables-legacy-aaaa-drop.txt", dns: Dns::Endpoints(KUBE_DNS), hooked: true, forward_policy: "ACCEPT", blockers: AAAA_DROP },
    Case { file: "iptables-nft-aaaa-drop.txt", dns: Dns::Endpoints(KUBE_DNS), hooked: true, forward_policy: "ACCEPT", blockers: AAAA_DROP },
    Case { file: "iptables-legacy-kube-proxy-flushed.txt", dns: Dns::Untranslated, hooked: false, forward_policy: "ACCEPT", blockers: &[] },
    Case { file: "iptables-nft-kube-proxy-flushed.txt", dns: Dns::Untranslated, hooked: false, forward_policy: "ACCEPT", blockers: &[] },
    Case { file: "iptables-legacy-unhooked.txt", dns: Dns::Endpoints(KUBE_DNS), hooked: false, forward_policy: "ACCEPT", blockers: &[] },
    Case { file: "iptables-nft-unhooked.txt", dns: Dns::Endpoints(KUBE_DNS), hooked: false, forward_policy: "ACCEPT", blockers: &[] },
];

const NODE_FIREWALL: &[(&str, &str, &str)] = &[
    (
        "filter",
        "NODE-FIREWALL",
        "-d 10.244.0.0/24 -p udp -m udp --dport 53 -j DROP",
    ),
    (
        "filter",
        "NODE-FIREWALL",
        "-d 10.244.0.0/24 -p tcp -m tcp --dport 53 -j DROP",
    ),
    (
        "filter",
        "INPUT",
        "--dports 22,53,853 -j REJECT --reject-with tcp-reset",
    ),
];
const UDP_BLOCKED: &[(&str, &str, &str)] = &[
    ("filter", "FORWARD", "block udp dns"),
    (
        "raw",
        "PREROUTING",
        "-s 10.244.0.0/16 -p udp -m udp --dport 53 -j DROP",
    ),
];
const AAAA_DROP: &[(&str, &str, &str)] = &[
    ("mangle", "DNS-AAAA", "--hex-string \"|00001c0001|\""),
    ("filter", "FORWARD", "u32 drop of dns"),
];

fn fixture(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/node")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn load(name: &str) -> IptablesSave {
    parse_iptables_save(&fixture(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
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

fn find<'a>(
    rules: &'a [DnsTouchingRule],
    table: &str,
    chain: &str,
    fragment: &str,
) -> Option<&'a DnsTouchingRule> {
    rules.iter().find(|r| {
        r.table == table
            && r.chain == chain
            && (r.text.contains(fragment)
                || r.comment.as_deref().is_some_and(|c| c.contains(fragment)))
    })
}

#[test]
fn every_dump_gives_the_expected_kube_proxy_view_and_blockers() {
    for case in CASES {
        let save = load(case.file);
        let hooks = kube_proxy_hooks(&save);
        assert_eq!(
            hooks.translates_pod_traffic(),
            case.hooked,
            "{}: hooked",
            case.file
        );
        assert_eq!(
            hooks.hooked_from_output, case.hooked,
            "{}: output hook",
            case.file
        );
        for protocol in [Protocol::Udp, Protocol::Tcp] {
            let view = service_view(&save, &dns(protocol));
            match case.dns {
                Dns::Endpoints(want) => {
                    let got: Vec<String> = view
                        .endpoints
                        .iter()
                        .map(|e| format!("{}:{}", e.address, e.port.unwrap_or(0)))
                        .collect();
                    assert_eq!(got, want, "{} {protocol}", case.file);
                    let total: f64 = view.endpoints.iter().filter_map(|e| e.probability).sum();
                    assert!(
                        (total - 1.0).abs() < 1e-6,
                        "{}: shares sum to {total}",
                        case.file
                    );
                    assert!(view.no_endpoints_rules.is_empty(), "{}", case.file);
                    let name = if protocol == Protocol::Udp {
                        "kube-system/kube-dns:dns"
                    } else {
                        "kube-system/kube-dns:dns-tcp"
                    };
                    assert_eq!(
                        view.service_port_name.as_deref(),
                        Some(name),
                        "{}",
                        case.file
                    );
                }
                Dns::NoEndpoints => {
                    assert!(
                        view.has_no_endpoints(),
                        "{} {protocol}: {view:?}",
                        case.file
                    );
                    assert!(view.service_chain.is_none(), "{}", case.file);
                    let rule = &view.no_endpoints_rules[0];
                    assert!(
                        rule.comment
                            .as_deref()
                            .unwrap_or("")
                            .ends_with("has no endpoints"),
                        "{}",
                        case.file
                    );
                    assert!(
                        rule.text.contains("--reject-with icmp-port-unreachable"),
                        "{}",
                        case.file
                    );
                }
                Dns::Untranslated => {
                    assert!(
                        !view.is_translated() && view.no_endpoints_rules.is_empty(),
                        "{}",
                        case.file
                    );
                    assert!(view.service_rule.is_none(), "{}", case.file);
                }
            }
        }
        let policies = chain_policies(&save);
        let forward = policies
            .iter()
            .find(|p| p.table == "filter" && p.chain == "FORWARD")
            .unwrap_or_else(|| panic!("{}: no FORWARD policy", case.file));
        assert_eq!(forward.policy, case.forward_policy, "{}", case.file);

        let rules = dns_touching_rules(&save, &scope());
        for (table, chain, fragment) in case.blockers {
            let r = find(&rules, table, chain, fragment).unwrap_or_else(|| {
                panic!(
                    "{}: blocker {table}/{chain} `{fragment}` not found in {rules:#?}",
                    case.file
                )
            });
            assert!(!r.reached_from.is_empty(), "{}", case.file);
        }
        // kube-proxy's "block incoming localnet connections" DROP only concerns 127.0.0.0/8.
        assert!(
            rules.iter().all(|r| r.chain != "KUBE-FIREWALL"),
            "{}: KUBE-FIREWALL wrongly counted as DNS-touching",
            case.file
        );
    }
}

#[test]
fn counters_show_the_datagrams_the_capture_script_sent() {
    // capture-node-fixtures sends 6 UDP datagrams to 10.96.0.10:53 in the healthy namespace
    // and 3 in the no-endpoints one.
    for file in ["iptables-legacy-healthy.txt", "iptables-nft-healthy.txt"] {
        let view = service_view(&load(file), &dns(Protocol::Udp));
        assert_eq!(
            view.service_rule.as_ref().and_then(|r| r.packets),
            Some(6),
            "{file}"
        );
    }
    for file in [
        "iptables-legacy-no-endpoints.txt",
        "iptables-nft-no-endpoints.txt",
    ] {
        let view = service_view(&load(file), &dns(Protocol::Udp));
        assert_eq!(view.no_endpoints_rules[0].packets, Some(3), "{file}");
    }
}

#[test]
fn node_firewall_rules_carry_reasons_and_verdicts() {
    let rules = dns_touching_rules(&load("iptables-legacy-node-firewall.txt"), &scope());
    let udp = find(&rules, "filter", "NODE-FIREWALL", "-p udp").unwrap();
    assert_eq!(udp.verdict, BlockVerdict::Drop);
    assert_eq!(
        udp.reasons,
        vec![TouchReason::DnsPort, TouchReason::PodCidr]
    );
    assert_eq!(udp.reached_from, vec!["FORWARD"]);
    let reject = find(&rules, "filter", "INPUT", "multiport").unwrap();
    assert_eq!(
        reject.verdict,
        BlockVerdict::Reject {
            with: Some("tcp-reset".into())
        }
    );
    // The ctstate INVALID drop in KUBE-FORWARD applies to DNS too, with its condition listed.
    let invalid = find(&rules, "filter", "KUBE-FORWARD", "INVALID").unwrap();
    assert_eq!(invalid.reasons, vec![TouchReason::Unconditional]);
    assert_eq!(invalid.conditions, vec!["-m conntrack --ctstate INVALID"]);
    // The "has no endpoints" REJECT is a DNS-port rule too.
    let noep = dns_touching_rules(&load("iptables-nft-no-endpoints.txt"), &scope());
    let r = find(
        &noep,
        "filter",
        "KUBE-SERVICES",
        "kube-system/kube-dns:dns has no endpoints",
    )
    .unwrap();
    assert!(
        r.reasons.contains(&TouchReason::DnsAddress) && r.reasons.contains(&TouchReason::DnsPort)
    );
    assert_eq!(r.packets, Some(3));
}

#[test]
fn aaaa_payload_filters_are_listed() {
    let rules = dns_touching_rules(&load("iptables-nft-aaaa-drop.txt"), &scope());
    let string = find(&rules, "mangle", "DNS-AAAA", "hex-string").unwrap();
    assert!(string.reasons.contains(&TouchReason::PayloadMatch));
    assert_eq!(string.reached_from, vec!["PREROUTING"]);
    assert!(string
        .conditions
        .iter()
        .any(|c| c.contains("--probability 0.50000000000")));
    let u32 = find(&rules, "filter", "FORWARD", "u32 drop of dns").unwrap();
    assert_eq!(
        u32.reasons,
        vec![TouchReason::DnsPort, TouchReason::PayloadMatch]
    );
}

#[test]
fn session_affinity_and_single_endpoint_services() {
    let save = load("iptables-legacy-healthy.txt");
    let sticky = service_view(
        &save,
        &ServicePort::new("10.96.0.50".parse().unwrap(), 80, Protocol::Tcp),
    );
    assert!(sticky.session_affinity);
    assert_eq!(sticky.endpoints.len(), 1);
    assert_eq!(
        sticky.endpoints[0].address,
        "10.244.0.7".parse::<IpAddr>().unwrap()
    );
    assert_eq!(sticky.endpoints[0].probability, Some(1.0));
    // A port the service does not have is not translated.
    let other = service_view(
        &save,
        &ServicePort::new("10.96.0.10".parse().unwrap(), 54, Protocol::Udp),
    );
    assert!(!other.is_translated() && other.service_rule.is_none());
    let hooks = kube_proxy_hooks(&save);
    assert_eq!((hooks.service_chains, hooks.endpoint_chains), (5, 8));
}

#[test]
fn empty_ip6tables_dumps_are_empty_rulesets() {
    for file in ["ip6tables-legacy-empty.txt", "ip6tables-nft-empty.txt"] {
        let save = load(file);
        assert!(save.tables.is_empty(), "{file}");
        assert!(!kube_proxy_hooks(&save).nat_services_chain);
    }
}
