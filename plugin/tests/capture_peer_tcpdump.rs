//! Peer test against tcpdump's own test suite (`../shared/testdata/tcpdump-captures`):
//! every DNS packet we decode must have the DNS ID, question type and name that tcpdump
//! printed for that frame, every DNS packet tcpdump decoded on a DNS port must be found by
//! us, and every one of the 1600+ captures (many deliberately malformed) must be read or
//! rejected with an error, without a panic or a hang.
// The test reports what it compared; cargo shows it with --nocapture.
#![allow(clippy::print_stderr)]

use dns_doctor::capture::{
    CaptureReader, DnsPacket, DnsReader, ExtractOptions, Tracker, TrackerConfig,
};
use std::collections::BTreeMap;
use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

fn testdata() -> PathBuf {
    // `shared/` beside the repository (in CI as here), or beside a folder holding it (a
    // worktree's), as the unit tests' `capture::testdata` looks for it.
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = manifest
        .ancestors()
        .map(|a| a.join("shared/testdata/tcpdump-captures"))
        .find(|d| d.is_dir());
    dir.unwrap_or_else(|| {
        panic!(
            "tcpdump test captures missing: no shared/testdata/tcpdump-captures beside {} or a folder above it",
            manifest.display()
        )
    })
}

fn captures() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(testdata())
        .expect("read testdata dir")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| {
            matches!(
                p.extension().and_then(|e| e.to_str()),
                Some("pcap" | "pcapng")
            )
        })
        .collect();
    v.sort();
    v
}

/// One packet as tcpdump printed it: the frame number and the joined text of its lines.
fn out_records(text: &str) -> BTreeMap<u64, String> {
    let mut records = BTreeMap::new();
    let mut current: Option<(u64, String)> = None;
    for line in text.lines() {
        let trimmed = line.trim_start();
        let digits: String = trimmed.chars().take_while(|c| c.is_ascii_digit()).collect();
        // A record starts with its frame number followed by two spaces; continuation lines
        // (with -v) start with an address such as `192.0.2.1.53`.
        let is_start = !digits.is_empty() && trimmed[digits.len()..].starts_with("  ");
        if is_start {
            if let Some((n, t)) = current.take() {
                records.insert(n, t);
            }
            current = Some((
                digits.parse().expect("frame number"),
                trimmed[digits.len()..].to_string(),
            ));
        } else if let Some((_, t)) = current.as_mut() {
            t.push(' ');
            t.push_str(trimmed);
        }
    }
    if let Some((n, t)) = current {
        records.insert(n, t);
    }
    records
}

/// tcpdump's DNS decode of a record: the ID and, when printed, question type and name.
#[derive(Debug, PartialEq)]
struct TcpdumpDns {
    id: u16,
    question: Option<(String, String)>,
    port: u16,
}

fn tcpdump_dns(record: &str) -> Option<TcpdumpDns> {
    // `... IP 192.0.2.1.43966 > 192.0.2.2.53: [udp sum ok] 22836+ [1au] A? www.x. (56)`
    // The first ` > ` between two `address.port` tokens (brackets such as
    // `[total length 85 > length 84]` come before it on invalid packets).
    let (colon, src_port, dst_port) = record.match_indices(" > ").find_map(|(gt, _)| {
        let colon = gt + record[gt..].find(": ")?;
        let src_port: u16 = record[..gt].rsplit('.').next()?.parse().ok()?;
        let dst_port: u16 = record[gt + 3..colon].rsplit('.').next()?.parse().ok()?;
        Some((colon, src_port, dst_port))
    })?;
    let port = if [53, 5353, 8053].contains(&dst_port) {
        dst_port
    } else {
        src_port
    };
    let mut rest = &record[colon + 2..];
    while rest.starts_with('[') {
        rest = rest[rest.find("] ")? + 2..].trim_start();
    }
    if rest.starts_with("Flags [") {
        // TCP: the DNS decode follows `length N `.
        let at = rest.find(", length ")?;
        let after = &rest[at + 9..];
        let n = after.find(' ')?;
        rest = &after[n + 1..];
    }
    let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
    if digits.is_empty() {
        return None;
    }
    let next = rest[digits.len()..].chars().next()?;
    if !matches!(next, ' ' | '+' | '*' | '-' | '|' | '$' | '%' | '[') {
        return None;
    }
    let id: u16 = digits.parse().ok()?;
    let question = rest.find("? ").map(|q| {
        let before = &rest[..q];
        // `Type0 (Class 4347)? name`: the type is the token before the class.
        let before = match before.rfind(" (Class ") {
            Some(c) => &before[..c],
            None => before,
        };
        let qtype = before.rsplit(' ').next().unwrap_or("").to_string();
        let qname = rest[q + 2..].split(' ').next().unwrap_or("").to_string();
        (qtype, qname)
    });
    Some(TcpdumpDns { id, question, port })
}

