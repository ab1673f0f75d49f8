//! Parser for `conntrack -L` (the connection tracking table, one entry per line), in the
//! default format and in `-o extended` / `-o id`.
//!
//! A line is `[l3 l3num] l4 l4num timeout [state] ORIGINAL [UNREPLIED] REPLY [ASSURED] ...`
//! where each direction is `src= dst= sport= dport=` (with `packets= bytes=` when
//! accounting is on), followed by `mark=`, `zone=`, `use=`, `id=` and other `key=value`
//! fields that vary with the kernel and the tool's version. The first `src=` opens the
//! original direction, the second the reply. Lines that do not read that way are counted,
//! never fatal: a listing of 100k entries must not fail on one odd line.

use std::net::IpAddr;

use serde::Serialize;

/// One direction of a flow as conntrack tracks it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct FlowTuple {
    pub src: IpAddr,
    pub dst: IpAddr,
    /// None for protocols without ports (ICMP).
    pub sport: Option<u16>,
    pub dport: Option<u16>,
}

/// One entry of the table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConntrackEntry {
    /// 1-based line in the listing.
    pub line: usize,
    /// Transport protocol name as conntrack prints it: `udp`, `tcp`, `icmp`...
    pub protocol: String,
    /// Seconds until the entry expires unless a packet refreshes it.
    pub timeout_secs: u64,
    /// TCP's state (`ESTABLISHED`...); None for UDP.
    pub state: Option<String>,
    /// The flow as the client sent it: for a Service, `dst` is the ClusterIP.
    pub original: FlowTuple,
    /// The flow as replies must look: after DNAT, `src` is the endpoint the flow was sent
    /// to.
    pub reply: FlowTuple,
    /// No packet was seen in the reply direction.
    pub unreplied: bool,
    /// Replies were seen and the flow lasted: the kernel keeps it under pressure, with the
    /// longer stream timeout.
    pub assured: bool,
    /// Other bracketed flags (`[OFFLOAD]`, `[HW_OFFLOAD]`...).
    pub flags: Vec<String>,
    pub mark: Option<u32>,
    pub zone: Option<u16>,
    pub id: Option<u32>,
}

impl ConntrackEntry {
    /// True when the reply comes from somewhere else than where the client sent the flow:
    /// its destination was translated (a Service's DNAT to an endpoint).
    pub fn is_dnat(&self) -> bool {
        self.reply.src != self.original.dst
    }
}

/// A line that could not be read as an entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SkippedLine {
    pub line: usize,
    pub reason: &'static str,
}

/// What a listing holds.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct ConntrackListing {
    pub entries: Vec<ConntrackEntry>,
    pub skipped: Vec<SkippedLine>,
}

/// Parses `conntrack -L` output (stdout). Empty lines are ignored; lines that are not entries
/// are reported in [`ConntrackListing::skipped`].
pub fn parse_conntrack_listing(input: &str) -> ConntrackListing {
    let mut listing = ConntrackListing::default();
    for (idx, text) in input.lines().enumerate() {
        if text.trim().is_empty() {
            continue;
        }
        match parse_line(idx + 1, text) {
            Ok(e) => listing.entries.push(e),
            Err(reason) => listing.skipped.push(SkippedLine {
                line: idx + 1,
                reason,
            }),
        }
    }
    listing
}

/// The number of entries conntrack says it printed, from its stderr: `conntrack v1.4.7
/// (conntrack-tools): 7 flow entries have been shown.` None when the line is missing (the
/// command was killed, or another tool wrote the listing).
pub fn parse_shown_count(stderr: &str) -> Option<u64> {
    stderr.lines().find_map(|l| {
        let head = l.strip_suffix(" flow entries have been shown.")?;
        head.rsplit(' ').next()?.parse().ok()
    })
}

#[derive(Default)]
struct Direction {
    src: Option<IpAddr>,
    dst: Option<IpAddr>,
    sport: Option<u16>,
    dport: Option<u16>,
}

