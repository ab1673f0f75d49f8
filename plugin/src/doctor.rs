//! A doctor run from start to finish: discover → preflight → plan → execute → analyse →
//! report. This is the sequence; each step lives in its own module.

use std::fs::File;
use std::net::IpAddr;
use std::path::Path;
use std::time::Instant;

use anyhow::Context as _;
use tokio_util::sync::CancellationToken;

use crate::access;
use crate::capture::{self, CaptureAnalysis};
use crate::cli::{DoctorConfig, OutputFormat, Verbosity};
use crate::diagnose::{self, DiagnosisInput, PointAnalysis};
use crate::evidence::{CaptureKind, Evidence, NodeEvidence, StepError};
use crate::exit::Outcome;
use crate::kube::{self as k, discover, execute, preflight, KubeError};
use crate::plan::script::ScriptInput;
use crate::plan::{self, Plan, PlanInput};
use crate::progress::Progress;
use crate::report::{self, Report, RunInfo, Timings};
use crate::topology::Topology;
use crate::{dns_config, printer};

/// Run the doctor and print its report. Errors mean the run could not be carried out.
pub async fn run(config: &DoctorConfig, cancel: &CancellationToken) -> anyhow::Result<Outcome> {
    let started = Instant::now();
    let progress =
        Progress::new(config.verbosity != Verbosity::Quiet && config.verbosity != Verbosity::Trace);
    let deadline = config.timeout;
    // The whole run is bounded; cleanup inside `execute` has its own bound within this one.
    let work = run_inner(config, cancel, &progress, started);
    let result = match tokio::time::timeout(deadline, work).await {
        Ok(r) => r,
        Err(_) => Err(anyhow::Error::new(KubeError::Timeout {
            what: "the whole run".into(),
            timeout: deadline,
        })),
    };
    progress.finish();
    match result {
        Err(e) if e.downcast_ref::<Interrupted>().is_some() => {
            printer::write_stderr("interrupted before anything was started in the cluster\n");
            Ok(Outcome::Interrupted)
        }
        other => other,
    }
}

