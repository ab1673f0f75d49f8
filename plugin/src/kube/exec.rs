//! Running the probe inside injected containers over exec, and streaming captures back.
//!
//! Readers are always drained before the process is joined, and every exec has a deadline.

use std::path::{Path, PathBuf};
use std::time::Duration;

use dns_doctor_schema::{CaptureSummary, ProbeOutput};
use k8s_openapi::api::core::v1::Pod;
use kube::api::AttachParams;
use kube::{Api, Client};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::KubeError;
use crate::plan::script::PROBE_BIN;

/// Line the probe's capture mode prints on stderr once tcpdump listens.
pub const READY_MARKER: &str = dns_doctor_schema::protocol::READY_LINE;
/// Prefix of the capture summary line on stderr when the pcap goes to stdout.
pub const SUMMARY_PREFIX: &str = dns_doctor_schema::protocol::SUMMARY_PREFIX;

/// Where a command runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecTarget {
    pub namespace: String,
    pub pod: String,
    pub container: String,
}

impl std::fmt::Display for ExecTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{} ({})", self.namespace, self.pod, self.container)
    }
}

/// What a finished command produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecOutput {
    pub stdout: Vec<u8>,
    pub stderr: String,
    /// "Success", or the failure reason/message the API reported (e.g. a non-zero exit).
    pub status: Option<String>,
}

fn attach_params(container: &str) -> AttachParams {
    AttachParams::default()
        .container(container)
        .stdin(false)
        .stdout(true)
        .stderr(true)
        .tty(false)
}

/// Start `argv` in the target container with stdout and stderr attached.
async fn open(
    api: &Api<Pod>,
    target: &ExecTarget,
    argv: &[String],
    what: &str,
) -> Result<kube::api::AttachedProcess, KubeError> {
    api.exec(
        &target.pod,
        argv.to_vec(),
        &attach_params(&target.container),
    )
    .await
    .map_err(|e| KubeError::from_api(what, "create", "pods/exec", &target.namespace, e))
}

/// Run a command to completion and collect its output.
/// How often [`until_reachable`] tries an exec.
const REACHABLE_POLL: Duration = Duration::from_millis(250);

/// Returns once an exec of the probe (`version`) succeeds in `target`; never otherwise (race
/// it with a status wait that has a deadline). The kubelet runs an exec as soon as the
/// container runs in the container runtime, up to a second before its status says so.
pub async fn until_reachable(client: &Client, target: &ExecTarget) {
    let argv = [PROBE_BIN.to_string(), "version".to_string()];
    loop {
        if let Ok(out) = run(client, target, &argv, Duration::from_secs(2)).await {
            if out.status.as_deref() == Some("Success") {
                return;
            }
        }
        tokio::time::sleep(REACHABLE_POLL).await;
    }
}

pub async fn run(
    client: &Client,
    target: &ExecTarget,
    argv: &[String],
    timeout: Duration,
) -> Result<ExecOutput, KubeError> {
    let api: Api<Pod> = Api::namespaced(client.clone(), &target.namespace);
    let what = format!(
        "exec {} in {target}",
        argv.first().cloned().unwrap_or_default()
    );
    let work = async {
        let mut proc = open(&api, target, argv, &what).await?;
        let mut out = proc.stdout().expect("stdout was requested");
        let mut err = proc.stderr().expect("stderr was requested");
        let status = proc.take_status();
        let mut stdout = Vec::new();
        let mut stderr = Vec::new();
        let (r1, r2) = tokio::join!(out.read_to_end(&mut stdout), err.read_to_end(&mut stderr));
        r1.and(r2).map_err(|e| KubeError::Other {
            what: what.clone(),
            message: format!("reading the output failed: {e}"),
        })?;
        let status = match status {
            Some(s) => s.await.map(|s| status_text(&s)),
            None => None,
        };
        drop(out);
        drop(err);
        let _ = proc.join().await;
        Ok::<_, KubeError>(ExecOutput {
            stdout,
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
            status,
        })
    };
    tokio::time::timeout(timeout, work)
        .await
        .map_err(|_| KubeError::Timeout {
            what: what.clone(),
            timeout,
        })?
}

fn status_text(s: &k8s_openapi::apimachinery::pkg::apis::meta::v1::Status) -> String {
    if s.status.as_deref() == Some("Success") {
        "Success".into()
    } else {
        s.message
            .clone()
            .or_else(|| s.reason.clone())
            .unwrap_or_default()
    }
}

/// Run a probe mode and parse its JSON document.
pub async fn run_probe(
    client: &Client,
    target: &ExecTarget,
    argv: &[String],
    timeout: Duration,
) -> Result<ProbeOutput, KubeError> {
    let out = run(client, target, argv, timeout).await?;
    parse_probe_output(&out.stdout).map_err(|message| KubeError::Other {
        what: format!("the probe in {target}"),
        message: format!(
            "{message}; its stderr said: {}",
            out.stderr.trim().chars().take(500).collect::<String>()
        ),
    })
}

