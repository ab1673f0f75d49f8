//! CPU bandwidth of a pod's cgroups: the CFS quota (the CPU limit as the kernel enforces
//! it) and the throttling counters, read by the node probe at the start and at the end of
//! its window, so the difference is what happened during the run.
//!
//! cgroup v1: `cpu.stat` has `nr_periods`, `nr_throttled`, `throttled_time` (ns); the limit
//! is `cpu.cfs_quota_us` (-1: none) over `cpu.cfs_period_us`; usage is `cpuacct.usage` (ns).
//! cgroup v2: `cpu.stat` has `usage_usec`, `nr_periods`, `nr_throttled`, `throttled_usec`;
//! the limit is `cpu.max` (`max 100000` or `<quota> <period>`).
//!
//! `nr_periods` counts the enforcement periods (100 ms by default) in which the cgroup
//! wanted CPU, `nr_throttled` those in which it used up its quota and was stopped until the
//! next period began.

use dns_doctor_schema::PodCgroupRead;
use serde::Serialize;

use super::cgroup::{is_container_dir, keyed, number, pod_files, CgroupError, Level, PodFile};

/// `cpu.stat`'s bandwidth counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct CpuStat {
    pub nr_periods: u64,
    pub nr_throttled: u64,
    /// Time spent throttled, microseconds (v1's `throttled_time` is in nanoseconds).
    pub throttled_us: u64,
    /// CPU time used, microseconds (v2's `usage_usec`; v1 keeps it in `cpuacct.usage`).
    pub usage_us: Option<u64>,
}

/// Parses `cpu.stat` of either version.
pub fn parse_cpu_stat(text: &str) -> Result<CpuStat, CgroupError> {
    let need = |key: &'static str| keyed(text, key)?.ok_or(CgroupError::Missing { field: key });
    let nr_periods = need("nr_periods")?;
    let nr_throttled = need("nr_throttled")?;
    let throttled_us = match keyed(text, "throttled_usec")? {
        Some(us) => us,
        None => need("throttled_time")? / 1000,
    };
    Ok(CpuStat {
        nr_periods,
        nr_throttled,
        throttled_us,
        usage_us: keyed(text, "usage_usec")?,
    })
}

/// The CFS bandwidth limit: `quota_us` of CPU time per `period_us`; None for no limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Quota {
    pub quota_us: Option<u64>,
    pub period_us: u64,
}

impl Quota {
    /// The limit in CPUs (0.01 for a `10m` limit); None without one.
    pub fn cpus(&self) -> Option<f64> {
        let q = self.quota_us?;
        (self.period_us > 0).then(|| q as f64 / self.period_us as f64)
    }

    /// As the kernel has it: `1000 us per 100000 us (0.01 CPU)`, or `none`.
    pub fn describe(&self) -> String {
        match (self.quota_us, self.cpus()) {
            (Some(q), Some(c)) => format!("{q} us per {} us ({c:.3} CPU)", self.period_us),
            _ => "none".into(),
        }
    }
}

/// Parses v2's `cpu.max`: `max 100000` or `1000 100000`.
pub fn parse_cpu_max(text: &str) -> Result<Quota, CgroupError> {
    let mut parts = text.split_whitespace();
    let quota = parts
        .next()
        .ok_or(CgroupError::Missing { field: "cpu.max" })?;
    let period = parts
        .next()
        .map_or(Ok(100_000), |p| number("cpu.max period", p))?;
    let quota_us = if quota == "max" {
        None
    } else {
        Some(number("cpu.max quota", quota)?)
    };
    Ok(Quota {
        quota_us,
        period_us: period,
    })
}

/// Parses v1's `cpu.cfs_quota_us` (-1: no limit) and `cpu.cfs_period_us`.
pub fn parse_cfs(quota: &str, period: &str) -> Result<Quota, CgroupError> {
    let q = quota.trim();
    let quota_us = if q.starts_with('-') {
        None
    } else {
        Some(number("cpu.cfs_quota_us", q)?)
    };
    Ok(Quota {
        quota_us,
        period_us: number("cpu.cfs_period_us", period)?,
    })
}

/// One directory's CPU files, read once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct CpuSample {
    pub stat: CpuStat,
    pub quota: Option<Quota>,
    /// CPU time used, microseconds (v2 `usage_usec`, else v1 `cpuacct.usage`).
    pub usage_us: Option<u64>,
}

