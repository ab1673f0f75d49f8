//! Every parser on truncated and corrupted versions of every fixture: it returns (a value or
//! an error) and never panics. The fuzz targets explore further; this keeps the property in
//! the ordinary test run, bounded to a few thousand inputs.

use std::path::PathBuf;

use dns_doctor::dns_config::coredns_log::notable_lines;
use dns_doctor::dns_config::corefile::parse_corefile;
use dns_doctor::dns_config::resolv_conf::parse_resolv_conf;
use dns_doctor::node::cgroup::place;
use dns_doctor::node::cgroup_cpu::{parse_cfs, parse_cpu_max, parse_cpu_stat};
use dns_doctor::node::cgroup_memory::parse_limit;
use dns_doctor::node::conntrack::parse_conntrack_stats;
use dns_doctor::node::firewall::DnsScope;
use dns_doctor::node::iptables::parse_iptables_save;
use dns_doctor::node::iptables_firewall::dns_touching_rules;
use dns_doctor::node::ipvs::parse_ipvsadm;
use dns_doctor::node::kube_proxy_iptables::service_view;
use dns_doctor::node::kube_proxy_nftables::nft_service_view;
use dns_doctor::node::nftables::parse_nft_ruleset;
use dns_doctor::node::nftables_firewall::nft_dns_touching_rules;
use dns_doctor::node::service::{Protocol, ServicePort};
use dns_doctor::node::sysctl::{node_sysctls, parse_sysctl_lines};

fn all_parsers(text: &str) {
    let scope = DnsScope::new(
        vec!["10.244.0.0/16".parse().unwrap()],
        vec!["10.96.0.0/16".parse().unwrap()],
        vec!["10.96.0.10".parse().unwrap()],
    );
    let svc = ServicePort::new("10.96.0.10".parse().unwrap(), 53, Protocol::Udp);
    if let Ok(save) = parse_iptables_save(text) {
        service_view(&save, &svc);
        dns_touching_rules(&save, &scope);
    }
    if let Ok(rs) = parse_nft_ruleset(text) {
        nft_service_view(&rs, &svc);
        nft_dns_touching_rules(&rs, &scope);
    }
    let _ = parse_ipvsadm(text);
    let _ = parse_conntrack_stats(text);
    let _ = parse_cpu_stat(text);
    let _ = parse_cpu_max(text);
    let _ = parse_cfs(text, text);
    let _ = parse_limit(text);
    let _ = place(text, "fa5d55bc-1d5f-4689-ae8b-861bd2e3bd31");
    node_sysctls(&parse_sysctl_lines(text));
    parse_resolv_conf(text).candidates("a.b");
    let _ = parse_corefile(text);
    notable_lines(text);
}

#[test]
fn truncated_and_corrupted_fixtures_never_panic() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut inputs = 0usize;
    for dir in ["node", "dns_config", "cgroup"] {
        let mut entries: Vec<_> = std::fs::read_dir(root.join(dir))
            .unwrap()
            .flatten()
            .collect();
        entries.sort_by_key(|e| e.path());
        for entry in entries {
            let Ok(text) = std::fs::read_to_string(entry.path()) else {
                continue;
            };
            let bytes = text.as_bytes();
            let stride = (bytes.len() / 12).max(1);
            for cut in (0..bytes.len()).step_by(stride) {
                let head = String::from_utf8_lossy(&bytes[..cut]);
                all_parsers(&head);
                for b in [b'{', b'}', b'"', b'\n'] {
                    let mut m = bytes.to_vec();
                    m[cut] = b;
                    all_parsers(&String::from_utf8_lossy(&m));
                    inputs += 1;
                }
            }
        }
    }
    assert!(inputs > 500, "only {inputs} inputs");
}
