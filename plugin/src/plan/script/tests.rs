//! The script, table-tested: for a plan and a topology, what runs where with which
//! arguments.

use super::*;
use crate::cli::{OutputFormat, Verbosity};
use crate::plan::{DnsPodPlan, Strategy};
use crate::target::{TargetKind, TargetRef};
use crate::topology::{ClusterDns, PodInfo};

fn config() -> DoctorConfig {
    DoctorConfig {
        target: TargetRef {
            kind: TargetKind::Pod,
            name: "web".into(),
        },
        container: None,
        kube: Default::default(),
        output: OutputFormat::Json,
        names: vec!["kubernetes.default".into(), "example.com".into()],
        capture_seconds: 10,
        output_dir: None,
        image: "img:1".into(),
        capture: true,
        node_checks: true,
        timeout: Duration::from_secs(90),
        parallel_rounds: 20,
        node_namespace: "kube-system".into(),
        verbosity: Verbosity::Normal,
    }
}

fn topology() -> Topology {
    Topology {
        target: PodInfo {
            namespace: "app".into(),
            name: "web".into(),
            uid: "u-1".into(),
            node: Some("n1".into()),
            phase: "Running".into(),
            containers: vec!["app".into(), "sidecar".into()],
            ..PodInfo::default()
        },
        cluster_dns: ClusterDns {
            ips: vec!["10.96.0.10".parse().unwrap()],
            domain: "cluster.local".into(),
            ..ClusterDns::default()
        },
        ..Topology::default()
    }
}

fn dns_pod(name: &str, node: Option<&str>, capture: bool) -> DnsPodPlan {
    DnsPodPlan {
        namespace: "kube-system".into(),
        name: name.into(),
        container: "coredns".into(),
        node: node.map(str::to_string),
        privilege: if capture {
            Privilege::Capture
        } else {
            Privilege::ProbeOnly
        },
        capture,
    }
}

fn plan(strategy: Strategy, capture: CaptureVia, dns_pods: Vec<DnsPodPlan>) -> Plan {
    Plan {
        strategy,
        reasons: Vec::new(),
        target_privilege: match strategy {
            Strategy::EphemeralCapture => Some(Privilege::Capture),
            Strategy::NodeCapture | Strategy::ProbeOnly => Some(Privilege::ProbeOnly),
            Strategy::ApiOnly => None,
        },
        target_capture: capture,
        dns_pods,
        nodes: vec!["n1".into(), "n2".into()],
        node_namespace: "kube-system".into(),
        probe_names: vec!["kubernetes.default".into(), "example.com".into()],
        probe_endpoints: vec!["10.244.0.5:53".parse().unwrap()],
    }
}

fn compose_with(plan: &Plan, config: &DoctorConfig, upstreams: &[SocketAddr]) -> RunScript {
    compose(&ScriptInput {
        plan,
        topology: &topology(),
        config,
        run_id: "r1",
        upstreams,
    })
}

fn places(s: &RunScript) -> Vec<(String, CapturePlace)> {
    s.captures
        .iter()
        .map(|c| (c.name.clone(), c.place.clone()))
        .collect()
}

fn has_args(argv: &[String], args: &[&str]) -> bool {
    argv.windows(args.len())
        .any(|w| w.iter().map(String::as_str).eq(args.iter().copied()))
}

/// (case, strategy, target capture, --no-capture, expected capture points)
type Case = (
    &'static str,
    Strategy,
    CaptureVia,
    bool,
    Vec<(String, CapturePlace)>,
);

#[test]
fn capture_points_follow_the_strategy() {
    let two_dns = || {
        vec![
            dns_pod("coredns-a", Some("n2"), true),
            dns_pod("coredns-b", Some("n1"), false),
        ]
    };
    let in_pod = || CapturePlace::Container(0);
    let via_node = || CapturePlace::PodNetnsFromNode {
        node: "n1".into(),
        pod_uid: "u-1".into(),
        find_argv: probe_argv("r1", "find-pod", ["--uid".into(), "u-1".into()]),
    };
    let nodes = || {
        vec![
            ("node-n1".to_string(), CapturePlace::Node("n1".into())),
            ("node-n2".to_string(), CapturePlace::Node("n2".into())),
        ]
    };
    let cases: Vec<Case> = vec![
        (
            "NET_RAW admitted: the pod, the capturing DNS pod, every node",
            Strategy::EphemeralCapture,
            CaptureVia::Ephemeral,
            false,
            [
                vec![
                    ("pod-web".to_string(), in_pod()),
                    ("dns-coredns-a".to_string(), CapturePlace::Container(1)),
                ],
                nodes(),
            ]
            .concat(),
        ),
        (
            "NET_RAW refused: the pod's packets from its node",
            Strategy::NodeCapture,
            CaptureVia::NodeNsenter,
            false,
            [
                vec![
                    ("pod-web".to_string(), via_node()),
                    ("dns-coredns-a".to_string(), CapturePlace::Container(1)),
                ],
                nodes(),
            ]
            .concat(),
        ),
        (
            "no way to capture in the pod: DNS pods and nodes still captured",
            Strategy::ProbeOnly,
            CaptureVia::None,
            false,
            [
                vec![("dns-coredns-a".to_string(), CapturePlace::Container(1))],
                nodes(),
            ]
            .concat(),
        ),
        (
            "--no-capture: nothing",
            Strategy::EphemeralCapture,
            CaptureVia::None,
            true,
            Vec::new(),
        ),
    ];
    for (case, strategy, via, no_capture, want) in cases {
        let mut cfg = config();
        cfg.capture = !no_capture;
        let s = compose_with(&plan(strategy, via, two_dns()), &cfg, &[]);
        assert_eq!(places(&s), want, "{case}");
        // The target's own rules are read first only when its capture runs in its container.
        assert_eq!(
            s.first_hop.as_ref().map(|f| f.container),
            (via == CaptureVia::Ephemeral && !no_capture).then_some(0),
            "{case}"
        );
        for c in &s.captures {
            assert!(
                has_args(&c.argv, &["--seconds", "10"])
                    && has_args(&c.argv, &["--interface", "any"]),
                "{case}: {:?}",
                c.argv
            );
            assert_eq!(
                &c.argv[..4],
                &[PROBE_BIN, "capture", "--run", "r1"],
                "{case}"
            );
        }
    }
}

