//! The script of a run, written before anything starts: which ephemeral containers go into
//! which pods, which node pods run on which nodes, what is captured where, what each probe
//! is asked and for how long. Pure, so every decision is table-tested here; `kube::execute`
//! only carries a script out, phase by phase.

use std::net::SocketAddr;
use std::time::Duration;

use super::{CaptureVia, Plan, PARALLEL_WAIT_MS, PROBE_QUERY_TIMEOUT_MS};
use crate::access::Privilege;
use crate::cli::DoctorConfig;
use crate::evidence::CaptureKind;
use crate::topology::Topology;

/// Where the probe binary lives in the debug image.
pub const PROBE_BIN: &str = "/usr/local/bin/dns-doctor-probe";

/// Largest capture kept per point.
pub const CAPTURE_MAX_BYTES: u64 = 64 * 1024 * 1024;

/// Containers and node pods outlive the run's timeout by this much, then exit by themselves
/// (cleanup normally ends them sooner).
const LIFETIME_MARGIN: Duration = Duration::from_secs(30);

/// The pod probe never gets longer than this, whatever `--timeout` says.
const PROBE_TIMEOUT_MAX: Duration = Duration::from_secs(120);

/// The nodes' conntrack window when no pod probe runs to end it.
const NODE_WINDOW_FIXED: Duration = Duration::from_secs(2);

/// The longest conntrack window when the pod probe ends it (the node probe's own limit is
/// 60 s; the window also stays 10 s inside the probe timeout).
const NODE_WINDOW_MAX: Duration = Duration::from_secs(45);

/// The upstream probe's own deadline, and the exec's limit around it.
const UPSTREAM_DEADLINE_SECS: u64 = 30;
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(40);

/// The probe that reads the target's own rules before the captures.
const FIRST_HOP_TIMEOUT: Duration = Duration::from_secs(10);

/// Captures get this long after `--capture-seconds` to stop and hand over their files.
const CAPTURE_FINISH_MARGIN: Duration = Duration::from_secs(15);

/// Everything a script is written from.
pub struct ScriptInput<'a> {
    pub plan: &'a Plan,
    pub topology: &'a Topology,
    pub config: &'a DoctorConfig,
    pub run_id: &'a str,
    /// Upstream resolvers to query from the DNS pods (the Corefile's forward targets); empty
    /// when the DNS pods forward to their own resolv.conf.
    pub upstreams: &'a [SocketAddr],
}

