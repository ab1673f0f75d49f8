//! The real test cluster (tests/cluster) as the end-to-end tests see it: its kubeconfig,
//! kubectl for setup and inspection, fault switches, and the plugin binary run as a user runs it.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

/// Where tests/cluster/up writes the admin kubeconfig.
pub const ADMIN_KUBECONFIG: &str = "/var/lib/dns-doctor-cluster/admin.kubeconfig";
/// The fake external name the harness's upstream serves.
pub const EXTERNAL_NAME: &str = "external.test";
/// Namespace and pods of the plain client pods.
pub const CLIENT_NS: &str = "dns-clients";
pub const GLIBC_CLIENT: &str = "client-glibc";
pub const MUSL_CLIENT: &str = "client-musl";

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// The kubeconfig of the running test cluster; panics with advice when there is none.
pub fn kubeconfig() -> PathBuf {
    let p = PathBuf::from(
        std::env::var("DNS_DOCTOR_TEST_KUBECONFIG").unwrap_or_else(|_| ADMIN_KUBECONFIG.into()),
    );
    assert!(
        p.exists(),
        "no test cluster: {} is missing; run tests/cluster/up first (tests/run does)",
        p.display()
    );
    p
}

/// The API server's address as the admin kubeconfig gives it: 127.0.0.1 on the one-node
/// cluster, node 1's address on three nodes.
pub fn api_server() -> String {
    std::fs::read_to_string(kubeconfig())
        .expect("admin kubeconfig")
        .lines()
        .find_map(|l| l.trim().strip_prefix("server:"))
        .expect("server in admin kubeconfig")
        .trim()
        .to_string()
}

/// Whether the running cluster has three nodes (tests/cluster/up records its shape).
pub fn multinode() -> bool {
    std::fs::read_to_string("/var/lib/dns-doctor-cluster/node-count").is_ok_and(|n| n.trim() == "3")
}

/// One field of a pod of the client namespace, by its JSONPath (`{.spec.nodeName}`).
pub fn client_pod_field(pod: &str, jsonpath: &str) -> String {
    kubectl_ok(&[
        "get",
        "pod",
        "-n",
        CLIENT_NS,
        pod,
        "-o",
        &format!("jsonpath={jsonpath}"),
    ])
    .trim()
    .to_string()
}

/// The node a pod of the client namespace runs on.
pub fn node_of(pod: &str) -> String {
    client_pod_field(pod, "{.spec.nodeName}")
}

/// Only one test at a time may change the cluster (fault switches, runs that inject).
pub fn cluster_lock() -> MutexGuard<'static, ()> {
    static LOCK: OnceLock<Mutex<()>> = OnceLock::new();
    LOCK.get_or_init(|| Mutex::new(()))
        .lock()
        .unwrap_or_else(|e| e.into_inner())
}

/// The plugin binary, built once per test process.
pub fn plugin_binary() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let root = repo_root();
        let status = Command::new(env!("CARGO"))
            .args([
                "build",
                "-q",
                "-p",
                "kubectl-dns-doctor",
                "--bin",
                "kubectl-dns_doctor",
            ])
            .current_dir(&root)
            .status()
            .expect("cargo runs");
        assert!(status.success(), "building kubectl-dns_doctor failed");
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| root.join("target"));
        target.join("debug").join("kubectl-dns_doctor")
    })
    .clone()
}

/// What one run of the plugin did.
#[derive(Debug)]
pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

impl Run {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e}):\n{}\nstderr:\n{}",
                self.stdout, self.stderr
            )
        })
    }
}

/// Run the plugin with the cluster's kubeconfig, bounded in time.
pub fn doctor(args: &[&str]) -> Run {
    doctor_with_env(args, &[])
}

pub fn doctor_with_env(args: &[&str], env: &[(&str, &str)]) -> Run {
    let start = Instant::now();
    let mut cmd = Command::new(plugin_binary());
    cmd.args(args)
        .env("KUBECONFIG", kubeconfig())
        .env_remove("RUST_LOG")
        .stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = run_bounded(cmd, Duration::from_secs(300));
    Run {
        code: out.0,
        stdout: out.1,
        stderr: out.2,
        elapsed: start.elapsed(),
    }
}

fn run_bounded(mut cmd: Command, limit: Duration) -> (Option<i32>, String, String) {
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let child = cmd.spawn().expect("command starts");
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(limit) {
        Ok(Ok(out)) => (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        ),
        Ok(Err(e)) => panic!("waiting for the command failed: {e}"),
        Err(_) => {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
            panic!("command did not finish within {}s", limit.as_secs());
        }
    }
}

