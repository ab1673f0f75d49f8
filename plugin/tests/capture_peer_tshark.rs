//! Second peer: tshark. On a capture of 100,000+ DNS packets produced by dnsperf against
//! dnsmasq (in a network namespace of the test's own, with an iptables rule there dropping
//! every 50th response so that some queries stay unanswered), `analyze -o json` must count
//! exactly the queries, responses and unanswered queries tshark counts, and name the same
//! unanswered query frames.
//!
//! Apples to apples: tshark is run with two passes (`-2`), because only then does a query
//! frame know its `dns.response_in`; a query frame without it is unanswered. Our
//! `summary.unanswered` counts query messages that no response matched (every copy of a
//! retransmitted query of an unanswered transaction, which is how tshark marks them too),
//! and `queries`/`responses` count messages by their QR bit, as `dns.flags.response` does.
//!
//! Needs root (network namespace, iptables); installs dnsperf, tshark, dnsmasq, tcpdump
//! with apt-get when missing (through scripts/bench-analyze, which also makes the capture).
// The test reports what it compared; cargo shows it with --nocapture.
#![allow(clippy::print_stderr)]

use serde_json::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Runs a command with a deadline (coreutils `timeout`), returning stdout; panics with
/// stderr on failure.
fn run(deadline_secs: u32, cmd: &str, args: &[&str]) -> String {
    let out = Command::new("timeout")
        .arg(deadline_secs.to_string())
        .arg(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd}: {e}"));
    assert!(
        out.status.success(),
        "{cmd} {args:?} failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

struct TsharkCounts {
    queries: u64,
    responses: u64,
    unanswered_frames: BTreeSet<u64>,
}

fn tshark_counts(file: &Path) -> TsharkCounts {
    let fields = run(
        600,
        "tshark",
        &[
            "-2",
            "-r",
            file.to_str().unwrap(),
            "-Y",
            "dns",
            "-T",
            "fields",
            "-e",
            "frame.number",
            "-e",
            "dns.flags.response",
            "-e",
            "dns.response_in",
        ],
    );
    let mut c = TsharkCounts {
        queries: 0,
        responses: 0,
        unanswered_frames: BTreeSet::new(),
    };
    for line in fields.lines() {
        let cols: Vec<&str> = line.split('\t').collect();
        assert_eq!(cols.len(), 3, "unexpected tshark line {line:?}");
        match cols[1] {
            "1" | "True" => c.responses += 1,
            "0" | "False" => {
                c.queries += 1;
                if cols[2].is_empty() {
                    c.unanswered_frames
                        .insert(cols[0].parse().expect("frame number"));
                }
            }
            other => panic!("unexpected dns.flags.response {other:?}"),
        }
    }
    c
}

#[test]
fn analyze_counts_equal_tshark_on_a_dnsperf_capture() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pcap = dir.path().join("dnsperf.pcap");
    let script = repo().join("scripts/bench-analyze");
    run(
        1200,
        script.to_str().unwrap(),
        &["--capture-only", pcap.to_str().unwrap()],
    );

    let mut out = Vec::new();
    let verdict = dns_doctor::analyze::run(
        std::slice::from_ref(&pcap),
        dns_doctor::analyze::Format::Json,
        &mut out,
    )
    .expect("analyze");
    let doc: Value = serde_json::from_slice(&out).expect("analyze JSON");
    assert_eq!(doc["schema_version"], dns_doctor::analyze::SCHEMA_VERSION);
    let file = &doc["files"][0];
    let s = &file["summary"];
    let n = |k: &str| {
        s[k].as_u64()
            .unwrap_or_else(|| panic!("summary.{k} missing"))
    };

    let t = tshark_counts(&pcap);
    let tshark_unanswered = t.unanswered_frames.len() as u64;
    eprintln!(
        "analyze: {} messages, {} queries, {} responses, {} unanswered; \
         tshark: {} queries, {} responses, {} unanswered",
        n("dns_messages"),
        n("queries"),
        n("responses"),
        n("unanswered"),
        t.queries,
        t.responses,
        tshark_unanswered
    );
    assert!(
        n("dns_messages") >= 100_000,
        "capture too small: {} DNS messages",
        n("dns_messages")
    );
    assert_eq!(n("dns_messages"), t.queries + t.responses);
    assert_eq!(n("queries"), t.queries, "queries");
    assert_eq!(n("responses"), t.responses, "responses");
    assert_eq!(n("unanswered"), tshark_unanswered, "unanswered");
    // The dropped responses must show: otherwise the comparison proves little.
    assert!(
        tshark_unanswered > 100,
        "only {tshark_unanswered} unanswered"
    );

    // Not only the counts: the very same query frames are unanswered for both.
    let ours: BTreeSet<u64> = file["transactions"]
        .as_array()
        .expect("transactions")
        .iter()
        .filter(|t| t["outcome"] != "answered")
        .map(|t| {
            assert_eq!(t["retransmissions"], 0, "dnsperf does not retransmit");
            t["query_frame"].as_u64().expect("query_frame")
        })
        .collect();
    assert_eq!(ours, t.unanswered_frames, "unanswered query frames differ");

    // Unanswered queries are a problem worth exit code 1.
    assert_eq!(verdict, dns_doctor::analyze::Verdict::ProblemsFound);
    let ids: Vec<&str> = file["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .filter_map(|f| f["id"].as_str())
        .collect();
    assert!(ids.contains(&"cluster-dns-unreachable"), "findings {ids:?}");
    // One response in 50 dropped is 2 % of the transactions, above the 1 % that makes it an
    // error.
    let lost = file["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["id"] == "cluster-dns-unreachable")
        .unwrap();
    assert_eq!(lost["severity"], "error", "{lost}");
}