/// The whole run, in the order `execute` carries it out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunScript {
    pub run_id: String,
    pub image: String,
    /// The name of every ephemeral container of this run.
    pub container_name: String,
    /// How long containers and node pods live at most.
    pub lifetime: Duration,
    pub node_namespace: String,
    /// Phase 1: node pods (Jobs), started first because they take longest to schedule.
    pub node_pods: Vec<NodePodStep>,
    /// Phase 1: ephemeral containers; the target's, when there is one, comes first and is
    /// the only one whose failure ends the run.
    pub containers: Vec<ContainerStep>,
    /// Phase 2, beside the node pods: the target's own rules, read by a probe without
    /// queries, so that its capture also sees the first hop they redirect DNS to (a mesh
    /// sidecar's DNS proxy). Only when the target's capture runs in its container.
    pub first_hop: Option<ProbeStep>,
    /// Phase 3: captures, all opened at once.
    pub captures: Vec<CaptureStep>,
    /// Phase 4: the probes and snapshots, all at once.
    pub pod_probe: Option<ProbeStep>,
    pub node_snapshots: NodeSnapshots,
    pub upstream_probes: Vec<UpstreamStep>,
    /// Phase 5: how long a stopped capture may take to hand over its file.
    pub capture_finish: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodePodStep {
    pub job: String,
    pub node: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContainerRole {
    Target,
    DnsPod,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerStep {
    pub role: ContainerRole,
    pub namespace: String,
    pub pod: String,
    /// The container whose process namespace the probe joins.
    pub target_container: String,
    pub privilege: Privilege,
    pub node: Option<String>,
}

impl ContainerStep {
    pub fn pod_ref(&self) -> String {
        format!("{}/{}", self.namespace, self.pod)
    }
}

/// Where a capture runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CapturePlace {
    /// In the ephemeral container `containers[i]`.
    Container(usize),
    /// From the node pod on `node`, inside the network namespace of the pod with `pod_uid`
    /// (found on the node with `find_argv`; its PID is appended as `--netns-pid`).
    PodNetnsFromNode {
        node: String,
        pod_uid: String,
        find_argv: Vec<String>,
    },
    /// In the node pod on `node`, on the node's own interfaces.
    Node(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaptureStep {
    /// The capture point's name, also the pcap file's stem.
    pub name: String,
    pub kind: CaptureKind,
    pub place: CapturePlace,
    pub argv: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeStep {
    /// Index into [`RunScript::containers`].
    pub container: usize,
    pub argv: Vec<String>,
    pub timeout: Duration,
}

/// The node snapshots, one per node pod, with the conntrack window they span.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeSnapshots {
    /// (node, argv) for each node pod.
    pub argv: Vec<(String, Vec<String>)>,
    pub window: Duration,
    /// The window ends when the pod probe is done (`end_window_argv`), not at its length.
    pub window_follows_pod_probe: bool,
    pub end_window_argv: Vec<String>,
    pub timeout: Duration,
}

/// One upstream probe: from the first running DNS pod among `candidates` (all on one
/// node: the way out to the upstream is the node's, not the pod's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamStep {
    pub node: Option<String>,
    /// Indexes into [`RunScript::containers`], in order of preference.
    pub candidates: Vec<usize>,
    pub argv: Vec<String>,
    pub timeout: Duration,
}

impl RunScript {
    /// The argv that stops every capture of this run in one container.
    pub fn stop_captures_argv(&self) -> Vec<String> {
        probe_argv(&self.run_id, "stop", ["--only".into(), "capture".into()])
    }
}

/// The probe's command line: `PROBE_BIN MODE --run RUN_ID ARGS...`.
pub fn probe_argv(run_id: &str, mode: &str, args: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut v = vec![
        PROBE_BIN.to_string(),
        mode.to_string(),
        "--run".into(),
        run_id.to_string(),
    ];
    v.extend(args);
    v
}

/// Write the script of a run.
pub fn compose(input: &ScriptInput<'_>) -> RunScript {
    let ScriptInput {
        plan,
        topology,
        config,
        run_id,
        upstreams,
    } = *input;
    let node_pods: Vec<NodePodStep> = plan
        .nodes
        .iter()
        .enumerate()
        .map(|(i, node)| NodePodStep {
            job: format!("dns-doctor-{run_id}-{i}"),
            node: node.clone(),
        })
        .collect();
    let containers = containers(plan, topology);
    let probe_timeout = config.timeout.min(PROBE_TIMEOUT_MAX);
    let pod_probe = containers
        .iter()
        .position(|c| c.role == ContainerRole::Target)
        .map(|i| ProbeStep {
            container: i,
            argv: probe_argv(
                run_id,
                "pod",
                pod_probe_args(plan, topology, config, probe_timeout),
            ),
            timeout: probe_timeout,
        });
    let captures = if config.capture {
        captures(plan, topology, config, run_id, &containers, &node_pods)
    } else {
        Vec::new()
    };
    let first_hop = captures.iter().find_map(|c| match c.place {
        CapturePlace::Container(i)
            if c.kind == CaptureKind::Pod && containers[i].role == ContainerRole::Target =>
        {
            Some(ProbeStep {
                container: i,
                argv: probe_argv(
                    run_id,
                    "pod",
                    [
                        "--no-resolv-conf",
                        "--parallel-rounds",
                        "0",
                        "--deadline-secs",
                        &FIRST_HOP_TIMEOUT.as_secs().to_string(),
                    ]
                    .map(str::to_string),
                ),
                timeout: FIRST_HOP_TIMEOUT,
            })
        }
        _ => None,
    });
    RunScript {
        run_id: run_id.to_string(),
        image: config.image.clone(),
        container_name: format!("dns-doctor-{run_id}"),
        lifetime: config.timeout + LIFETIME_MARGIN,
        node_namespace: plan.node_namespace.clone(),
        first_hop,
        captures,
        node_snapshots: node_snapshots(
            run_id,
            topology,
            &node_pods,
            &super::conntrack_dns_services(topology),
            pod_probe.is_some(),
            probe_timeout,
        ),
        upstream_probes: upstream_probes(topology, config, run_id, upstreams, &containers),
        pod_probe,
        containers,
        node_pods,
        capture_finish: Duration::from_secs(config.capture_seconds) + CAPTURE_FINISH_MARGIN,
    }
}

fn containers(plan: &Plan, topology: &Topology) -> Vec<ContainerStep> {
    let mut v = Vec::new();
    if let Some(privilege) = plan.target_privilege {
        v.push(ContainerStep {
            role: ContainerRole::Target,
            namespace: topology.target.namespace.clone(),
            pod: topology.target.name.clone(),
            target_container: topology
                .target
                .containers
                .first()
                .cloned()
                .unwrap_or_default(),
            privilege,
            node: topology.target.node.clone(),
        });
    }
    v.extend(plan.dns_pods.iter().map(|d| ContainerStep {
        role: ContainerRole::DnsPod,
        namespace: d.namespace.clone(),
        pod: d.name.clone(),
        target_container: d.container.clone(),
        privilege: d.privilege,
        node: d.node.clone(),
    }));
    v
}

/// What the pod probe asks: the names as an application resolves them, the ready DNS
/// endpoints directly, and the cluster DNS address even when the pod's resolv.conf does not
/// name it (dnsPolicy None or Default, a NodeLocal cache).
fn pod_probe_args(
    plan: &Plan,
    topology: &Topology,
    config: &DoctorConfig,
    probe_timeout: Duration,
) -> Vec<String> {
    let mut args: Vec<String> = Vec::new();
    for name in &plan.probe_names {
        args.extend(["--name".into(), name.clone()]);
    }
    for ep in &plan.probe_endpoints {
        args.extend(["--endpoint".into(), ep.to_string()]);
    }
    for ip in &topology.cluster_dns.ips {
        args.extend(["--server".into(), ip.to_string()]);
    }
    args.extend([
        "--parallel-rounds".into(),
        config.parallel_rounds.to_string(),
        "--parallel-wait-ms".into(),
        PARALLEL_WAIT_MS.to_string(),
        "--timeout-ms".into(),
        PROBE_QUERY_TIMEOUT_MS.to_string(),
        "--deadline-secs".into(),
        probe_timeout
            .as_secs()
            .saturating_sub(5)
            .max(10)
            .to_string(),
    ]);
    args
}

fn captures(
    plan: &Plan,
    topology: &Topology,
    config: &DoctorConfig,
    run_id: &str,
    containers: &[ContainerStep],
    node_pods: &[NodePodStep],
) -> Vec<CaptureStep> {
    let cap_argv = |extra: Vec<String>| {
        let mut a = vec![
            "--output".into(),
            "-".into(),
            "--seconds".into(),
            config.capture_seconds.to_string(),
            "--max-bytes".into(),
            CAPTURE_MAX_BYTES.to_string(),
            "--interface".into(),
            "any".into(),
        ];
        a.extend(extra);
        probe_argv(run_id, "capture", a)
    };
    let pod_point = format!("pod-{}", topology.target.name);
    let mut v = Vec::new();
    let target = containers
        .iter()
        .position(|c| c.role == ContainerRole::Target);
    match (plan.target_capture, target) {
        (CaptureVia::Ephemeral, Some(i)) => v.push(CaptureStep {
            name: pod_point,
            kind: CaptureKind::Pod,
            place: CapturePlace::Container(i),
            argv: cap_argv(Vec::new()),
        }),
        (CaptureVia::NodeNsenter, _) => v.push(CaptureStep {
            name: pod_point,
            kind: CaptureKind::Pod,
            place: CapturePlace::PodNetnsFromNode {
                node: topology.target.node.clone().unwrap_or_default(),
                pod_uid: topology.target.uid.clone(),
                find_argv: probe_argv(
                    run_id,
                    "find-pod",
                    ["--uid".into(), topology.target.uid.clone()],
                ),
            },
            argv: cap_argv(Vec::new()),
        }),
        _ => {}
    }
    let dns_captures = plan.dns_pods.iter().filter(|d| d.capture);
    for d in dns_captures {
        let Some(i) = containers.iter().position(|c| {
            c.role == ContainerRole::DnsPod && c.namespace == d.namespace && c.pod == d.name
        }) else {
            continue;
        };
        v.push(CaptureStep {
            name: format!("dns-{}", d.name),
            kind: CaptureKind::DnsPod,
            place: CapturePlace::Container(i),
            argv: cap_argv(Vec::new()),
        });
    }
    for n in node_pods {
        v.push(CaptureStep {
            name: format!("node-{}", n.node),
            kind: CaptureKind::Node,
            place: CapturePlace::Node(n.node.clone()),
            argv: cap_argv(Vec::new()),
        });
    }
    v
}

/// The nodes' conntrack windows span the pod probe: they end when it is done, else after
/// a short fixed window. Each node lists the UDP conntrack entries towards `dns_services`
/// and reads the cgroup CPU and memory counters of the DNS pods it runs.
fn node_snapshots(
    run_id: &str,
    topology: &Topology,
    node_pods: &[NodePodStep],
    dns_services: &[SocketAddr],
    pod_probe: bool,
    probe_timeout: Duration,
) -> NodeSnapshots {
    let window = if pod_probe {
        NODE_WINDOW_MAX
            .min(probe_timeout.saturating_sub(Duration::from_secs(10)))
            .max(NODE_WINDOW_FIXED)
    } else {
        NODE_WINDOW_FIXED
    };
    NodeSnapshots {
        argv: node_pods
            .iter()
            .map(|n| {
                let mut args = vec![
                    "--node-name".into(),
                    n.node.clone(),
                    "--conntrack-window-ms".into(),
                    window.as_millis().to_string(),
                ];
                for service in dns_services {
                    args.extend(["--dns-service".into(), service.to_string()]);
                }
                for p in topology
                    .dns_pods
                    .iter()
                    .filter(|p| p.node.as_deref() == Some(n.node.as_str()) && !p.uid.is_empty())
                {
                    args.extend(["--pod-uid".into(), p.uid.clone()]);
                }
                (n.node.clone(), probe_argv(run_id, "node", args))
            })
            .collect(),
        window,
        window_follows_pod_probe: pod_probe,
        end_window_argv: probe_argv(run_id, "stop", ["--only".into(), "node".into()]),
        timeout: probe_timeout,
    }
}

/// One upstream probe per node that runs a DNS pod with a probe container, for the names
/// that are not cluster names (nothing to ask the upstream when every name is one).
fn upstream_probes(
    topology: &Topology,
    config: &DoctorConfig,
    run_id: &str,
    upstreams: &[SocketAddr],
    containers: &[ContainerStep],
) -> Vec<UpstreamStep> {
    let external: Vec<&String> = config
        .names
        .iter()
        .filter(|n| !crate::dns_config::names::is_cluster_name(n, &topology.cluster_dns.domain))
        .collect();
    if external.is_empty() {
        return Vec::new();
    }
    let mut args: Vec<String> = Vec::new();
    for n in external {
        args.extend(["--name".into(), n.clone()]);
    }
    if !upstreams.is_empty() {
        args.push("--no-resolv-conf".into());
        for u in upstreams {
            args.extend(["--server".into(), u.to_string()]);
        }
    }
    // Without forward targets (`forward . /etc/resolv.conf`) the DNS pod's own resolv.conf
    // names the upstream.
    args.extend([
        "--role".into(),
        "upstream".into(),
        "--parallel-rounds".into(),
        "0".into(),
        "--deadline-secs".into(),
        UPSTREAM_DEADLINE_SECS.to_string(),
    ]);
    let argv = probe_argv(run_id, "pod", args);
    let mut steps: Vec<UpstreamStep> = Vec::new();
    for (i, c) in containers.iter().enumerate() {
        if c.role != ContainerRole::DnsPod {
            continue;
        }
        // A pod whose node is unknown gets its own step: nothing says it shares a node.
        match steps
            .iter_mut()
            .find(|s| c.node.is_some() && s.node == c.node)
        {
            Some(s) => s.candidates.push(i),
            None => steps.push(UpstreamStep {
                node: c.node.clone(),
                candidates: vec![i],
                argv: argv.clone(),
                timeout: UPSTREAM_TIMEOUT,
            }),
        }
    }
    steps
}

#[cfg(test)]
mod tests;