async fn run_inner(
    config: &DoctorConfig,
    cancel: &CancellationToken,
    progress: &Progress,
    started: Instant,
) -> anyhow::Result<Outcome> {
    progress.step("connecting to the cluster");
    let connection = interruptible(cancel, k::connect(&config.kube)).await??;
    // Connected: the credential plugin, if any, has had its say on the terminal.
    progress.start(connection.credentials_may_prompt);
    let client = connection.client;
    let namespace = connection.namespace;

    progress.step("discovering the cluster DNS");
    let (pod, chosen_from) = interruptible(
        cancel,
        discover::resolve_target(&client, &namespace, &config.target),
    )
    .await?
    .with_context(|| format!("cannot examine {} in namespace {namespace}", config.target))?;
    let container = discover::choose_container(&pod, config.container.as_deref())
        .with_context(|| format!("cannot examine {} in namespace {namespace}", config.target))?;
    if container.reason == discover::ContainerReason::First && config.verbosity != Verbosity::Quiet
    {
        progress.note(&format!(
            "note: examining container {:?}, the first of the pod's; choose another with -c\n",
            container.name
        ));
    }
    let topology = interruptible(
        cancel,
        discover::discover(&client, &pod, &container.name, chosen_from),
    )
    .await?;

    progress.step("checking permissions and admission");
    let dns_ns = topology.dns_service.as_ref().map(|s| s.namespace.clone());
    let checks = access::required_checks(
        &topology.target.namespace,
        dns_ns.as_deref(),
        &config.node_namespace,
        config.node_checks,
    );
    let answers = interruptible(cancel, preflight::check_access(&client, &checks)).await??;
    let allowed = |verb: &str, res: &str, ns: &str| access::allowed(&answers, verb, res, ns);
    let target_container = topology
        .target
        .containers
        .first()
        .cloned()
        .unwrap_or_default();
    let target_choice = if allowed(
        "patch",
        "pods/ephemeralcontainers",
        &topology.target.namespace,
    ) {
        interruptible(
            cancel,
            preflight::choose_ephemeral(
                &client,
                &topology.target.namespace,
                &topology.target.name,
                &target_container,
                &config.image,
                config.capture,
            ),
        )
        .await??
    } else {
        access::EphemeralChoice {
            privilege: None,
            rejections: Vec::new(),
        }
    };
    let first_dns = topology
        .dns_pods
        .iter()
        .find(|p| p.can_host_probe() && !topology.dns_pod_terminating(p));
    let dns_choice = match (first_dns, &dns_ns) {
        (Some(p), Some(ns))
            if allowed("patch", "pods/ephemeralcontainers", ns)
                && allowed("create", "pods/exec", ns) =>
        {
            Some(
                interruptible(
                    cancel,
                    preflight::choose_ephemeral(
                        &client,
                        &p.namespace,
                        &p.name,
                        &p.container,
                        &config.image,
                        config.capture,
                    ),
                )
                .await??,
            )
        }
        _ => None,
    };
    let plan = plan::decide(&PlanInput {
        config,
        topology: &topology,
        access: &answers,
        node_namespace: &config.node_namespace,
        target_choice: &target_choice,
        dns_choice: dns_choice.as_ref(),
    });
    tracing::debug!(?plan, "plan");

    let run_id = k::run_id(&mut rand::rng());
    let capture_dir = match &config.output_dir {
        Some(dir) => {
            report::bundle::create_dir(dir).with_context(|| {
                format!("cannot create the evidence directory {}", dir.display())
            })?;
            dir.clone()
        }
        None => execute::private_temp_dir(&run_id)
            .context("cannot create a temporary directory for captures")?,
    };
    let upstreams = topology
        .corefile
        .as_deref()
        .map(upstream_addrs)
        .unwrap_or_default();
    let script = plan::script::compose(&ScriptInput {
        plan: &plan,
        topology: &topology,
        config,
        run_id: &run_id,
        upstreams: &upstreams,
    });
    tracing::debug!(?script, "script");
    let measure_started = Instant::now();
    let step = |s: &str| progress.step(s);
    let input = execute::ExecuteInput {
        client: &client,
        script: &script,
        capture_dir: &capture_dir,
        cancel,
        pod_capture_filter: &|r| diagnose::pod_netns_rules::capture_filter(r, &topology),
        progress: &step,
    };
    let (evidence, interrupted, fatal) = match execute::execute(&input).await {
        Ok(e) => (e, false, None),
        Err(execute::ExecuteError::Interrupted(e)) => (e, true, None),
        Err(execute::ExecuteError::Fatal(err, e)) => (e, false, Some(err)),
    };
    tracing::debug!(
        elapsed_ms = measure_started.elapsed().as_millis() as u64,
        "measured"
    );
    if let Some(err) = fatal {
        // Say what was left behind even when the run could not finish.
        for left in &evidence.ephemeral_containers {
            printer::write_stderr(&format!(
                "note: ephemeral container {} stays in the spec of pod {} ({})\n",
                left.container,
                left.pod,
                if left.terminated {
                    "exited"
                } else {
                    "exits at its deadline"
                }
            ));
        }
        return Err(anyhow::Error::new(err).context(format!(
            "cannot examine pod {}/{}",
            topology.target.namespace, topology.target.name
        )));
    }

    progress.step("analysing");
    let report = analyse(
        config,
        &topology,
        &plan,
        evidence.clone(),
        started,
        interrupted,
    );
    let mut text = Vec::new();
    report::render_text(&report, &mut text, false).context("cannot render the report")?;
    if let Some(dir) = &config.output_dir {
        report::bundle::write_bundle(
            dir,
            &topology,
            &evidence,
            &report,
            &String::from_utf8_lossy(&text),
        )
        .with_context(|| format!("cannot write the evidence bundle to {}", dir.display()))?;
    } else {
        // Without --output-dir the captures were only needed for the analysis.
        let _ = std::fs::remove_dir_all(&capture_dir);
    }
    progress.finish();
    let mut out = Vec::new();
    match config.output {
        OutputFormat::Text => report::render_text(&report, &mut out, printer::color_enabled())?,
        OutputFormat::Json => report::render_json(&report, &mut out)?,
        OutputFormat::Yaml => report::render_yaml(&report, &mut out)?,
    }
    printer::write_report(&out)?;
    Ok(if interrupted {
        Outcome::Interrupted
    } else {
        report.verdict.outcome()
    })
}

