//! Dispatch of a validated [`Command`]: the async runtime, logging, signals, and the
//! mapping of each command's result to an [`Outcome`].

use std::io::{IsTerminal, Write};

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use crate::cli::{Command, OutputFormat, Verbosity};
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
                let (client, _) = crate::kube::connect(&kube).await?;
                let report = crate::kube::cleanup::cleanup_all(&client).await?;
                let mut text = String::new();
                for j in &report.jobs_deleted {
                    text.push_str(&format!("deleted job {j}\n"));
                }
                for p in &report.pods_deleted {
                    text.push_str(&format!("deleted pod {p}\n"));
                }
                if text.is_empty() {
                    text.push_str("nothing to clean up\n");
                }
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

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// The first Ctrl-C or SIGTERM cancels the run, which then cleans up within its bound;
/// a second one exits at once.
async fn watch_signals(cancel: CancellationToken) {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => return,
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    printer::write_stderr("interrupted: cleaning up (interrupt again to exit now)\n");
    cancel.cancel();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    printer::write_stderr("interrupted twice: exiting without finishing cleanup; node pods are removed by their Job TTL\n");
    std::process::exit(i32::from(Outcome::Interrupted.code()));
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
        "probe_schema_version": dns_doctor_probe::schema::SCHEMA_VERSION,
        "default_image": crate::cli::DEFAULT_IMAGE,
    });
    let text = match output {
        OutputFormat::Json => serde_json::to_string_pretty(&info)? + "\n",
        OutputFormat::Yaml => serde_norway::to_string(&info)?,
        OutputFormat::Text => format!(
            "kubectl-dns_doctor {}\nprobe schema version {}\ndefault debug image {}\n",
            env!("CARGO_PKG_VERSION"),
            dns_doctor_probe::schema::SCHEMA_VERSION,
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
