//! The one JSON document a run prints, and the watchdog that prints it at the deadline.
//!
//! Exactly one document leaves the process: whoever emits first (the mode finishing, or the
//! watchdog at the hard deadline) wins, and the other emits nothing.

use crate::schema::{ProbeOutput, ProbeResult, SCHEMA_VERSION};
use std::io::Write;
use std::sync::{Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub use dns_doctor_schema::protocol::SUMMARY_PREFIX;

/// Where the document goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sink {
    /// Pretty JSON on stdout.
    Stdout,
    /// One line on stderr, `SUMMARY_PREFIX` then compact JSON (stdout carries a pcap).
    StderrLine,
}

/// Set once a document has been written.
static EMITTED: Mutex<bool> = Mutex::new(false);

/// When and where this run started.
#[derive(Debug, Clone, Copy)]
pub struct RunClock {
    started: Instant,
    started_unix_ms: u64,
}

impl RunClock {
    pub fn start() -> Self {
        let started_unix_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            .unwrap_or(0);
        Self {
            started: Instant::now(),
            started_unix_ms,
        }
    }

    pub fn document(&self, result: ProbeResult, deadline_hit: bool) -> ProbeOutput {
        ProbeOutput {
            schema_version: SCHEMA_VERSION,
            probe_version: env!("CARGO_PKG_VERSION").to_owned(),
            started_unix_ms: self.started_unix_ms,
            duration_ms: u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX),
            deadline_hit,
            result,
        }
    }
}

/// Writes `document` unless one was written already; returns whether it wrote. A closed
/// stdout (the reader went away) is not an error worth more than a log line.
pub fn emit(document: &ProbeOutput, sink: Sink) -> bool {
    let mut emitted = EMITTED.lock().unwrap_or_else(PoisonError::into_inner);
    if *emitted {
        return false;
    }
    *emitted = true;
    let written = match sink {
        Sink::Stdout => serde_json::to_string_pretty(document).map(|json| write_stdout(&json)),
        Sink::StderrLine => {
            serde_json::to_string(document).map(|json| log(&format!("{SUMMARY_PREFIX}{json}")))
        }
    };
    if let Err(e) = written {
        log(&format!(
            "dns-doctor-probe: could not encode the result: {e}"
        ));
    }
    true
}

#[allow(clippy::print_stdout)]
fn write_stdout(json: &str) {
    let mut out = std::io::stdout().lock();
    if writeln!(out, "{json}").and_then(|()| out.flush()).is_err() {
        log("dns-doctor-probe: stdout is closed; result not delivered");
    }
}

/// A line on stderr: logs, the readiness line, the capture summary.
#[allow(clippy::print_stderr)]
pub fn log(line: &str) {
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "{line}");
    let _ = err.flush();
}

/// Starts the hard deadline. When it passes, `cleanup` runs (kill child processes), then
/// the partial result from `snapshot` is emitted with `deadline_hit = true` and the process
/// exits 0: the probe measured, just not everything.
pub fn start_watchdog(
    deadline: Duration,
    clock: RunClock,
    sink: Sink,
    snapshot: Box<dyn Fn() -> ProbeResult + Send>,
    cleanup: Box<dyn Fn() + Send>,
) {
    thread::spawn(move || {
        thread::sleep(deadline);
        cleanup();
        log(&format!(
            "dns-doctor-probe: hard deadline of {} s reached, exiting",
            deadline.as_secs()
        ));
        emit(&clock.document(snapshot(), true), sink);
        std::process::exit(0);
    });
}

/// Prints a JSON value that is not a probe document (the `version` subcommand).
pub fn emit_value(value: &serde_json::Value) {
    match serde_json::to_string_pretty(value) {
        Ok(json) => write_stdout(&json),
        Err(e) => log(&format!("dns-doctor-probe: could not encode: {e}")),
    }
}