impl Direction {
    fn tuple(&self) -> Option<FlowTuple> {
        Some(FlowTuple {
            src: self.src?,
            dst: self.dst?,
            sport: self.sport,
            dport: self.dport,
        })
    }
}

fn parse_line(line: usize, text: &str) -> Result<ConntrackEntry, &'static str> {
    let mut words = text.split_whitespace().peekable();
    // `-o extended` starts with the layer-3 name and number.
    if matches!(words.peek(), Some(&("ipv4" | "ipv6" | "unknown"))) {
        words.next();
        words.next();
    }
    let protocol = words.next().ok_or("empty line")?;
    if protocol.contains('=') {
        return Err("no protocol name");
    }
    words
        .next()
        .filter(|n| n.parse::<u8>().is_ok())
        .ok_or("no protocol number")?;
    let timeout_secs = words
        .next()
        .and_then(|t| t.parse::<u64>().ok())
        .ok_or("no timeout")?;
    let state = match words.peek() {
        Some(w) if !w.contains('=') && !w.starts_with('[') => words.next().map(str::to_string),
        _ => None,
    };
    let mut dirs = [Direction::default(), Direction::default()];
    let mut dir: Option<usize> = None;
    let (mut unreplied, mut assured) = (false, false);
    let (mut mark, mut zone, mut id) = (None, None, None);
    let mut flags = Vec::new();
    for word in words {
        if let Some(flag) = word.strip_prefix('[').and_then(|w| w.strip_suffix(']')) {
            match flag {
                "UNREPLIED" => unreplied = true,
                "ASSURED" => assured = true,
                other => flags.push(other.to_string()),
            }
            continue;
        }
        let Some((key, value)) = word.split_once('=') else {
            continue;
        };
        if key == "src" {
            dir = Some(dir.map_or(0, |d| d + 1));
            if dir > Some(1) {
                return Err("more than two directions");
            }
        }
        let current = dir.map(|d| &mut dirs[d]);
        match (key, current) {
            ("src", Some(d)) => d.src = Some(value.parse().map_err(|_| "bad src address")?),
            ("dst", Some(d)) => d.dst = Some(value.parse().map_err(|_| "bad dst address")?),
            ("sport", Some(d)) => d.sport = Some(value.parse().map_err(|_| "bad sport")?),
            ("dport", Some(d)) => d.dport = Some(value.parse().map_err(|_| "bad dport")?),
            ("mark", _) => mark = parse_number(value),
            ("zone", _) => zone = value.parse().ok(),
            ("id", _) => id = value.parse().ok(),
            _ => {}
        }
    }
    let [orig, reply] = dirs;
    Ok(ConntrackEntry {
        line,
        protocol: protocol.to_string(),
        timeout_secs,
        state,
        original: orig.tuple().ok_or("no original direction")?,
        reply: reply.tuple().ok_or("no reply direction")?,
        unreplied,
        assured,
        flags,
        mark,
        zone,
        id,
    })
}

