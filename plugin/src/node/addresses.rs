//! The addresses a node's network namespace owns, from `ip addr` (with or without `-d`).
//! A hostNetwork pod shares them: its own DNS traffic is the traffic from and to these.

use std::net::IpAddr;

/// Every `inet`/`inet6` address in `ip addr` output, in order, without duplicates. Lines
/// that are not address lines, or whose address does not parse, are skipped.
pub fn parse_ip_addr(text: &str) -> Vec<IpAddr> {
    let mut out: Vec<IpAddr> = Vec::new();
    for line in text.lines() {
        let mut words = line.split_whitespace();
        if !matches!(words.next(), Some("inet" | "inet6")) {
            continue;
        }
        let Some(cidr) = words.next() else { continue };
        let addr = cidr.split_once('/').map_or(cidr, |(a, _)| a);
        if let Ok(ip) = addr.parse::<IpAddr>() {
            if !out.contains(&ip) {
                out.push(ip);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_of_every_interface_from_ip_d_addr() {
        // `ip -d addr` of a node with a pod bridge, as the node snapshot records it.
        let text = "\
1: lo: <LOOPBACK,UP,LOWER_UP> mtu 65536 qdisc noqueue state UNKNOWN group default qlen 1000
    link/loopback 00:00:00:00:00:00 brd 00:00:00:00:00:00 promiscuity 0  allmulti 0 minmtu 0 maxmtu 0 numtxqueues 1
    inet 127.0.0.1/8 scope host lo
       valid_lft forever preferred_lft forever
    inet6 ::1/128 scope host
       valid_lft forever preferred_lft forever
2: eth0@if9: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 qdisc noqueue state UP group default qlen 1000
    link/ether 02:fc:00:00:00:01 brd ff:ff:ff:ff:ff:ff link-netnsid 0 promiscuity 0
    veth numtxqueues 1 numrxqueues 1 gso_max_size 65536 gso_max_segs 65535
    inet 10.252.0.1/24 brd 10.252.0.255 scope global eth0
       valid_lft forever preferred_lft forever
3: cni0: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 qdisc noqueue state UP group default qlen 1000
    link/ether 6a:1e:53:05:9c:a2 brd ff:ff:ff:ff:ff:ff promiscuity 0
    bridge forward_delay 1500 hello_time 200 max_age 2000 ageing_time 30000 stp_state 0 priority 32768
    inet 10.244.0.1/24 brd 10.244.0.255 scope global cni0
       valid_lft forever preferred_lft forever
    inet 10.244.0.1/24 scope global secondary cni0
    inet6 fe80::681e:53ff:fe05:9ca2/64 scope link
       valid_lft forever preferred_lft forever
4: kube-ipvs0: <BROADCAST,NOARP> mtu 1500 qdisc noop state DOWN group default
    inet 10.96.0.10/32 scope global kube-ipvs0
    inet bogus/32 scope global kube-ipvs0
";
        let ips: Vec<String> = parse_ip_addr(text)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            ips,
            [
                "127.0.0.1",
                "::1",
                "10.252.0.1",
                "10.244.0.1",
                "fe80::681e:53ff:fe05:9ca2",
                "10.96.0.10"
            ]
        );
    }

    #[test]
    fn no_addresses_in_other_text() {
        assert!(parse_ip_addr("").is_empty());
        assert!(parse_ip_addr("inet\ninet6 \nlink/ether 00:11").is_empty());
    }
}