#[test]
fn containers_put_the_target_first_and_only_it_probes_the_pod() {
    let dns = vec![dns_pod("coredns-a", Some("n2"), true)];
    let s = compose_with(
        &plan(
            Strategy::EphemeralCapture,
            CaptureVia::Ephemeral,
            dns.clone(),
        ),
        &config(),
        &[],
    );
    let roles: Vec<(ContainerRole, &str, &str)> = s
        .containers
        .iter()
        .map(|c| (c.role, c.pod.as_str(), c.target_container.as_str()))
        .collect();
    assert_eq!(
        roles,
        vec![
            (ContainerRole::Target, "web", "app"),
            (ContainerRole::DnsPod, "coredns-a", "coredns")
        ]
    );
    assert_eq!(s.container_name, "dns-doctor-r1");
    assert_eq!(s.lifetime, Duration::from_secs(120));
    assert_eq!(s.pod_probe.as_ref().map(|p| p.container), Some(0));
    assert_eq!(
        s.node_pods,
        vec![
            NodePodStep {
                job: "dns-doctor-r1-0".into(),
                node: "n1".into()
            },
            NodePodStep {
                job: "dns-doctor-r1-1".into(),
                node: "n2".into()
            },
        ]
    );

    // No container in the target pod: no pod probe, and the DNS pod is container 0.
    let s = compose_with(
        &plan(Strategy::ApiOnly, CaptureVia::None, dns),
        &config(),
        &[],
    );
    assert!(s.pod_probe.is_none());
    assert_eq!(s.containers.len(), 1);
    assert_eq!(s.upstream_probes[0].candidates, vec![0]);
}

#[test]
fn the_pod_probe_asks_every_name_endpoint_and_the_cluster_dns_within_its_deadline() {
    let s = compose_with(
        &plan(
            Strategy::EphemeralCapture,
            CaptureVia::Ephemeral,
            Vec::new(),
        ),
        &config(),
        &[],
    );
    let p = s.pod_probe.expect("pod probe");
    assert_eq!(&p.argv[..4], &[PROBE_BIN, "pod", "--run", "r1"]);
    for args in [
        &["--name", "kubernetes.default"][..],
        &["--name", "example.com"],
        &["--endpoint", "10.244.0.5:53"],
        &["--server", "10.96.0.10"],
        &["--parallel-rounds", "20"],
        &["--timeout-ms", "1000"],
        &["--parallel-wait-ms", "500"],
        &["--deadline-secs", "85"],
    ] {
        assert!(
            has_args(&p.argv, args),
            "{args:?} missing from {:?}",
            p.argv
        );
    }
    assert_eq!(p.timeout, Duration::from_secs(90));
}

