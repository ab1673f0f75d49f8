//! `hold`, `stop` and `find-pod` on real processes: a held container ends when its run is
//! stopped, and only processes of that run are touched.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const PROBE: &str = env!("CARGO_BIN_EXE_dns-doctor-probe");

fn wait_exit(child: &mut std::process::Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

#[test]
fn stop_ends_the_holds_of_its_run_only() {
    let run = format!("t{}", std::process::id());
    let mut mine = Command::new(PROBE)
        .args(["hold", "--seconds", "60", "--run", &run])
        .spawn()
        .unwrap();
    let mut other = Command::new(PROBE)
        .args(["hold", "--seconds", "60", "--run", "someone-else"])
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let start = Instant::now();
    let out = Command::new(PROBE)
        .args(["stop", "--run", &run])
        .stdout(Stdio::piped())
        .output()
        .unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["signalled"], serde_json::json!([mine.id()]), "{v}");
    let status = wait_exit(&mut mine, Duration::from_secs(5)).expect("the held process ended");
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "stop returned once the process exited"
    );
    assert!(status.success(), "hold exits 0 when stopped: {status:?}");
    assert!(
        wait_exit(&mut other, Duration::from_millis(300)).is_none(),
        "another run's hold is untouched"
    );
    other.kill().unwrap();
    let _ = other.wait();
}

#[test]
fn hold_ends_by_itself() {
    let start = Instant::now();
    let mut held = Command::new(PROBE)
        .args(["hold", "--seconds", "1"])
        .spawn()
        .unwrap();
    let status = wait_exit(&mut held, Duration::from_secs(5)).expect("hold ended at its deadline");
    assert!(status.success());
    assert!(start.elapsed() >= Duration::from_millis(900));
}

#[test]
fn stop_without_a_run_is_refused() {
    let out = Command::new(PROBE).args(["stop"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn find_pod_finds_nothing_for_an_unknown_uid() {
    let out = Command::new(PROBE)
        .args(["find-pod", "--uid", "00000000-0000-0000-0000-000000000000"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["pids"], serde_json::json!([]));
}
