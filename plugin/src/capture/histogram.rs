//! Fixed-size latency histogram: percentiles in constant memory, however long the capture.

use serde::Serialize;
use std::time::Duration;

/// Bucket edges grow by this factor, so a percentile is off by at most 5 %.
const GROWTH: f64 = 1.05;
/// Smallest bucket edge: 1 µs.
const BASE_NANOS: f64 = 1_000.0;
/// 1 µs · 1.05^400 ≈ 300 s: anything slower lands in the last bucket.
const BUCKETS: usize = 400;

/// Latency distribution of answered transactions.
#[derive(Clone, Debug)]
pub struct LatencyHistogram {
    counts: Vec<u64>,
    total: u64,
    max: Duration,
    min: Duration,
    sum_nanos: u128,
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        Self {
            counts: vec![0; BUCKETS],
            total: 0,
            max: Duration::ZERO,
            min: Duration::MAX,
            sum_nanos: 0,
        }
    }
}

/// Percentiles in milliseconds; `None` when nothing was answered.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct LatencySummary {
    /// Answered transactions measured.
    pub count: u64,
    /// Fastest, exact.
    pub min_ms: Option<f64>,
    /// Median (upper edge of its bucket, within 5 %).
    pub p50_ms: Option<f64>,
    /// 90th percentile (within 5 %).
    pub p90_ms: Option<f64>,
    /// 99th percentile (within 5 %).
    pub p99_ms: Option<f64>,
    /// Slowest, exact.
    pub max_ms: Option<f64>,
    /// Arithmetic mean, exact.
    pub mean_ms: Option<f64>,
}

fn ms(d: Duration) -> f64 {
    // Three decimals: microsecond precision, as tcpdump prints timestamps.
    (d.as_secs_f64() * 1e6).round() / 1e3
}

impl LatencyHistogram {
    /// An empty histogram.
    pub fn new() -> Self {
        Self::default()
    }

    fn bucket(d: Duration) -> usize {
        let nanos = d.as_nanos() as f64;
        if nanos <= BASE_NANOS {
            return 0;
        }
        let i = ((nanos / BASE_NANOS).ln() / GROWTH.ln()).ceil() as usize;
        i.min(BUCKETS - 1)
    }

    fn upper_edge(i: usize) -> Duration {
        Duration::from_nanos((BASE_NANOS * GROWTH.powi(i as i32)) as u64)
    }

    /// Adds one measurement.
    pub fn record(&mut self, d: Duration) {
        self.counts[Self::bucket(d)] += 1;
        self.total += 1;
        self.max = self.max.max(d);
        self.min = self.min.min(d);
        self.sum_nanos += d.as_nanos();
    }

    /// Merges another histogram into this one.
    pub fn merge(&mut self, other: &LatencyHistogram) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.total += other.total;
        self.max = self.max.max(other.max);
        self.min = self.min.min(other.min);
        self.sum_nanos += other.sum_nanos;
    }

    /// The `q`-quantile (0 < q ≤ 1), clamped to the exact maximum.
    pub fn quantile(&self, q: f64) -> Option<Duration> {
        if self.total == 0 {
            return None;
        }
        let rank = ((q * self.total as f64).ceil() as u64).clamp(1, self.total);
        let mut seen = 0;
        for (i, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Some(Self::upper_edge(i).min(self.max).max(self.min));
            }
        }
        Some(self.max)
    }

    /// Count and percentiles.
    pub fn summary(&self) -> LatencySummary {
        if self.total == 0 {
            return LatencySummary::default();
        }
        LatencySummary {
            count: self.total,
            min_ms: Some(ms(self.min)),
            p50_ms: self.quantile(0.50).map(ms),
            p90_ms: self.quantile(0.90).map(ms),
            p99_ms: self.quantile(0.99).map(ms),
            max_ms: Some(ms(self.max)),
            mean_ms: Some(ms(Duration::from_nanos(
                (self.sum_nanos / u128::from(self.total)) as u64,
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_within_five_percent() {
        let mut h = LatencyHistogram::new();
        for i in 1..=1000u64 {
            h.record(Duration::from_micros(i * 100));
        }
        let p50 = h.quantile(0.5).unwrap().as_secs_f64();
        assert!((p50 - 0.050).abs() / 0.050 <= 0.05, "{p50}");
        let p99 = h.quantile(0.99).unwrap().as_secs_f64();
        assert!((p99 - 0.099).abs() / 0.099 <= 0.05, "{p99}");
        let s = h.summary();
        assert_eq!(s.max_ms, Some(100.0));
        assert_eq!(s.min_ms, Some(0.1));
        assert_eq!(s.count, 1000);
        assert_eq!(LatencyHistogram::new().summary().p50_ms, None);
        let mut slow = LatencyHistogram::new();
        slow.record(Duration::from_secs(3600));
        assert_eq!(slow.quantile(0.5), Some(Duration::from_secs(3600)));
    }
}
