//! Raw cgroup files of the pods the plugin names by UID: CPU bandwidth counters (throttling)
//! and memory counters, read verbatim from the host's cgroup tree. Nothing is parsed here;
//! the only judgement is which directories belong to a pod.
//!
//! The node pod runs with hostPID, so `/proc/1/root/sys/fs/cgroup` is the host's cgroup
//! mount, whatever cgroup namespace the pod itself got. Both layouts are walked:
//! cgroup v1 (one hierarchy per controller: `cpu`, `cpu,cpuacct`, `memory`, ...) and v2
//! (one unified tree), and both kubelet drivers: cgroupfs names a pod's directory
//! `pod<uid>` (`kubepods/burstable/pod<uid>`), systemd names it
//! `kubepods-<qos>-pod<uid with _ for ->.slice`. A pod directory's subdirectories are its
//! containers (the container ID, or `cri-containerd-<id>.scope` and the like).

use crate::schema::{PodCgroupRead, RawFile};
use std::collections::VecDeque;
use std::path::{Path, PathBuf};

/// Where the host's cgroup tree is seen from a hostPID pod, in order: through PID 1's root
/// (the host's mounts, whatever cgroup namespace this pod got); through the root of the
/// node's kubelet or container runtime (the same tree; also where PID 1 may not be inspected,
/// as in some sandboxed VMs, or where the node is itself a container, as with kind); last,
/// this pod's own mount (the whole tree only where the runtime does not narrow it).
pub fn host_cgroup_roots(proc_root: &Path) -> Vec<PathBuf> {
    let mut roots = vec![proc_root.join("1/root/sys/fs/cgroup")];
    roots.extend(
        node_agent_pids(proc_root)
            .into_iter()
            .take(MAX_AGENT_ROOTS)
            .map(|pid| proc_root.join(pid.to_string()).join("root/sys/fs/cgroup")),
    );
    roots.push(PathBuf::from("/sys/fs/cgroup"));
    roots
}

/// Process names of the node agents whose root is the node's.
const NODE_AGENTS: [&str; 6] = [
    "kubelet",
    "containerd",
    "crio",
    "dockerd",
    "k3s-server",
    "k3s-agent",
];
/// How many node agents' roots are tried at most.
const MAX_AGENT_ROOTS: usize = 4;

/// PIDs of the kubelet and the container runtime, lowest first: by process name, or by the
/// program or its first argument being `kubelet` (multi-call binaries such as `k8s kubelet`).
fn node_agent_pids(proc_root: &Path) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir(proc_root) else {
        return Vec::new();
    };
    let mut pids: Vec<u32> = entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| *pid != 1)
        .filter(|pid| {
            let dir = proc_root.join(pid.to_string());
            let comm = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
            let cmdline = std::fs::read(dir.join("cmdline")).unwrap_or_default();
            is_node_agent(comm.trim(), &cmdline)
        })
        .collect();
    pids.sort_unstable();
    pids
}

fn is_node_agent(comm: &str, cmdline: &[u8]) -> bool {
    if NODE_AGENTS.contains(&comm) {
        return true;
    }
    let mut args = cmdline
        .split(|b| *b == 0)
        .map(|a| String::from_utf8_lossy(a).into_owned());
    let program = args.next().unwrap_or_default();
    let base = program.rsplit('/').next().unwrap_or_default().to_owned();
    base == "kubelet" || args.next().as_deref() == Some("kubelet")
}

/// Files read in a pod's directory and in each of its containers' directories, where they
/// exist: v1 and v2 CPU bandwidth and usage, v1 and v2 memory.
pub const FILES: [&str; 13] = [
    "cpu.stat",
    "cpu.max",
    "cpu.cfs_quota_us",
    "cpu.cfs_period_us",
    "cpuacct.usage",
    "memory.current",
    "memory.max",
    "memory.peak",
    "memory.events",
    "memory.usage_in_bytes",
    "memory.limit_in_bytes",
    "memory.max_usage_in_bytes",
    "memory.oom_control",
];

/// How deep below a hierarchy's root a pod directory is looked for: kubepods sits at the
/// top on a plain node, deeper when the kubelet itself runs in a container (kind, k3d).
const MAX_DEPTH: usize = 6;
/// Directories visited per hierarchy at most, so that a huge tree cannot stall the probe.
const MAX_DIRS: usize = 20_000;