fn read_dns(path: &Path) -> Vec<DnsPacket> {
    let file = File::open(path).expect("open capture");
    match DnsReader::new(BufReader::new(file), ExtractOptions::default()) {
        Ok(r) => r.map_while(Result::ok).collect(),
        Err(_) => Vec::new(),
    }
}

/// tcpdump prints unknown types as `TypeN`, hickory-based code as `TYPEN` (RFC 3597).
fn same_type(tcpdump: &str, ours: &str) -> bool {
    tcpdump.eq_ignore_ascii_case(ours)
}

/// tcpdump escapes unprintable label bytes as `M-x`/`^x`, we as `\DDD`; such names are not
/// compared (the ID and type still are).
fn comparable_name(tcpdump: &str, ours: &str) -> bool {
    !(ours.contains('\\')
        || tcpdump.contains("M-")
        || tcpdump.contains('^')
        || tcpdump.contains("[|"))
}

/// Packets tcpdump decodes as DNS that we deliberately do not, and why.
const KNOWN_SKIPS: &[(&str, u64, &str)] = &[
    (
        "dns-badlabel.pcap",
        1,
        "crafted response claiming 64259 questions whose first name is made of invalid \
         labels; hickory rejects the name (tcpdump prints the raw bytes), so the packet \
         counts as malformed DNS rather than as a message",
    ),
    (
        "dns_fwdptr.pcap",
        1,
        "the same crafted packet with a compression pointer pointing forward (tcpdump \
         prints <BAD PTR>); rejected as malformed for the same reason",
    ),
    (
        "ppp_ip_udp_dns.pcap",
        1,
        "fuzzed PPP-in-HDLC frame (control byte 0x5f, protocol 0x7e08) that tcpdump still \
         un-escapes into IP; we read PPP only with a valid IPv4/IPv6 protocol field",
    ),
];

