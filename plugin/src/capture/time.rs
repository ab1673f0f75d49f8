//! Packet timestamps: nanoseconds since the Unix epoch, independent of the capture format.

use serde::{Serialize, Serializer};
use std::fmt;
use std::time::Duration;

/// When a packet was captured, in nanoseconds since 1970-01-01T00:00:00Z.
///
/// pcap files carry micro- or nanosecond stamps and pcapng interfaces their own resolution;
/// both are converted to nanoseconds so packets from different files and interfaces compare.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

impl Timestamp {
    /// A timestamp from nanoseconds since the epoch.
    pub const fn from_nanos(nanos: i64) -> Self {
        Self(nanos)
    }

    /// A timestamp from whole seconds and a fraction in units of `1/resolution` seconds.
    /// Saturates instead of overflowing on absurd values from malformed files.
    pub fn from_parts(secs: i64, fraction: u64, resolution: u64) -> Self {
        let frac_nanos = if resolution == 0 {
            0
        } else {
            (u128::from(fraction) * 1_000_000_000 / u128::from(resolution)) as i128
        };
        let total = i128::from(secs) * 1_000_000_000 + frac_nanos;
        Self(total.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64)
    }

    /// Nanoseconds since the epoch.
    pub const fn as_nanos(self) -> i64 {
        self.0
    }

    /// Time from `earlier` to `self`; zero when `earlier` is later (clock steps, reordering).
    pub fn since(self, earlier: Timestamp) -> Duration {
        Duration::from_nanos(self.0.saturating_sub(earlier.0).max(0) as u64)
    }

    /// `self` shifted forward by `d`, saturating.
    pub fn saturating_add(self, d: Duration) -> Timestamp {
        Timestamp(
            self.0
                .saturating_add(i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)),
        )
    }
}

impl Timestamp {
    /// The RFC 3339 form for years 0 to 9999, written by hand: this runs twice per
    /// transaction in JSON output, and the formatting machinery with eight padded arguments
    /// was a tenth of the run time.
    fn rfc3339(self) -> Option<[u8; 27]> {
        let secs = self.0.div_euclid(1_000_000_000);
        let nanos = self.0.rem_euclid(1_000_000_000);
        let days = secs.div_euclid(86_400);
        let sod = secs.rem_euclid(86_400);
        let (y, m, d) = civil_from_days(days);
        if !(0..=9999).contains(&y) {
            return None;
        }
        let mut b = *b"0000-00-00T00:00:00.000000Z";
        let mut put = |at: usize, width: usize, mut v: u64| {
            for i in (at..at + width).rev() {
                b[i] = b'0' + (v % 10) as u8;
                v /= 10;
            }
        };
        put(0, 4, y as u64);
        put(5, 2, u64::from(m));
        put(8, 2, u64::from(d));
        put(11, 2, (sod / 3600) as u64);
        put(14, 2, ((sod / 60) % 60) as u64);
        put(17, 2, (sod % 60) as u64);
        put(20, 6, (nanos / 1000) as u64);
        Some(b)
    }
}

/// Writes timestamps as `Display` prints them, without `std::fmt`, remembering the date and
/// time of day of the last second written: a capture's times come in order, so nearly
/// every one shares it and only its microseconds are formatted.
#[derive(Debug, Default)]
pub struct Rfc3339Writer {
    second: Option<(i64, [u8; 20])>,
}

impl Rfc3339Writer {
    /// Appends `t` to `out`.
    pub fn push(&mut self, t: Timestamp, out: &mut Vec<u8>) {
        let secs = t.0.div_euclid(1_000_000_000);
        let prefix = match self.second {
            Some((s, prefix)) if s == secs => prefix,
            _ => match t.rfc3339() {
                Some(b) => {
                    let mut prefix = [0; 20];
                    prefix.copy_from_slice(&b[..20]);
                    self.second = Some((secs, prefix));
                    prefix
                }
                None => {
                    out.extend_from_slice(t.to_string().as_bytes());
                    return;
                }
            },
        };
        let mut micros = (t.0.rem_euclid(1_000_000_000) / 1000) as u32;
        let mut tail = *b"000000Z";
        for digit in tail[..6].iter_mut().rev() {
            *digit = b'0' + (micros % 10) as u8;
            micros /= 10;
        }
        out.extend_from_slice(&prefix);
        out.extend_from_slice(&tail);
    }
}

/// RFC 3339 in UTC with microseconds, e.g. `2020-06-10T09:19:54.740079Z` (tcpdump's precision).
impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.rfc3339() {
            Some(b) => f.write_str(std::str::from_utf8(&b).map_err(|_| fmt::Error)?),
            None => write!(
                f,
                "{}.{:09}",
                self.0.div_euclid(1_000_000_000),
                self.0.rem_euclid(1_000_000_000)
            ),
        }
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Proleptic Gregorian date of a day count since 1970-01-01 (Howard Hinnant's algorithm,
/// which works in 400-year eras so no table or loop is needed).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_like_tcpdump_in_utc() {
        let t = Timestamp::from_parts(1_591_780_794, 740_079, 1_000_000);
        assert_eq!(t.to_string(), "2020-06-10T09:19:54.740079Z");
        assert_eq!(
            Timestamp::from_nanos(0).to_string(),
            "1970-01-01T00:00:00.000000Z"
        );
        let leap = Timestamp::from_parts(951_782_400, 0, 1);
        assert_eq!(leap.to_string(), "2000-02-29T00:00:00.000000Z");
    }

    #[test]
    fn the_writer_prints_what_display_prints() {
        let mut writer = Rfc3339Writer::default();
        let base = 1_591_780_794_000_000_000;
        // In order within a second, across seconds, back in time, before 1970, extremes.
        let nanos = [
            base,
            base + 1_000,
            base + 999_999_999,
            base + 1_000_000_000,
            base + 1_000_000_001,
            base + 500,
            -5_000_000_001,
            -1,
            0,
            i64::MIN,
            i64::MAX,
        ];
        for n in nanos {
            let t = Timestamp::from_nanos(n);
            let mut out = Vec::new();
            writer.push(t, &mut out);
            assert_eq!(String::from_utf8(out).unwrap(), t.to_string());
        }
    }

    #[test]
    fn resolutions_convert_to_nanoseconds() {
        assert_eq!(
            Timestamp::from_parts(1, 5, 1_000_000_000).as_nanos(),
            1_000_000_005
        );
        assert_eq!(Timestamp::from_parts(1, 1, 1_000).as_nanos(), 1_001_000_000);
        assert_eq!(Timestamp::from_parts(i64::MAX, 0, 1).as_nanos(), i64::MAX);
        let a = Timestamp::from_nanos(10);
        assert_eq!(a.since(Timestamp::from_nanos(20)), Duration::ZERO);
    }
}