/// The CPU sample of `level` among a pod's files; None without a readable `cpu.stat`.
pub fn sample(files: &[PodFile<'_>], level: &Level) -> Option<CpuSample> {
    let file = |name: &str| {
        files
            .iter()
            .find(|f| &f.level == level && f.name == name)
            .map(|f| f.content)
    };
    let stat = parse_cpu_stat(file("cpu.stat")?).ok()?;
    let quota = match (
        file("cpu.max"),
        file("cpu.cfs_quota_us"),
        file("cpu.cfs_period_us"),
    ) {
        (Some(max), _, _) => parse_cpu_max(max).ok(),
        (None, Some(q), Some(p)) => parse_cfs(q, p).ok(),
        _ => None,
    };
    let usage_us = stat.usage_us.or_else(|| {
        file("cpuacct.usage")
            .and_then(|u| number("cpuacct.usage", u).ok())
            .map(|ns| ns / 1000)
    });
    Some(CpuSample {
        stat,
        quota,
        usage_us,
    })
}

/// What one cgroup went through between two samples.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Throttling {
    pub level: Level,
    /// Periods in which it wanted CPU, and in how many of them it was throttled.
    pub periods: u64,
    pub throttled: u64,
    pub throttled_ms: f64,
    pub usage_ms: Option<f64>,
    pub window_ms: u64,
    /// The limit at the end of the window.
    pub quota: Option<Quota>,
    /// Counters since the cgroup was created, at the end of the window.
    pub lifetime: CpuStat,
}

impl Throttling {
    /// Share of the periods with demand in which the quota ran out, 0 to 1.
    pub fn share(&self) -> f64 {
        if self.periods == 0 {
            0.0
        } else {
            self.throttled as f64 / self.periods as f64
        }
    }

    /// CPU used over the window as a share of what the limit allows in it.
    pub fn usage_of_limit(&self) -> Option<f64> {
        let cpus = self.quota?.cpus()?;
        let allowed_ms = cpus * self.window_ms as f64;
        let used = self.usage_ms?;
        (allowed_ms > 0.0).then(|| used / allowed_ms)
    }

    /// `19 of 137 CFS periods throttled (14 %), 0.5 s throttled (summed over CPUs), 106 ms of
    /// CPU used in 14.0 s (75 % of the limit)`.
    pub fn describe(&self) -> String {
        let mut s = format!(
            "{} of {} CFS periods throttled ({:.0} %), {:.1} s throttled (summed over CPUs)",
            self.throttled,
            self.periods,
            self.share() * 100.0,
            self.throttled_ms / 1000.0
        );
        if let Some(u) = self.usage_ms {
            s.push_str(&format!(", {u:.0} ms of CPU used"));
        }
        s.push_str(&format!(" in {:.1} s", self.window_ms as f64 / 1000.0));
        if let Some(q) = self.usage_of_limit() {
            s.push_str(&format!(" ({:.0} % of the limit)", q * 100.0));
        }
        s
    }
}

/// The difference between two samples of one cgroup; None when a counter went backwards
/// (the cgroup was recreated: a container restarted within the window).
pub fn throttling(
    level: Level,
    before: &CpuSample,
    after: &CpuSample,
    window_ms: u64,
) -> Option<Throttling> {
    let d = |a: u64, b: u64| a.checked_sub(b);
    Some(Throttling {
        level,
        periods: d(after.stat.nr_periods, before.stat.nr_periods)?,
        throttled: d(after.stat.nr_throttled, before.stat.nr_throttled)?,
        throttled_ms: d(after.stat.throttled_us, before.stat.throttled_us)? as f64 / 1000.0,
        usage_ms: match (before.usage_us, after.usage_us) {
            (Some(b), Some(a)) => Some(d(a, b)? as f64 / 1000.0),
            _ => None,
        },
        window_ms,
        quota: after.quota,
        lifetime: after.stat,
    })
}

/// A DNS pod's throttling during the window: its DNS container's and its own (the pod
/// level also carries any other container, the probe's ephemeral one included).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PodThrottling {
    pub container: Option<Throttling>,
    pub pod: Option<Throttling>,
}

impl PodThrottling {
    /// The DNS container's when it could be read, else the pod's.
    pub fn main(&self) -> Option<&Throttling> {
        self.container.as_ref().or(self.pod.as_ref())
    }
}

