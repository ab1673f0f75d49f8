//! `capture` mode: tcpdump, bounded in time and bytes, optionally inside another process's
//! network namespace, streamed through the probe so the bytes are counted and the file stays
//! valid when the byte limit cuts it.
//!
//! Protocol on stderr for the caller: tcpdump's own lines are relayed; [`READY_LINE`] is
//! printed once tcpdump is listening (start the traffic after it); with `--output -` the
//! last line is [`crate::output::SUMMARY_PREFIX`] followed by the JSON document.

use crate::child;
use crate::output;
use crate::pcap_limit::PcapLimiter;
use crate::schema::{CaptureStop, CaptureSummary, ProbeResult};
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

pub use dns_doctor_schema::protocol::READY_LINE;

/// How long tcpdump gets to flush and exit after SIGTERM before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(3);

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    Stdout,
    File(PathBuf),
}

impl Output {
    pub fn describe(&self) -> String {
        match self {
            Output::Stdout => "-".to_owned(),
            Output::File(path) => path.display().to_string(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct CaptureConfig {
    pub interface: String,
    pub filter: String,
    pub netns_pid: Option<u32>,
    pub output: Output,
    pub duration: Duration,
    pub max_bytes: u64,
    /// Bytes kept of each packet (tcpdump -s).
    pub snaplen: u32,
    /// Kernel capture ring size in KiB (tcpdump -B).
    pub buffer_kib: u32,
    /// Stop when stdin reaches end of file (the caller's exec stream closed).
    pub stop_on_stdin_close: bool,
}

/// The command line that runs tcpdump, entering `netns_pid`'s network namespace first.
pub fn tcpdump_argv(config: &CaptureConfig) -> Vec<String> {
    let mut argv: Vec<String> = Vec::new();
    if let Some(pid) = config.netns_pid {
        argv.extend(["nsenter", "-t", &pid.to_string(), "-n", "--"].map(String::from));
    }
    // -U and --immediate-mode: every packet reaches the pipe at once, so a stop loses nothing
    // still sitting in a buffer. Immediate mode gives each packet a ring frame of snaplen
    // bytes, so the snaplen is kept moderate and the ring (-B, KiB) large enough for a
    // burst of hundreds of queries; `-s 0` would leave about eight frames and drop packets.
    // -Z root: Debian's tcpdump otherwise switches to the tcpdump user, which clears the
    // parent-death signal and may not write where root can.
    let snaplen = config.snaplen.to_string();
    let buffer = config.buffer_kib.to_string();
    argv.extend(
        [
            "tcpdump",
            "-i",
            &config.interface,
            "-U",
            "--immediate-mode",
            "-n",
            "-s",
            &snaplen,
            "-B",
            &buffer,
            "-Z",
            "root",
            "-w",
            "-",
        ]
        .map(String::from),
    );
    argv.push(config.filter.clone());
    argv
}

/// Shared with the watchdog so a deadline still reports what was captured.
#[derive(Debug, Default)]
pub struct CaptureProgress {
    pub bytes_written: AtomicU64,
    pub stderr: Mutex<String>,
}

impl CaptureProgress {
    pub fn summary(
        &self,
        config: &CaptureConfig,
        stopped_by: CaptureStop,
        exit: Option<i32>,
    ) -> CaptureSummary {
        CaptureSummary {
            interface: config.interface.clone(),
            filter: config.filter.clone(),
            netns_pid: config.netns_pid,
            output: config.output.describe(),
            bytes_written: self.bytes_written.load(Ordering::SeqCst),
            stopped_by,
            tcpdump_exit_code: exit,
            stderr: self
                .stderr
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone(),
        }
    }
}

#[derive(Debug)]
enum Event {
    /// tcpdump's stdout ended: it exited (or closed it).
    PcapEnded,
    ByteLimit,
    /// Writing the pcap failed: the reader is gone.
    SinkFailed(String),
    Signal(i32),
    StdinClosed,
}

#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    #[error("could not create the capture file {path}")]
    CreateOutput {
        path: String,
        #[source]
        source: io::Error,
    },
    #[error("could not start {program}")]
    Spawn {
        program: String,
        #[source]
        source: io::Error,
    },
}

/// Runs the capture to its end. Must run on the main thread, with SIGTERM and SIGINT
/// blocked beforehand (see [`child::block_termination_signals`]).
pub fn run(
    config: &CaptureConfig,
    progress: &Arc<CaptureProgress>,
) -> Result<CaptureSummary, CaptureError> {
    let mut sink: Box<dyn Write + Send> = match &config.output {
        Output::Stdout => Box::new(io::stdout()),
        Output::File(path) => Box::new(
            // Captures hold names and addresses: readable by the owner only.
            File::options()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(path)
                .map_err(|source| CaptureError::CreateOutput {
                    path: path.display().to_string(),
                    source,
                })?,
        ),
    };
    let argv = tcpdump_argv(config);
    let mut tcpdump = child::spawn_tied(
        Command::new(&argv[0])
            .args(&argv[1..])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
    )
    .map_err(|source| CaptureError::Spawn {
        program: argv[0].clone(),
        source,
    })?;
    let pid = tcpdump.id();
    let started = Instant::now();

    let (events, inbox) = mpsc::channel::<Event>();
    let pcap = tcpdump.stdout.take();
    let errors = tcpdump.stderr.take();
    let pump = {
        let events = events.clone();
        let progress = Arc::clone(progress);
        let max_bytes = config.max_bytes;
        thread::spawn(move || {
            if let Some(pcap) = pcap {
                pump_pcap(pcap, &mut *sink, max_bytes, &progress, &events);
            }
            let _ = events.send(Event::PcapEnded);
        })
    };
    let relay = {
        let progress = Arc::clone(progress);
        thread::spawn(move || {
            if let Some(errors) = errors {
                relay_stderr(errors, &progress);
            }
        })
    };
    {
        let events = events.clone();
        thread::spawn(move || {
            if let Ok(signal) = child::wait_termination_signal() {
                let _ = events.send(Event::Signal(signal));
            }
        });
    }
    if config.stop_on_stdin_close {
        let events = events.clone();
        thread::spawn(move || {
            let _ = io::copy(&mut io::stdin().lock(), &mut io::sink());
            let _ = events.send(Event::StdinClosed);
        });
    }
    drop(events);

    let end = started + config.duration;
    // The first event, or the end of the capture window, decides why the capture stops.
    let stopped_by = match inbox.recv_timeout(end.saturating_duration_since(Instant::now())) {
        Err(RecvTimeoutError::Timeout) => CaptureStop::Deadline,
        Ok(Event::PcapEnded) | Err(RecvTimeoutError::Disconnected) => CaptureStop::Exited,
        Ok(Event::ByteLimit) => CaptureStop::ByteLimit,
        Ok(Event::Signal(signal)) => {
            output::log(&format!(
                "dns-doctor-probe: signal {signal}, stopping tcpdump"
            ));
            CaptureStop::Signal
        }
        Ok(Event::StdinClosed) => {
            output::log("dns-doctor-probe: stdin closed, stopping tcpdump");
            CaptureStop::Signal
        }
        Ok(Event::SinkFailed(e)) => {
            output::log(&format!(
                "dns-doctor-probe: writing the capture failed ({e}), stopping tcpdump"
            ));
            CaptureStop::Signal
        }
    };

    // SIGTERM lets tcpdump flush and print its packet counts; SIGKILL if it does not obey.
    child::send_signal(pid, libc::SIGTERM);
    let status = match child::wait_bounded(&mut tcpdump, STOP_GRACE) {
        Ok(Some(status)) => Some(status),
        _ => {
            let _ = tcpdump.kill();
            tcpdump.wait().ok()
        }
    };
    child::clear_current();
    let _ = pump.join();
    let _ = relay.join();
    Ok(progress.summary(config, stopped_by, status.and_then(|s| s.code())))
}

fn pump_pcap(
    mut pcap: impl Read,
    sink: &mut dyn Write,
    max_bytes: u64,
    progress: &CaptureProgress,
    events: &Sender<Event>,
) {
    let mut limiter = PcapLimiter::new(max_bytes);
    let mut buf = vec![0u8; 64 * 1024];
    let mut sink_ok = true;
    loop {
        let n = match pcap.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => return,
        };
        let was_full = limiter.is_full();
        let allowed = limiter.feed(&buf[..n]);
        if sink_ok && !allowed.is_empty() {
            if let Err(e) = sink.write_all(&allowed).and_then(|()| sink.flush()) {
                sink_ok = false;
                let _ = events.send(Event::SinkFailed(e.to_string()));
            }
            progress
                .bytes_written
                .store(limiter.passed(), Ordering::SeqCst);
        }
        if limiter.is_full() && !was_full {
            let _ = events.send(Event::ByteLimit);
        }
        // After the limit or a failed sink, keep draining so tcpdump never blocks on a full
        // pipe while it is being stopped.
    }
}

fn relay_stderr(errors: impl Read, progress: &CaptureProgress) {
    let mut ready = false;
    for line in BufReader::new(errors).lines() {
        let Ok(line) = line else { break };
        output::log(&line);
        {
            let mut text = progress
                .stderr
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            text.push_str(&line);
            text.push('\n');
        }
        if !ready && line.contains("listening on") {
            ready = true;
            output::log(READY_LINE);
        }
    }
}

/// The partial summary the watchdog prints at the hard deadline.
pub fn deadline_snapshot(
    config: CaptureConfig,
    progress: Arc<CaptureProgress>,
) -> Box<dyn Fn() -> ProbeResult + Send> {
    Box::new(move || ProbeResult::Capture(progress.summary(&config, CaptureStop::Deadline, None)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tcpdump_enters_the_namespace_through_nsenter() {
        let config = CaptureConfig {
            interface: "eth0".to_owned(),
            filter: "udp port 53".to_owned(),
            netns_pid: Some(42),
            output: Output::Stdout,
            duration: Duration::from_secs(5),
            max_bytes: 1000,
            snaplen: 16384,
            buffer_kib: 8192,
            stop_on_stdin_close: false,
        };
        let argv = tcpdump_argv(&config);
        assert_eq!(&argv[..6], ["nsenter", "-t", "42", "-n", "--", "tcpdump"]);
        assert_eq!(argv.last().map(String::as_str), Some("udp port 53"));
        assert!(argv.windows(2).any(|w| w == ["-w", "-"]));
        let direct = tcpdump_argv(&CaptureConfig {
            netns_pid: None,
            ..config
        });
        assert_eq!(direct[0], "tcpdump");
    }
}