/// Reads the cgroup files of every pod in `uids`, from the first of `roots` that holds its
/// directory, tagged `when` (e.g. "before" or "after") and `at_ms` (milliseconds into the
/// node probe's window).
pub fn read_pods(roots: &[PathBuf], uids: &[String], when: &str, at_ms: u64) -> Vec<PodCgroupRead> {
    let mut found: Vec<(String, PathBuf)> = Vec::new();
    let mut tried: Vec<String> = Vec::new();
    for root in roots {
        let missing: Vec<String> = uids
            .iter()
            .filter(|u| !found.iter().any(|(f, _)| f == *u))
            .cloned()
            .collect();
        if missing.is_empty() {
            break;
        }
        let hierarchies = hierarchies(root);
        tried.push(if hierarchies.is_empty() {
            format!("{} (no cgroup hierarchy readable)", root.display())
        } else {
            root.display().to_string()
        });
        for h in &hierarchies {
            found.extend(find_pod_dirs(h, &missing));
        }
    }
    uids.iter()
        .map(|uid| {
            let dirs: Vec<&PathBuf> = found
                .iter()
                .filter(|(u, _)| u == uid)
                .map(|(_, d)| d)
                .collect();
            let mut files = Vec::new();
            for dir in &dirs {
                files.extend(read_dir_files(dir));
                for child in subdirectories(dir) {
                    files.extend(read_dir_files(&child));
                }
            }
            let error = dirs.is_empty().then(|| {
                format!(
                    "no cgroup directory of pod {uid} under {}",
                    tried.join(", ")
                )
            });
            PodCgroupRead {
                uid: uid.clone(),
                when: when.to_owned(),
                at_ms,
                files,
                error,
            }
        })
        .collect()
}

/// The roots to search: the unified tree itself (v2), or each v1 hierarchy holding the cpu,
/// cpuacct or memory controller (symlinks such as `cpu -> cpu,cpuacct` are skipped, so
/// each is walked once).
fn hierarchies(root: &Path) -> Vec<PathBuf> {
    if root.join("cgroup.controllers").is_file() {
        return vec![root.to_path_buf()];
    }
    let Ok(entries) = std::fs::read_dir(root) else {
        return Vec::new();
    };
    let mut out: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter(|e| {
            e.file_name().to_str().is_some_and(|n| {
                n.split(',')
                    .any(|c| c == "cpu" || c == "cpuacct" || c == "memory")
            })
        })
        .map(|e| e.path())
        .collect();
    out.sort();
    out
}

/// The pod UID a cgroup directory name belongs to, if it is one of `uids`' pod directories.
pub fn pod_uid_of<'u>(name: &str, uids: &'u [String]) -> Option<&'u String> {
    uids.iter().find(|uid| {
        name.strip_prefix("pod") == Some(uid.as_str())
            || name.ends_with(&format!("-pod{}.slice", uid.replace('-', "_")))
    })
}

/// Breadth-first walk of one hierarchy for the pods' directories, bounded in depth and size.
/// Container directories and other pods' directories are not descended into.
fn find_pod_dirs(hierarchy: &Path, uids: &[String]) -> Vec<(String, PathBuf)> {
    let mut out = Vec::new();
    let mut queue: VecDeque<(PathBuf, usize)> = VecDeque::from([(hierarchy.to_path_buf(), 0)]);
    let mut visited = 0;
    while let Some((dir, depth)) = queue.pop_front() {
        visited += 1;
        if visited > MAX_DIRS || out.len() == uids.len() {
            break;
        }
        for child in subdirectories(&dir) {
            let Some(name) = child.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            if let Some(uid) = pod_uid_of(name, uids) {
                out.push((uid.clone(), child));
            } else if depth + 1 < MAX_DEPTH && !is_leaf_name(name) {
                queue.push_back((child, depth + 1));
            }
        }
    }
    out
}

/// Names of directories that hold no pods: another pod's directory, a container's.
fn is_leaf_name(name: &str) -> bool {
    let pod_dir = name.starts_with("pod") || name.contains("-pod");
    let container = name.ends_with(".scope")
        || (name.len() == 64 && name.bytes().all(|b| b.is_ascii_hexdigit()));
    pod_dir || container
}

fn subdirectories(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.path())
        .collect();
    out.sort();
    out
}