/// kubectl against the test cluster (setup and inspection only; the plugin never uses it).
pub fn kubectl(args: &[&str]) -> (bool, String) {
    let mut cmd = Command::new("kubectl");
    cmd.arg("--kubeconfig")
        .arg(kubeconfig())
        .args(args)
        .stdin(Stdio::null());
    let (code, out, err) = run_bounded(cmd, Duration::from_secs(120));
    (
        code == Some(0),
        if code == Some(0) {
            out
        } else {
            format!("{out}{err}")
        },
    )
}

/// kubectl that must succeed.
pub fn kubectl_ok(args: &[&str]) -> String {
    let (ok, out) = kubectl(args);
    assert!(ok, "kubectl {args:?} failed: {out}");
    out
}

/// Switch a fault of the test cluster on or off (tests/cluster/fault NAME on|off).
pub fn fault(name: &str, on: bool) {
    let script = repo_root().join("tests/cluster/fault");
    let mut cmd = Command::new(script);
    cmd.args([name, if on { "on" } else { "off" }]);
    let (code, out, err) = run_bounded(cmd, Duration::from_secs(240));
    assert_eq!(
        code,
        Some(0),
        "fault {name} {}: {out}{err}",
        if on { "on" } else { "off" }
    );
}

/// Turns a fault on, and off again when dropped (also when the test panics).
pub struct Fault(&'static str);

impl Fault {
    pub fn on(name: &'static str) -> Self {
        fault(name, true);
        Self(name)
    }
}

impl Drop for Fault {
    fn drop(&mut self) {
        fault(self.0, false);
    }
}

/// Pods and Jobs dns-doctor created that still exist, in all namespaces.
pub fn leftovers() -> Vec<String> {
    let out = kubectl_ok(&[
        "get",
        "jobs,pods",
        "-A",
        "-l",
        "app.kubernetes.io/managed-by=dns-doctor",
        "-o",
        "name",
    ]);
    out.lines()
        .map(str::to_string)
        .filter(|l| !l.is_empty())
        .collect()
}

/// Wait until `check` holds, polling; false at the deadline.
pub fn eventually(limit: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if check() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    check()
}

/// States of every ephemeral container named dns-doctor-* in a pod: (name, state key).
pub fn ephemeral_states(ns: &str, pod: &str) -> Vec<(String, String)> {
    let out = kubectl_ok(&["get", "pod", "-n", ns, pod, "-o", "json"]);
    let v: serde_json::Value = serde_json::from_str(&out).expect("pod JSON");
    v["status"]["ephemeralContainerStatuses"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|s| {
            s["name"]
                .as_str()
                .is_some_and(|n| n.starts_with("dns-doctor-"))
        })
        .map(|s| {
            let state = s["state"]
                .as_object()
                .and_then(|o| o.keys().next().cloned())
                .unwrap_or_default();
            (s["name"].as_str().unwrap_or_default().to_string(), state)
        })
        .collect()
}

/// Start the doctor in the background, as a script would.
pub fn spawn_doctor(args: &[&str]) -> std::process::Child {
    std::process::Command::new(plugin_binary())
        .args(args)
        .env("KUBECONFIG", kubeconfig())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("the plugin starts")
}

/// The stderr of a doctor started by [`spawn_doctor`], read line by line in the background
/// (so the child never blocks on a full pipe). With `-v` the run logs its progress steps,
/// which tests use to act at a known point of a run rather than after a guessed delay.
pub struct StderrWatch {
    lines: std::sync::mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl StderrWatch {
    pub fn new(child: &mut std::process::Child) -> Self {
        use std::io::BufRead;
        let stderr = child.stderr.take().expect("stderr is piped");
        let (tx, lines) = std::sync::mpsc::channel::<String>();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Self {
            lines,
            seen: Vec::new(),
        }
    }

    /// Waits until a line contains `needle`; false when stderr ends or `limit` passes.
    pub fn wait_for(&mut self, needle: &str, limit: Duration) -> bool {
        let end = std::time::Instant::now() + limit;
        loop {
            let left = end.saturating_duration_since(std::time::Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let found = line.contains(needle);
                    self.seen.push(line);
                    if found {
                        return true;
                    }
                }
                Err(_) => return false,
            }
        }
    }

    /// Everything read so far plus what arrives until stderr ends (at most `limit`).
    pub fn all(mut self, limit: Duration) -> String {
        let end = std::time::Instant::now() + limit;
        loop {
            let left = end.saturating_duration_since(std::time::Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => self.seen.push(line),
                Err(_) => return self.seen.join("\n"),
            }
        }
    }
}
