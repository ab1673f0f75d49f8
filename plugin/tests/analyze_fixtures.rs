//! `analyze` on real captures taken with tcpdump while dig and glibc's resolver talked to
//! dnsmasq (tests/fixtures/captures, see its README): what each capture shows must be found,
//! under the finding ids a live run reports.

use dns_doctor::analyze::{run, Format, Verdict, SCHEMA_VERSION};
use serde_json::Value;
use std::path::PathBuf;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/captures")
        .join(name)
}

/// Runs `analyze -o json` on one fixture; returns the verdict and that file's object.
fn analyze(name: &str) -> (Verdict, Value) {
    let mut out = Vec::new();
    let verdict = run(&[fixture(name)], Format::Json, &mut out).expect("analyze");
    let doc: Value = serde_json::from_slice(&out).expect("valid JSON");
    assert_eq!(doc["schema_version"], SCHEMA_VERSION);
    (verdict, doc["files"][0].clone())
}

fn n(v: &Value, path: &[&str]) -> u64 {
    let mut v = v;
    for p in path {
        v = &v[*p];
    }
    v.as_u64()
        .unwrap_or_else(|| panic!("{path:?} is not an integer: {v}"))
}

/// The finding with this id; panics when absent.
fn finding<'v>(file: &'v Value, id: &str) -> &'v Value {
    file["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["id"] == id)
        .unwrap_or_else(|| panic!("{id} missing from {}", file["findings"]))
}