/// The throttling of pod `uid` (and of its container `container_id`) between the node
/// probe's "before" and "after" reads; None when either read is missing.
pub fn pod_throttling(
    reads: &[PodCgroupRead],
    uid: &str,
    container_id: Option<&str>,
) -> Option<PodThrottling> {
    let read = |when: &str| reads.iter().find(|r| r.uid == uid && r.when == when);
    let (before, after) = (read("before")?, read("after")?);
    let window_ms = after.at_ms.saturating_sub(before.at_ms);
    let (bf, af) = (pod_files(&before.files, uid), pod_files(&after.files, uid));
    let level_delta = |level: Level| {
        throttling(
            level.clone(),
            &sample(&bf, &level)?,
            &sample(&af, &level)?,
            window_ms,
        )
    };
    let container = container_id.and_then(|id| {
        let dir = af.iter().find_map(|f| match &f.level {
            Level::Container(d) if is_container_dir(d, id) => Some(d.clone()),
            _ => None,
        })?;
        level_delta(Level::Container(dir))
    });
    let pod = level_delta(Level::Pod);
    (container.is_some() || pod.is_some()).then_some(PodThrottling { container, pod })
}

#[cfg(test)]
mod tests {
    use dns_doctor_schema::RawFile;

    use super::*;

    const UID: &str = "452fa6bf-3a0f-4dc9-8cd4-1d597b8937f9";
    const CID: &str = "012e3ad33062569d604ffe84643ad86a14af8656b4b38979d1c7bb7c6f790251";

    /// Read on this machine (kernel 6.18, cgroup v1, cgroupfs) from a CoreDNS container
    /// with a `10m` CPU limit, 3 s after it started.
    const V1_STAT_THROTTLED: &str =
        "nr_periods 61\nnr_throttled 44\nthrottled_time 2007098964\nnr_bursts 0\nburst_time 0\n";
    /// The same container after a doctor run, 14 s later.
    const V1_STAT_LATER: &str =
        "nr_periods 198\nnr_throttled 63\nthrottled_time 2511835775\nnr_bursts 0\nburst_time 0\n";
    /// A container without a CPU limit (the test cluster's CoreDNS).
    const V1_STAT_UNLIMITED: &str =
        "nr_periods 0\nnr_throttled 0\nthrottled_time 0\nnr_bursts 0\nburst_time 0\n";
    /// cgroup v2's cpu.stat, in the kernel's documented format (cgroup-v2.rst).
    const V2_STAT: &str = "usage_usec 1529000\nuser_usec 1200000\nsystem_usec 329000\nnr_periods 310\nnr_throttled 260\nthrottled_usec 24200000\nnr_bursts 0\nburst_usec 0\n";

    #[test]
    fn cpu_stat_of_both_versions() {
        assert_eq!(
            parse_cpu_stat(V1_STAT_THROTTLED),
            Ok(CpuStat {
                nr_periods: 61,
                nr_throttled: 44,
                throttled_us: 2_007_098,
                usage_us: None
            })
        );
        assert_eq!(
            parse_cpu_stat(V2_STAT),
            Ok(CpuStat {
                nr_periods: 310,
                nr_throttled: 260,
                throttled_us: 24_200_000,
                usage_us: Some(1_529_000)
            })
        );
        assert_eq!(
            parse_cpu_stat("nr_periods 1\n"),
            Err(CgroupError::Missing {
                field: "nr_throttled"
            })
        );
        assert!(parse_cpu_stat("nr_periods x\nnr_throttled 0\nthrottled_time 0\n").is_err());
    }

    #[test]
    fn quotas_of_both_versions() {
        let v1 = parse_cfs("1000\n", "100000\n").unwrap();
        assert_eq!(v1.cpus(), Some(0.01));
        assert_eq!(v1.describe(), "1000 us per 100000 us (0.010 CPU)");
        assert_eq!(parse_cfs("-1\n", "100000\n").unwrap().cpus(), None);
        assert_eq!(parse_cpu_max("max 100000\n").unwrap().quota_us, None);
        assert_eq!(parse_cpu_max("50000 100000\n").unwrap().cpus(), Some(0.5));
        assert!(parse_cpu_max("").is_err());
    }

    fn file(path: String, content: &str) -> RawFile {
        RawFile {
            path,
            content: Some(content.into()),
            error: None,
        }
    }

