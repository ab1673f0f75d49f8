//! `kubectl-dns_doctor analyze FILE... [-o text|json]` through the built binary: exit code 0
//! healthy, 1 problems found, 2 a file cannot be read (the message names it and why).

use serde_json::Value;
use std::path::PathBuf;
use std::process::{Command, Output};

fn fixture(name: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/captures")
        .join(name)
        .to_string_lossy()
        .into_owned()
}

fn analyze(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kubectl-dns_doctor"))
        .arg("analyze")
        .args(args)
        .output()
        .expect("run kubectl-dns_doctor")
}

#[test]
fn healthy_capture_exits_zero() {
    let out = analyze(&[&fixture("lo-udp-tcp.pcap")]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("DNS messages: 12"), "{text}");
    assert!(text.contains("Verdict: healthy"), "{text}");
}

#[test]
fn json_output_has_the_documented_fields_and_problems_exit_one() {
    let out = analyze(&[
        "-o",
        "json",
        &fixture("glibc-aaaa-dropped.pcap"),
        &fixture("lo-udp-tcp.pcap"),
    ]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    assert_eq!(doc["schema_version"], dns_doctor::analyze::SCHEMA_VERSION);
    assert_eq!(doc["verdict"], "problems_found");
    let files = doc["files"].as_array().unwrap();
    assert_eq!(files.len(), 2);
    for f in files {
        for k in ["dns_messages", "queries", "responses", "unanswered"] {
            assert!(f["summary"][k].is_u64(), "summary.{k} in {}", f["summary"]);
        }
        for t in f["transactions"].as_array().unwrap() {
            assert!(t["id"].is_u64() && t["qname"].is_string() && t["qtype"].is_string());
            assert!(
                t.get("rcode").is_some() && t.get("latency_ms").is_some(),
                "{t}"
            );
        }
        for finding in f["findings"].as_array().unwrap() {
            for k in ["id", "severity", "summary", "evidence", "remediation"] {
                assert!(finding.get(k).is_some(), "{k} missing in {finding}");
            }
            // The live report's Finding: evidence as {source, detail}, remediation a list.
            for e in finding["evidence"].as_array().unwrap() {
                assert!(e["source"].is_string() && e["detail"].is_string(), "{e}");
            }
            assert!(finding["remediation"].as_array().unwrap()[0].is_string());
        }
    }
    assert_eq!(files[0]["summary"]["unanswered"], 3);
    assert_eq!(files[1]["summary"]["unanswered"], 0);
}

/// docs/analyze-schema.md must describe what `analyze -o json` writes: its version and
/// every field of the document, a file, its capture info and a finding.
#[test]
fn json_fields_are_documented() {
    let doc = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../docs/analyze-schema.md"
    ))
    .expect("docs/analyze-schema.md is readable");
    assert!(
        doc.contains(&format!(
            "Current version: **{}**.",
            dns_doctor::analyze::SCHEMA_VERSION
        )),
        "the version is not documented"
    );
    let out = analyze(&["-o", "json", &fixture("glibc-aaaa-dropped.pcap")]);
    let v: Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    let file = &v["files"][0];
    let objects = [
        &v,
        file,
        &file["summary"],
        &file["summary"]["patterns"],
        &file["summary"]["latency"],
        &file["capture"],
        &file["transactions"][0],
        &file["findings"][0],
    ];
    for o in objects {
        for key in o.as_object().unwrap().keys() {
            assert!(
                doc.contains(&format!("`{key}`")),
                "field {key} is not documented"
            );
        }
    }
}

#[test]
fn unreadable_files_exit_two_and_say_which_and_why() {
    let missing = fixture("does-not-exist.pcap");
    let out = analyze(&[&fixture("lo-udp-tcp.pcap"), &missing]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        out.stdout.is_empty(),
        "nothing may be reported when a file is unreadable"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("does-not-exist.pcap") && err.contains("No such file"),
        "{err}"
    );

    let out = analyze(&[&fixture("README.md")]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("README.md") && err.contains("not a pcap or pcapng"),
        "{err}"
    );
}
