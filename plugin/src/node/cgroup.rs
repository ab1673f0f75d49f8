//! Where a pod's cgroup files sit, from their paths alone: the pod's own directory or one
//! of its containers', under cgroup v1 or v2, with the cgroupfs or the systemd driver.
//! Shared by the CPU ([`super::cgroup_cpu`]) and memory ([`super::cgroup_memory`]) parsers.
//!
//! A pod's directory is `pod<uid>` (cgroupfs) or `kubepods[-<qos>]-pod<uid, - as _>.slice`
//! (systemd); a container's is the directory below it, named after the container ID
//! (`<id>`, `cri-containerd-<id>.scope`, `crio-<id>.scope`, `docker-<id>.scope`).

use dns_doctor_schema::RawFile;

/// Why a cgroup file could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CgroupError {
    #[error("`{field}` missing")]
    Missing { field: &'static str },
    #[error("`{field}` is not a number: `{text}`")]
    NotANumber { field: &'static str, text: String },
}

/// A number in a cgroup file, `field` naming it in errors.
pub fn number(field: &'static str, text: &str) -> Result<u64, CgroupError> {
    let t = text.trim();
    t.parse().map_err(|_| CgroupError::NotANumber {
        field,
        text: t.chars().take(64).collect(),
    })
}

/// The value of `key` in a flat-keyed file (`key value` lines: cpu.stat, memory.events,
/// memory.oom_control); None when the key is absent.
pub fn keyed(text: &str, key: &'static str) -> Result<Option<u64>, CgroupError> {
    for line in text.lines() {
        if let Some((k, v)) = line.trim().split_once(' ') {
            if k == key {
                return number(key, v).map(Some);
            }
        }
    }
    Ok(None)
}

/// Which directory of a pod a file is in.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    /// The pod's own directory (the sum of its containers, sandbox included).
    Pod,
    /// A container's directory, by its name.
    Container(String),
}

/// One cgroup file of a pod, placed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodFile<'a> {
    pub level: Level,
    /// The file's name, e.g. `cpu.stat`.
    pub name: &'a str,
    pub content: &'a str,
}

/// Whether a directory name is pod `uid`'s cgroup directory (either driver).
pub fn is_pod_dir(name: &str, uid: &str) -> bool {
    name.strip_prefix("pod") == Some(uid)
        || name.ends_with(&format!("-pod{}.slice", uid.replace('-', "_")))
}

/// Places `path` (as the node probe read it) relative to pod `uid`'s directory; None when it
/// is not below it or lies deeper than a container's directory.
pub fn place<'p>(path: &'p str, uid: &str) -> Option<(Level, &'p str)> {
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    let at = parts.iter().rposition(|p| is_pod_dir(p, uid))?;
    match &parts[at + 1..] {
        [file] => Some((Level::Pod, file)),
        [dir, file] => Some((Level::Container((*dir).to_string()), file)),
        _ => None,
    }
}

/// The files read without error that belong to pod `uid`, placed.
pub fn pod_files<'a>(files: &'a [RawFile], uid: &str) -> Vec<PodFile<'a>> {
    files
        .iter()
        .filter_map(|f| {
            let content = f.content.as_deref()?;
            let (level, name) = place(&f.path, uid)?;
            Some(PodFile {
                level,
                name,
                content,
            })
        })
        .collect()
}

/// Whether a container directory is the one of container `id` (the status's `containerID`,
/// with or without its `runtime://` prefix).
pub fn is_container_dir(dir: &str, id: &str) -> bool {
    let id = id.rsplit_once("://").map_or(id, |(_, bare)| bare);
    !id.is_empty()
        && (dir == id
            || dir
                .strip_suffix(".scope")
                .is_some_and(|d| d.ends_with(&format!("-{id}"))))
}

#[cfg(test)]
mod tests {
    use super::*;

    const UID: &str = "fa5d55bc-1d5f-4689-ae8b-861bd2e3bd31";
    const CID: &str = "85687cf76b4e0a6e7a9e2dd16ad0d97d040f92b1cc5b3534b616f7d59aeee11f";

    #[test]
    fn paths_of_both_drivers_and_versions_are_placed() {
        // cgroup v1, cgroupfs: this machine's layout, read through the pod's own mount.
        let v1 = format!("/sys/fs/cgroup/cpu/kubepods/burstable/pod{UID}/{CID}/cpu.stat");
        assert_eq!(
            place(&v1, UID),
            Some((Level::Container(CID.into()), "cpu.stat"))
        );
        let v1_pod =
            format!("/proc/1/root/sys/fs/cgroup/memory/kubepods/pod{UID}/memory.oom_control");
        assert_eq!(
            place(&v1_pod, UID),
            Some((Level::Pod, "memory.oom_control"))
        );
        // cgroup v2, systemd.
        let v2 = format!("/proc/1/root/sys/fs/cgroup/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{}.slice/cri-containerd-{CID}.scope/cpu.max", UID.replace('-', "_"));
        assert_eq!(
            place(&v2, UID),
            Some((
                Level::Container(format!("cri-containerd-{CID}.scope")),
                "cpu.max"
            ))
        );
        // Another pod, the pod directory itself, something deeper.
        assert_eq!(
            place("/sys/fs/cgroup/cpu/kubepods/podother/cpu.stat", UID),
            None
        );
        assert_eq!(
            place(&format!("/sys/fs/cgroup/cpu/kubepods/pod{UID}"), UID),
            None
        );
        assert_eq!(place(&format!("/x/pod{UID}/a/b/cpu.stat"), UID), None);
    }

    #[test]
    fn container_directories_match_the_status_container_id() {
        let status_id = format!("containerd://{CID}");
        assert!(is_container_dir(CID, &status_id));
        assert!(is_container_dir(
            &format!("cri-containerd-{CID}.scope"),
            &status_id
        ));
        assert!(is_container_dir(
            &format!("crio-{CID}.scope"),
            &format!("cri-o://{CID}")
        ));
        assert!(!is_container_dir("0123", &status_id));
        assert!(!is_container_dir(CID, ""));
        assert!(!is_container_dir(CID, "containerd://"));
    }

    #[test]
    fn unreadable_files_and_other_pods_are_left_out() {
        let files = vec![
            RawFile {
                path: format!("/sys/fs/cgroup/cpu/kubepods/burstable/pod{UID}/cpu.stat"),
                content: Some("nr_periods 0\n".into()),
                error: None,
            },
            RawFile {
                path: format!("/sys/fs/cgroup/cpu/kubepods/burstable/pod{UID}/cpu.max"),
                content: None,
                error: Some("Permission denied (os error 13)".into()),
            },
            RawFile {
                path: "/sys/fs/cgroup/cpu/kubepods/burstable/podx/cpu.stat".into(),
                content: Some("nr_periods 9\n".into()),
                error: None,
            },
        ];
        let placed = pod_files(&files, UID);
        assert_eq!(placed.len(), 1);
        assert_eq!(placed[0].level, Level::Pod);
        assert_eq!(placed[0].content, "nr_periods 0\n");
    }
}
