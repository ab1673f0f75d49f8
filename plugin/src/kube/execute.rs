//! Step 3, execute: carry out a [`RunScript`], phase by phase: start the node pods and
//! inject the ephemeral containers, wait for the node pods, open the captures, run the
//! probes and snapshots, collect the captures, clean up. What to do where was decided by
//! the plan; this module only does it, and records what happened as [`Evidence`].

use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use dns_doctor_schema::{PodReport, ProbeResult};
use futures::stream::{self, StreamExt};
use kube::Client;
use tokio_util::sync::CancellationToken;

use super::exec::{self, ExecOutput, ExecTarget, RunningCapture};
use super::{cleanup, ephemeral, node_pod, KubeError};
use crate::evidence::{
    CaptureKind, CapturePoint, EphemeralLeft, Evidence, NodeEvidence, StepError, UpstreamProbe,
};
use crate::plan::script::{CapturePlace, CaptureStep, ContainerRole, ProbeStep, RunScript};

/// How many pods are injected or probed at once: enough for the target and the DNS pods of
/// a usual cluster to start together (the kubelets start them in parallel, so a smaller
/// bound makes every replica beyond it cost a whole container start), few enough to keep
/// a cluster with many DNS replicas from a burst of writes.
const CONCURRENCY: usize = 12;
/// Time allowed for a container or node pod to start.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// Time allowed for tcpdump to start listening.
const READY_TIMEOUT: Duration = Duration::from_secs(15);
/// Upper bound for cleanup, whatever happened before.
pub const CLEANUP_TIMEOUT: Duration = Duration::from_secs(30);
/// Between the end of the probes and the capture stops: replies still in flight and the
/// application's own retransmissions land.
const CAPTURE_GRACE: Duration = Duration::from_millis(300);
/// Limit for one short exec (a stop, a lookup of the pod's processes).
const SHORT_EXEC: Duration = Duration::from_secs(10);

/// What the execute step needs.
pub struct ExecuteInput<'a> {
    pub client: &'a Client,
    pub script: &'a RunScript,
    /// Where pcaps are written (the bundle directory or a private temporary one).
    pub capture_dir: &'a Path,
    pub cancel: &'a CancellationToken,
    /// The target capture's tcpdump filter from the rules in the target's own network
    /// namespace (pure; see [`RunScript::first_hop`]).
    pub pod_capture_filter: &'a (dyn Fn(&PodReport) -> Option<String> + Sync),
    /// Called with a short description as each phase starts.
    pub progress: &'a (dyn Fn(&str) + Sync),
}

/// What was started, so later phases know what runs and cleanup knows what to stop.
#[derive(Default)]
struct Started {
    /// Every ephemeral container added, recorded the moment the API accepted it, so an
    /// interruption while others are still starting does not lose track of it.
    injected: Mutex<Vec<ExecTarget>>,
    /// For each of the script's containers, where it runs once it is confirmed running.
    running: Vec<Option<ExecTarget>>,
    /// Containers added whose start failed (beside an exited container, or not in time):
    /// nothing to end in them at cleanup.
    never_ran: Vec<ExecTarget>,
    /// Node pods confirmed running, by node.
    node_pods: Vec<(String, ExecTarget)>,
    jobs_created: bool,
}

impl Started {
    fn node_pod(&self, node: &str) -> Option<&ExecTarget> {
        self.node_pods
            .iter()
            .find(|(n, _)| n == node)
            .map(|(_, t)| t)
    }
}

/// Why the execute step ended early.
#[derive(Debug)]
pub enum ExecuteError {
    Interrupted(Evidence),
    Fatal(KubeError, Evidence),
}