/// A finding's evidence as `source: detail` lines.
fn evidence(f: &Value) -> String {
    f["evidence"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            format!(
                "{}: {}",
                e["source"].as_str().unwrap(),
                e["detail"].as_str().unwrap()
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn finding_ids(file: &Value) -> Vec<String> {
    file["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["id"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn healthy_udp_and_tcp_over_ipv4_and_ipv6_on_ethernet() {
    let (verdict, f) = analyze("lo-udp-tcp.pcap");
    assert_eq!(verdict, Verdict::Healthy, "{}", f["findings"]);
    let s = &f["summary"];
    assert_eq!(n(s, &["dns_messages"]), 12);
    assert_eq!(
        (
            n(s, &["queries"]),
            n(s, &["responses"]),
            n(s, &["unanswered"])
        ),
        (6, 6, 0)
    );
    assert_eq!(n(s, &["tcp_messages"]), 4);
    assert_eq!(n(s, &["rcodes", "NXDOMAIN"]), 1);
    let txs = f["transactions"].as_array().unwrap();
    assert_eq!(txs.len(), 6);
    assert!(txs
        .iter()
        .any(|t| t["client"].as_str().unwrap().starts_with("[::1]")));
    for t in txs {
        assert!(t["latency_ms"].as_f64().unwrap() < 1000.0);
        assert!(t["qname"].as_str().unwrap().ends_with(".test."), "{t}");
    }
    assert_eq!(f["capture"]["format"], "pcap");
}

#[test]
fn linux_cooked_v2_from_tcpdump_any() {
    let (verdict, f) = analyze("any-sll2.pcap");
    assert_eq!(verdict, Verdict::Healthy);
    let s = &f["summary"];
    assert_eq!(
        (
            n(s, &["queries"]),
            n(s, &["responses"]),
            n(s, &["answered"])
        ),
        (3, 3, 3)
    );
    assert_eq!(n(s, &["tcp_messages"]), 2);
}

#[test]
fn glibc_with_aaaa_dropped_shows_the_five_second_stall() {
    let (verdict, f) = analyze("glibc-aaaa-dropped.pcap");
    assert_eq!(verdict, Verdict::ProblemsFound);
    let p = &f["summary"]["patterns"];
    assert_eq!(n(p, &["a_aaaa_pairs"]), 1);
    assert_eq!(n(p, &["a_aaaa_one_missing"]), 1);
    // Retried once on the same socket, then once on a new one, 5 s apart each.
    assert_eq!(n(p, &["five_second_retries"]), 2);
    // The AAAA queries are lost (most of the capture's transactions: an error), and the
    // stall they cause is the live run's five-second finding, from the capture alone.
    let lost = finding(&f, "cluster-dns-unreachable");
    assert_eq!(lost["severity"], "error", "{lost}");
    let ev = evidence(lost);
    assert!(
        ev.contains("capture:glibc-aaaa-dropped.pcap: frame ")
            && ev.contains("AAAA? web.example.test."),
        "{ev}"
    );
    let stall = finding(&f, "five-second-latency");
    assert_eq!(stall["severity"], "warning", "{stall}");
    let ev = evidence(stall);
    assert!(
        ev.contains("1 of 1 A/AAAA pairs got one reply only; 2 queries retried after ~5 s"),
        "{ev}"
    );
    // No probe, so nothing is known about the client's libc: no glibc-only advice.
    let advice = stall["remediation"].to_string();
    assert!(!advice.contains("uses glibc"), "{advice}");
    // Every AAAA query went unanswered, every A query was answered.
    for t in f["transactions"].as_array().unwrap() {
        let answered = t["outcome"] == "answered";
        assert_eq!(answered, t["qtype"] == "A", "{t}");
        assert_eq!(t["latency_ms"].is_null(), !answered);
    }
}

#[test]
fn search_path_expansion_from_ndots() {
    let (_, f) = analyze("search-path.pcap");
    let p = &f["summary"]["patterns"];
    assert_eq!(
        (
            n(p, &["search_path_lookups"]),
            n(p, &["search_path_nxdomains"])
        ),
        (1, 3)
    );
    let f = finding(&f, "search-path-amplification");
    assert!(
        evidence(f).contains("1 lookup answered only after 3 NXDOMAIN answers"),
        "{}",
        evidence(f)
    );
}

#[test]
fn truncated_answers_with_and_without_the_tcp_retry() {
    let (verdict, f) = analyze("truncated.pcap");
    assert_eq!(verdict, Verdict::ProblemsFound);
    let p = &f["summary"]["patterns"];
    assert_eq!(
        (n(p, &["truncated_tcp_ok"]), n(p, &["truncated_no_tcp"])),
        (1, 1)
    );
    assert_eq!(n(&f["summary"], &["truncated_responses"]), 2);
    // The retry that was never tried is a warning; only a failed TCP retry proves an error.
    let f = finding(&f, "truncated-no-tcp");
    assert_eq!(f["severity"], "warning", "{f}");
}

#[test]
fn lost_queries_in_pcapng() {
    let (verdict, f) = analyze("lost.pcapng");
    assert_eq!(verdict, Verdict::ProblemsFound);
    assert_eq!(f["capture"]["format"], "pcapng");
    let s = &f["summary"];
    assert_eq!(
        (
            n(s, &["queries"]),
            n(s, &["responses"]),
            n(s, &["unanswered"])
        ),
        (4, 1, 3)
    );
    let lost: Vec<&str> = f["transactions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["outcome"] == "unanswered")
        .map(|t| t["qname"].as_str().unwrap())
        .collect();
    assert!(lost.contains(&"lost.example.test."), "{lost:?}");
    assert_eq!(finding_ids(&f)[0], "cluster-dns-unreachable");
    assert!(
        evidence(finding(&f, "cluster-dns-unreachable")).contains("lost.example.test."),
        "{}",
        f["findings"]
    );
}

#[test]
fn text_report_has_summary_findings_and_percentiles() {
    let mut out = Vec::new();
    let verdict = run(
        &[
            fixture("lo-udp-tcp.pcap"),
            fixture("glibc-aaaa-dropped.pcap"),
        ],
        Format::Text,
        &mut out,
    )
    .unwrap();
    assert_eq!(verdict, Verdict::ProblemsFound);
    let text = String::from_utf8(out).unwrap();
    assert!(text.contains("lo-udp-tcp.pcap (pcap, "), "{text}");
    assert!(text.contains("Latency ms: p50 "), "{text}");
    assert!(text.contains("[WARNING] five-second-latency: "), "{text}");
    assert!(text.contains("[ERROR] cluster-dns-unreachable: "), "{text}");
    assert!(text.contains("      What to do:\n        1. "), "{text}");
    assert!(
        text.trim_end().ends_with("Verdict: problems found"),
        "{text}"
    );
}

#[test]
fn unreadable_files_fail_before_any_output_and_name_the_file() {
    let mut out = Vec::new();
    let missing = fixture("no-such.pcap");
    let err = run(
        &[fixture("lo-udp-tcp.pcap"), missing.clone()],
        Format::Json,
        &mut out,
    )
    .unwrap_err();
    assert!(out.is_empty());
    assert!(err.to_string().contains("no-such.pcap"), "{err}");
    let not_capture = fixture("README.md");
    let err = run(&[not_capture], Format::Text, &mut out).unwrap_err();
    assert!(err.to_string().contains("README.md"), "{err}");
    let cause = std::error::Error::source(&err).expect("cause").to_string();
    assert!(cause.contains("not a pcap or pcapng"), "{cause}");
}