/// Read every capture, correlate them, diagnose, and assemble the report. Pure apart from
/// reading the capture files.
fn analyse(
    config: &DoctorConfig,
    topology: &Topology,
    plan: &Plan,
    mut evidence: Evidence,
    started: Instant,
    interrupted: bool,
) -> Report {
    let mut analyses: Vec<(usize, CaptureAnalysis, Vec<capture::Transaction>)> = Vec::new();
    let own_clients = host_network_clients(topology, &evidence.nodes);
    for (i, point) in evidence.captures.iter().enumerate() {
        let Some(file) = &point.file else { continue };
        let clients = match point.kind {
            CaptureKind::Pod => own_clients.clone(),
            _ => None,
        };
        match read_capture(file, clients) {
            Ok((a, t)) => analyses.push((i, a, t)),
            Err(e) => evidence.step_errors.push(StepError {
                step: format!("read capture {}", point.name),
                error: e,
            }),
        }
    }
    // Path order for correlation: the pod, then the nodes, then the DNS pods.
    let rank = |k: CaptureKind| match k {
        CaptureKind::Pod => 0,
        CaptureKind::Node => 1,
        CaptureKind::DnsPod => 2,
    };
    analyses.sort_by_key(|(i, _, _)| (rank(evidence.captures[*i].kind), *i));
    let corr_points: Vec<capture::CapturePoint> = analyses
        .iter()
        .map(|(i, _, t)| capture::CapturePoint {
            name: evidence.captures[*i].name.clone(),
            transactions: t.clone(),
        })
        .collect();
    let correlation = (corr_points.len() >= 2)
        .then(|| capture::correlate(&corr_points, capture::correlate::CorrelateConfig::default()));
    let points: Vec<PointAnalysis<'_>> = analyses
        .iter()
        .map(|(i, a, _)| PointAnalysis {
            name: &evidence.captures[*i].name,
            kind: evidence.captures[*i].kind,
            analysis: a,
        })
        .collect();
    let diagnosis = diagnose::diagnose(&DiagnosisInput {
        topology,
        evidence: &evidence,
        captures: &points,
        correlation: correlation.as_ref(),
    });
    let elapsed = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    let mut reasons = plan.reasons.clone();
    if interrupted {
        reasons.insert(0, "interrupted: the evidence is partial".into());
    }
    Report::new(
        topology,
        &evidence,
        diagnosis,
        RunInfo {
            tool_version: env!("CARGO_PKG_VERSION").to_string(),
            strategy: serde_json::to_value(plan.strategy)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default(),
            strategy_reason: reasons.join("; "),
            timings: Timings {
                total_ms: elapsed,
                time_to_verdict_ms: elapsed,
            },
            bundle_dir: config.output_dir.as_ref().map(|d| d.display().to_string()),
        },
    )
}

/// Upstream resolvers that are addresses, from the `forward` of the Corefile's root zone.
fn upstream_addrs(corefile: &str) -> Vec<std::net::SocketAddr> {
    let Ok(parsed) = dns_config::corefile::parse_corefile(corefile) else {
        return Vec::new();
    };
    parsed
        .server_blocks
        .iter()
        .filter(|b| b.serves_root())
        .filter_map(|b| b.forward())
        .flat_map(|f| f.to)
        .filter_map(|t| match t {
            dns_config::corefile::ForwardTarget::Address { ip, port } => {
                Some(std::net::SocketAddr::new(ip, port))
            }
            _ => None,
        })
        .collect()
}

/// The addresses whose DNS traffic is a hostNetwork target's own: those of its node's
/// network namespace, which it shares. Its capture there also sees every pod's traffic
/// bridged through the node, which is not the target's. None for other targets, and when
/// the node's addresses are unknown (no node snapshot): then the capture is taken whole.
fn host_network_clients(topology: &Topology, nodes: &[NodeEvidence]) -> Option<Vec<IpAddr>> {
    let t = &topology.target;
    if !t.host_network {
        return None;
    }
    let snapshot = &nodes
        .iter()
        .find(|n| Some(&n.node) == t.node.as_ref())?
        .snapshot;
    let ip_addr = snapshot
        .commands
        .iter()
        .find(|c| c.key == "ip-addr" && c.error.is_none())?;
    let mut ips = crate::node::addresses::parse_ip_addr(&ip_addr.stdout);
    ips.extend(t.ip.filter(|ip| !ips.contains(ip)));
    tracing::debug!(
        ?ips,
        "hostNetwork target: its capture keeps the node's own DNS traffic"
    );
    (!ips.is_empty()).then_some(ips)
}

/// Read one capture file fully, keeping its transactions for correlation; with `clients`,
/// only their queries and the responses to them.
fn read_capture(
    path: &Path,
    clients: Option<Vec<IpAddr>>,
) -> Result<(CaptureAnalysis, Vec<capture::Transaction>), String> {
    let file = File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut transactions = Vec::new();
    let analysis = capture::analyze_capture(
        std::io::BufReader::new(file),
        capture::ExtractOptions {
            clients,
            ..capture::ExtractOptions::default()
        },
        capture::TrackerConfig::default(),
        &mut |t| transactions.push(t),
    )
    .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok((analysis, transactions))
}

/// Await `fut` unless the run is cancelled first.
async fn interruptible<T>(
    cancel: &CancellationToken,
    fut: impl std::future::Future<Output = T>,
) -> anyhow::Result<T> {
    tokio::select! {
        v = fut => Ok(v),
        () = cancel.cancelled() => Err(anyhow::Error::new(Interrupted)),
    }
}

/// The run was interrupted before anything was started in the cluster.
#[derive(Debug, thiserror::Error)]
#[error("interrupted")]
pub struct Interrupted;