/// Parse the probe's stdout, checking the schema version. Pure.
pub fn parse_probe_output(stdout: &[u8]) -> Result<ProbeOutput, String> {
    let value: serde_json::Value =
        serde_json::from_slice(stdout).map_err(|e| format!("printed no JSON document ({e})"))?;
    let version = value
        .get("schema_version")
        .and_then(|v| v.as_u64())
        .unwrap_or(0);
    if version != u64::from(dns_doctor_schema::SCHEMA_VERSION) {
        return Err(format!(
            "speaks schema version {version}, this plugin reads version {}; use a debug image matching the plugin (--image)",
            dns_doctor_schema::SCHEMA_VERSION
        ));
    }
    serde_json::from_value(value)
        .map_err(|e| format!("printed a document this plugin cannot read ({e})"))
}

/// A capture streaming into a local file.
pub struct RunningCapture {
    pub name: String,
    pub file: PathBuf,
    ready: Option<oneshot::Receiver<()>>,
    task: JoinHandle<CaptureResult>,
}

/// How a streamed capture ended.
#[derive(Debug, Clone, PartialEq)]
pub struct CaptureResult {
    pub bytes: u64,
    pub summary: Option<CaptureSummary>,
    pub error: Option<String>,
}

/// Start `argv` (a probe `capture --out -` command) and stream its stdout into `file`
/// (created 0600) while it is written.
pub async fn start_capture(
    client: &Client,
    target: &ExecTarget,
    name: &str,
    argv: &[String],
    file: &Path,
) -> Result<RunningCapture, KubeError> {
    let api: Api<Pod> = Api::namespaced(client.clone(), &target.namespace);
    let what = format!("capture {name} in {target}");
    let mut proc = open(&api, target, argv, &what).await?;
    let out_file = create_private(file).await.map_err(|e| KubeError::Other {
        what: what.clone(),
        message: format!("cannot create {}: {e}", file.display()),
    })?;
    let (ready_tx, ready_rx) = oneshot::channel();
    let mut stdout = proc.stdout().expect("stdout was requested");
    let stderr = proc.stderr().expect("stderr was requested");
    let task = tokio::spawn(async move {
        let copy = async {
            let mut out_file = out_file;
            let n = tokio::io::copy(&mut stdout, &mut out_file).await?;
            out_file.flush().await?;
            out_file.sync_all().await?;
            Ok::<u64, std::io::Error>(n)
        };
        let watch = async {
            let mut ready_tx = Some(ready_tx);
            let mut summary = None;
            let mut tail = Vec::new();
            let mut lines = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                if line.trim() == READY_MARKER {
                    if let Some(tx) = ready_tx.take() {
                        let _ = tx.send(());
                    }
                } else if let Some(json) = line.strip_prefix(SUMMARY_PREFIX) {
                    summary = parse_capture_summary(json.trim());
                } else if tail.len() < 20 {
                    tail.push(line);
                }
            }
            (summary, tail)
        };
        let (copied, (summary, tail)) = tokio::join!(copy, watch);
        let _ = proc.join().await;
        match copied {
            Ok(bytes) => CaptureResult {
                bytes,
                error: if summary.is_none() && bytes == 0 {
                    Some(format!("capture produced nothing: {}", tail.join(" | ")))
                } else {
                    None
                },
                summary,
            },
            Err(e) => CaptureResult {
                bytes: 0,
                summary,
                error: Some(format!("streaming the capture failed: {e}")),
            },
        }
    });
    Ok(RunningCapture {
        name: name.to_string(),
        file: file.to_path_buf(),
        ready: Some(ready_rx),
        task,
    })
}

impl RunningCapture {
    /// Wait until tcpdump listens. False when the capture ended or did not get ready in time.
    pub async fn wait_ready(&mut self, timeout: Duration) -> bool {
        match self.ready.take() {
            Some(rx) => matches!(tokio::time::timeout(timeout, rx).await, Ok(Ok(()))),
            None => false,
        }
    }

    /// Wait for the stream to end (the probe stops at its own deadline or when told to).
    pub async fn finish(self, timeout: Duration) -> CaptureResult {
        let abort = self.task.abort_handle();
        match tokio::time::timeout(timeout, self.task).await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => CaptureResult {
                bytes: 0,
                summary: None,
                error: Some(format!("capture task failed: {e}")),
            },
            Err(_) => {
                abort.abort();
                CaptureResult {
                    bytes: file_len(&self.file),
                    summary: None,
                    error: Some(format!("capture did not end within {}s", timeout.as_secs())),
                }
            }
        }
    }
}

/// The capture summary line: a full probe document, or a bare summary from older probes.
fn parse_capture_summary(json: &str) -> Option<CaptureSummary> {
    if let Ok(ProbeOutput {
        result: dns_doctor_schema::ProbeResult::Capture(s),
        ..
    }) = serde_json::from_str::<ProbeOutput>(json)
    {
        return Some(s);
    }
    serde_json::from_str::<CaptureSummary>(json).ok()
}

fn file_len(p: &Path) -> u64 {
    std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)
}

/// Create a file readable by its owner only: captures contain names and addresses.
pub async fn create_private(path: &Path) -> std::io::Result<tokio::fs::File> {
    tokio::fs::OpenOptions::from(crate::private_fs::file_options())
        .open(path)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_output_with_another_schema_version_is_refused_with_advice() {
        let err = parse_probe_output(br#"{"schema_version": 99}"#).unwrap_err();
        assert!(err.contains("schema version 99"), "{err}");
        assert!(err.contains("--image"), "{err}");
        assert!(parse_probe_output(b"").unwrap_err().contains("no JSON"));
    }
}