/// Marks print in decimal; accept hex (`0x4000`) too, as some versions and tools write it.
fn parse_number(text: &str) -> Option<u32> {
    match text.strip_prefix("0x") {
        Some(hex) => u32::from_str_radix(hex, 16).ok(),
        None => text.parse().ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BEFORE: &str = include_str!("../../tests/fixtures/node/conntrack-L-dns-before.txt");
    const BEFORE_STDERR: &str =
        include_str!("../../tests/fixtures/node/conntrack-L-dns-before.stderr.txt");
    const EXTENDED: &str = include_str!("../../tests/fixtures/node/conntrack-L-extended.txt");

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn reads_the_dns_listing_after_a_rollout() {
        let l = parse_conntrack_listing(BEFORE);
        assert!(l.skipped.is_empty(), "{:?}", l.skipped);
        assert_eq!(l.entries.len(), 7);
        assert_eq!(parse_shown_count(BEFORE_STDERR), Some(7));
        // The fixed-port client still DNATed to the gone endpoint 10.244.0.2.
        let stale = l
            .entries
            .iter()
            .find(|e| e.original.sport == Some(20053))
            .unwrap();
        assert_eq!(stale.protocol, "udp");
        assert_eq!(stale.state, None);
        assert_eq!(stale.timeout_secs, 119);
        assert_eq!(
            stale.original,
            FlowTuple {
                src: ip("10.244.0.4"),
                dst: ip("10.96.0.10"),
                sport: Some(20053),
                dport: Some(53)
            }
        );
        assert_eq!(
            stale.reply,
            FlowTuple {
                src: ip("10.244.0.2"),
                dst: ip("10.244.0.4"),
                sport: Some(53),
                dport: Some(20053)
            }
        );
        assert!(stale.assured && !stale.unreplied && stale.is_dnat());
        assert_eq!((stale.mark, stale.zone, stale.id), (Some(0), None, None));
        // Every other entry reaches one of the new endpoints.
        let new: Vec<IpAddr> = l
            .entries
            .iter()
            .filter(|e| e.original.sport.is_some_and(|p| p > 30000))
            .map(|e| e.reply.src)
            .collect();
        assert_eq!(new.len(), 5);
        assert!(new
            .iter()
            .all(|a| *a == ip("10.244.0.6") || *a == ip("10.244.0.7")));
    }

    #[test]
    fn reads_the_extended_format_zones_ids_ipv6_and_tcp() {
        let l = parse_conntrack_listing(EXTENDED);
        assert!(l.skipped.is_empty(), "{:?}", l.skipped);
        assert_eq!(l.entries.len(), 11);
        let zoned = l.entries.iter().find(|e| e.zone.is_some()).unwrap();
        assert_eq!(zoned.zone, Some(7));
        assert_eq!(zoned.reply.src, ip("10.244.0.9"));
        assert!(zoned.id.is_some());
        let v6 = l.entries.iter().find(|e| e.original.src.is_ipv6()).unwrap();
        assert_eq!(v6.original.dst, ip("fd00:96::a"));
        assert_eq!(v6.reply.src, ip("fd00:244::9"));
        assert!(v6.unreplied && !v6.assured);
        assert_eq!(v6.timeout_secs, 89);
        let tcp = l.entries.iter().find(|e| e.protocol == "tcp").unwrap();
        assert_eq!(tcp.state.as_deref(), Some("ESTABLISHED"));
        assert_eq!(tcp.timeout_secs, 299);
        // Inserted without a reply tuple: the reply is the inverted original, no DNAT.
        assert!(!tcp.is_dnat());
    }

    #[test]
    fn odd_lines_are_counted_not_fatal() {
        let input = "garbage\n\
                     udp 17 x src=1.2.3.4 dst=5.6.7.8 sport=1 dport=53 src=5.6.7.8 dst=1.2.3.4 sport=53 dport=1\n\
                     udp 17 30 src=1.2.3.4 dst=5.6.7.8 sport=1 dport=53\n\
                     udp 17 30 src=1.2.3.4 dst=nope sport=1 dport=53 src=5.6.7.8 dst=1.2.3.4 sport=53 dport=1\n\
                     \n\
                     udp 17 30 src=1.2.3.4 dst=5.6.7.8 sport=1 dport=53 src=9.9.9.9 dst=1.2.3.4 sport=53 dport=1 [OFFLOAD] mark=0x4000 use=1\n";
        let l = parse_conntrack_listing(input);
        assert_eq!(
            l.skipped
                .iter()
                .map(|s| (s.line, s.reason))
                .collect::<Vec<_>>(),
            vec![
                (1, "no protocol number"),
                (2, "no timeout"),
                (3, "no reply direction"),
                (4, "bad dst address"),
            ]
        );
        assert_eq!(l.entries.len(), 1);
        assert_eq!(l.entries[0].line, 6);
        assert_eq!(l.entries[0].flags, vec!["OFFLOAD".to_string()]);
        assert_eq!(l.entries[0].mark, Some(0x4000));
        assert_eq!(parse_shown_count("some error\n"), None);
    }
}
