//! Dispatch of a validated [`Command`]: the async runtime, logging, signals, and the
//! mapping of each command's result to an [`Outcome`].

use std::io::{IsTerminal, Write};

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use crate::cli::{Command, OutputFormat, Verbosity};
use crate::complete::{self, directive, Candidate, Want};
use crate::exit::Outcome;
use crate::printer;

/// Run a command to its outcome. Errors returned here mean "could not run" (exit 2).
pub fn run(command: Command) -> anyhow::Result<Outcome> {
    match command {
        Command::Version { output } => version(output),
        Command::Completions { shell } => {
            let mut buf = Vec::new();
            let mut cmd = <crate::cli::Args as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut cmd, "kubectl-dns_doctor", &mut buf);
            printer::write_report(&buf)?;
            Ok(Outcome::Healthy)
        }
        Command::Analyze { files, output } => analyze(&files, output),
        Command::Cleanup { kube } => {
            init_logging(Verbosity::Normal);
            let rt = runtime()?;
            rt.block_on(async {
                let connection = crate::kube::connect(&kube).await?;
                let scope =
                    crate::kube::cleanup::CleanupScope::from_flag(kube.namespace.as_deref());
                let report = crate::kube::cleanup::cleanup(&connection.client, &scope).await?;
                let text = report.render_text();
                printer::write_report(text.as_bytes())?;
                Ok(Outcome::Healthy)
            })
        }
        Command::Doctor(config) => {
            init_logging(config.verbosity);
            let rt = runtime()?;
            rt.block_on(async {
                let cancel = CancellationToken::new();
                let signals = tokio::spawn(watch_signals(cancel.clone()));
                let result = crate::doctor::run(&config, &cancel).await;
                signals.abort();
                result
            })
        }
    }
}

/// Answer a completion request from kubectl's plugin completion (see [`complete`]). Never
/// fails: what cannot be looked up offers nothing.
pub fn complete(words: &[String]) -> Outcome {
    let request = complete::request(words);
    let (candidates, directive) = match &request.want {
        Want::Fixed(c) => (c.clone(), directive::NO_FILE_COMP),
        Want::File => (Vec::new(), directive::DEFAULT),
        Want::Nothing => (Vec::new(), directive::NO_FILE_COMP),
        Want::Context | Want::Cluster | Want::User => {
            let env = crate::kube::config::Environment::from_process();
            let names = crate::kube::config::merged_kubeconfig(&request.kube, &env)
                .map(|kc| match request.want {
                    Want::Context => kc.contexts.into_iter().map(|c| c.name).collect(),
                    Want::Cluster => kc.clusters.into_iter().map(|c| c.name).collect(),
                    _ => kc
                        .auth_infos
                        .into_iter()
                        .map(|u| u.name)
                        .collect::<Vec<_>>(),
                })
                .unwrap_or_default();
            (
                names.into_iter().map(|n| Candidate::new(n, "")).collect(),
                directive::NO_FILE_COMP,
            )
        }
        Want::Target | Want::Namespace | Want::Container { .. } => {
            let mut found = runtime()
                .ok()
                .and_then(|rt| rt.block_on(from_the_cluster(&request)))
                .unwrap_or_default();
            if request.want == Want::Target && !request.prefix.contains('/') {
                found.extend(complete::target_words(&request.prefix));
            }
            let d = complete::directive_for(&found);
            (found, d)
        }
    };
    let _ =
        printer::write_report(complete::render(&candidates, &request.prefix, directive).as_bytes());
    Outcome::Healthy
}

/// Names from the API for a completion, within a few seconds (a shell waits for them).
async fn from_the_cluster(request: &complete::Request) -> Option<Vec<Candidate>> {
    use crate::kube::names;
    const BOUND: std::time::Duration = std::time::Duration::from_secs(10);
    let mut kube = request.kube.clone();
    kube.request_timeout = kube
        .request_timeout
        .or(Some(std::time::Duration::from_secs(5)));
    let work = async {
        let conn = crate::kube::connect(&kube).await.ok()?;
        let (client, ns) = (&conn.client, conn.namespace.as_str());
        match &request.want {
            Want::Namespace => {
                let found = names::namespaces(client).await.ok()?;
                Some(found.into_iter().map(|n| Candidate::new(n, "")).collect())
            }
            Want::Container { target } => {
                let target = crate::target::parse(target).ok()?;
                let found = names::containers(client, ns, &target).await.ok()?;
                Some(found.into_iter().map(Candidate::from).collect())
            }
            _ => match request.prefix.split_once('/') {
                Some((kind, _)) => {
                    let parsed = crate::target::TargetKind::parse(kind)?;
                    let found = names::of_kind(client, ns, parsed).await.ok()?;
                    Some(
                        found
                            .into_iter()
                            .map(|n| Candidate::new(format!("{kind}/{n}"), ""))
                            .collect(),
                    )
                }
                None => {
                    let found = names::pods(client, ns).await.ok()?;
                    Some(found.into_iter().map(Candidate::from).collect())
                }
            },
        }
    };
    tokio::time::timeout(BOUND, work).await.ok().flatten()
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// The first stop request (Ctrl-C, SIGTERM; see [`StopRequests`]) cancels the run, which
/// then cleans up within its bound; a second one exits at once.
async fn watch_signals(cancel: CancellationToken) {
    let Ok(mut stop) = StopRequests::listen() else {
        return;
    };
    stop.next().await;
    printer::write_stderr("interrupted: cleaning up (interrupt again to exit now)\n");
    cancel.cancel();
    stop.next().await;
    printer::write_stderr("interrupted twice: exiting without finishing cleanup; node pods are removed by their Job TTL\n");
    std::process::exit(i32::from(Outcome::Interrupted.code()));
}

/// Ctrl-C, and SIGTERM: what `kill` and process supervisors send.
#[cfg(unix)]
struct StopRequests {
    term: tokio::signal::unix::Signal,
}

#[cfg(unix)]
impl StopRequests {
    fn listen() -> std::io::Result<Self> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Self {
            term: signal(SignalKind::terminate())?,
        })
    }

    async fn next(&mut self) {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = self.term.recv() => {}
        }
    }
}

