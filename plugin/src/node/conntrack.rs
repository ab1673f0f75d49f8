//! Parser for `conntrack -S` (per-CPU statistics) and the conntrack table fill level.
//!
//! The set of counters differs between kernels and conntrack-tools versions (`clash_resolve`
//! and `chaintoolong` are recent; `searched`, `new`, `delete` are old), so every `key=value`
//! pair is kept and the well-known ones have accessors that read 0 when absent.

use std::collections::BTreeMap;

use serde::Serialize;

/// One `cpu=N ...` line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CpuStats {
    pub cpu: u32,
    pub counters: BTreeMap<String, u64>,
}

/// A whole `conntrack -S` snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct ConntrackStats {
    pub cpus: Vec<CpuStats>,
}

/// Why `conntrack -S` output could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConntrackError {
    #[error("line {line}: `{field}` is not a `key=value` counter")]
    BadField { line: usize, field: String },
    #[error("no `cpu=` line found")]
    Empty,
    #[error("`{what}` is not a number: `{text}`")]
    NotANumber { what: &'static str, text: String },
}

/// Parses `conntrack -S`. Lines that do not start with `cpu=` (a header some versions
/// print, or a global `entries` line) are skipped.
pub fn parse_conntrack_stats(input: &str) -> Result<ConntrackStats, ConntrackError> {
    let mut stats = ConntrackStats::default();
    for (idx, line) in input.lines().enumerate() {
        let mut fields = line.split_whitespace();
        let Some(first) = fields.next() else { continue };
        let Some(cpu) = first.strip_prefix("cpu=") else {
            continue;
        };
        let cpu = cpu.parse().map_err(|_| ConntrackError::BadField {
            line: idx + 1,
            field: first.to_string(),
        })?;
        let mut counters = BTreeMap::new();
        for f in fields {
            let parsed = f
                .split_once('=')
                .and_then(|(k, v)| Some((k.to_string(), v.parse::<u64>().ok()?)));
            let Some((k, v)) = parsed else {
                return Err(ConntrackError::BadField {
                    line: idx + 1,
                    field: f.to_string(),
                });
            };
            counters.insert(k, v);
        }
        stats.cpus.push(CpuStats { cpu, counters });
    }
    if stats.cpus.is_empty() {
        return Err(ConntrackError::Empty);
    }
    Ok(stats)
}

impl ConntrackStats {
    /// Every counter summed over the CPUs (saturating).
    pub fn totals(&self) -> BTreeMap<String, u64> {
        let mut out: BTreeMap<String, u64> = BTreeMap::new();
        for cpu in &self.cpus {
            for (k, v) in &cpu.counters {
                let e = out.entry(k.clone()).or_default();
                *e = e.saturating_add(*v);
            }
        }
        out
    }

    /// One counter summed over the CPUs; 0 when this kernel does not report it.
    pub fn total(&self, key: &str) -> u64 {
        self.cpus
            .iter()
            .filter_map(|c| c.counters.get(key))
            .fold(0u64, |a, b| a.saturating_add(*b))
    }

    /// `insert_failed` summed: the counter the conntrack insert race (parallel A/AAAA from
    /// one socket) raises.
    pub fn insert_failed(&self) -> u64 {
        self.total("insert_failed")
    }

    /// `drop` summed: packets dropped because an entry could not be created.
    pub fn drop(&self) -> u64 {
        self.total("drop")
    }

    /// `early_drop` summed: entries evicted because the table was full.
    pub fn early_drop(&self) -> u64 {
        self.total("early_drop")
    }
}

/// Change of every counter between two snapshots of the same node.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct ConntrackDelta {
    /// after − before per counter (summed over CPUs). A counter that went down (module
    /// reload, CPU hot-unplug) reads 0 and sets `reset`.
    pub counters: BTreeMap<String, u64>,
    pub reset: bool,
}

impl ConntrackDelta {
    pub fn get(&self, key: &str) -> u64 {
        self.counters.get(key).copied().unwrap_or(0)
    }

    pub fn insert_failed(&self) -> u64 {
        self.get("insert_failed")
    }

    pub fn drop(&self) -> u64 {
        self.get("drop")
    }
}

/// Counter deltas from `before` to `after`.
pub fn conntrack_delta(before: &ConntrackStats, after: &ConntrackStats) -> ConntrackDelta {
    let b = before.totals();
    let a = after.totals();
    let mut delta = ConntrackDelta::default();
    for (k, after_v) in &a {
        let before_v = b.get(k).copied().unwrap_or(0);
        if *after_v < before_v {
            delta.reset = true;
        }
        delta
            .counters
            .insert(k.clone(), after_v.saturating_sub(before_v));
    }
    delta
}

/// `nf_conntrack_count` / `nf_conntrack_max`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ConntrackFill {
    pub count: u64,
    pub max: u64,
}

impl ConntrackFill {
    /// count / max in 0..=1 (more when over-full); `None` when max is 0.
    pub fn ratio(&self) -> Option<f64> {
        (self.max > 0).then(|| self.count as f64 / self.max as f64)
    }
}

/// Reads the contents of /proc/sys/net/netfilter/nf_conntrack_count and _max.
pub fn parse_conntrack_fill(count: &str, max: &str) -> Result<ConntrackFill, ConntrackError> {
    let num = |what: &'static str, text: &str| {
        text.trim()
            .parse::<u64>()
            .map_err(|_| ConntrackError::NotANumber {
                what,
                text: text.trim().chars().take(64).collect(),
            })
    };
    Ok(ConntrackFill {
        count: num("nf_conntrack_count", count)?,
        max: num("nf_conntrack_max", max)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delta_of_insert_failed_and_drop() {
        let before = parse_conntrack_stats(
            "cpu=0 found=1 invalid=0 insert=0 insert_failed=2 drop=0 early_drop=0 error=0 search_restart=0\n\
             cpu=1 found=0 invalid=0 insert=0 insert_failed=1 drop=0 early_drop=0 error=0 search_restart=0\n",
        )
        .unwrap();
        let after = parse_conntrack_stats(
            "cpu=0 found=1 invalid=0 insert=0 insert_failed=9 drop=3 early_drop=0 error=0 search_restart=0\n\
             cpu=1 found=0 invalid=0 insert=0 insert_failed=1 drop=1 early_drop=0 error=0 search_restart=0\n",
        )
        .unwrap();
        assert_eq!(after.insert_failed(), 10);
        let d = conntrack_delta(&before, &after);
        assert_eq!((d.insert_failed(), d.drop(), d.reset), (7, 4, false));
        assert!(conntrack_delta(&after, &before).reset);
    }

    #[test]
    fn old_field_sets_and_errors() {
        let old = parse_conntrack_stats("cpu=0 searched=5 found=2 new=7 invalid=0 ignore=3 delete=1 delete_list=1 insert=7 insert_failed=0 drop=0 early_drop=0 icmp_error=0 expect_new=0 expect_create=0 expect_delete=0 search_restart=0\n").unwrap();
        assert_eq!(old.total("searched"), 5);
        assert_eq!(old.total("clash_resolve"), 0);
        assert!(parse_conntrack_stats("cpu=0 found=x\n").is_err());
        assert_eq!(parse_conntrack_stats(""), Err(ConntrackError::Empty));
        let fill = parse_conntrack_fill("131072\n", "262144\n").unwrap();
        assert_eq!(fill.ratio(), Some(0.5));
        assert_eq!(parse_conntrack_fill("1", "0").unwrap().ratio(), None);
    }
}
