//! Step 2, plan: what to do, decided from the topology and the preflight answers. Pure.
//!
//! The plan takes the least privilege that admission accepts: an ephemeral container with
//! NET_RAW/NET_ADMIN in the pod; else a capture from a node pod through nsenter into the
//! pod's network namespace (the probe still runs in a plain ephemeral container); else
//! probes only; else the API reads alone. It says which, and why.

use std::net::SocketAddr;

use serde::Serialize;

pub mod script;

use crate::access::{allowed, refusals, AccessAnswer, EphemeralChoice, Privilege};
use crate::cli::DoctorConfig;
use crate::topology::Topology;

/// The overall approach, least capable last.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// Probe and capture from an ephemeral container in the pod.
    EphemeralCapture,
    /// Probe from an ephemeral container; capture from a node pod inside the pod's netns.
    NodeCapture,
    /// Probe only, no packets.
    ProbeOnly,
    /// No container could be added: only what the API shows.
    ApiOnly,
}

/// How the target pod's traffic is captured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CaptureVia {
    Ephemeral,
    NodeNsenter,
    None,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DnsPodPlan {
    pub namespace: String,
    pub name: String,
    pub container: String,
    pub node: Option<String>,
    pub privilege: Privilege,
    pub capture: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Plan {
    pub strategy: Strategy,
    /// Why this strategy: the preflight answers that decided it.
    pub reasons: Vec<String>,
    /// The ephemeral container for the target pod, if any.
    pub target_privilege: Option<Privilege>,
    pub target_capture: CaptureVia,
    /// DNS pods that get a probe container (running ones only).
    pub dns_pods: Vec<DnsPodPlan>,
    /// Nodes that get a node pod.
    pub nodes: Vec<String>,
    pub node_namespace: String,
    /// Names the pod probe resolves as an application would: `--names` (or the defaults)
    /// and a Service of the target's own namespace, whose right answer the API knows.
    pub probe_names: Vec<String>,
    /// The DNS endpoints the pod probe asks directly: the ready ones, each on the port it
    /// serves DNS on.
    pub probe_endpoints: Vec<SocketAddr>,
}

/// How long the pod probe waits for one reply. A reply later than the 1 s that makes a
/// lookup slow fails the verdict anyway; waiting less on lost queries keeps fault runs
/// short.
pub const PROBE_QUERY_TIMEOUT_MS: u64 = 1000;

/// How long one parallel A/AAAA round waits for its two replies. A reply lost to the
/// conntrack race never comes: half a second tells it as well as five would.
pub const PARALLEL_WAIT_MS: u64 = 500;

/// Everything the plan is decided from.
pub struct PlanInput<'a> {
    pub config: &'a DoctorConfig,
    pub topology: &'a Topology,
    pub access: &'a [AccessAnswer],
    pub node_namespace: &'a str,
    pub target_choice: &'a EphemeralChoice,
    /// The dry-run in the first running DNS pod, when there is one and access allows.
    pub dns_choice: Option<&'a EphemeralChoice>,
}

