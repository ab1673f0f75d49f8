//! Realistic inputs for the diagnosis and report tests: a healthy two-replica CoreDNS behind
//! 10.96.0.10, a glibc client pod, probe results as the probe writes them, and node
//! snapshots whose rule dumps are the fixtures captured from real iptables/nft (see
//! plugin/tests/fixtures/node/VERSIONS.txt). Each fault is a change to that healthy base.

use std::net::{IpAddr, SocketAddr};

pub mod two_nodes;

use dns_doctor_schema::{
    CommandOutput, ConnectOutcome, LibcDetection, LibcKind, NodeSnapshot, ParallelStats,
    ParallelTest, PodReport, QueryOutcome, QueryResult, RawFile, SearchExpansion, ServerRole,
    TcpConnect, Transport,
};

use crate::capture::CaptureAnalysis;
use crate::evidence::{CaptureKind, Evidence, NodeEvidence, UpstreamProbe};
use crate::topology::{
    ClusterDns, ClusterDnsSource, ContainerResources, DnsPodInfo, EndpointInfo, KnownService,
    KubeProxyInfo, KubeProxyPod, NamedPort, PodInfo, ServiceInfo, ServicePort, Topology,
};

use super::{diagnose, Diagnosis, DiagnosisInput, PointAnalysis};

pub const CLUSTER_IP: &str = "10.96.0.10";
pub const EP_A: &str = "10.244.0.2";
pub const EP_B: &str = "10.244.0.3";
pub const CLUSTER_NAME: &str = "kubernetes.default.svc.cluster.local.";
pub const EXTERNAL_NAME: &str = "external.test.";
pub const UPSTREAM: &str = "10.200.0.2";

pub const IPT_HEALTHY: &str = include_str!("../../tests/fixtures/node/iptables-legacy-healthy.txt");
pub const IPT_NO_ENDPOINTS: &str =
    include_str!("../../tests/fixtures/node/iptables-legacy-no-endpoints.txt");
pub const IPT_FLUSHED: &str =
    include_str!("../../tests/fixtures/node/iptables-legacy-kube-proxy-flushed.txt");
pub const IPT_NODE_FIREWALL: &str =
    include_str!("../../tests/fixtures/node/iptables-legacy-node-firewall.txt");
pub const IPT_UDP_BLOCKED: &str =
    include_str!("../../tests/fixtures/node/iptables-legacy-udp-blocked.txt");
pub const IPT_AAAA_DROP: &str =
    include_str!("../../tests/fixtures/node/iptables-legacy-aaaa-drop.txt");
pub const NFT_KUBE_PROXY_HEALTHY: &str =
    include_str!("../../tests/fixtures/node/nft-kube-proxy-healthy.txt");
pub const NFT_KUBE_PROXY_NODE_FIREWALL: &str =
    include_str!("../../tests/fixtures/node/nft-kube-proxy-node-firewall.txt");
pub const CONNTRACK_BEFORE: &str = include_str!("../../tests/fixtures/node/conntrack-S-before.txt");
pub const CONNTRACK_AFTER: &str = include_str!("../../tests/fixtures/node/conntrack-S-after.txt");

/// Labels from `key=value` pairs.
pub fn labels(pairs: &[(&str, &str)]) -> std::collections::BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// CoreDNS's ports as its Deployment and the kube-dns EndpointSlice name them.
pub fn coredns_ports(udp: u16, tcp: u16) -> Vec<NamedPort> {
    let port = |name: &str, protocol: &str, port| NamedPort {
        name: Some(name.into()),
        protocol: protocol.into(),
        port,
    };
    vec![
        port("dns", "UDP", udp),
        port("dns-tcp", "TCP", tcp),
        port("metrics", "TCP", 9153),
    ]
}

pub fn ip(s: &str) -> IpAddr {
    s.parse().expect("test address")
}

pub fn sock(s: &str) -> SocketAddr {
    SocketAddr::new(ip(s), 53)
}

pub struct Scenario {
    pub topology: Topology,
    pub evidence: Evidence,
}

impl Scenario {
    pub fn diagnose(&self) -> Diagnosis {
        diagnose(&DiagnosisInput {
            topology: &self.topology,
            evidence: &self.evidence,
            captures: &[],
            correlation: None,
        })
    }

    /// Diagnoses with one capture, taken in the target pod (`pod-web-0`).
    pub fn diagnose_with_pod_capture(&self, pod: &CaptureAnalysis) -> Diagnosis {
        let points = [PointAnalysis {
            name: "pod-web-0",
            kind: CaptureKind::Pod,
            analysis: pod,
        }];
        diagnose(&DiagnosisInput {
            topology: &self.topology,
            evidence: &self.evidence,
            captures: &points,
            correlation: None,
        })
    }