/// Ctrl-C, Ctrl-Break, and the console window being closed. Windows gives a closing
/// console a few seconds before it ends the process, so cleanup may be cut short there;
/// node pods are then removed by their Job TTL.
#[cfg(windows)]
struct StopRequests {
    ctrl_c: tokio::signal::windows::CtrlC,
    ctrl_break: tokio::signal::windows::CtrlBreak,
    ctrl_close: tokio::signal::windows::CtrlClose,
}

#[cfg(windows)]
impl StopRequests {
    fn listen() -> std::io::Result<Self> {
        use tokio::signal::windows::{ctrl_break, ctrl_c, ctrl_close};
        Ok(Self {
            ctrl_c: ctrl_c()?,
            ctrl_break: ctrl_break()?,
            ctrl_close: ctrl_close()?,
        })
    }

    async fn next(&mut self) {
        tokio::select! {
            _ = self.ctrl_c.recv() => {}
            _ = self.ctrl_break.recv() => {}
            _ = self.ctrl_close.recv() => {}
        }
    }
}

fn init_logging(verbosity: Verbosity) {
    let default = match verbosity {
        Verbosity::Quiet => "error",
        Verbosity::Normal => "warn",
        Verbosity::Verbose => "warn,dns_doctor=debug",
        Verbosity::Trace => "info,dns_doctor=trace,kube=debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        // Logging must never fail a run (or panic) because stderr was closed, e.g. by
        // `2>&1 | head -1`: the run still has to clean up after the last line.
        .with_writer(printer::StderrWriter)
        .log_internal_errors(false)
        .with_ansi(std::env::var_os("NO_COLOR").is_none() && std::io::stderr().is_terminal())
        .try_init();
}

fn version(output: OutputFormat) -> anyhow::Result<Outcome> {
    let info = serde_json::json!({
        "version": env!("CARGO_PKG_VERSION"),
        "probe_schema_version": dns_doctor_schema::SCHEMA_VERSION,
        "default_image": crate::cli::DEFAULT_IMAGE,
    });
    let text = match output {
        OutputFormat::Json => serde_json::to_string_pretty(&info)? + "\n",
        OutputFormat::Yaml => serde_norway::to_string(&info)?,
        OutputFormat::Text => format!(
            "kubectl-dns_doctor {}\nprobe schema version {}\ndefault debug image {}\n",
            env!("CARGO_PKG_VERSION"),
            dns_doctor_schema::SCHEMA_VERSION,
            crate::cli::DEFAULT_IMAGE
        ),
    };
    printer::write_report(text.as_bytes())?;
    Ok(Outcome::Healthy)
}

fn analyze(files: &[std::path::PathBuf], output: OutputFormat) -> anyhow::Result<Outcome> {
    let format = match output {
        OutputFormat::Text => crate::analyze::Format::Text,
        OutputFormat::Json | OutputFormat::Yaml => crate::analyze::Format::Json,
    };
    let verdict = if output == OutputFormat::Yaml {
        // YAML is rendered from the JSON document; fine for the sizes people read as YAML.
        let mut buf = Vec::new();
        let v = crate::analyze::run(files, format, &mut buf)?;
        let value: serde_json::Value = serde_json::from_slice(&buf)?;
        printer::write_report(serde_norway::to_string(&value)?.as_bytes())?;
        v
    } else {
        let mut out = printer::ReportWriter::default();
        let v = crate::analyze::run(files, format, &mut out)?;
        out.flush()
            .map_err(|source| printer::ReportNotWritten { source })?;
        v
    };
    Ok(match verdict {
        crate::analyze::Verdict::Healthy => Outcome::Healthy,
        crate::analyze::Verdict::ProblemsFound => Outcome::ProblemsFound,
    })
}