/// Carry out the script, then clean up. Evidence is returned even when a step failed; only
/// a failure that makes the whole run meaningless (the target's container cannot start) is
/// fatal.
pub async fn execute(input: &ExecuteInput<'_>) -> Result<Evidence, ExecuteError> {
    let mut started = Started::default();
    let mut evidence = Evidence::default();
    let outcome = tokio::select! {
        r = carry_out(input, &mut started, &mut evidence) => Some(r),
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

async fn carry_out(
    input: &ExecuteInput<'_>,
    started: &mut Started,
    evidence: &mut Evidence,
) -> Result<(), KubeError> {
    (input.progress)("starting probe containers and node pods");
    create_node_pods(input, started, evidence).await;
    inject_containers(input, started, evidence).await?;
    let first_hop = input.script.first_hop.as_ref().and_then(|step| {
        let t = started.running.get(step.container).cloned().flatten()?;
        Some((step, t))
    });
    let (pod_filter, ()) = tokio::join!(
        read_first_hop(input, first_hop),
        wait_node_pods(input, started, evidence)
    );
    let captures = if input.script.captures.is_empty() {
        Vec::new()
    } else {
        (input.progress)("starting captures");
        start_captures(input, started, pod_filter, evidence).await
    };
    (input.progress)("probing DNS");
    run_probes(input, started, evidence).await;
    if !captures.is_empty() {
        (input.progress)("collecting captures");
        collect_captures(input, started, captures, evidence).await;
    }
    Ok(())
}

/// Phase 1a: the node Jobs, first because they take longest to schedule.
async fn create_node_pods(
    input: &ExecuteInput<'_>,
    started: &mut Started,
    evidence: &mut Evidence,
) {
    let script = input.script;
    for step in &script.node_pods {
        let job = node_pod::job_spec(
            &step.job,
            &script.node_namespace,
            &script.run_id,
            &step.node,
            &script.image,
            script.lifetime,
        );
        // Set before the call: an interruption during it must still delete by label.
        started.jobs_created = true;
        if let Err(e) = node_pod::create(input.client, &job).await {
            evidence.step_errors.push(StepError {
                step: format!("node pod on {}", step.node),
                error: e.to_string(),
            });
        }
    }
}

/// Phase 1b: the ephemeral containers, all at once. A failure in the target pod is fatal;
/// in a DNS pod it is recorded and the run goes on without that pod's probe.
async fn inject_containers(
    input: &ExecuteInput<'_>,
    started: &mut Started,
    evidence: &mut Evidence,
) -> Result<(), KubeError> {
    let script = input.script;
    let client = input.client;
    let injected = &started.injected;
    let mut results: Vec<(usize, Result<(), KubeError>)> =
        stream::iter(script.containers.iter().enumerate())
            .map(|(i, step)| {
                let spec = ephemeral::container_spec(
                    &script.container_name,
                    &script.run_id,
                    &script.image,
                    &step.target_container,
                    step.privilege,
                    script.lifetime,
                );
                async move {
                    let r = async {
                        ephemeral::inject(client, &step.namespace, &step.pod, &spec).await?;
                        injected
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .push(ExecTarget {
                                namespace: step.namespace.clone(),
                                pod: step.pod.clone(),
                                container: spec.name.clone(),
                            });
                        ephemeral::wait_running(
                            client,
                            &step.namespace,
                            &step.pod,
                            &spec.name,
                            &script.image,
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
    results.sort_by_key(|(i, _)| *i);
    started.running = vec![None; script.containers.len()];
    let mut fatal = None;
    for (i, r) in results {
        let step = &script.containers[i];
        let target = ExecTarget {
            namespace: step.namespace.clone(),
            pod: step.pod.clone(),
            container: script.container_name.clone(),
        };
        let left = EphemeralLeft {
            pod: step.pod_ref(),
            container: script.container_name.clone(),
            terminated: false,
        };
        match r {
            Ok(()) => {
                evidence.ephemeral_containers.push(left);
                started.running[i] = Some(target);
            }
            Err(e) => {
                // Added but not running still leaves an entry in the spec.
                if !matches!(
                    e,
                    KubeError::Forbidden { .. } | KubeError::AdmissionRejected { .. }
                ) {
                    evidence.ephemeral_containers.push(left);
                    started.never_ran.push(target);
                }
                if step.role == ContainerRole::Target {
                    fatal = Some(e);
                } else {
                    evidence.step_errors.push(StepError {
                        step: format!("probe container in {}", step.pod_ref()),
                        error: e.to_string(),
                    });
                }
            }
        }
    }
    tracing::debug!(
        running = started.running.iter().flatten().count(),
        "ephemeral containers started"
    );
    fatal.map_or(Ok(()), Err)
}

/// Phase 2: wait until the node pods run.
async fn wait_node_pods(input: &ExecuteInput<'_>, started: &mut Started, evidence: &mut Evidence) {
    if !started.jobs_created {
        return;
    }
    let script = input.script;
    let waits: Vec<(String, Result<String, KubeError>)> = stream::iter(&script.node_pods)
        .map(|step| async move {
            let r = node_pod::wait_running(
                input.client,
                &script.node_namespace,
                &step.job,
                &step.node,
                &script.image,
                START_TIMEOUT,
            )
            .await;
            (step.node.clone(), r)
        })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    for (node, r) in waits {
        match r {
            Ok(pod) => started.node_pods.push((
                node,
                ExecTarget {
                    namespace: script.node_namespace.clone(),
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
    tracing::debug!(nodes = started.node_pods.len(), "node pods running");
}

/// Phase 2, beside the node pods: the tcpdump filter for the target's capture when its own
/// network namespace redirects DNS (port 53 and that first hop), from the rules a probe
/// without queries reads there. None (port 53 alone) when nothing redirects DNS or the
/// rules could not be read.
async fn read_first_hop(
    input: &ExecuteInput<'_>,
    step: Option<(&ProbeStep, ExecTarget)>,
) -> Option<String> {
    let (step, target) = step?;
    match exec::run_probe(input.client, &target, &step.argv, step.timeout).await {
        Ok(out) => match out.result {
            ProbeResult::Pod(report) => {
                let filter = (input.pod_capture_filter)(&report);
                tracing::debug!(?filter, "pod capture filter from the pod's own rules");
                filter
            }
            _ => None,
        },
        Err(e) => {
            tracing::debug!(error = %e, "the pod's own rules could not be read before the capture");
            None
        }
    }
}

/// Where a capture step runs now, with its final argv; None (and why) when its container
/// or node pod is not running.
async fn place_capture(
    input: &ExecuteInput<'_>,
    started: &Started,
    step: &CaptureStep,
) -> Result<(ExecTarget, Vec<String>), Option<String>> {
    match &step.place {
        // A container that is not running has its own step error already.
        CapturePlace::Container(i) => started
            .running
            .get(*i)
            .cloned()
            .flatten()
            .map(|t| (t, step.argv.clone()))
            .ok_or(None),
        CapturePlace::Node(node) => started
            .node_pod(node)
            .map(|t| (t.clone(), step.argv.clone()))
            .ok_or(None),
        CapturePlace::PodNetnsFromNode {
            node,
            pod_uid,
            find_argv,
        } => {
            let np = started
                .node_pod(node)
                .ok_or_else(|| Some(format!("no node pod runs on {node}")))?;
            let pid = find_pod_pid(input.client, np, find_argv, pod_uid)
                .await
                .map_err(|e| Some(e.to_string()))?;
            let mut argv = step.argv.clone();
            argv.extend(["--netns-pid".into(), pid.to_string()]);
            Ok((np.clone(), argv))
        }
    }
}

/// Phase 3: every capture opened at once (one after the other costs a round trip per
/// capture point), each streamed into its file while written; then wait until each
/// listens.
async fn start_captures(
    input: &ExecuteInput<'_>,
    started: &Started,
    pod_filter: Option<String>,
    evidence: &mut Evidence,
) -> Vec<(RunningCapture, CaptureKind)> {
    let first_hop_container = input.script.first_hop.as_ref().map(|s| s.container);
    let pod_filter = &pod_filter;
    let opened = futures::future::join_all(input.script.captures.iter().map(|step| async move {
        let r = match place_capture(input, started, step).await {
            Ok((target, mut argv)) => {
                if let (CapturePlace::Container(i), Some(f)) = (&step.place, pod_filter) {
                    if Some(*i) == first_hop_container && step.kind == CaptureKind::Pod {
                        argv.extend(["--filter".to_string(), f.clone()]);
                    }
                }
                let file = input
                    .capture_dir
                    .join(format!("{}.pcap", sanitize(&step.name)));
                exec::start_capture(input.client, &target, &step.name, &argv, &file)
                    .await
                    .map(Some)
                    .map_err(|e| e.to_string())
            }
            Err(None) => Ok(None),
            Err(Some(why)) => Err(why),
        };
        (step, r)
    }))
    .await;
    let mut captures: Vec<(RunningCapture, CaptureKind)> = Vec::new();
    for (step, r) in opened {
        match r {
            Ok(Some(c)) => captures.push((c, step.kind)),
            Ok(None) => {}
            Err(error) => evidence.step_errors.push(StepError {
                step: match step.place {
                    CapturePlace::PodNetnsFromNode { .. } => {
                        "capture in the target pod via its node".into()
                    }
                    _ => format!("capture {}", step.name),
                },
                error,
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
    captures
}

/// Phase 4: the pod probe, the node snapshots and the upstream probes, all at once.
async fn run_probes(input: &ExecuteInput<'_>, started: &Started, evidence: &mut Evidence) {
    let script = input.script;
    let client = input.client;
    let target = script.pod_probe.as_ref().and_then(|p| {
        started
            .running
            .get(p.container)
            .cloned()
            .flatten()
            .map(|t| (p, t))
    });
    let nodes = &script.node_snapshots;
    let windows_follow_pod = nodes.window_follows_pod_probe && target.is_some();
    let nodes_done = tokio::sync::Notify::new();
    let pod_probe = async {
        let (step, t) = target.as_ref()?;
        let result = exec::run_probe(client, t, &step.argv, step.timeout).await;
        if windows_follow_pod && !started.node_pods.is_empty() {
            end_node_windows(input, started, &nodes_done).await;
        }
        Some(result)
    };
    let node_probes = async {
        let results =
            futures::future::join_all(started.node_pods.iter().filter_map(|(node, t)| {
                let (_, argv) = nodes.argv.iter().find(|(n, _)| n == node)?;
                Some(async move {
                    (
                        node.clone(),
                        exec::run_probe(client, t, argv, nodes.timeout).await,
                    )
                })
            }))
            .await;
        nodes_done.notify_one();
        results
    };
    let upstream_probes =
        futures::future::join_all(script.upstream_probes.iter().filter_map(|u| {
            let i = *u
                .candidates
                .iter()
                .find(|i| started.running.get(**i).is_some_and(Option::is_some))?;
            let t = started.running[i].clone()?;
            Some(async move {
                (
                    script.containers[i].pod_ref(),
                    exec::run_probe(client, &t, &u.argv, u.timeout).await,
                )
            })
        }));
    let (pod_result, node_results, upstream_results) =
        tokio::join!(pod_probe, node_probes, upstream_probes);
    record_probes(pod_result, node_results, upstream_results, evidence);
}

/// Ends the nodes' conntrack windows (`stop --only node`), again every second while the
/// node probes still run: a stop sent before a node probe's process started finds nothing.
async fn end_node_windows(
    input: &ExecuteInput<'_>,
    started: &Started,
    nodes_done: &tokio::sync::Notify,
) {
    let nodes = &input.script.node_snapshots;
    let deadline = tokio::time::Instant::now() + nodes.window;
    while tokio::time::Instant::now() < deadline {
        futures::future::join_all(
            started
                .node_pods
                .iter()
                .map(|(_, t)| exec::run(input.client, t, &nodes.end_window_argv, SHORT_EXEC)),
        )
        .await;
        tokio::select! {
            () = nodes_done.notified() => return,
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}

type ProbeOutcome = Result<dns_doctor_schema::ProbeOutput, KubeError>;

/// The probes' documents into the evidence, each failure as a step error.
fn record_probes(
    pod: Option<ProbeOutcome>,
    nodes: Vec<(String, ProbeOutcome)>,
    upstreams: Vec<(String, ProbeOutcome)>,
    evidence: &mut Evidence,
) {
    match pod {
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
    for (node, r) in nodes {
        let step = format!("node snapshot {node}");
        match r.map(|o| o.result) {
            Ok(ProbeResult::Node(snapshot)) => evidence.nodes.push(NodeEvidence { node, snapshot }),
            Ok(_) => evidence.step_errors.push(StepError {
                step,
                error: "unexpected probe document".into(),
            }),
            Err(e) => evidence.step_errors.push(StepError {
                step,
                error: e.to_string(),
            }),
        }
    }
    for (pod, r) in upstreams {
        let step = format!("upstream probe in {pod}");
        match r.map(|o| o.result) {
            Ok(ProbeResult::Pod(report)) => evidence.upstream_probes.push(UpstreamProbe {
                dns_pod: pod,
                report,
            }),
            Ok(_) => evidence.step_errors.push(StepError {
                step,
                error: "unexpected probe document".into(),
            }),
            Err(e) => evidence.step_errors.push(StepError {
                step,
                error: e.to_string(),
            }),
        }
    }
}

/// Phase 5: stop the captures now that the probes are done, and collect the files.
async fn collect_captures(
    input: &ExecuteInput<'_>,
    started: &Started,
    captures: Vec<(RunningCapture, CaptureKind)>,
    evidence: &mut Evidence,
) {
    // Every probe query has been answered or has timed out; a moment of grace lets replies
    // still in flight land.
    tokio::time::sleep(CAPTURE_GRACE).await;
    let mut targets: Vec<&ExecTarget> = started
        .running
        .iter()
        .flatten()
        .chain(started.node_pods.iter().map(|(_, t)| t))
        .collect();
    targets.dedup();
    // All at once: with many DNS replicas, one stop after the other adds up.
    let argv = input.script.stop_captures_argv();
    let stops = futures::future::join_all(targets.into_iter().map(|t| {
        let argv = &argv;
        async move { (t, exec::run(input.client, t, argv, SHORT_EXEC).await) }
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
    let finish = input.script.capture_finish;
    let results = futures::future::join_all(captures.into_iter().map(|(c, kind)| async move {
        let name = c.name.clone();
        let file = c.file.clone();
        (name, kind, file, c.finish(finish).await)
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

/// Find a process of the target pod on its node, for nsenter, by the pod UID in
/// /proc/<pid>/cgroup (works for any runtime, cgroup version and driver).
async fn find_pod_pid(
    client: &Client,
    node_pod: &ExecTarget,
    argv: &[String],
    uid: &str,
) -> Result<u32, KubeError> {
    let out: ExecOutput = exec::run(client, node_pod, argv, Duration::from_secs(15)).await?;
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

/// Phase 6: stop everything this run started. Bounded: whatever is not done in time is
/// left to the containers' own deadlines and the Jobs' TTL.
async fn clean_up(input: &ExecuteInput<'_>, started: &Started, evidence: &mut Evidence) {
    let script = input.script;
    let injected: Vec<ExecTarget> = started
        .injected
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
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
                cleanup::delete_run_jobs(input.client, &script.node_namespace, &script.run_id)
                    .await
                    .err()
            } else {
                None
            }
        };
        let stops = futures::future::join_all(injected.iter().map(|t| async move {
            let running = started.running.iter().flatten().any(|c| c == t);
            if !running {
                // Interrupted while it was starting: let it start, then end it, instead of
                // leaving it to run until its deadline.
                let _ = ephemeral::wait_running(
                    input.client,
                    &t.namespace,
                    &t.pod,
                    &t.container,
                    &script.image,
                    Duration::from_secs(8),
                )
                .await;
            }
            (
                t,
                cleanup::stop_run_in(input.client, t, &script.run_id, SHORT_EXEC).await,
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
        // One that never ran (it could not be created beside an exited container, or never
        // started in time) has nothing to end now: it is read once, not waited for.
        let ended = futures::future::join_all(evidence.ephemeral_containers.iter().map(|left| {
            let (ns, pod) = left.pod.split_once('/').unwrap_or_default();
            let never_ran = started
                .never_ran
                .iter()
                .any(|t| t.namespace == ns && t.pod == pod && t.container == left.container);
            async move {
                if never_ran {
                    ephemeral::has_ended(input.client, ns, pod, &left.container).await
                } else {
                    ephemeral::wait_terminated(
                        input.client,
                        ns,
                        pod,
                        &left.container,
                        Duration::from_secs(10),
                    )
                    .await
                }
            }
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
    crate::private_fs::create_dir(&dir)?;
    Ok(dir)
}