#[test]
fn dns_id_type_and_name_agree_with_tcpdump() {
    let mut compared_packets = 0;
    let mut compared_questions = 0;
    let mut files_with_dns = 0;
    let mut problems = Vec::new();
    let mut not_decoded_by_tcpdump = Vec::new();
    for pcap in captures() {
        // The plain `.out` (no -v, -e, -T suffix) is tcpdump's default decode.
        let out = pcap.with_extension("out");
        let Ok(text) = std::fs::read_to_string(&out) else {
            continue;
        };
        let name = pcap.file_name().unwrap().to_string_lossy().to_string();
        let records = out_records(&text);
        // For DNS on a non-standard port tcpdump needs `-T domain`; its decode is in `-T.out`.
        let forced = std::fs::read_to_string(testdata().join(format!(
            "{}-T.out",
            pcap.file_stem().unwrap().to_string_lossy()
        )))
        .map(|t| out_records(&t))
        .unwrap_or_default();
        let ours = read_dns(&pcap);
        let mut ours_by_frame: BTreeMap<u64, Vec<&DnsPacket>> = BTreeMap::new();
        for p in &ours {
            ours_by_frame.entry(p.frame).or_default().push(p);
        }
        if !ours.is_empty() {
            files_with_dns += 1;
        }
        for (frame, packets) in &ours_by_frame {
            let decoded = records.get(frame).and_then(|r| tcpdump_dns(r));
            let Some(td) = decoded.or_else(|| forced.get(frame).and_then(|r| tcpdump_dns(r)))
            else {
                not_decoded_by_tcpdump.push(format!("{name} frame {frame}"));
                continue;
            };
            // TCP frames may complete several messages; tcpdump decodes the first one it
            // sees at the start of the segment.
            let Some(p) = packets.iter().find(|p| p.message.id == td.id) else {
                problems.push(format!(
                    "{name} frame {frame}: tcpdump id {} but ours {:?}",
                    td.id,
                    packets.iter().map(|p| p.message.id).collect::<Vec<_>>()
                ));
                continue;
            };
            compared_packets += 1;
            // tcpdump prints UTC times with microseconds, as the test suite runs with TZ=GMT0.
            let when = p.time.to_string().replace('T', " ").replace('Z', "");
            let record = records
                .get(frame)
                .or_else(|| forced.get(frame))
                .expect("decoded above");
            if !record.contains(&when) {
                problems.push(format!(
                    "{name} frame {frame}: time {when} not in `{record}`"
                ));
            }
            if let (Some((tt, tn)), Some(q)) = (&td.question, &p.message.question) {
                compared_questions += 1;
                let qt = q.qtype_name();
                if !same_type(tt, &qt) {
                    problems.push(format!(
                        "{name} frame {frame}: qtype tcpdump {tt} ours {qt}"
                    ));
                }
                if comparable_name(tn, &q.name) && *tn != q.name {
                    problems.push(format!(
                        "{name} frame {frame}: qname tcpdump {tn} ours {}",
                        q.name
                    ));
                }
            }
        }
        // Everything tcpdump decoded as DNS on a DNS port must be found by us too.
        for (frame, record) in &records {
            if let Some(td) = tcpdump_dns(record) {
                let skipped = KNOWN_SKIPS.iter().any(|(f, n, _)| *f == name && n == frame);
                if skipped {
                    // Keep the skip list honest: a skip that we now decode must be removed.
                    assert!(
                        !ours_by_frame.contains_key(frame),
                        "{name} frame {frame} is decoded now; drop it from KNOWN_SKIPS"
                    );
                } else if [53, 8053].contains(&td.port) && !ours_by_frame.contains_key(frame) {
                    problems.push(format!(
                        "{name} frame {frame}: tcpdump decoded DNS id {} but we did not",
                        td.id
                    ));
                }
            }
        }
    }
    assert!(
        problems.is_empty(),
        "disagreements with tcpdump:\n{}",
        problems.join("\n")
    );
    assert!(
        files_with_dns >= 10,
        "only {files_with_dns} captures had DNS"
    );
    assert!(
        compared_packets >= 60,
        "only {compared_packets} packets compared"
    );
    assert!(
        compared_questions >= 30,
        "only {compared_questions} questions compared"
    );
    eprintln!(
        "compared {compared_packets} DNS packets ({compared_questions} questions) in {files_with_dns} captures; \
         {} decoded by us on other ports or where tcpdump gave up: {:?}",
        not_decoded_by_tcpdump.len(),
        not_decoded_by_tcpdump
    );
}

/// Reads a capture to the end through every stage; returns frames read or the error text.
fn read_fully(path: &Path) -> Result<u64, String> {
    let file = File::open(path).map_err(|e| e.to_string())?;
    let reader = CaptureReader::new(BufReader::new(file)).map_err(|e| e.to_string())?;
    let mut dns = DnsReader::from_capture(reader, ExtractOptions::default());
    let mut tracker = Tracker::new(TrackerConfig::default());
    let mut err = None;
    for item in dns.by_ref() {
        match item {
            Ok(p) => tracker.observe(p, &mut |_| {}),
            Err(e) => err = Some(e.to_string()),
        }
    }
    tracker.finish(&mut |_| {});
    match err {
        Some(e) => Err(e),
        None => Ok(dns.stats().frames),
    }
}

#[test]
fn every_capture_is_read_or_rejected_without_panic_or_hang() {
    let files = captures();
    // 830 captures (.pcap/.pcapng) beside their 800-odd .out decodes: 1600+ files in all.
    assert!(
        files.len() >= 800,
        "expected 800+ captures, found {}",
        files.len()
    );
    let (mut read, mut rejected) = (0, 0);
    for path in files {
        let (tx, rx) = mpsc::channel();
        let p = path.clone();
        let worker = std::thread::spawn(move || {
            let _ = tx.send(read_fully(&p));
        });
        match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(Ok(_)) => read += 1,
            Ok(Err(_)) => rejected += 1,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                panic!("{} hangs: not read within 20 s", path.display())
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                let _ = worker.join();
                panic!("{} made the reader panic", path.display());
            }
        }
        let _ = worker.join();
    }
    eprintln!("{read} read to the end, {rejected} rejected with an error");
    assert!(read >= 700, "only {read} captures read to the end");
}
