//! The real `dns-doctor-probe` binary, built once per test process.

use crate::cmd::{self, Ran};
use dns_doctor_probe::schema::{PodReport, ProbeOutput, ProbeResult};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

/// Environment variable naming a probe binary to test instead of building one.
pub const PROBE_ENV: &str = "DNS_DOCTOR_PROBE";

static BINARY: OnceLock<PathBuf> = OnceLock::new();

/// Path of the probe binary: `$DNS_DOCTOR_PROBE` if set, else `cargo build -p
/// dns-doctor-probe` into this workspace's target directory (a no-op when it is fresh).
pub fn binary() -> &'static Path {
    BINARY.get_or_init(|| {
        if let Some(path) = std::env::var_os(PROBE_ENV) {
            let path = PathBuf::from(path);
            assert!(
                path.is_file(),
                "{PROBE_ENV}={} is not a file",
                path.display()
            );
            return path;
        }
        // This test executable is <target>/<profile>/deps/<name>-<hash>.
        let exe = std::env::current_exe().expect("path of the test executable");
        let profile_dir = exe
            .parent()
            .and_then(Path::parent)
            .expect("test executable inside <target>/<profile>/deps");
        let target_dir = profile_dir.parent().expect("target directory");
        let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("workspace root");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
        let mut argv = vec![
            cargo.as_str(),
            "build",
            "--quiet",
            "-p",
            "dns-doctor-probe",
            "--bin",
            "dns-doctor-probe",
            "--manifest-path",
        ];
        let manifest = workspace.join("Cargo.toml");
        let manifest = manifest.to_str().expect("UTF-8 workspace path");
        argv.push(manifest);
        let target = target_dir.to_str().expect("UTF-8 target path");
        argv.extend(["--target-dir", target]);
        if profile_dir.file_name().is_some_and(|n| n == "release") {
            argv.push("--release");
        }
        cmd::run(&argv, Duration::from_secs(600)).ok("building dns-doctor-probe");
        let path = profile_dir.join("dns-doctor-probe");
        assert!(path.is_file(), "{} missing after the build", path.display());
        path
    })
}

/// Runs the probe with `args` inside network namespace `ns`, bounded by `limit`.
pub fn run_in(ns: &str, args: &[&str], limit: Duration) -> Ran {
    let binary = binary().to_str().expect("UTF-8 probe path").to_owned();
    let mut argv = vec!["ip", "netns", "exec", ns, binary.as_str()];
    argv.extend_from_slice(args);
    cmd::run(&argv, limit)
}

/// Parses the probe's stdout as its one JSON document.
pub fn parse_output(ran: &Ran) -> ProbeOutput {
    serde_json::from_str(&ran.stdout).unwrap_or_else(|e| {
        panic!(
            "probe stdout is not one ProbeOutput document ({e}); exit {}\nstdout:\n{}\nstderr:\n{}",
            ran.status, ran.stdout, ran.stderr
        )
    })
}

/// Runs `pod` mode in `ns`; asserts it measured (exit 0, current schema) and returns the
/// document and its pod report.
pub fn pod(ns: &str, args: &[&str], limit: Duration) -> (ProbeOutput, PodReport) {
    let mut argv = vec!["pod"];
    argv.extend_from_slice(args);
    let ran = run_in(ns, &argv, limit);
    assert_eq!(
        ran.status.code(),
        Some(0),
        "probe pod failed:\n{}",
        ran.stderr
    );
    let output = parse_output(&ran);
    assert_eq!(
        output.schema_version,
        dns_doctor_probe::schema::SCHEMA_VERSION
    );
    let ProbeResult::Pod(report) = output.result.clone() else {
        panic!("pod mode printed {:?}", output.result);
    };
    (output, report)
}

/// A `dns-doctor-probe capture` (or another mode, see [`Capture::start_mode`]) running in
/// the background.
pub struct Capture {
    child: std::process::Child,
    stderr_lines: std::sync::mpsc::Receiver<String>,
    stderr_seen: Vec<String>,
    stdout: Option<std::thread::JoinHandle<Vec<u8>>>,
}

