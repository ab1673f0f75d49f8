//! conntrack -S, nf_conntrack_count/max and sysctl snapshots taken from real tools in a
//! network namespace by scripts/capture-node-fixtures, and ipvsadm -Ln tables (hand-written:
//! this kernel has no IPVS; see tests/fixtures/node/README.md).

use std::path::PathBuf;

use dns_doctor::node::conntrack::{conntrack_delta, parse_conntrack_fill, parse_conntrack_stats};
use dns_doctor::node::ipvs::parse_ipvsadm;
use dns_doctor::node::service::{Protocol, ServicePort};
use dns_doctor::node::sysctl::{node_sysctls, parse_sysctl_lines, parse_sysctl_value};

fn fixture(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/node")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn conntrack_delta_over_the_capture_window() {
    let before = parse_conntrack_stats(&fixture("conntrack-S-before.txt")).unwrap();
    let after = parse_conntrack_stats(&fixture("conntrack-S-after.txt")).unwrap();
    assert_eq!(
        before.cpus.len(),
        fixture("conntrack-S-before.txt").lines().count()
    );
    // The kernel of the capture reports the newer field set.
    assert!(after.cpus[0].counters.contains_key("clash_resolve"));
    let delta = conntrack_delta(&before, &after);
    assert!(!delta.reset);
    // Between the snapshots the script inserted 3 entries with `conntrack -I` and sent 4 TCP
    // segments with SYN+RST set, which conntrack counts as invalid (on each hook they cross).
    assert_eq!(delta.get("insert"), 3);
    assert!(
        delta.get("invalid") >= 4,
        "invalid delta {}",
        delta.get("invalid")
    );
    assert_eq!((delta.insert_failed(), delta.drop()), (0, 0));
}

#[test]
fn conntrack_fill_ratio() {
    let fill = parse_conntrack_fill(
        &fixture("nf_conntrack_count.txt"),
        &fixture("nf_conntrack_max.txt"),
    )
    .unwrap();
    assert!(fill.count > 0 && fill.max >= fill.count);
    let ratio = fill.ratio().unwrap();
    assert!((ratio - fill.count as f64 / fill.max as f64).abs() < 1e-12);
    assert!(ratio < 0.01);
}

#[test]
fn sysctl_snapshot_in_both_shapes() {
    let n = node_sysctls(&parse_sysctl_lines(&fixture("sysctl.txt")));
    // The script sets ip_forward=1, all.rp_filter=1 and veth0's rp_filter=2.
    assert_eq!(n.ip_forward, Some(1));
    assert_eq!(n.rp_filter_all, Some(1));
    assert_eq!(n.rp_filter_default, Some(0));
    assert_eq!(n.effective_rp_filter("veth0"), Some(2));
    let g = node_sysctls(&parse_sysctl_lines(&fixture("sysctl-grep.txt")));
    assert_eq!((g.ip_forward, g.rp_filter_all), (Some(1), Some(1)));
    assert_eq!(g.rp_filter_interfaces.get("veth0"), Some(&2));
    assert_eq!(parse_sysctl_value(&fixture("ip_forward.txt")), Ok(1));
}

#[test]
fn ipvs_tables() {
    let t = parse_ipvsadm(&fixture("ipvsadm-Ln-healthy.txt")).unwrap();
    assert_eq!(t.version.as_deref(), Some("1.2.1"));
    let udp = t
        .service(&ServicePort::new(
            "10.96.0.10".parse().unwrap(),
            53,
            Protocol::Udp,
        ))
        .unwrap();
    assert_eq!(udp.real_servers.len(), 2);
    assert_eq!(udp.real_servers[0].inactive_conn, 14);
    // The weight-0 (terminating) real server takes no new connections.
    let eps = udp.endpoints();
    assert_eq!(eps.len(), 1);
    assert_eq!(eps[0].address.to_string(), "10.244.0.2");
    let sticky = t
        .service(&ServicePort::new(
            "10.96.0.50".parse().unwrap(),
            80,
            Protocol::Tcp,
        ))
        .unwrap();
    assert_eq!(sticky.persistent, Some(10800));
    assert!(sticky.flags.is_empty());

    let empty = parse_ipvsadm(&fixture("ipvsadm-Ln-no-endpoints.txt")).unwrap();
    let tcp = empty
        .service(&ServicePort::new(
            "10.96.0.10".parse().unwrap(),
            53,
            Protocol::Tcp,
        ))
        .unwrap();
    assert!(tcp.endpoints().is_empty());
    assert!(empty
        .service(&ServicePort::new(
            "fd00:10:96::a".parse().unwrap(),
            53,
            Protocol::Tcp
        ))
        .is_some());
    assert_eq!(
        empty
            .services
            .iter()
            .filter(|s| s.fwmark == Some(100))
            .count(),
        1
    );
}