/// Decide the plan.
pub fn decide(input: &PlanInput<'_>) -> Plan {
    let cfg = input.config;
    let target_ns = &input.topology.target.namespace;
    let mut reasons = refusals(input.access);
    let target_ok = allowed(input.access, "patch", "pods/ephemeralcontainers", target_ns)
        && allowed(input.access, "create", "pods/exec", target_ns);
    let node_ok = cfg.node_checks
        && allowed(input.access, "create", "jobs", input.node_namespace)
        && allowed(input.access, "create", "pods/exec", input.node_namespace)
        && allowed(input.access, "list", "pods", input.node_namespace);
    if !cfg.node_checks {
        reasons.push(
            "node checks disabled by --no-node-checks: no rule dumps, counters or node captures"
                .into(),
        );
    }
    for (p, msg) in &input.target_choice.rejections {
        reasons.push(format!(
            "admission rejects a {} container in the target pod: {msg}",
            privilege_name(*p)
        ));
    }
    let target_privilege = if target_ok {
        input.target_choice.privilege
    } else {
        None
    };
    let nodes = if node_ok {
        input.topology.nodes_involved()
    } else {
        Vec::new()
    };
    let target_capture = match (cfg.capture, target_privilege) {
        (false, _) => CaptureVia::None,
        (true, Some(Privilege::Capture)) => CaptureVia::Ephemeral,
        (true, _) if node_ok && !input.topology.target.uid.is_empty() => CaptureVia::NodeNsenter,
        (true, _) => CaptureVia::None,
    };
    let strategy = match (target_privilege, target_capture) {
        (Some(_), CaptureVia::Ephemeral) => Strategy::EphemeralCapture,
        (Some(_), CaptureVia::NodeNsenter) => Strategy::NodeCapture,
        (Some(_), _) => Strategy::ProbeOnly,
        (None, _) => Strategy::ApiOnly,
    };
    if !cfg.capture {
        reasons.push("captures disabled by --no-capture".into());
    }
    match strategy {
        Strategy::EphemeralCapture => reasons.insert(0, "an ephemeral container with NET_RAW/NET_ADMIN is admitted: probe and capture inside the pod".into()),
        Strategy::NodeCapture => reasons.insert(0, "the pod does not admit NET_RAW: the probe runs unprivileged in the pod and packets are captured from a node pod inside the pod's network namespace".into()),
        Strategy::ProbeOnly => reasons.insert(0, "probes only: no way to capture packets was allowed".into()),
        Strategy::ApiOnly => reasons.insert(0, "no container could be added to the pod: only what the API shows is checked".into()),
    }
    let dns_pods = match input.dns_choice.and_then(|c| c.privilege) {
        Some(privilege) => input
            .topology
            .dns_pods
            .iter()
            .filter(|p| p.can_host_probe() && !input.topology.dns_pod_terminating(p))
            .map(|p| DnsPodPlan {
                namespace: p.namespace.clone(),
                name: p.name.clone(),
                container: p.container.clone(),
                node: p.node.clone(),
                privilege,
                capture: cfg.capture && privilege.can_capture(),
            })
            .collect(),
        None => Vec::new(),
    };
    Plan {
        strategy,
        reasons,
        target_privilege,
        target_capture,
        dns_pods,
        nodes,
        node_namespace: input.node_namespace.to_string(),
        probe_names: probe_names(&cfg.names, input.topology),
        probe_endpoints: probe_endpoints(input.topology),
    }
}

/// The endpoints to query directly: only the ready ones, as kube-proxy sends the ClusterIP's
/// traffic only to those (not-ready pods are the DNS-pods finding's business), each on its
/// EndpointSlice UDP port, which is what the pod listens on when the Service maps 53 to
/// another targetPort.
pub fn probe_endpoints(topology: &Topology) -> Vec<SocketAddr> {
    topology
        .endpoints
        .iter()
        .filter(|e| e.ready)
        .map(|e| {
            let port = topology
                .endpoint_dns_port(e, "UDP")
                .or_else(|| topology.endpoint_dns_port(e, "TCP"))
                .unwrap_or(53);
            SocketAddr::new(e.ip, port)
        })
        .collect()
}

/// The DNS Service addresses whose UDP conntrack entries the node probes list (`--dns-service`):
/// each cluster DNS address on the Service's UDP DNS port (53 when no Service owns it).
pub fn conntrack_dns_services(topology: &Topology) -> Vec<SocketAddr> {
    let port = topology
        .dns_service
        .as_ref()
        .and_then(|s| s.dns_port("UDP"))
        .map_or(53, |p| p.port);
    crate::diagnose::observed::cluster_dns_ips(topology)
        .into_iter()
        .map(|ip| SocketAddr::new(ip, port))
        .collect()
}

/// The names to resolve from the pod: those asked for, then the first Service of the pod's
/// own namespace by its short name (as applications there write it), unless one of the
/// given names already means a Service of that namespace.
pub fn probe_names(asked: &[String], topology: &Topology) -> Vec<String> {
    let mut names = asked.to_vec();
    let ns = &topology.target.namespace;
    let own = topology
        .known_services
        .iter()
        .find(|s| &s.namespace == ns && !(s.namespace == "default" && s.name == "kubernetes"));
    if let Some(s) = own {
        let means_own = |n: &str| {
            let n = n.trim_end_matches('.');
            n == s.name || n.starts_with(&format!("{}.{ns}", s.name))
        };
        if !names.iter().any(|n| means_own(n)) {
            names.push(s.name.clone());
        }
    }
    names
}