    pub fn probe(&mut self) -> &mut PodReport {
        self.evidence.pod_probe.as_mut().expect("probe present")
    }

    /// Sets the outcome of every probe query `select` picks.
    pub fn set_queries(
        &mut self,
        select: impl Fn(&QueryResult) -> bool,
        outcome: QueryOutcome,
        rcode: Option<&str>,
    ) {
        for q in self.probe().queries.iter_mut().filter(|q| select(q)) {
            q.outcome = outcome;
            q.rcode = rcode.map(str::to_string);
            if outcome != QueryOutcome::Answered {
                q.answers.clear();
                q.latency_ms = 2000.0;
            }
        }
    }

    pub fn set_connects(&mut self, select: impl Fn(&TcpConnect) -> bool, outcome: ConnectOutcome) {
        for c in self.probe().tcp_connects.iter_mut().filter(|c| select(c)) {
            c.outcome = outcome;
        }
    }

    /// Replaces a command's output on the target's node.
    pub fn set_node_command(&mut self, key: &str, stdout: &str) {
        let snap = &mut self.evidence.nodes[0].snapshot;
        match snap.commands.iter_mut().find(|c| c.key == key) {
            Some(c) => c.stdout = stdout.to_string(),
            None => snap.commands.push(command(key, stdout)),
        }
    }

    pub fn set_node_file(&mut self, path: &str, content: &str) {
        let snap = &mut self.evidence.nodes[0].snapshot;
        match snap.files.iter_mut().find(|f| f.path == path) {
            Some(f) => f.content = Some(content.to_string()),
            None => snap.files.push(RawFile {
                path: path.to_string(),
                content: Some(content.to_string()),
                error: None,
            }),
        }
    }
}

/// What the test cluster's CoreDNS answers: the two real names resolve (A records; AAAA
/// empty), every other search candidate is NXDOMAIN.
pub fn query(
    server: &str,
    role: ServerRole,
    transport: Transport,
    qname: &str,
    qtype: &str,
    id: u16,
) -> QueryResult {
    let exists = qname == CLUSTER_NAME || qname == EXTERNAL_NAME;
    let answers = match (qname, qtype) {
        (CLUSTER_NAME, "A") => vec!["A 10.96.0.1".to_string()],
        (EXTERNAL_NAME, "A") => vec!["A 192.0.2.10".to_string()],
        _ => Vec::new(),
    };
    QueryResult {
        server: sock(server),
        role,
        transport,
        qname: qname.to_string(),
        qtype: qtype.to_string(),
        id,
        source_port: Some(40000 + id),
        outcome: QueryOutcome::Answered,
        rcode: Some(if exists { "NOERROR" } else { "NXDOMAIN" }.into()),
        answers,
        truncated: false,
        latency_ms: 0.8,
        error: None,
    }
}

/// The search candidates of the two names under the pod's resolv.conf (ndots 5).
pub fn candidates() -> Vec<(&'static str, Vec<String>)> {
    let suffixes = [
        "default.svc.cluster.local.",
        "svc.cluster.local.",
        "cluster.local.",
    ];
    ["kubernetes.default", "external.test"]
        .into_iter()
        .map(|name| {
            let mut c: Vec<String> = suffixes.iter().map(|s| format!("{name}.{s}")).collect();
            c.push(format!("{name}."));
            (name, c)
        })
        .collect()
}

pub fn command(key: &str, stdout: &str) -> CommandOutput {
    CommandOutput {
        key: key.to_string(),
        argv: vec![key.to_string()],
        exit_code: Some(0),
        stdout: stdout.to_string(),
        stderr: String::new(),
        duration_ms: 12,
        error: None,
    }
}

fn parallel(server: &str) -> ParallelTest {
    let stats = ParallelStats {
        rounds: 20,
        both_answered: 20,
        a_missing: 0,
        aaaa_missing: 0,
        both_missing: 0,
        round_ms: vec![1.1; 20],
    };
    ParallelTest {
        server: sock(server),
        role: ServerRole::Nameserver,
        qname: CLUSTER_NAME.to_string(),
        wait_ms: 6000,
        same_socket: stats.clone(),
        separate_sockets: stats,
    }
}