impl Capture {
    /// Starts `dns-doctor-probe capture ARGS`, inside `ns` when given (else in the test's
    /// own namespace, e.g. with `--netns-pid`).
    pub fn start(ns: Option<&str>, args: &[&str]) -> Self {
        Self::start_mode(ns, "capture", args)
    }

    /// Starts `dns-doctor-probe MODE ARGS` in the background, inside `ns` when given.
    pub fn start_mode(ns: Option<&str>, mode: &str, args: &[&str]) -> Self {
        use std::io::{BufRead, BufReader, Read};
        use std::process::{Command, Stdio};
        let binary = binary();
        let mut command = match ns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns]).arg(binary);
                c
            }
            None => Command::new(binary),
        };
        let mut child = command
            .arg(mode)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the probe's capture mode");
        let (tx, stderr_lines) = std::sync::mpsc::channel();
        let stderr = child.stderr.take().expect("piped stderr");
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut out = child.stdout.take().expect("piped stdout");
        let stdout = std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = out.read_to_end(&mut bytes);
            bytes
        });
        Capture {
            child,
            stderr_lines,
            stderr_seen: Vec::new(),
            stdout: Some(stdout),
        }
    }

    /// PID of the probe process (`ip netns exec` execs it, so this is the probe itself).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits for the readiness line; fails the test after `limit`.
    pub fn wait_ready(&mut self, limit: Duration) {
        let end = std::time::Instant::now() + limit;
        loop {
            let left = end.saturating_duration_since(std::time::Instant::now());
            match self.stderr_lines.recv_timeout(left) {
                Ok(line) => {
                    let ready = line == dns_doctor_probe::capture::READY_LINE;
                    self.stderr_seen.push(line);
                    if ready {
                        return;
                    }
                }
                Err(_) => panic!(
                    "no readiness line within {limit:?}; stderr so far:\n{}",
                    self.stderr_seen.join("\n")
                ),
            }
        }
    }

    /// Sends `signal` (a `kill` name such as "TERM") to the probe.
    pub fn signal(&self, signal: &str) {
        cmd::run(
            &["kill", &format!("-{signal}"), &self.pid().to_string()],
            Duration::from_secs(5),
        )
        .ok("kill");
    }

    /// Waits for the probe to exit (failing the test after `limit`) and returns its exit
    /// status, stdout bytes and every stderr line.
    pub fn finish(mut self, limit: Duration) -> (std::process::ExitStatus, Vec<u8>, Vec<String>) {
        let status = cmd::wait_or_kill(&mut self.child, limit)
            .unwrap_or_else(|| panic!("capture still running after {limit:?}; killed"));
        let stdout = self
            .stdout
            .take()
            .map(|h| h.join().unwrap_or_default())
            .unwrap_or_default();
        let mut lines = std::mem::take(&mut self.stderr_seen);
        // The reader thread ends with the pipe; give it a moment to pass on the last lines.
        while let Ok(line) = self.stderr_lines.recv_timeout(Duration::from_secs(2)) {
            lines.push(line);
        }
        (status, stdout, lines)
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// PIDs of the live processes named `comm` whose parent is `parent`.
pub fn children_named(parent: u32, comm: &str) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            // "pid (comm) state ppid ...": comm may hold spaces, so split at the last ')'.
            let Some((head, rest)) = stat.rsplit_once(')') else {
                return false;
            };
            let name = head.split_once('(').map(|x| x.1).unwrap_or_default();
            let mut fields = rest.split_whitespace();
            let state = fields.next().unwrap_or_default();
            let ppid = fields.next().and_then(|p| p.parse::<u32>().ok());
            name == comm && ppid == Some(parent) && state != "Z"
        })
        .collect()
}

/// True while process `pid` exists and is not a zombie.
pub fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|stat| {
            stat.rsplit_once(')')
                .is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z'))
        })
        .unwrap_or(false)
}

/// Waits until process `pid` is gone (or a zombie), at most `limit`; returns whether it went.
/// A killed process needs a moment to finish dying (its capture ring is torn down).
pub fn wait_gone(pid: u32, limit: Duration) -> bool {
    let end = std::time::Instant::now() + limit;
    while alive(pid) {
        if std::time::Instant::now() >= end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    true
}