/// The files of [`FILES`] that exist in `dir`, verbatim; a file that exists but cannot be
/// read is recorded with its error.
fn read_dir_files(dir: &Path) -> Vec<RawFile> {
    FILES
        .iter()
        .filter_map(|name| {
            let path = dir.join(name);
            let shown = path.to_string_lossy().into_owned();
            match std::fs::read_to_string(&path) {
                Ok(content) => Some(RawFile {
                    path: shown,
                    content: Some(content),
                    error: None,
                }),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                Err(e) => Some(RawFile {
                    path: shown,
                    content: None,
                    error: Some(e.to_string()),
                }),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const UID: &str = "fa5d55bc-1d5f-4689-ae8b-861bd2e3bd31";
    const CID: &str = "85687cf76b4e0a6e7a9e2dd16ad0d97d040f92b1cc5b3534b616f7d59aeee11f";

    fn write(path: &Path, content: &str) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, content).unwrap();
    }

    fn uids() -> Vec<String> {
        vec![UID.to_owned()]
    }

    #[test]
    fn directory_names_of_both_drivers_match_only_their_pod() {
        let u = uids();
        assert_eq!(pod_uid_of(&format!("pod{UID}"), &u), Some(&u[0]));
        assert_eq!(
            pod_uid_of(
                "kubepods-burstable-podfa5d55bc_1d5f_4689_ae8b_861bd2e3bd31.slice",
                &u
            ),
            Some(&u[0])
        );
        assert_eq!(
            pod_uid_of("kubepods-podfa5d55bc_1d5f_4689_ae8b_861bd2e3bd31.slice", &u),
            Some(&u[0])
        );
        assert_eq!(
            pod_uid_of("pod228a498d-08b7-48d7-b498-843fddf7bcd3", &u),
            None
        );
        assert_eq!(pod_uid_of("kubepods", &u), None);
        assert_eq!(pod_uid_of("burstable", &u), None);
    }

    /// The layout of this machine: cgroup v1, separate `cpu`, `cpuacct` and `memory`
    /// hierarchies, the cgroupfs driver (a Burstable pod).
    #[test]
    fn v1_cgroupfs_reads_the_pod_and_its_containers_in_every_hierarchy() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        let pod = format!("kubepods/burstable/pod{UID}");
        write(&r.join(format!("cpu/{pod}/cpu.stat")), "nr_periods 0\n");
        write(&r.join(format!("cpu/{pod}/cpu.cfs_quota_us")), "-1\n");
        write(
            &r.join(format!("cpu/{pod}/{CID}/cpu.stat")),
            "nr_periods 61\nnr_throttled 44\nthrottled_time 2007098964\n",
        );
        write(
            &r.join(format!("cpu/{pod}/{CID}/cpu.cfs_quota_us")),
            "1000\n",
        );
        write(
            &r.join(format!("cpuacct/{pod}/{CID}/cpuacct.usage")),
            "55075226\n",
        );
        write(
            &r.join(format!("memory/{pod}/memory.oom_control")),
            "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n",
        );
        write(
            &r.join(format!("memory/{pod}/{CID}/memory.usage_in_bytes")),
            "11370496\n",
        );
        // Another pod and the other QoS classes are not read.
        write(
            &r.join("cpu/kubepods/besteffort/pod228a498d-08b7-48d7-b498-843fddf7bcd3/cpu.stat"),
            "nr_periods 5\n",
        );
        write(&r.join("devices/kubepods/x"), "");
        let reads = read_pods(&[r.to_path_buf()], &uids(), "before", 0);
        assert_eq!(reads.len(), 1);
        let read = &reads[0];
        assert_eq!(read.error, None);
        assert_eq!(read.when, "before");
        let mut paths: Vec<String> = read
            .files
            .iter()
            .map(|f| {
                f.path
                    .strip_prefix(&*r.to_string_lossy())
                    .unwrap()
                    .to_owned()
            })
            .collect();
        paths.sort();
        assert_eq!(
            paths,
            [
                format!("/cpu/{pod}/{CID}/cpu.cfs_quota_us"),
                format!("/cpu/{pod}/{CID}/cpu.stat"),
                format!("/cpu/{pod}/cpu.cfs_quota_us"),
                format!("/cpu/{pod}/cpu.stat"),
                format!("/cpuacct/{pod}/{CID}/cpuacct.usage"),
                format!("/memory/{pod}/{CID}/memory.usage_in_bytes"),
                format!("/memory/{pod}/memory.oom_control"),
            ]
        );
        let quota = read
            .files
            .iter()
            .find(|f| f.path.ends_with(&format!("{CID}/cpu.cfs_quota_us")))
            .unwrap();
        assert_eq!(quota.content.as_deref(), Some("1000\n"));
    }

    /// cgroup v2 with the systemd driver, `cpu,cpuacct` style names do not apply: one tree.
    #[test]
    fn v2_systemd_finds_the_slice_and_the_scope() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        write(&r.join("cgroup.controllers"), "cpuset cpu io memory pids\n");
        let pod = "kubepods.slice/kubepods-burstable.slice/kubepods-burstable-podfa5d55bc_1d5f_4689_ae8b_861bd2e3bd31.slice";
        let scope = format!("{pod}/cri-containerd-{CID}.scope");
        write(&r.join(format!("{pod}/cpu.max")), "max 100000\n");
        write(&r.join(format!("{scope}/cpu.max")), "1000 100000\n");
        write(
            &r.join(format!("{scope}/cpu.stat")),
            "usage_usec 100\nnr_periods 3\nnr_throttled 1\nthrottled_usec 50\n",
        );
        write(
            &r.join(format!("{scope}/memory.events")),
            "low 0\nhigh 0\nmax 4\noom 1\noom_kill 1\n",
        );
        let reads = read_pods(&[r.to_path_buf()], &uids(), "after", 4200);
        let read = &reads[0];
        assert_eq!(read.error, None);
        assert_eq!(read.at_ms, 4200);
        assert_eq!(read.files.len(), 4);
        assert!(read
            .files
            .iter()
            .all(|f| f.path.contains("kubepods-burstable-pod")));
    }

    /// cgroup v1 with `cpu,cpuacct` joined and `cpu` a symlink to it: read once.
    #[test]
    fn a_joined_v1_hierarchy_is_read_once() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        write(
            &r.join(format!("cpu,cpuacct/kubepods/pod{UID}/cpu.stat")),
            "nr_periods 1\n",
        );
        std::os::unix::fs::symlink(r.join("cpu,cpuacct"), r.join("cpu")).unwrap();
        let reads = read_pods(&[r.to_path_buf()], &uids(), "before", 0);
        assert_eq!(reads[0].files.len(), 1, "{:?}", reads[0].files);
    }

    #[test]
    fn a_pod_that_is_not_there_says_so() {
        let root = tempfile::tempdir().unwrap();
        write(&root.path().join("memory/kubepods/cgroup.procs"), "");
        let empty = tempfile::tempdir().unwrap();
        let roots = [root.path().to_path_buf(), empty.path().to_path_buf()];
        let reads = read_pods(&roots, &uids(), "before", 0);
        assert!(reads[0].files.is_empty());
        let error = reads[0].error.as_deref().unwrap();
        assert!(error.contains("no cgroup directory of pod"), "{error}");
        assert!(error.contains("(no cgroup hierarchy readable)"), "{error}");
    }

    #[test]
    fn the_kubelet_and_runtime_roots_come_after_pid_1_and_before_the_own_mount() {
        let proc = tempfile::tempdir().unwrap();
        let p = proc.path();
        let proc_entry = |pid: u32, comm: &str, cmdline: &[u8]| {
            write(&p.join(format!("{pid}/comm")), &format!("{comm}\n"));
            std::fs::write(p.join(format!("{pid}/cmdline")), cmdline).unwrap();
        };
        // As on this machine: the multi-call binary's comm is `k8s`.
        proc_entry(21137, "k8s", b"/var/cache/bin/k8s\0kubelet\0--config=/x\0");
        proc_entry(21071, "k8s", b"/var/cache/bin/k8s\0kube-apiserver\0");
        proc_entry(900, "containerd", b"containerd\0--config\0c.toml\0");
        proc_entry(
            901,
            "containerd-shim",
            b"/usr/bin/containerd-shim-runc-v2\0-id\0x\0",
        );
        proc_entry(77, "coredns", b"/coredns\0-conf\0kubelet\0");
        let roots = host_cgroup_roots(p);
        assert_eq!(
            roots,
            [
                p.join("1/root/sys/fs/cgroup"),
                p.join("900/root/sys/fs/cgroup"),
                p.join("21137/root/sys/fs/cgroup"),
                PathBuf::from("/sys/fs/cgroup"),
            ]
        );
    }

    /// PID 1's root may not be readable (this machine's VM): the next root is used.
    #[test]
    fn the_first_root_holding_the_pod_is_used() {
        let unreadable = tempfile::tempdir().unwrap();
        let root = tempfile::tempdir().unwrap();
        write(
            &root
                .path()
                .join(format!("memory/kubepods/pod{UID}/memory.usage_in_bytes")),
            "1\n",
        );
        let roots = [unreadable.path().join("missing"), root.path().to_path_buf()];
        let reads = read_pods(&roots, &uids(), "before", 0);
        assert_eq!(reads[0].error, None);
        assert_eq!(reads[0].files.len(), 1);
    }
}