fn healthy_probe() -> PodReport {
    // Like the probe: every candidate of every name, to the nameserver and to each
    // endpoint, over UDP and TCP, A and AAAA.
    let mut queries = Vec::new();
    let mut id = 1;
    for (server, role) in [
        (CLUSTER_IP, ServerRole::Nameserver),
        (EP_A, ServerRole::Endpoint),
        (EP_B, ServerRole::Endpoint),
    ] {
        for (_, names) in candidates() {
            for qname in &names {
                for transport in [Transport::Udp, Transport::Tcp] {
                    for qtype in ["A", "AAAA"] {
                        queries.push(query(server, role, transport, qname, qtype, id));
                        id += 1;
                    }
                }
            }
        }
    }
    let connect = |target: &str, role| TcpConnect {
        target: sock(target),
        role,
        outcome: ConnectOutcome::Connected,
        latency_ms: 0.3,
        error: None,
    };
    PodReport {
        resolv_conf: RawFile {
            path: "/etc/resolv.conf".into(),
            content: Some(format!(
                "search default.svc.cluster.local svc.cluster.local cluster.local\nnameserver {CLUSTER_IP}\noptions ndots:5\n"
            )),
            error: None,
        },
        libc: LibcDetection {
            kind: LibcKind::Glibc,
            pid: Some(7),
            evidence: Some("/proc/7/root/lib/x86_64-linux-gnu/libc.so.6".into()),
        },
        tcp_connects: vec![
            connect(CLUSTER_IP, ServerRole::Nameserver),
            connect(EP_A, ServerRole::Endpoint),
            connect(EP_B, ServerRole::Endpoint),
        ],
        queries,
        search_expansion: candidates()
            .into_iter()
            .map(|(name, candidates)| {
                let first = candidates
                    .iter()
                    .position(|c| c == CLUSTER_NAME || c == EXTERNAL_NAME);
                SearchExpansion {
                    name: name.to_string(),
                    queries_per_lookup: 2 * first.map_or(candidates.len(), |i| i + 1) as u32,
                    first_answer_index: first,
                    candidates,
                }
            })
            .collect(),
        parallel: vec![parallel(CLUSTER_IP)],
        netns_rules: Vec::new(),
    }
}

fn node_snapshot(node: &str) -> NodeSnapshot {
    NodeSnapshot {
        node: node.to_string(),
        commands: vec![
            command("iptables-legacy-save", IPT_HEALTHY),
            command("iptables-nft-save", ""),
            command("ip6tables-legacy-save", ""),
            command("ip6tables-nft-save", ""),
            command("nft-list-ruleset", ""),
            command("conntrack-stats-before", CONNTRACK_BEFORE),
            command("conntrack-stats-after", CONNTRACK_AFTER),
        ],
        files: vec![
            RawFile {
                path: "/proc/sys/net/netfilter/nf_conntrack_count".into(),
                content: Some("212\n".into()),
                error: None,
            },
            RawFile {
                path: "/proc/sys/net/netfilter/nf_conntrack_max".into(),
                content: Some("262144\n".into()),
                error: None,
            },
        ],
        http: vec![
            dns_doctor_schema::HttpProbe {
                key: "kube-proxy-healthz".into(),
                url: "http://127.0.0.1:10256/healthz".into(),
                status: Some(200),
                body: Some("{}".into()),
                error: None,
            },
            dns_doctor_schema::HttpProbe {
                key: "kube-proxy-mode".into(),
                url: "http://127.0.0.1:10249/proxyMode".into(),
                status: Some(200),
                body: Some("iptables".into()),
                error: None,
            },
        ],
        conntrack_window_ms: 2000,
        pod_cgroups: Vec::new(),
    }
}

fn dns_pod(name: &str, ip_s: &str) -> DnsPodInfo {
    DnsPodInfo {
        namespace: "kube-system".into(),
        name: name.into(),
        uid: format!("uid-{name}"),
        ip: Some(ip(ip_s)),
        node: Some("node-1".into()),
        phase: "Running".into(),
        ready: true,
        restarts: 0,
        container: "coredns".into(),
        waiting_reason: None,
        deleting: false,
        exited: None,
        last_termination: None,
        log_lines: Vec::new(),
        labels: labels(&[("k8s-app", "kube-dns"), ("pod-template-hash", "7db6d8ff4d")]),
        container_ports: coredns_ports(53, 53),
        service_account: "coredns".into(),
        container_id: Some(format!("containerd://{}", container_id(name))),
        // kubeadm's CoreDNS: no CPU limit.
        resources: ContainerResources {
            cpu_request: Some("100m".into()),
            cpu_limit: None,
            memory_request: Some("70Mi".into()),
            memory_limit: Some("170Mi".into()),
        },
    }
}

/// A DNS pod's container ID, 64 hex digits derived from its name.
pub fn container_id(pod: &str) -> String {
    let seed: String = pod.bytes().map(|b| format!("{:02x}", b)).collect();
    format!("{seed:0<64}")[..64].to_string()
}

fn endpoint(ip_s: &str, pod: &str) -> EndpointInfo {
    EndpointInfo {
        ip: ip(ip_s),
        ports: vec![("UDP".into(), 53), ("TCP".into(), 53), ("TCP".into(), 9153)],
        ready: true,
        serving: true,
        terminating: false,
        pod: Some(format!("kube-system/{pod}")),
        node: Some("node-1".into()),
        named_ports: coredns_ports(53, 53),
    }
}