fn privilege_name(p: Privilege) -> &'static str {
    match p {
        Privilege::Capture => "NET_RAW/NET_ADMIN",
        Privilege::ProbeOnly => "root (no added capabilities)",
        Privilege::Restricted => "restricted (non-root)",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access::{required_checks, AccessCheck};
    use crate::cli::OutputFormat;
    use crate::target::{TargetKind, TargetRef};
    use crate::topology::{DnsPodInfo, EndpointInfo, PodInfo, Termination};
    use std::time::Duration;

    fn config() -> DoctorConfig {
        DoctorConfig {
            target: TargetRef {
                kind: TargetKind::Pod,
                name: "web".into(),
            },
            container: None,
            kube: Default::default(),
            output: OutputFormat::Text,
            names: vec!["kubernetes.default".into()],
            capture_seconds: 10,
            output_dir: None,
            image: "img".into(),
            capture: true,
            node_checks: true,
            timeout: Duration::from_secs(120),
            parallel_rounds: 20,
            node_namespace: "kube-system".into(),
            verbosity: crate::cli::Verbosity::Normal,
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
                ..PodInfo::default()
            },
            dns_pods: vec![
                DnsPodInfo {
                    namespace: "kube-system".into(),
                    name: "coredns-a".into(),
                    node: Some("n2".into()),
                    phase: "Running".into(),
                    container: "coredns".into(),
                    ..DnsPodInfo::default()
                },
                DnsPodInfo {
                    namespace: "kube-system".into(),
                    name: "coredns-b".into(),
                    phase: "Running".into(),
                    waiting_reason: Some("CrashLoopBackOff".into()),
                    container: "coredns".into(),
                    ..DnsPodInfo::default()
                },
                // Between two crashes: exited, not yet restarted.
                DnsPodInfo {
                    namespace: "kube-system".into(),
                    name: "coredns-c".into(),
                    phase: "Running".into(),
                    restarts: 1,
                    exited: Some(Termination {
                        reason: "Error".into(),
                        exit_code: 1,
                        message: None,
                        ..Termination::default()
                    }),
                    container: "coredns".into(),
                    ..DnsPodInfo::default()
                },
                // Restarted after a crash, running, not ready: about to crash again.
                DnsPodInfo {
                    namespace: "kube-system".into(),
                    name: "coredns-d".into(),
                    phase: "Running".into(),
                    restarts: 2,
                    last_termination: Some(Termination {
                        reason: "Error".into(),
                        exit_code: 1,
                        message: None,
                        ..Termination::default()
                    }),
                    container: "coredns".into(),
                    ..DnsPodInfo::default()
                },
            ],
            ..Topology::default()
        }
    }

    fn answers(deny: &[(&str, &str)]) -> Vec<AccessAnswer> {
        required_checks("app", Some("kube-system"), "kube-system", true)
            .into_iter()
            .map(|check: AccessCheck| AccessAnswer {
                allowed: !deny
                    .iter()
                    .any(|(v, r)| check.verb == *v && check.resource == *r),
                check,
                reason: None,
            })
            .collect()
    }

    fn choice(p: Option<Privilege>, rejected: &[Privilege]) -> EphemeralChoice {
        EphemeralChoice {
            privilege: p,
            rejections: rejected
                .iter()
                .map(|p| (*p, "forbidden by PodSecurity".to_string()))
                .collect(),
        }
    }

    /// The plan for the standard config and topology with these preflight answers.
    fn plan_for(
        access: &[AccessAnswer],
        target_choice: &EphemeralChoice,
        dns_choice: Option<&EphemeralChoice>,
    ) -> Plan {
        decide(&PlanInput {
            config: &config(),
            topology: &topology(),
            access,
            node_namespace: "kube-system",
            target_choice,
            dns_choice,
        })
    }

    #[test]
    fn full_access_captures_in_the_pod() {
        let acc = answers(&[]);
        let tc = choice(Some(Privilege::Capture), &[]);
        let plan = plan_for(&acc, &tc, Some(&tc));
        assert_eq!(plan.strategy, Strategy::EphemeralCapture);
        assert_eq!(plan.nodes, vec!["n1", "n2"]);
        // The crash-looping DNS pods get no container, whichever phase of the loop
        // discovery saw them in.
        assert_eq!(plan.dns_pods.len(), 1);
        assert_eq!(plan.dns_pods[0].name, "coredns-a");
        assert!(plan.dns_pods[0].capture);
    }

    #[test]
    fn a_dns_pod_on_its_way_out_gets_no_probe_container() {
        let acc = answers(&[]);
        let tc = choice(Some(Privilege::Capture), &[]);
        let mut topo = topology();
        topo.endpoints.push(EndpointInfo {
            ip: "10.244.0.9".parse().unwrap(),
            ports: vec![("UDP".into(), 53)],
            ready: false,
            serving: true,
            terminating: true,
            pod: Some("kube-system/coredns-a".into()),
            node: Some("n2".into()),
            named_ports: Vec::new(),
        });
        let plan = decide(&PlanInput {
            config: &config(),
            topology: &topo,
            access: &acc,
            node_namespace: "kube-system",
            target_choice: &tc,
            dns_choice: Some(&tc),
        });
        assert!(plan.dns_pods.is_empty(), "{:?}", plan.dns_pods);
    }

    #[test]
    fn baseline_namespace_falls_back_to_node_capture_and_says_why() {
        let acc = answers(&[]);
        let tc = choice(Some(Privilege::ProbeOnly), &[Privilege::Capture]);
        let plan = plan_for(&acc, &tc, None);
        assert_eq!(plan.strategy, Strategy::NodeCapture);
        assert_eq!(plan.target_capture, CaptureVia::NodeNsenter);
        assert!(
            plan.reasons
                .iter()
                .any(|r| r.contains("forbidden by PodSecurity")),
            "{:?}",
            plan.reasons
        );
    }

    #[test]
    fn without_node_permissions_it_degrades_to_pod_level_and_says_so() {
        let acc = answers(&[("create", "jobs")]);
        let tc = choice(Some(Privilege::ProbeOnly), &[Privilege::Capture]);
        let plan = plan_for(&acc, &tc, None);
        assert_eq!(plan.strategy, Strategy::ProbeOnly);
        assert!(plan.nodes.is_empty());
        assert!(
            plan.reasons
                .iter()
                .any(|r| r.contains("not allowed to create jobs in kube-system")),
            "{:?}",
            plan.reasons
        );
    }

    #[test]
    fn endpoints_are_probed_when_ready_on_their_slice_port() {
        use crate::topology::{EndpointInfo, NamedPort, ServiceInfo, ServicePort};
        let ep = |ip: &str, ready: bool, port: u16| EndpointInfo {
            ip: ip.parse().unwrap(),
            ports: vec![("UDP".into(), port)],
            ready,
            serving: ready,
            terminating: false,
            pod: None,
            node: None,
            named_ports: vec![NamedPort {
                name: Some("dns".into()),
                protocol: "UDP".into(),
                port,
            }],
        };
        let mut topo = topology();
        topo.dns_service = Some(ServiceInfo {
            namespace: "kube-system".into(),
            name: "kube-dns".into(),
            cluster_ip: "10.96.0.10".parse().unwrap(),
            ports: vec![ServicePort {
                name: Some("dns".into()),
                port: 53,
                protocol: "UDP".into(),
                target_port: Some("dns".into()),
            }],
            selector: Vec::new(),
        });
        topo.endpoints = vec![
            ep("10.244.0.2", true, 5353),
            ep("10.244.0.3", false, 5353),
            ep("fd00:10:244::2", true, 5353),
        ];
        let addrs: Vec<String> = probe_endpoints(&topo)
            .iter()
            .map(|a| a.to_string())
            .collect();
        assert_eq!(addrs, vec!["10.244.0.2:5353", "[fd00:10:244::2]:5353"]);
    }

    #[test]
    fn node_probes_list_conntrack_for_every_cluster_dns_address() {
        use crate::topology::{ServiceInfo, ServicePort};
        let mut topo = topology();
        assert!(conntrack_dns_services(&topo).is_empty());
        topo.cluster_dns.ips = vec!["fd00:96::a".parse().unwrap()];
        topo.dns_service = Some(ServiceInfo {
            namespace: "kube-system".into(),
            name: "kube-dns".into(),
            cluster_ip: "10.96.0.10".parse().unwrap(),
            ports: vec![ServicePort {
                name: Some("dns".into()),
                port: 53,
                protocol: "UDP".into(),
                target_port: Some("5353".into()),
            }],
            selector: Vec::new(),
        });
        let addrs: Vec<String> = conntrack_dns_services(&topo)
            .iter()
            .map(|a| a.to_string())
            .collect();
        // The Service port, not the endpoints' targetPort: entries keep the ClusterIP's.
        assert_eq!(addrs, vec!["[fd00:96::a]:53", "10.96.0.10:53"]);
    }

    #[test]
    fn no_ephemeral_access_means_api_only() {
        let acc = answers(&[("patch", "pods/ephemeralcontainers")]);
        let tc = choice(Some(Privilege::Capture), &[]);
        let plan = plan_for(&acc, &tc, None);
        assert_eq!(plan.strategy, Strategy::ApiOnly);
    }
}
