//! Steps 3 and 4, inject and measure: containers into the target and DNS pods, node Jobs,
//! simultaneous captures streamed back, probes and node snapshots. Then cleanup, on every
//! path out (success, error, interruption), bounded in time.

use std::net::SocketAddr;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use dns_doctor_probe::schema::ProbeResult;
use futures::stream::{self, StreamExt};
use kube::Client;
use tokio_util::sync::CancellationToken;

use super::ephemeral::{self, PROBE_BIN};
use super::exec::{self, ExecTarget, RunningCapture};
use super::{cleanup, node_pod, KubeError};
use crate::cli::DoctorConfig;
use crate::evidence::{
    CaptureKind, CapturePoint, EphemeralLeft, Evidence, NodeEvidence, StepError, UpstreamProbe,
};
use crate::plan::{CaptureVia, Plan};
use crate::topology::Topology;

/// How many pods are injected or probed at once: enough for the target and the DNS pods of
/// a usual cluster to start together (the kubelets start them in parallel, so a smaller
/// bound makes every replica beyond it cost a whole container start), few enough to keep
/// a cluster with many DNS replicas from a burst of writes.
const CONCURRENCY: usize = 12;
/// The nodes' conntrack window when no pod probe runs to end it.
const NODE_WINDOW_FIXED: Duration = Duration::from_secs(2);
/// The longest conntrack window when the pod probe ends it (the node probe's own limit is
/// 60 s; the window also stays 10 s inside the probe timeout).
const NODE_WINDOW_MAX: Duration = Duration::from_secs(45);
/// Time allowed for a container or node pod to start.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// Time allowed for tcpdump to start listening.
const READY_TIMEOUT: Duration = Duration::from_secs(15);
/// Upper bound for cleanup, whatever happened before.
pub const CLEANUP_TIMEOUT: Duration = Duration::from_secs(30);
/// Between the end of the probes and the capture stops.
const CAPTURE_GRACE: Duration = Duration::from_millis(300);
/// Largest capture kept per point.
const CAPTURE_MAX_BYTES: u64 = 64 * 1024 * 1024;

/// What the measure step needs.
pub struct ExecuteInput<'a> {
    pub client: &'a Client,
    pub config: &'a DoctorConfig,
    pub topology: &'a Topology,
    pub plan: &'a Plan,
    pub run_id: &'a str,
    /// Where pcaps are written (the bundle directory or a private temporary one).
    pub capture_dir: &'a Path,
    /// Upstream resolvers to query from the DNS pods (Corefile forward targets).
    pub upstreams: &'a [SocketAddr],
    pub cancel: &'a CancellationToken,
    /// Called with a short description as each phase starts.
    pub progress: &'a (dyn Fn(&str) + Sync),
}

/// What was started, so cleanup knows what to stop.
#[derive(Default)]
struct Started {
    /// Every ephemeral container added, recorded the moment the API accepted it, so an
    /// interruption while others are still starting does not lose track of it.
    injected: std::sync::Mutex<Vec<ExecTarget>>,
    /// Containers confirmed running (the probes run in these).
    containers: Vec<(ExecTarget, bool)>,
    node_pods: Vec<(String, ExecTarget)>,
    jobs_created: bool,
}

/// Why the measure step ended early.
#[derive(Debug)]
pub enum ExecuteError {
    Interrupted(Evidence),
    Fatal(KubeError, Evidence),
}

/// Inject, measure, clean up. Evidence is returned even when a step failed; only a failure
/// that makes the whole run meaningless (the target's container cannot start) is fatal.
pub async fn execute(input: &ExecuteInput<'_>) -> Result<Evidence, ExecuteError> {
    let mut started = Started::default();
    let mut evidence = Evidence::default();
    let outcome = tokio::select! {
        r = measure(input, &mut started, &mut evidence) => Some(r),
        () = input.cancel.cancelled() => None,
    };
    (input.progress)("cleaning up");
    clean_up(input, &started, &mut evidence).await;
    match outcome {
        None => Err(ExecuteError::Interrupted(evidence)),
        Some(Err(e)) => Err(ExecuteError::Fatal(e, evidence)),
        Some(Ok(())) => Ok(evidence),
    }
}

