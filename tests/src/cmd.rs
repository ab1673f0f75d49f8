//! Running commands with a deadline, and checking the preconditions of the real-network tests.

use std::io::Read;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// What a command left behind.
#[derive(Debug)]
pub struct Ran {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

impl Ran {
    /// Panics with the command's output unless it exited 0.
    pub fn ok(self, what: &str) -> Self {
        assert!(
            self.status.success(),
            "{what} failed with {}\nstdout:\n{}\nstderr:\n{}",
            self.status,
            self.stdout,
            self.stderr
        );
        self
    }
}

/// Runs `argv` with stdin from `input`, killing it (and failing the test) if it is still
/// running after `limit`.
pub fn run_input(argv: &[&str], input: Option<&str>, limit: Duration) -> Ran {
    let start = Instant::now();
    let mut child = Command::new(argv[0])
        .args(&argv[1..])
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {argv:?}: {e}"));
    if let (Some(text), Some(mut stdin)) = (input, child.stdin.take()) {
        use std::io::Write;
        stdin
            .write_all(text.as_bytes())
            .unwrap_or_else(|e| panic!("writing stdin of {argv:?}: {e}"));
    }
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());
    let status = wait_or_kill(&mut child, limit)
        .unwrap_or_else(|| panic!("{argv:?} still running after {limit:?}; killed"));
    Ran {
        status,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
        elapsed: start.elapsed(),
    }
}

/// [`run_input`] without stdin.
pub fn run(argv: &[&str], limit: Duration) -> Ran {
    run_input(argv, None, limit)
}

/// Waits for `child` at most `limit`; kills it and returns None when it is still running.
pub fn wait_or_kill(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let end = Instant::now() + limit;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if Instant::now() < end => thread::sleep(Duration::from_millis(20)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
        }
    }
}

/// Reads `pipe` to its end on a thread of its own, so a full pipe never blocks the child.
pub fn drain<R: Read + Send + 'static>(pipe: Option<R>) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut bytes = Vec::new();
        if let Some(mut pipe) = pipe {
            let _ = pipe.read_to_end(&mut bytes);
        }
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

/// Programs the network-namespace tests drive, with the Debian package providing each.
const TOOLS: [(&str, &str); 11] = [
    ("conntrack", "conntrack"),
    ("nft", "nftables"),
    ("ip", "iproute2"),
    ("ss", "iproute2"),
    ("iptables", "iptables"),
    ("iptables-restore", "iptables"),
    ("dnsmasq", "dnsmasq-base"),
    ("tcpdump", "tcpdump"),
    ("nsenter", "util-linux"),
    ("getent", "libc-bin"),
    ("sysctl", "procps"),
];

/// Fails (never skips) the test when it cannot run here: not root, or a tool missing.
pub fn require_environment() {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let uid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().next().map(str::to_owned));
    assert_eq!(
        uid.as_deref(),
        Some("0"),
        "the network-namespace tests need root (they create namespaces, veths and iptables rules)"
    );
    let missing: Vec<String> = TOOLS
        .iter()
        .filter(|(tool, _)| !on_path(tool))
        .map(|(tool, package)| format!("{tool} (Debian package {package})"))
        .collect();
    assert!(
        missing.is_empty(),
        "missing tools for the network-namespace tests: {}; run tests/install-deps as root",
        missing.join(", ")
    );
}

fn on_path(tool: &str) -> bool {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path).any(|dir| Path::new(&dir).join(tool).is_file())
}
