//! Arbitrary text as each node snapshot the plugin parses: iptables-save, nft ruleset,
//! ipvsadm -Ln, conntrack -S (two snapshots split at the first NUL) and sysctls, with the
//! kube-proxy and firewall views on top. None may panic or hang.
#![no_main]

use dns_doctor_fuzz::node::{
    conntrack,
    firewall::DnsScope,
    iptables, iptables_firewall, ipvs, kube_proxy_iptables, kube_proxy_nftables, nftables,
    nftables_firewall,
    service::{Protocol, ServicePort},
    sysctl,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let dns = ServicePort::new("10.96.0.10".parse().unwrap(), 53, Protocol::Udp);
    let scope = DnsScope::new(
        vec!["10.244.0.0/16".parse().unwrap()],
        vec!["10.96.0.0/12".parse().unwrap()],
        vec!["10.96.0.10".parse().unwrap()],
    );
    if let Ok(save) = iptables::parse_iptables_save(&text) {
        let _ = kube_proxy_iptables::service_view(&save, &dns);
        let _ = kube_proxy_iptables::kube_proxy_hooks(&save);
        let _ = iptables_firewall::chain_policies(&save);
        let _ = iptables_firewall::dns_touching_rules(&save, &scope);
    }
    if let Ok(rs) = nftables::parse_nft_ruleset(&text) {
        let _ = kube_proxy_nftables::nft_service_view(&rs, &dns);
        let _ = kube_proxy_nftables::nft_kube_proxy_state(&rs, "ip");
        let _ = nftables_firewall::nft_chain_policies(&rs);
        let _ = nftables_firewall::nft_dns_touching_rules(&rs, &scope);
    }
    if let Ok(table) = ipvs::parse_ipvsadm(&text) {
        if let Some(svc) = table.service(&dns) {
            let _ = svc.endpoints();
        }
    }
    let (before, after) = text.split_once('\0').unwrap_or((&text, ""));
    if let (Ok(b), Ok(a)) = (
        conntrack::parse_conntrack_stats(before),
        conntrack::parse_conntrack_stats(after),
    ) {
        let _ = conntrack::conntrack_delta(&b, &a);
    }
    let mut lines = text.lines();
    if let (Some(count), Some(max)) = (lines.next(), lines.next()) {
        let _ = conntrack::parse_conntrack_fill(count, max);
    }
    let _ = sysctl::node_sysctls(&sysctl::parse_sysctl_lines(&text));
    let _ = sysctl::parse_sysctl_value(&text);
});