/// A healthy cluster as the test cluster looks: one node, CoreDNS × 2, kube-proxy iptables.
pub fn healthy() -> Scenario {
    let topology = Topology {
        target: PodInfo {
            namespace: "default".into(),
            name: "web-0".into(),
            uid: "uid-web-0".into(),
            node: Some("node-1".into()),
            ip: Some(ip("10.244.0.5")),
            phase: "Running".into(),
            ready: true,
            host_network: false,
            dns_policy: "ClusterFirst".into(),
            dns_config: None,
            containers: vec!["web".into()],
            ephemeral_containers: Vec::new(),
            labels: labels(&[("app", "web")]),
        },
        chosen_from: None,
        cluster_dns: ClusterDns {
            source: ClusterDnsSource::KubeletConfigz,
            ips: vec![ip(CLUSTER_IP)],
            domain: "cluster.local".into(),
        },
        dns_service: Some(ServiceInfo {
            namespace: "kube-system".into(),
            name: "kube-dns".into(),
            cluster_ip: ip(CLUSTER_IP),
            ports: vec![
                ServicePort { name: Some("dns".into()), port: 53, protocol: "UDP".into(), target_port: Some("53".into()) },
                ServicePort { name: Some("dns-tcp".into()), port: 53, protocol: "TCP".into(), target_port: Some("53".into()) },
                ServicePort { name: Some("metrics".into()), port: 9153, protocol: "TCP".into(), target_port: Some("9153".into()) },
            ],
            selector: vec![("k8s-app".into(), "kube-dns".into())],
        }),
        endpoints: vec![endpoint(EP_A, "coredns-a"), endpoint(EP_B, "coredns-b")],
        dns_pods: vec![dns_pod("coredns-a", EP_A), dns_pod("coredns-b", EP_B)],
        corefile: Some(format!(
            ".:53 {{\n    errors\n    health\n    ready\n    kubernetes cluster.local in-addr.arpa ip6.arpa\n    forward . {UPSTREAM}\n    cache 30\n    loop\n    reload\n}}\n"
        )),
        kube_proxy: KubeProxyInfo {
            pods: vec![KubeProxyPod {
                name: "kube-proxy-x7k2p".into(),
                node: Some("node-1".into()),
                phase: "Running".into(),
                ready: true,
                restarts: 0,
            }],
            configured_mode: Some(String::new()),
            daemonset: true,
        },
        node_local_dns: None,
        dns_api_access: Vec::new(),
        known_services: vec![KnownService {
            namespace: "default".into(),
            name: "kubernetes".into(),
            cluster_ips: vec![ip("10.96.0.1")],
        }],
        namespace_labels: ["default", "kube-system"]
            .into_iter()
            .map(|ns| (ns.to_string(), labels(&[("kubernetes.io/metadata.name", ns)])))
            .collect(),
        network_policies: Vec::new(),
        gaps: Vec::new(),
    };
    let mut upstream = healthy_probe();
    upstream.queries = vec![
        query(
            UPSTREAM,
            ServerRole::Upstream,
            Transport::Udp,
            EXTERNAL_NAME,
            "A",
            900,
        ),
        query(
            UPSTREAM,
            ServerRole::Upstream,
            Transport::Tcp,
            EXTERNAL_NAME,
            "A",
            901,
        ),
    ];
    upstream.tcp_connects.clear();
    upstream.parallel.clear();
    upstream.search_expansion.clear();
    let evidence = Evidence {
        pod_probe: Some(healthy_probe()),
        upstream_probes: vec![UpstreamProbe {
            dns_pod: "kube-system/coredns-a".into(),
            report: upstream,
        }],
        nodes: vec![NodeEvidence {
            node: "node-1".into(),
            snapshot: node_snapshot("node-1"),
        }],
        captures: Vec::new(),
        step_errors: Vec::new(),
        ephemeral_containers: Vec::new(),
    };
    Scenario { topology, evidence }
}

pub fn is_cluster_dns(q: &QueryResult) -> bool {
    q.role == ServerRole::Nameserver && q.server.ip() == ip(CLUSTER_IP)
}

/// What a capture point's analysis says when only its count of unanswered transactions
/// matters to a test.
pub fn capture_analysis(unanswered: u64) -> CaptureAnalysis {
    CaptureAnalysis {
        analysis: crate::capture::Analysis {
            summary: crate::capture::Summary {
                unanswered_transactions: unanswered,
                ..Default::default()
            },
            examples: Default::default(),
            histogram: Default::default(),
        },
        stats: Default::default(),
        other_clients: 0,
        format: crate::capture::CaptureFormat::Pcap,
        read_error: None,
    }
}
