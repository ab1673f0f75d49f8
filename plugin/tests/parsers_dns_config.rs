//! resolv.conf and Corefile fixtures (tests/fixtures/dns_config, see its README.md).

use std::path::PathBuf;

use dns_doctor::dns_config::corefile::{parse_corefile, Corefile, ForwardTarget};
use dns_doctor::dns_config::resolv_conf::{
    glibc_search_candidates, musl_search_candidates, parse_resolv_conf,
};

fn fixture(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/dns_config")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn corefile(name: &str) -> Corefile {
    parse_corefile(&fixture(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// (file, nameservers, search, ndots, timeout, attempts, glibc candidates for `example.com`).
type ResolvCase = (
    &'static str,
    &'static [&'static str],
    &'static [&'static str],
    u32,
    u32,
    u32,
    usize,
);

#[rustfmt::skip]
const RESOLV_CASES: &[ResolvCase] = &[
    ("resolv-clusterfirst.conf", &["10.96.0.10"], &["default.svc.cluster.local", "svc.cluster.local", "cluster.local"], 5, 5, 2, 4),
    ("resolv-clusterfirst-dnsconfig.conf", &["10.96.0.10"], &["prod.svc.cluster.local", "svc.cluster.local", "cluster.local", "corp.example"], 2, 2, 3, 5),
    ("resolv-nodelocaldns.conf", &["169.254.20.10"], &["kube-system.svc.cluster.local", "svc.cluster.local", "cluster.local"], 5, 5, 2, 4),
    ("resolv-host.conf", &["192.0.2.53", "2001:db8::53", "fe80::1", "198.51.100.53"], &["lab.example.internal", "example.internal"], 1, 1, 2, 3),
    ("resolv-systemd-resolved-stub.conf", &["127.0.0.53"], &["."], 1, 5, 2, 1),
];

#[test]
fn resolv_conf_variants() {
    for (file, ns, search, ndots, timeout, attempts, candidates) in RESOLV_CASES {
        let rc = parse_resolv_conf(&fixture(file));
        let got: Vec<String> = rc
            .nameservers
            .iter()
            .map(|n| n.address.to_string())
            .collect();
        assert_eq!(got, *ns, "{file}");
        assert_eq!(rc.search, *search, "{file}");
        assert_eq!(
            (rc.ndots, rc.timeout_secs, rc.attempts),
            (*ndots, *timeout, *attempts),
            "{file}"
        );
        assert_eq!(rc.candidates("example.com").len(), *candidates, "{file}");
        assert!(
            rc.ignored_lines.is_empty(),
            "{file}: {:?}",
            rc.ignored_lines
        );
    }
}

#[test]
fn clusterfirst_search_expansion_costs_four_queries_for_an_external_name() {
    let rc = parse_resolv_conf(&fixture("resolv-clusterfirst.conf"));
    assert_eq!(
        rc.candidates("example.com"),
        [
            "example.com.default.svc.cluster.local.",
            "example.com.svc.cluster.local.",
            "example.com.cluster.local.",
            "example.com."
        ]
    );
    assert_eq!(
        rc.candidates("kubernetes.default")[0],
        "kubernetes.default.default.svc.cluster.local."
    );
    assert_eq!(
        rc.candidates("kubernetes.default.svc.cluster.local."),
        ["kubernetes.default.svc.cluster.local."]
    );
    // Five dots reach ndots:5: tried as is first, then (glibc only) the search list.
    let long = "a.b.c.d.e.f";
    assert_eq!(
        glibc_search_candidates(long, rc.ndots, &rc.search, false).len(),
        4
    );
    assert_eq!(
        musl_search_candidates(long, rc.ndots, &rc.search),
        ["a.b.c.d.e.f."]
    );
}

#[test]
fn resolver_options_from_dns_config_and_host_files() {
    let rc = parse_resolv_conf(&fixture("resolv-clusterfirst-dnsconfig.conf"));
    assert!(rc.single_request_reopen && rc.use_vc && !rc.single_request);
    let host = parse_resolv_conf(&fixture("resolv-host.conf"));
    assert!(host.edns0 && host.trust_ad && host.rotate);
    assert_eq!(host.effective_nameservers().len(), 3);
    assert_eq!(host.nameservers[2].zone.as_deref(), Some("eth0"));
}

#[test]
fn kubeadm_corefile() {
    let cf = corefile("Corefile-kubeadm");
    assert_eq!(cf.server_blocks.len(), 1);
    let b = &cf.server_blocks[0];
    assert!(b.serves_root());
    assert_eq!(b.keys[0].port, Some(53));
    let f = b.forward().unwrap();
    assert_eq!(f.from, ".");
    assert_eq!(
        f.to,
        vec![ForwardTarget::ResolvConf {
            path: "/etc/resolv.conf".into()
        }]
    );
    assert_eq!(f.options[0].args, vec!["1000"]);
    assert!(b.has_plugin("loop") && b.has_plugin("ready") && b.has_plugin("errors"));
    assert_eq!(b.plugin("health").unwrap().block[0].args, vec!["5s"]);
    let cache = b.cache().unwrap();
    assert_eq!(cache.ttl_secs, Some(30));
    assert_eq!(cache.options.len(), 2);
    assert_eq!(
        b.kubernetes_zones().unwrap(),
        vec!["cluster.local.", "in-addr.arpa.", "ip6.arpa."]
    );
    assert_eq!(b.plugin("prometheus").unwrap().args, vec![":9153"]);
}

#[test]
fn forwarding_loop_corefile() {
    let cf = corefile("Corefile-forward-loop");
    let b = &cf.server_blocks[0];
    assert!(b.has_plugin("loop") && b.has_plugin("log"));
    assert_eq!(
        b.forward().unwrap().to,
        vec![ForwardTarget::Address {
            ip: "127.0.0.1".parse().unwrap(),
            port: 53
        }]
    );
}

#[test]
fn nodelocaldns_and_custom_corefiles() {
    let cf = corefile("Corefile-nodelocaldns");
    assert_eq!(cf.server_blocks.len(), 3);
    let zones: Vec<&str> = cf.server_blocks[1]
        .keys
        .iter()
        .map(|k| k.zone.as_str())
        .collect();
    assert_eq!(zones, vec!["in-addr.arpa.", "ip6.arpa."]);
    assert_eq!(
        cf.server_blocks[0].plugin("bind").unwrap().args,
        vec!["169.254.20.10", "10.96.0.10"]
    );
    assert_eq!(
        cf.server_blocks[2].forward().unwrap().to,
        vec![ForwardTarget::Other {
            raw: "__PILLAR__UPSTREAM__SERVERS__".into()
        }]
    );
    assert_eq!(cf.server_blocks[0].cache().unwrap().ttl_secs, Some(3600));

    let cf = corefile("Corefile-custom");
    assert_eq!(cf.snippets, vec!["common"]);
    let stub = &cf.server_blocks[0];
    assert_eq!(stub.keys[0].zone, "example.test.");
    assert_eq!(
        stub.forward().unwrap().to,
        vec![
            ForwardTarget::Address {
                ip: "10.20.0.5".parse().unwrap(),
                port: 5353
            },
            ForwardTarget::Address {
                ip: "2001:db8::5".parse().unwrap(),
                port: 53
            },
        ]
    );
    let root = &cf.server_blocks[1];
    assert_eq!(
        root.forward().unwrap().to,
        vec![
            ForwardTarget::Tls {
                ip: "192.0.2.10".parse().unwrap(),
                port: 853
            },
            ForwardTarget::Tls {
                ip: "192.0.2.11".parse().unwrap(),
                port: 8853
            },
        ]
    );
    assert_eq!(
        root.plugin("log").unwrap().args,
        vec![".", "{remote} {type} {name} {rcode} {duration}"]
    );
    assert_eq!(root.plugin("hosts").unwrap().block.len(), 2);
    assert_eq!(
        root.plugin("rewrite").unwrap().args[2],
        "(.*)\\.old\\.example"
    );
    assert_eq!(root.cache().unwrap().ttl_secs, None);
    assert_eq!(root.plugin("import").unwrap().args, vec!["common"]);
    assert_eq!(root.kubernetes_zones().unwrap(), vec!["cluster.local."]);
}
