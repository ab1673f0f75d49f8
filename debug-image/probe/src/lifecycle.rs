//! The probe's own lifecycle in a container: `hold` keeps an ephemeral container or node pod
//! open for exec and ends by itself; `stop` ends this run's probe processes early; `find-pod`
//! finds a pod's processes on a node by its UID, for nsenter.
//!
//! Processes of one run are recognised by the `--run ID` tag on their command line, which
//! the plugin puts on every probe it starts.

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::child;

/// Sleep until `seconds` pass or SIGTERM/SIGINT arrives, whichever is first.
pub fn hold(seconds: u64) -> std::io::Result<()> {
    child::block_termination_signals()?;
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(seconds));
        std::process::exit(0);
    });
    child::wait_termination_signal()?;
    Ok(())
}

/// The argv of a process, from `/proc/<pid>/cmdline`.
fn cmdline(proc_root: &Path, pid: u32) -> Option<Vec<String>> {
    let raw = fs::read(proc_root.join(pid.to_string()).join("cmdline")).ok()?;
    Some(
        raw.split(|b| *b == 0)
            .filter(|s| !s.is_empty())
            .map(|s| String::from_utf8_lossy(s).into_owned())
            .collect(),
    )
}

fn pids(proc_root: &Path) -> Vec<u32> {
    let mut out: Vec<u32> = fs::read_dir(proc_root)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    out.sort_unstable();
    out
}

/// Whether `argv` is a probe of run `run_id`, in mode `only` when given. Pure.
pub fn is_run_process(argv: &[String], run_id: &str, only: Option<&str>) -> bool {
    let tagged = argv.windows(2).any(|w| w[0] == "--run" && w[1] == run_id)
        || argv.iter().any(|a| a == &format!("--run={run_id}"));
    let probe = argv
        .first()
        .is_some_and(|a| a.ends_with("dns-doctor-probe"));
    let mode_ok = only.is_none_or(|m| argv.get(1).is_some_and(|a| a == m));
    tagged && probe && mode_ok
}

/// SIGTERM every probe process of the run (except this one), then wait, bounded, for them
/// to exit. Returns the PIDs signalled.
pub fn stop(proc_root: &Path, run_id: &str, only: Option<&str>, wait: Duration) -> Vec<u32> {
    let me = std::process::id();
    let targets: Vec<u32> = pids(proc_root)
        .into_iter()
        .filter(|p| *p != me)
        .filter(|p| cmdline(proc_root, *p).is_some_and(|argv| is_run_process(&argv, run_id, only)))
        .collect();
    for pid in &targets {
        child::send_signal(*pid, libc::SIGTERM);
    }
    let deadline = Instant::now() + wait;
    while Instant::now() < deadline && targets.iter().any(|p| is_alive(proc_root, *p)) {
        std::thread::sleep(Duration::from_millis(50));
    }
    targets
}

/// A process that exited but was not reaped yet (a zombie) counts as gone.
fn is_alive(proc_root: &Path, pid: u32) -> bool {
    match fs::read_to_string(proc_root.join(pid.to_string()).join("stat")) {
        // The state follows the command name in parentheses, which may itself hold spaces.
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

/// Whether a `/proc/<pid>/cgroup` text belongs to the pod with this UID. The UID appears
/// with dashes (cgroupfs driver) or underscores (systemd driver), on cgroup v1 and v2. Pure.
pub fn cgroup_has_pod(cgroup: &str, uid: &str) -> bool {
    if uid.is_empty() {
        return false;
    }
    let underscored = uid.replace('-', "_");
    cgroup
        .lines()
        .any(|l| l.contains(&format!("pod{uid}")) || l.contains(&format!("pod{underscored}")))
}

/// PIDs (in this PID namespace) of the processes of pod `uid`, lowest first.
pub fn find_pod(proc_root: &Path, uid: &str) -> Vec<u32> {
    pids(proc_root)
        .into_iter()
        .filter(|p| {
            fs::read_to_string(proc_root.join(p.to_string()).join("cgroup"))
                .is_ok_and(|text| cgroup_has_pod(&text, uid))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(s: &str) -> Vec<String> {
        s.split(' ').map(str::to_string).collect()
    }

    #[test]
    fn run_processes_are_recognised_by_tag_and_mode() {
        let cap = argv("/usr/local/bin/dns-doctor-probe capture --run ab12 --seconds 5");
        assert!(is_run_process(&cap, "ab12", None));
        assert!(is_run_process(&cap, "ab12", Some("capture")));
        assert!(!is_run_process(&cap, "ab12", Some("hold")));
        assert!(!is_run_process(&cap, "zz99", None));
        // Somebody else's process with the same words is left alone.
        assert!(!is_run_process(&argv("sleep --run ab12"), "ab12", None));
    }

    #[test]
    fn cgroup_lines_of_both_drivers_match() {
        let uid = "0f3c2a1e-1111-2222-3333-444455556666";
        let cgroupfs =
            "12:memory:/kubepods/besteffort/pod0f3c2a1e-1111-2222-3333-444455556666/abc\n";
        let systemd = "0::/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod0f3c2a1e_1111_2222_3333_444455556666.slice/cri-containerd-abc.scope\n";
        assert!(cgroup_has_pod(cgroupfs, uid));
        assert!(cgroup_has_pod(systemd, uid));
        assert!(!cgroup_has_pod("0::/user.slice\n", uid));
        assert!(!cgroup_has_pod(cgroupfs, ""));
    }

    #[test]
    fn find_pod_reads_a_proc_tree() {
        let dir = tempfile::tempdir().unwrap();
        for (pid, cg) in [
            (7, "1:cpu:/kubepods/podabc-1/x\n"),
            (9, "1:cpu:/kubepods/podother/x\n"),
            (3, "1:cpu:/kubepods/podabc-1/y\n"),
        ] {
            let d = dir.path().join(pid.to_string());
            fs::create_dir(&d).unwrap();
            fs::write(d.join("cgroup"), cg).unwrap();
        }
        fs::create_dir(dir.path().join("self")).unwrap();
        assert_eq!(find_pod(dir.path(), "abc-1"), vec![3, 7]);
    }
}