fn probe_argv(run_id: &str, mode: &str, args: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut v = vec![
        PROBE_BIN.to_string(),
        mode.to_string(),
        "--run".into(),
        run_id.to_string(),
    ];
    v.extend(args);
    v
}

/// The DNS pods to query the upstream from: one per node, since the way out to the upstream
/// is the node's (its firewall, its routes, its security group), not the pod's.
fn one_per_node<'a>(
    dns_execs: &'a [(usize, ExecTarget)],
    plan: &Plan,
) -> Vec<&'a (usize, ExecTarget)> {
    let mut nodes: Vec<Option<&str>> = Vec::new();
    dns_execs
        .iter()
        .filter(|(i, _)| {
            let node = plan.dns_pods.get(*i).and_then(|d| d.node.as_deref());
            // A pod whose node is unknown is kept: nothing says it shares a node.
            if node.is_some() && nodes.contains(&node) {
                return false;
            }
            nodes.push(node);
            true
        })
        .collect()
}

/// Ends the nodes' conntrack windows (`stop --only node`), again every second while the
/// node probes still run: a stop sent before a node probe's process started finds nothing.
async fn end_node_windows(
    client: &Client,
    run_id: &str,
    started: &Started,
    nodes_done: &tokio::sync::Notify,
    window: Duration,
) {
    let argv = probe_argv(run_id, "stop", ["--only".to_string(), "node".to_string()]);
    let deadline = tokio::time::Instant::now() + window;
    while tokio::time::Instant::now() < deadline {
        futures::future::join_all(
            started
                .node_pods
                .iter()
                .map(|(_, t)| exec::run(client, t, &argv, Duration::from_secs(10))),
        )
        .await;
        tokio::select! {
            () = nodes_done.notified() => return,
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}

async fn measure(
    input: &ExecuteInput<'_>,
    started: &mut Started,
    evidence: &mut Evidence,
) -> Result<(), KubeError> {
    let ExecuteInput {
        client,
        config,
        topology,
        plan,
        run_id,
        ..
    } = *input;
    let lifetime = config.timeout + Duration::from_secs(30);
    let container_name = format!("dns-doctor-{run_id}");

    (input.progress)("starting probe containers and node pods");
    // Node Jobs first: they take longest to schedule.
    for (i, node) in plan.nodes.iter().enumerate() {
        let job = node_pod::job_spec(
            &format!("dns-doctor-{run_id}-{i}"),
            &plan.node_namespace,
            run_id,
            node,
            &config.image,
            lifetime,
        );
        // Set before the call: an interruption during it must still delete by label.
        started.jobs_created = true;
        match node_pod::create(client, &job).await {
            Ok(()) => {}
            Err(e) => evidence.step_errors.push(StepError {
                step: format!("node pod on {node}"),
                error: e.to_string(),
            }),
        }
    }

    // Ephemeral containers: the target first (a failure there is fatal), then the DNS pods.
    let mut injections: Vec<(String, String, String, ephemeral::Privilege)> = Vec::new();
    if let Some(p) = plan.target_privilege {
        let c = topology
            .target
            .containers
            .first()
            .cloned()
            .unwrap_or_default();
        injections.push((
            topology.target.namespace.clone(),
            topology.target.name.clone(),
            c,
            p,
        ));
    }
    for d in &plan.dns_pods {
        injections.push((
            d.namespace.clone(),
            d.name.clone(),
            d.container.clone(),
            d.privilege,
        ));
    }
    let injected = &started.injected;
    let results: Vec<(usize, Result<(), KubeError>)> = stream::iter(injections.iter().enumerate())
        .map(|(i, (ns, pod, target_c, privilege))| {
            let spec = ephemeral::container_spec(
                &container_name,
                run_id,
                &config.image,
                target_c,
                *privilege,
                lifetime,
            );
            async move {
                let r = async {
                    ephemeral::inject(client, ns, pod, &spec).await?;
                    injected
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .push(ExecTarget {
                            namespace: ns.clone(),
                            pod: pod.clone(),
                            container: spec.name.clone(),
                        });
                    ephemeral::wait_running(
                        client,
                        ns,
                        pod,
                        &spec.name,
                        &config.image,
                        START_TIMEOUT,
                    )
                    .await
                }
                .await;
                (i, r)
            }
        })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    let mut target_exec = None;
    let mut dns_execs: Vec<(usize, ExecTarget)> = Vec::new();
    let mut fatal = None;
    let mut sorted = results;
    sorted.sort_by_key(|(i, _)| *i);
    for (i, r) in sorted {
        let (ns, pod, _, _) = &injections[i];
        let target = ExecTarget {
            namespace: ns.clone(),
            pod: pod.clone(),
            container: container_name.clone(),
        };
        let is_target = plan.target_privilege.is_some() && i == 0;
        match r {
            Ok(()) => {
                started.containers.push((target.clone(), true));
                evidence.ephemeral_containers.push(EphemeralLeft {
                    pod: format!("{ns}/{pod}"),
                    container: container_name.clone(),
                    terminated: false,
                });
                if is_target {
                    target_exec = Some(target);
                } else {
                    dns_execs.push((i - usize::from(plan.target_privilege.is_some()), target));
                }
            }
            Err(e) => {
                // Added but not running still leaves an entry in the spec.
                if !matches!(
                    e,
                    KubeError::Forbidden { .. } | KubeError::AdmissionRejected { .. }
                ) {
                    evidence.ephemeral_containers.push(EphemeralLeft {
                        pod: format!("{ns}/{pod}"),
                        container: container_name.clone(),
                        terminated: false,
                    });
                    started.containers.push((target, false));
                }
                if is_target {
                    fatal = Some(e);
                } else {
                    evidence.step_errors.push(StepError {
                        step: format!("probe container in {ns}/{pod}"),
                        error: e.to_string(),
                    });
                }
            }
        }
    }
    if let Some(e) = fatal {
        return Err(e);
    }

    tracing::debug!(
        containers = started.containers.len(),
        "ephemeral containers started"
    );
    // Node pods: wait until they run.
    if started.jobs_created {
        let waits: Vec<(String, Result<String, KubeError>)> =
            stream::iter(plan.nodes.iter().enumerate())
                .map(|(i, node)| async move {
                    let job = format!("dns-doctor-{run_id}-{i}");
                    (
                        node.clone(),
                        node_pod::wait_running(
                            client,
                            &plan.node_namespace,
                            &job,
                            node,
                            &config.image,
                            START_TIMEOUT,
                        )
                        .await,
                    )
                })
                .buffer_unordered(CONCURRENCY)
                .collect()
                .await;
        for (node, r) in waits {
            match r {
                Ok(pod) => started.node_pods.push((
                    node,
                    ExecTarget {
                        namespace: plan.node_namespace.clone(),
                        pod,
                        container: node_pod::CONTAINER.into(),
                    },
                )),
                Err(e) => evidence.step_errors.push(StepError {
                    step: format!("node pod on {node}"),
                    error: e.to_string(),
                }),
            }
        }
        started.node_pods.sort_by(|a, b| a.0.cmp(&b.0));
    }

    tracing::debug!(nodes = started.node_pods.len(), "node pods running");
    // Captures, all at once, each streamed into its file while written.
    let mut captures: Vec<(RunningCapture, CaptureKind)> = Vec::new();
    if config.capture {
        (input.progress)("starting captures");
        let secs = config.capture_seconds.to_string();
        let cap_args = |extra: Vec<String>| {
            let mut a = vec![
                "--output".into(),
                "-".into(),
                "--seconds".into(),
                secs.clone(),
                "--max-bytes".into(),
                CAPTURE_MAX_BYTES.to_string(),
                "--interface".into(),
                "any".into(),
            ];
            a.extend(extra);
            probe_argv(run_id, "capture", a)
        };
        let mut to_start: Vec<(ExecTarget, String, CaptureKind, Vec<String>)> = Vec::new();
        match (plan.target_capture, &target_exec) {
            (CaptureVia::Ephemeral, Some(t)) => {
                to_start.push((
                    t.clone(),
                    format!("pod-{}", topology.target.name),
                    CaptureKind::Pod,
                    cap_args(vec![]),
                ));
            }
            (CaptureVia::NodeNsenter, _) => {
                let node = topology.target.node.clone().unwrap_or_default();
                match started.node_pods.iter().find(|(n, _)| *n == node) {
                    Some((_, np)) => {
                        match find_pod_pid(client, np, run_id, &topology.target.uid).await {
                            Ok(pid) => to_start.push((
                                np.clone(),
                                format!("pod-{}", topology.target.name),
                                CaptureKind::Pod,
                                cap_args(vec!["--netns-pid".into(), pid.to_string()]),
                            )),
                            Err(e) => evidence.step_errors.push(StepError {
                                step: "capture in the target pod via its node".into(),
                                error: e.to_string(),
                            }),
                        }
                    }
                    None => evidence.step_errors.push(StepError {
                        step: "capture in the target pod via its node".into(),
                        error: format!("no node pod runs on {node}"),
                    }),
                }
            }
            _ => {}
        }
        for (i, t) in &dns_execs {
            if plan.dns_pods[*i].capture {
                to_start.push((
                    t.clone(),
                    format!("dns-{}", plan.dns_pods[*i].name),
                    CaptureKind::DnsPod,
                    cap_args(vec![]),
                ));
            }
        }
        for (node, t) in &started.node_pods {
            to_start.push((
                t.clone(),
                format!("node-{node}"),
                CaptureKind::Node,
                cap_args(vec![]),
            ));
        }
        // Opened at once: one exec after the other costs a round trip per capture point.
        let opened = futures::future::join_all(to_start.into_iter().map(
            |(target, name, kind, argv)| async move {
                let file = input.capture_dir.join(format!("{}.pcap", sanitize(&name)));
                let r = exec::start_capture(client, &target, &name, &argv, &file).await;
                (name, kind, r)
            },
        ))
        .await;
        for (name, kind, r) in opened {
            match r {
                Ok(c) => captures.push((c, kind)),
                Err(e) => evidence.step_errors.push(StepError {
                    step: format!("capture {name}"),
                    error: e.to_string(),
                }),
            }
        }
        let ready: Vec<bool> = futures::future::join_all(
            captures
                .iter_mut()
                .map(|(c, _)| c.wait_ready(READY_TIMEOUT)),
        )
        .await;
        for ((c, _), ok) in captures.iter().zip(ready) {
            if !ok {
                evidence.step_errors.push(StepError {
                    step: format!("capture {}", c.name),
                    error: format!(
                        "tcpdump did not report listening within {}s",
                        READY_TIMEOUT.as_secs()
                    ),
                });
            }
        }
    }

    // Probes and node snapshots, concurrently.
    (input.progress)("probing DNS");
    let probe_timeout = config.timeout.min(Duration::from_secs(120));
    let pod_probe = async {
        let Some(t) = &target_exec else { return None };
        let mut args: Vec<String> = Vec::new();
        for name in &plan.probe_names {
            args.extend(["--name".into(), name.clone()]);
        }
        for ep in &plan.probe_endpoints {
            args.extend(["--endpoint".into(), ep.to_string()]);
        }
        // The cluster DNS address too, even when the pod's resolv.conf does not name it
        // (dnsPolicy None or Default, a NodeLocal cache): the probe tests an address once.
        for ip in &topology.cluster_dns.ips {
            args.extend(["--server".into(), ip.to_string()]);
        }
        args.extend([
            "--parallel-rounds".into(),
            config.parallel_rounds.to_string(),
            "--parallel-wait-ms".into(),
            crate::plan::PARALLEL_WAIT_MS.to_string(),
            "--timeout-ms".into(),
            crate::plan::PROBE_QUERY_TIMEOUT_MS.to_string(),
        ]);
        args.extend([
            "--deadline-secs".into(),
            probe_timeout
                .as_secs()
                .saturating_sub(5)
                .max(10)
                .to_string(),
        ]);
        Some(exec::run_probe(client, t, &probe_argv(run_id, "pod", args), probe_timeout).await)
    };
    // The nodes' conntrack windows span the pod probe: they end when it is done (a stop
    // that ends the window, not the snapshot), else after NODE_WINDOW_FIXED.
    let windows_follow_pod = target_exec.is_some();
    let window = if windows_follow_pod {
        NODE_WINDOW_MAX
            .min(probe_timeout.saturating_sub(Duration::from_secs(10)))
            .max(NODE_WINDOW_FIXED)
    } else {
        NODE_WINDOW_FIXED
    };
    let window_ms = window.as_millis().to_string();
    let nodes_done = tokio::sync::Notify::new();
    let node_probes = async {
        let results = futures::future::join_all(started.node_pods.iter().map(|(node, t)| {
            let window_ms = window_ms.clone();
            async move {
                let base: Vec<String> = vec![
                    "--node-name".into(),
                    node.clone(),
                    "--conntrack-window-ms".into(),
                    window_ms,
                ];
                // The DNS pods on this node: their cgroup CPU and memory counters.
                let mut args = base.clone();
                for p in topology
                    .dns_pods
                    .iter()
                    .filter(|p| p.node.as_deref() == Some(node.as_str()) && !p.uid.is_empty())
                {
                    args.extend(["--pod-uid".into(), p.uid.clone()]);
                }
                let mut result =
                    exec::run_probe(client, t, &probe_argv(run_id, "node", args), probe_timeout)
                        .await;
                // A debug image older than the plugin does not know --pod-uid: the snapshot
                // without the cgroup reads beats none.
                if result
                    .as_ref()
                    .is_err_and(|e| e.to_string().contains("'--pod-uid'"))
                {
                    tracing::debug!(node = %node, "node probe without --pod-uid (older image)");
                    result = exec::run_probe(
                        client,
                        t,
                        &probe_argv(run_id, "node", base),
                        probe_timeout,
                    )
                    .await;
                }
                (node.clone(), result)
            }
        }))
        .await;
        nodes_done.notify_one();
        results
    };
    let pod_probe = async {
        let result = pod_probe.await;
        if windows_follow_pod && !started.node_pods.is_empty() {
            end_node_windows(client, run_id, started, &nodes_done, window).await;
        }
        result
    };
    let external: Vec<String> = config
        .names
        .iter()
        .filter(|n| !crate::dns_config::names::is_cluster_name(n, &topology.cluster_dns.domain))
        .cloned()
        .collect();
    // Nothing to ask the upstream when every name is a cluster name.
    let upstream_targets = if external.is_empty() {
        Vec::new()
    } else {
        one_per_node(&dns_execs, plan)
    };
    let upstream_probes = futures::future::join_all(upstream_targets.iter().map(|(i, t)| {
        let external = external.clone();
        async move {
            let mut args: Vec<String> = Vec::new();
            for n in &external {
                args.extend(["--name".into(), n.clone()]);
            }
            if input.upstreams.is_empty() {
                // `forward . /etc/resolv.conf`: the DNS pod's own resolv.conf names the upstream.
                args.extend(["--role".into(), "upstream".into()]);
            } else {
                args.push("--no-resolv-conf".into());
                for u in input.upstreams {
                    args.extend(["--server".into(), u.to_string()]);
                }
                args.extend(["--role".into(), "upstream".into()]);
            }
            args.extend(["--parallel-rounds".into(), "0".into()]);
            args.extend(["--deadline-secs".into(), "30".into()]);
            (
                format!("{}/{}", plan.dns_pods[*i].namespace, plan.dns_pods[*i].name),
                exec::run_probe(
                    client,
                    t,
                    &probe_argv(run_id, "pod", args),
                    Duration::from_secs(40),
                )
                .await,
            )
        }
    }));
    let (pod_result, node_results, upstream_results) =
        tokio::join!(pod_probe, node_probes, upstream_probes);
    match pod_result {
        Some(Ok(out)) => match out.result {
            ProbeResult::Pod(r) => evidence.pod_probe = Some(r),
            other => evidence.step_errors.push(StepError {
                step: "pod probe".into(),
                error: format!("unexpected document {other:?}"),
            }),
        },
        Some(Err(e)) => evidence.step_errors.push(StepError {
            step: "pod probe".into(),
            error: e.to_string(),
        }),
        None => {}
    }
    for (node, r) in node_results {
        match r {
            Ok(out) => match out.result {
                ProbeResult::Node(snapshot) => evidence.nodes.push(NodeEvidence { node, snapshot }),
                _ => evidence.step_errors.push(StepError {
                    step: format!("node snapshot {node}"),
                    error: "unexpected probe document".into(),
                }),
            },
            Err(e) => evidence.step_errors.push(StepError {
                step: format!("node snapshot {node}"),
                error: e.to_string(),
            }),
        }
    }
    for (pod, r) in upstream_results {
        match r {
            Ok(out) => match out.result {
                ProbeResult::Pod(report) => evidence.upstream_probes.push(UpstreamProbe {
                    dns_pod: pod,
                    report,
                }),
                _ => evidence.step_errors.push(StepError {
                    step: format!("upstream probe in {pod}"),
                    error: "unexpected probe document".into(),
                }),
            },
            Err(e) => evidence.step_errors.push(StepError {
                step: format!("upstream probe in {pod}"),
                error: e.to_string(),
            }),
        }
    }

    // Stop the captures now that the probes are done, and collect the files.
    if !captures.is_empty() {
        (input.progress)("collecting captures");
        // Every probe query has been answered or has timed out; a moment of grace lets
        // replies still in flight and the application's own retransmissions land.
        tokio::time::sleep(CAPTURE_GRACE).await;
        let mut targets: Vec<&ExecTarget> = started
            .containers
            .iter()
            .filter(|(_, ok)| *ok)
            .map(|(t, _)| t)
            .chain(started.node_pods.iter().map(|(_, t)| t))
            .collect();
        targets.dedup();
        // All at once: with many DNS replicas, one stop after the other adds up.
        let argv = probe_argv(
            run_id,
            "stop",
            ["--only".to_string(), "capture".to_string()],
        );
        let stops = futures::future::join_all(targets.into_iter().map(|t| {
            let argv = &argv;
            async move { (t, exec::run(client, t, argv, Duration::from_secs(10)).await) }
        }))
        .await;
        for (t, r) in stops {
            if let Err(e) = r {
                evidence.step_errors.push(StepError {
                    step: format!("stop capture in {t}"),
                    error: e.to_string(),
                });
            }
        }
        let finish_timeout = Duration::from_secs(config.capture_seconds + 15);
        let results = futures::future::join_all(captures.into_iter().map(|(c, kind)| async move {
            let name = c.name.clone();
            let file = c.file.clone();
            (name, kind, file, c.finish(finish_timeout).await)
        }))
        .await;
        for (name, kind, file, r) in results {
            evidence.captures.push(CapturePoint {
                name,
                kind,
                file: (r.bytes > 0).then_some(file),
                bytes: r.bytes,
                summary: r.summary,
                error: r.error,
            });
        }
    }
    Ok(())
}

/// Find a process of the target pod on its node, for nsenter, by the pod UID in
/// /proc/<pid>/cgroup (works for any runtime, cgroup version and driver).
async fn find_pod_pid(
    client: &Client,
    node_pod: &ExecTarget,
    run_id: &str,
    uid: &str,
) -> Result<u32, KubeError> {
    let argv = probe_argv(run_id, "find-pod", ["--uid".to_string(), uid.to_string()]);
    let out = exec::run(client, node_pod, &argv, Duration::from_secs(15)).await?;
    let v: serde_json::Value =
        serde_json::from_slice(&out.stdout).map_err(|e| KubeError::Other {
            what: "find the target pod's processes on its node".into(),
            message: e.to_string(),
        })?;
    v.get("pids")
        .and_then(|p| p.as_array())
        .and_then(|a| a.iter().filter_map(|x| x.as_u64()).next())
        .and_then(|p| u32::try_from(p).ok())
        .ok_or_else(|| KubeError::Other {
            what: "find the target pod's processes on its node".into(),
            message: format!("no process of pod UID {uid} found"),
        })
}

fn sanitize(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Stop everything this run started. Bounded: whatever is not done in time is left to the
/// containers' own deadlines and the Jobs' TTL.
async fn clean_up(input: &ExecuteInput<'_>, started: &Started, evidence: &mut Evidence) {
    let injected: Vec<ExecTarget> = started
        .injected
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    for t in &injected {
        let pod = format!("{}/{}", t.namespace, t.pod);
        if !evidence
            .ephemeral_containers
            .iter()
            .any(|e| e.pod == pod && e.container == t.container)
        {
            evidence.ephemeral_containers.push(EphemeralLeft {
                pod,
                container: t.container.clone(),
                terminated: false,
            });
        }
    }
    let work = async {
        // Node Jobs go while the containers are told to stop.
        let delete_jobs = async {
            if started.jobs_created {
                cleanup::delete_run_jobs(input.client, &input.plan.node_namespace, input.run_id)
                    .await
                    .err()
            } else {
                None
            }
        };
        let stops = futures::future::join_all(injected.iter().map(|t| async move {
            let running = started.containers.iter().any(|(c, ok)| c == t && *ok);
            if !running {
                // Interrupted while it was starting: let it start, then end it, instead of
                // leaving it to run until its deadline.
                let _ = ephemeral::wait_running(
                    input.client,
                    &t.namespace,
                    &t.pod,
                    &t.container,
                    &input.config.image,
                    Duration::from_secs(8),
                )
                .await;
            }
            (
                t,
                cleanup::stop_run_in(input.client, t, input.run_id, Duration::from_secs(10)).await,
            )
        }));
        let (stops, jobs_error) = tokio::join!(stops, delete_jobs);
        tracing::debug!("probes stopped, node Jobs deleted");
        if let Some(e) = jobs_error {
            evidence.step_errors.push(StepError {
                step: "delete node pods".into(),
                error: e.to_string(),
            });
        }
        for (t, r) in stops {
            if let Err(e) = r {
                evidence.step_errors.push(StepError {
                    step: format!("stop probe container in {t}"),
                    error: e.to_string(),
                });
            }
        }
        // Confirm the ephemeral containers exited: they stay in the spec, but must not run.
        let ended = futures::future::join_all(evidence.ephemeral_containers.iter().map(|left| {
            let (ns, pod) = left.pod.split_once('/').unwrap_or_default();
            ephemeral::wait_terminated(
                input.client,
                ns,
                pod,
                &left.container,
                Duration::from_secs(10),
            )
        }))
        .await;
        for (left, ended) in evidence.ephemeral_containers.iter_mut().zip(ended) {
            left.terminated = ended;
        }
        tracing::debug!("ephemeral containers confirmed terminated");
    };
    if tokio::time::timeout(CLEANUP_TIMEOUT, work).await.is_err() {
        evidence.step_errors.push(StepError { step: "cleanup".into(), error: format!("not finished within {}s; the containers end at their own deadline and node Jobs are removed by their TTL", CLEANUP_TIMEOUT.as_secs()) });
    }
}

/// Private temporary directory for captures when no bundle directory was asked for.
pub fn private_temp_dir(run_id: &str) -> std::io::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("dns-doctor-{run_id}"));
    std::fs::DirBuilder::new()
        .mode(0o700)
        .recursive(true)
        .create(&dir)?;
    Ok(dir)
}
