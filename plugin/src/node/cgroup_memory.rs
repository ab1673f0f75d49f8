//! Memory of a pod's cgroups: what the DNS container uses now, its limit as the kernel
//! enforces it, its peak, and how many processes the kernel's OOM killer ended there.
//!
//! cgroup v1: `memory.usage_in_bytes`, `memory.limit_in_bytes` (a huge number: no limit),
//! `memory.max_usage_in_bytes`, `memory.oom_control` (`oom_kill N`, kernels >= 4.13).
//! cgroup v2: `memory.current`, `memory.max` (`max`: no limit), `memory.peak`,
//! `memory.events` (`oom_kill N`).
//!
//! A container's directory is new after each restart, so its counters cover the current
//! container only; the pod's directory outlives restarts.

use dns_doctor_schema::PodCgroupRead;
use serde::Serialize;

use super::cgroup::{is_container_dir, keyed, number, pod_files, Level, PodFile};

/// Limits at or above this are "no limit" (v1 writes PAGE_COUNTER_MAX pages as bytes).
const UNLIMITED: u64 = 1 << 62;

/// One directory's memory files, read once.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct MemorySample {
    pub usage_bytes: Option<u64>,
    /// None when unlimited or unreadable.
    pub limit_bytes: Option<u64>,
    pub peak_bytes: Option<u64>,
    /// Processes the OOM killer ended in this cgroup.
    pub oom_kills: Option<u64>,
}

impl MemorySample {
    /// `11.4 MiB used of a 20.0 MiB limit (peak 19.8 MiB)`.
    pub fn describe(&self) -> String {
        let mut s = match self.usage_bytes {
            Some(u) => format!("{} used", mib(u)),
            None => "usage unknown".to_string(),
        };
        match self.limit_bytes {
            Some(l) => s.push_str(&format!(" of a {} limit", mib(l))),
            None => s.push_str(", no memory limit"),
        }
        if let Some(p) = self.peak_bytes {
            s.push_str(&format!(" (peak {})", mib(p)));
        }
        s
    }
}

/// Bytes as MiB with one decimal.
pub fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

/// A limit file's value: None for `max` or a v1 "unlimited" number.
pub fn parse_limit(text: &str) -> Option<u64> {
    let t = text.trim();
    if t == "max" {
        return None;
    }
    number("memory limit", t).ok().filter(|v| *v < UNLIMITED)
}

/// The memory sample of `level` among a pod's files; None without any memory file.
pub fn sample(files: &[PodFile<'_>], level: &Level) -> Option<MemorySample> {
    let file = |name: &str| {
        files
            .iter()
            .find(|f| &f.level == level && f.name == name)
            .map(|f| f.content)
    };
    let value = |v1: &'static str, v2: &'static str| {
        file(v2)
            .or_else(|| file(v1))
            .and_then(|t| number(v2, t).ok())
    };
    let usage_bytes = value("memory.usage_in_bytes", "memory.current");
    let peak_bytes = value("memory.max_usage_in_bytes", "memory.peak");
    let limit_bytes = file("memory.max")
        .or_else(|| file("memory.limit_in_bytes"))
        .and_then(parse_limit);
    let oom_kills = file("memory.events")
        .or_else(|| file("memory.oom_control"))
        .and_then(|t| keyed(t, "oom_kill").ok().flatten());
    let any = [
        "memory.current",
        "memory.usage_in_bytes",
        "memory.max",
        "memory.limit_in_bytes",
    ]
    .iter()
    .any(|n| file(n).is_some());
    any.then_some(MemorySample {
        usage_bytes,
        limit_bytes,
        peak_bytes,
        oom_kills,
    })
}

/// A DNS pod's memory at the end of the node probe's window: its DNS container's and its
/// own.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct PodMemory {
    pub container: Option<MemorySample>,
    pub pod: Option<MemorySample>,
}

/// The last read of pod `uid`'s memory files (the "after" read when there is one).
pub fn pod_memory(
    reads: &[PodCgroupRead],
    uid: &str,
    container_id: Option<&str>,
) -> Option<PodMemory> {
    let read = reads
        .iter()
        .filter(|r| r.uid == uid)
        .max_by_key(|r| (r.when == "after", r.at_ms))?;
    let files = pod_files(&read.files, uid);
    let container = container_id.and_then(|id| {
        let dir = files.iter().find_map(|f| match &f.level {
            Level::Container(d) if is_container_dir(d, id) => Some(d.clone()),
            _ => None,
        })?;
        sample(&files, &Level::Container(dir))
    });
    let pod = sample(&files, &Level::Pod);
    (container.is_some() || pod.is_some()).then_some(PodMemory { container, pod })
}

#[cfg(test)]
mod tests {
    use dns_doctor_schema::RawFile;