    fn read(when: &str, at_ms: u64, stat: &str, usage_ns: &str) -> PodCgroupRead {
        let pod = format!("/sys/fs/cgroup/cpu/kubepods/burstable/pod{UID}");
        let acct = format!("/sys/fs/cgroup/cpuacct/kubepods/burstable/pod{UID}");
        PodCgroupRead {
            uid: UID.into(),
            when: when.into(),
            at_ms,
            files: vec![
                file(format!("{pod}/cpu.stat"), V1_STAT_UNLIMITED),
                file(format!("{pod}/cpu.cfs_quota_us"), "1000\n"),
                file(format!("{pod}/cpu.cfs_period_us"), "100000\n"),
                file(format!("{pod}/{CID}/cpu.stat"), stat),
                file(format!("{pod}/{CID}/cpu.cfs_quota_us"), "1000\n"),
                file(format!("{pod}/{CID}/cpu.cfs_period_us"), "100000\n"),
                file(format!("{acct}/{CID}/cpuacct.usage"), usage_ns),
            ],
            error: None,
        }
    }

    #[test]
    fn a_limited_container_throttled_during_the_window() {
        let reads = [
            read("before", 0, V1_STAT_THROTTLED, "55075226\n"),
            read("after", 14_000, V1_STAT_LATER, "160765635\n"),
        ];
        let t = pod_throttling(&reads, UID, Some(&format!("containerd://{CID}"))).unwrap();
        let c = t.container.as_ref().unwrap();
        assert_eq!(c.level, Level::Container(CID.into()));
        assert_eq!((c.periods, c.throttled), (137, 19));
        assert!(
            (c.throttled_ms - 504.736).abs() < 0.01,
            "{}",
            c.throttled_ms
        );
        assert!((c.share() - 19.0 / 137.0).abs() < 1e-9);
        // 105.7 ms of CPU in 14 s against 0.01 CPU (140 ms allowed).
        let used = c.usage_of_limit().unwrap();
        assert!((used - 0.755).abs() < 0.001, "{used}");
        assert_eq!(t.main(), Some(c));
        assert_eq!(
            c.describe(),
            "19 of 137 CFS periods throttled (14 %), 0.5 s throttled (summed over CPUs), 106 ms of CPU used in 14.0 s (75 % of the limit)"
        );
        // The pod level had no demand in its own periods here.
        assert_eq!(t.pod.as_ref().unwrap().periods, 0);
    }

    /// A real doctor run's reads (see tests/fixtures/cgroup/README.md): both CoreDNS
    /// containers (10m limit) throttled in every period of the 10 s window, their pods
    /// (with the fault's 1-CPU headroom container) not at all.
    #[test]
    fn a_real_run_against_the_throttled_test_cluster() {
        #[derive(serde::Deserialize)]
        struct Pod {
            uid: String,
            container_id: String,
        }
        #[derive(serde::Deserialize)]
        struct Fixture {
            dns_pods: Vec<Pod>,
            pod_cgroups: Vec<PodCgroupRead>,
        }
        let f: Fixture = serde_json::from_str(include_str!(
            "../../tests/fixtures/cgroup/v1-coredns-throttled.json"
        ))
        .unwrap();
        assert_eq!(f.dns_pods.len(), 2);
        for p in &f.dns_pods {
            let t = pod_throttling(&f.pod_cgroups, &p.uid, Some(&p.container_id)).unwrap();
            let c = t
                .container
                .as_ref()
                .expect("the CoreDNS container's cgroup");
            assert!(
                matches!(&c.level, Level::Container(d) if is_container_dir(d, &p.container_id))
            );
            assert_eq!(c.window_ms, 10_077);
            assert!(c.periods >= 95, "{c:?}");
            assert!(c.share() > 0.95, "{c:?}");
            assert_eq!(c.quota.and_then(|q| q.cpus()), Some(0.01));
            assert!(c.usage_of_limit().unwrap() > 0.9, "{c:?}");
            let pod = t.pod.as_ref().unwrap();
            assert_eq!(pod.throttled, 0);
            assert_eq!(pod.quota.and_then(|q| q.quota_us), Some(101_000));
        }
    }

    #[test]
    fn a_restarted_container_or_a_missing_read_gives_no_difference() {
        // The container was replaced: its counters start again from zero.
        let reads = [
            read("before", 0, V1_STAT_LATER, "160765635\n"),
            read("after", 14_000, V1_STAT_THROTTLED, "55075226\n"),
        ];
        let t = pod_throttling(&reads, UID, Some(CID)).unwrap();
        assert_eq!(t.container, None);
        assert!(t.pod.is_some());
        assert_eq!(pod_throttling(&reads[..1], UID, Some(CID)), None);
        assert_eq!(pod_throttling(&reads, "other", Some(CID)), None);
    }
}
