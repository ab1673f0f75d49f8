//! A reader that goes away (`| head -1`, `2>&1 | head -1`, a script that closes its end)
//! never makes the binary panic (exit 101); a report it could not deliver is exit 2 with
//! the reason on stderr. The cluster side (cleanup still runs) is in tests/e2e_doctor.rs.

use std::io::Write;
use std::process::{Command, Stdio};

fn plugin() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kubectl-dns_doctor"));
    cmd.stdin(Stdio::null()).env_remove("RUST_LOG");
    cmd
}

/// A pipe whose reading end is already closed: every write to it fails with EPIPE.
fn closed_pipe() -> std::io::PipeWriter {
    let (reader, writer) = std::io::pipe().expect("a pipe");
    drop(reader);
    writer
}

#[test]
fn a_report_to_a_closed_stdout_is_exit_2_with_the_reason() {
    let out = plugin()
        .arg("version")
        .stdout(closed_pipe())
        .stderr(Stdio::piped())
        .output()
        .expect("runs");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("cannot write the report to stdout"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn an_analysis_to_a_closed_stdout_is_exit_2_with_the_reason() {
    let capture = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/captures/lo-udp-tcp.pcap"
    );
    for format in ["json", "text"] {
        let out = plugin()
            .args(["analyze", "-o", format, capture])
            .stdout(closed_pipe())
            .stderr(Stdio::piped())
            .output()
            .expect("runs");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{format}: {err}");
        assert!(
            err.contains("writing the analysis failed") && err.contains("Broken pipe"),
            "{format}: {err}"
        );
        assert!(!err.contains("panicked"), "{format}: {err}");
    }
}

#[test]
fn errors_and_logs_to_a_closed_stderr_do_not_panic() {
    // An unreadable capture: the error message goes to the closed stderr.
    let out = plugin()
        .args(["analyze", "/nonexistent/dns.pcap"])
        .stdout(Stdio::piped())
        .stderr(closed_pipe())
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));

    // A doctor run with -v (its progress steps are log lines) against a cluster that is not there: many log lines
    // to a closed stderr, then the error; still exit 2, not a panic.
    let mut kubeconfig = tempfile::NamedTempFile::new().unwrap();
    write!(
        kubeconfig,
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://127.0.0.1:1\n\
         contexts:\n- name: c\n  context: {{cluster: c, user: u}}\ncurrent-context: c\n\
         users:\n- name: u\n  user: {{token: x}}\n"
    )
    .unwrap();
    let both = closed_pipe();
    let out = plugin()
        .args([
            "pod/x",
            "-n",
            "default",
            "-v",
            "--timeout",
            "40s",
            "--capture-seconds",
            "2",
        ])
        .env("KUBECONFIG", kubeconfig.path())
        .stdout(both.try_clone().unwrap())
        .stderr(both)
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
}