    use super::*;

    const UID: &str = "644edbff-8237-4ee2-870b-ae96bd42ae65";
    const CID: &str = "3898e65bd07d0a0696d6d6876021a652f6173dc72504195b646f181405da6819";

    fn file(path: String, content: &str) -> RawFile {
        RawFile {
            path,
            content: Some(content.into()),
            error: None,
        }
    }

    /// Read on this machine (cgroup v1, cgroupfs) from the test cluster's CoreDNS pod
    /// (limit 170Mi) and from its sandbox container (no limit).
    fn v1_read() -> PodCgroupRead {
        let pod = format!("/sys/fs/cgroup/memory/kubepods/burstable/pod{UID}");
        let sandbox = "6c838e82a29c878cd0faf1133561b00d94af3b68e2de28ae3eeaf0f52f2f6a4a";
        PodCgroupRead {
            uid: UID.into(),
            when: "after".into(),
            at_ms: 1000,
            files: vec![
                file(format!("{pod}/memory.usage_in_bytes"), "13688832\n"),
                file(format!("{pod}/memory.limit_in_bytes"), "178257920\n"),
                file(format!("{pod}/memory.max_usage_in_bytes"), "16793600\n"),
                file(
                    format!("{pod}/memory.oom_control"),
                    "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n",
                ),
                file(format!("{pod}/{CID}/memory.usage_in_bytes"), "12689408\n"),
                file(format!("{pod}/{CID}/memory.limit_in_bytes"), "178257920\n"),
                file(
                    format!("{pod}/{CID}/memory.max_usage_in_bytes"),
                    "12689408\n",
                ),
                file(
                    format!("{pod}/{CID}/memory.oom_control"),
                    "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n",
                ),
                file(format!("{pod}/{sandbox}/memory.usage_in_bytes"), "970752\n"),
                file(
                    format!("{pod}/{sandbox}/memory.limit_in_bytes"),
                    "9223372036854771712\n",
                ),
            ],
            error: None,
        }
    }

    #[test]
    fn v1_container_and_pod_memory() {
        let m = pod_memory(&[v1_read()], UID, Some(&format!("containerd://{CID}"))).unwrap();
        let c = m.container.unwrap();
        assert_eq!(
            c,
            MemorySample {
                usage_bytes: Some(12_689_408),
                limit_bytes: Some(178_257_920),
                peak_bytes: Some(12_689_408),
                oom_kills: Some(0),
            }
        );
        assert_eq!(
            c.describe(),
            "12.1 MiB used of a 170.0 MiB limit (peak 12.1 MiB)"
        );
        assert_eq!(m.pod.unwrap().peak_bytes, Some(16_793_600));
        // The sandbox has no limit.
        let read = v1_read();
        let files = pod_files(&read.files, UID);
        let sandbox = sample(
            &files,
            &Level::Container(
                "6c838e82a29c878cd0faf1133561b00d94af3b68e2de28ae3eeaf0f52f2f6a4a".into(),
            ),
        )
        .unwrap();
        assert_eq!(sandbox.limit_bytes, None);
        assert_eq!(sandbox.describe(), "0.9 MiB used, no memory limit");
    }

    /// cgroup v2, in the kernel's documented format (cgroup-v2.rst).
    #[test]
    fn v2_events_count_oom_kills() {
        let scope = format!(
            "/sys/fs/cgroup/kubepods.slice/kubepods-pod{}.slice/cri-containerd-{CID}.scope",
            UID.replace('-', "_")
        );
        let read = PodCgroupRead {
            uid: UID.into(),
            when: "after".into(),
            at_ms: 0,
            files: vec![
                file(format!("{scope}/memory.current"), "20889600\n"),
                file(format!("{scope}/memory.max"), "20971520\n"),
                file(format!("{scope}/memory.peak"), "20971520\n"),
                file(
                    format!("{scope}/memory.events"),
                    "low 0\nhigh 0\nmax 211\noom 3\noom_kill 3\noom_group_kill 0\n",
                ),
            ],
            error: None,
        };
        let m = pod_memory(&[read], UID, Some(CID)).unwrap();
        let c = m.container.unwrap();
        assert_eq!(c.oom_kills, Some(3));
        assert_eq!(c.limit_bytes, Some(20_971_520));
        assert_eq!(m.pod, None);
        assert_eq!(parse_limit("max\n"), None);
    }

    #[test]
    fn the_after_read_is_preferred() {
        let mut before = v1_read();
        before.when = "before".into();
        before.at_ms = 0;
        before.files[0].content = Some("1\n".into());
        let m = pod_memory(&[v1_read(), before], UID, None).unwrap();
        assert_eq!(m.pod.unwrap().usage_bytes, Some(13_688_832));
        assert_eq!(m.container, None);
    }
}