#[test]
fn node_windows_span_the_pod_probe_within_bounds() {
    // (case, strategy, --timeout, expected probe timeout, window, window follows the pod probe)
    let cases = [
        (
            "short timeout",
            Strategy::EphemeralCapture,
            30,
            30,
            20,
            true,
        ),
        (
            "usual timeout",
            Strategy::EphemeralCapture,
            90,
            90,
            45,
            true,
        ),
        (
            "long timeout capped",
            Strategy::EphemeralCapture,
            600,
            120,
            45,
            true,
        ),
        (
            "tiny timeout keeps the fixed window",
            Strategy::EphemeralCapture,
            11,
            11,
            2,
            true,
        ),
        (
            "no pod probe: fixed window",
            Strategy::ApiOnly,
            90,
            90,
            2,
            false,
        ),
    ];
    for (case, strategy, timeout, probe, window, follows) in cases {
        let mut cfg = config();
        cfg.timeout = Duration::from_secs(timeout);
        let s = compose_with(&plan(strategy, CaptureVia::None, Vec::new()), &cfg, &[]);
        let n = &s.node_snapshots;
        assert_eq!(n.timeout, Duration::from_secs(probe), "{case}");
        assert_eq!(n.window, Duration::from_secs(window), "{case}");
        assert_eq!(n.window_follows_pod_probe, follows, "{case}");
        let nodes: Vec<&str> = n.argv.iter().map(|(node, _)| node.as_str()).collect();
        assert_eq!(nodes, ["n1", "n2"], "{case}");
        let ms = (window * 1000).to_string();
        assert!(
            has_args(
                &n.argv[1].1,
                &["--node-name", "n2", "--conntrack-window-ms", &ms]
            ),
            "{case}"
        );
        // Every node lists the conntrack entries towards the cluster DNS.
        assert!(
            n.argv
                .iter()
                .all(|(_, argv)| has_args(argv, &["--dns-service", "10.96.0.10:53"])),
            "{case}"
        );
        assert_eq!(
            n.end_window_argv[1..],
            ["stop", "--run", "r1", "--only", "node"]
        );
    }
}

#[test]
fn one_upstream_probe_per_node_for_the_external_names_only() {
    let dns = vec![
        dns_pod("coredns-a", Some("n1"), true),
        dns_pod("coredns-b", Some("n2"), true),
        dns_pod("coredns-c", Some("n1"), true),
        dns_pod("coredns-d", None, true),
        dns_pod("coredns-e", None, true),
    ];
    let p = plan(Strategy::EphemeralCapture, CaptureVia::Ephemeral, dns);
    let upstream: SocketAddr = "192.0.2.53:53".parse().unwrap();
    let s = compose_with(&p, &config(), &[upstream]);
    let steps: Vec<(Option<&str>, &[usize])> = s
        .upstream_probes
        .iter()
        .map(|u| (u.node.as_deref(), u.candidates.as_slice()))
        .collect();
    // Container 0 is the target; a pod on an unknown node gets a probe of its own.
    assert_eq!(
        steps,
        vec![
            (Some("n1"), &[1, 3][..]),
            (Some("n2"), &[2][..]),
            (None, &[4][..]),
            (None, &[5][..])
        ]
    );
    let argv = &s.upstream_probes[0].argv;
    assert!(has_args(argv, &["--name", "example.com"]));
    assert!(
        !has_args(argv, &["--name", "kubernetes.default"]),
        "cluster names are not the upstream's"
    );
    assert!(has_args(
        argv,
        &["--no-resolv-conf", "--server", "192.0.2.53:53"]
    ));
    assert!(has_args(
        argv,
        &["--role", "upstream", "--parallel-rounds", "0"]
    ));

    // `forward . /etc/resolv.conf`: the DNS pod's own resolv.conf names the upstream.
    let s = compose_with(&p, &config(), &[]);
    assert!(!s.upstream_probes[0]
        .argv
        .iter()
        .any(|a| a == "--no-resolv-conf" || a == "--server"));

    // Only cluster names: nothing to ask the upstream.
    let mut cfg = config();
    cfg.names = vec![
        "kubernetes.default".into(),
        "web.app.svc.cluster.local".into(),
    ];
    assert!(compose_with(&p, &cfg, &[upstream])
        .upstream_probes
        .is_empty());
}

#[test]
fn each_node_reads_the_cgroups_of_the_dns_pods_it_runs() {
    let mut topo = topology();
    let pod = |name: &str, uid: &str, node: Option<&str>| crate::topology::DnsPodInfo {
        namespace: "kube-system".into(),
        name: name.into(),
        uid: uid.into(),
        node: node.map(Into::into),
        ..Default::default()
    };
    topo.dns_pods = vec![
        pod("coredns-a", "uid-a", Some("n2")),
        pod("coredns-b", "uid-b", Some("n1")),
        pod("coredns-c", "uid-c", Some("n2")),
        // Not scheduled, or no UID known: nothing to read.
        pod("coredns-d", "uid-d", None),
        pod("coredns-e", "", Some("n1")),
    ];
    let s = compose(&ScriptInput {
        plan: &plan(Strategy::EphemeralCapture, CaptureVia::None, Vec::new()),
        topology: &topo,
        config: &config(),
        run_id: "r1",
        upstreams: &[],
    });
    let uids = |node: &str| -> Vec<String> {
        let (_, argv) = s
            .node_snapshots
            .argv
            .iter()
            .find(|(n, _)| n == node)
            .expect("a snapshot per node");
        argv.windows(2)
            .filter(|w| w[0] == "--pod-uid")
            .map(|w| w[1].clone())
            .collect()
    };
    assert_eq!(uids("n1"), ["uid-b"]);
    assert_eq!(uids("n2"), ["uid-a", "uid-c"]);
}
