//! Reports built from the diagnosis test scenarios: snapshots of the text and JSON forms,
//! the verdict and exit code rules, the ladder drawing and the bundle's file modes.

use std::path::PathBuf;

use crate::capture::correlate::MatchKind;
use crate::capture::{Correlation, LostQuery, Sighting, Timestamp};
use crate::diagnose::testkit::{healthy, Scenario, CLUSTER_NAME, IPT_NODE_FIREWALL};
use crate::diagnose::{diagnose, DiagnosisInput, PointAnalysis};
use crate::evidence::{CaptureKind, CapturePoint, EphemeralLeft, StepError};
use dns_doctor_schema::{ConnectOutcome, LibcKind, QueryOutcome, ServerRole};

use super::*;

fn run_info() -> RunInfo {
    RunInfo {
        tool_version: "0.1.0".into(),
        strategy: "ephemeral-container".into(),
        strategy_reason: "admission accepts an ephemeral container with NET_RAW in default".into(),
        timings: Timings {
            total_ms: 9_412,
            time_to_verdict_ms: 8_730,
        },
        bundle_dir: Some("dns-doctor-web-0-20261125T165500".into()),
    }
}

fn with_captures(s: &mut Scenario) {
    s.evidence.captures = ["pod-web-0", "node-node-1", "dns-coredns-a"]
        .iter()
        .zip([CaptureKind::Pod, CaptureKind::Node, CaptureKind::DnsPod])
        .map(|(name, kind)| CapturePoint {
            name: name.to_string(),
            kind,
            file: Some(PathBuf::from(format!("{name}.pcap"))),
            bytes: 4_096,
            summary: None,
            error: None,
        })
        .collect();
    s.evidence.ephemeral_containers = vec![EphemeralLeft {
        pod: "default/web-0".into(),
        container: "dns-doctor-k3x9q".into(),
        terminated: true,
    }];
}

fn healthy_report() -> Report {
    let mut s = healthy();
    with_captures(&mut s);
    Report::new(&s.topology, &s.evidence, s.diagnose(), run_info())
}

fn sighting(point: &str, offset_ns: i64, server: &str) -> Sighting {
    Sighting {
        point: point.into(),
        time: Timestamp::from_nanos(1_764_086_400_000_000_000 + offset_ns),
        client: "10.244.0.5:40001".parse().unwrap(),
        server: server.parse().unwrap(),
        answered: false,
        rcode: None,
        response_size: None,
        matched_by: MatchKind::Exact,
    }
}

/// The node-firewall fault, with captures at three points and one lost query.
fn firewall_report() -> Report {
    let mut s = healthy();
    with_captures(&mut s);
    s.set_node_command("iptables-legacy-save", IPT_NODE_FIREWALL);
    s.set_queries(
        |q| q.role != ServerRole::Upstream,
        QueryOutcome::TimedOut,
        None,
    );
    s.set_connects(|_| true, ConnectOutcome::TimedOut);
    s.evidence.step_errors.push(StepError {
        step: "capture dns-coredns-b".into(),
        error: "ephemeral container did not start within 20 s".into(),
    });
    let correlation = Correlation {
        lost: vec![LostQuery {
            transport: crate::capture::Transport::Udp,
            id: 0x1a2b,
            qname: CLUSTER_NAME.into(),
            qtype: "A".into(),
            sightings: vec![
                sighting("pod-web-0", 0, "10.96.0.10:53"),
                sighting("node-node-1", 38_000, "10.244.0.2:53"),
            ],
            last_seen_at: "node-node-1".into(),
            answered_at: None,
        }],
        lost_by_last_point: vec![("node-node-1".into(), 1)],
        delivered: Vec::new(),
    };
    let analysis = |unanswered| {
        let mut a = crate::diagnose::testkit::capture_analysis(unanswered);
        // The points that saw the lost query saw its one DNS message.
        a.analysis.summary.dns_messages = unanswered;
        a
    };
    let (pod, node, dns) = (analysis(1), analysis(1), analysis(0));
    let points = [
        PointAnalysis {
            name: "pod-web-0",
            kind: CaptureKind::Pod,
            analysis: &pod,
        },
        PointAnalysis {
            name: "node-node-1",
            kind: CaptureKind::Node,
            analysis: &node,
        },
        PointAnalysis {
            name: "dns-coredns-a",
            kind: CaptureKind::DnsPod,
            analysis: &dns,
        },
    ];
    let d = diagnose(&DiagnosisInput {
        topology: &s.topology,
        evidence: &s.evidence,
        captures: &points,
        correlation: Some(&correlation),
    });
    Report::new(&s.topology, &s.evidence, d, run_info())
}

fn text(r: &Report, color: bool) -> String {
    let mut out = Vec::new();
    render_text(r, &mut out, color).unwrap();
    String::from_utf8(out).unwrap()
}

#[test]
fn healthy_report_text() {
    let r = healthy_report();
    assert_eq!(r.verdict, Verdict::Healthy);
    assert_eq!(r.exit_code, 0);
    insta::assert_snapshot!(text(&r, false));
}

#[test]
fn firewall_report_text() {
    let r = firewall_report();
    assert_eq!(r.verdict, Verdict::ProblemsFound);
    assert_eq!(r.exit_code, 1);
    let t = text(&r, false);
    // The verdict comes first, the root cause right under it.
    assert!(
        t.starts_with("dns-doctor DNS for pod default/web-0: PROBLEMS FOUND\n"),
        "{t}"
    );
    let findings = t.find("FINDINGS").unwrap();
    let checklist = t.find("RUNBOOK CHECKLIST").unwrap();
    let ladder = t.find("LOST QUERIES").unwrap();
    assert!(findings < checklist && checklist < ladder);
    // Line numbers come from the live fixture dump; the rule text is what matters.
    insta::with_settings!({filters => vec![(r"line \d+", "line [N]")]}, {
        insta::assert_snapshot!(t);
    });
}

#[test]
fn firewall_report_json() {
    let r = firewall_report();
    let mut out = Vec::new();
    render_json(&r, &mut out).unwrap();
    let s = String::from_utf8(out).unwrap();
    insta::with_settings!({filters => vec![(r"line \d+", "line [N]")]}, {
        insta::assert_snapshot!(s);
    });
    let back: Report = serde_json::from_str(&s).unwrap();
    assert_eq!(back, r);
}

#[test]
fn yaml_reads_back_to_the_same_report() {
    let r = firewall_report();
    let mut out = Vec::new();
    render_yaml(&r, &mut out).unwrap();
    let s = String::from_utf8(out).unwrap();
    assert!(s.starts_with("schema_version: 1\n"), "{s}");
    let back: Report = serde_norway::from_str(&s).unwrap();
    assert_eq!(back, r);
}

#[test]
fn json_has_the_documented_top_level_fields() {
    let v = serde_json::to_value(healthy_report()).unwrap();
    let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    for k in [
        "schema_version",
        "tool_version",
        "target",
        "verdict",
        "exit_code",
        "headline",
        "strategy",
        "strategy_reason",
        "cluster_dns",
        "findings",
        "checklist",
        "lost_queries",
        "capture_points",
        "ephemeral_containers",
        "timings",
        "step_errors",
        "discovery_gaps",
        "bundle_dir",
    ] {
        assert!(keys.contains(&k), "missing {k} in {keys:?}");
    }
    assert_eq!(v["verdict"], "healthy");
    assert_eq!(v["target"]["libc"], "glibc");
    assert_eq!(v["cluster_dns"]["source"], "kubelet_configz");
}

#[test]
fn a_static_target_is_reported_as_static_not_as_a_libc() {
    let mut s = healthy();
    s.probe().libc.kind = LibcKind::Static;
    let r = Report::new(&s.topology, &s.evidence, s.diagnose(), run_info());
    let v = serde_json::to_value(&r).unwrap();
    assert_eq!(v["target"]["libc"], "static");
    let t = text(&r, false);
    assert!(t.contains("dnsPolicy ClusterFirst, libc static\n"), "{t}");
}

#[test]
fn no_probe_means_incomplete_with_exit_2() {
    let mut s = healthy();
    s.evidence.pod_probe = None;
    let r = Report::new(&s.topology, &s.evidence, s.diagnose(), run_info());
    assert_eq!(r.verdict, Verdict::Incomplete);
    assert_eq!(r.exit_code, 2);
    assert!(r.headline.contains("probe did not run"));
}

#[test]
fn color_only_when_asked() {
    let r = firewall_report();
    assert!(!text(&r, false).contains('\x1b'));
    let c = text(&r, true);
    assert!(c.contains("\x1b[31m"), "errors are red");
    assert!(c.contains("\x1b[32m[PASS]"), "passed checks are green");
}

#[test]
fn ladder_marks_where_the_query_died() {
    let r = firewall_report();
    let lines = ladder::render(&r.lost_queries[0]);
    assert_eq!(lines.len(), 4, "{lines:#?}");
    assert!(lines[0].contains("pod-web-0") && lines[0].contains("dns-coredns-a"));
    assert!(lines[1].starts_with("+0.000ms"));
    assert!(
        lines[2].starts_with("+0.038ms") && lines[2].contains("->*"),
        "{lines:#?}"
    );
    // The X sits under the DNS pod column: the query never got there.
    let x = lines[3].find('X').unwrap();
    let col = lines[0].find("dns-coredns-a").unwrap();
    assert!(x >= col && x < col + "dns-coredns-a".len(), "{lines:#?}");
    assert!(lines[3].contains("lost after node-node-1: never seen at dns-coredns-a"));
}

#[test]
fn bundle_holds_the_evidence_and_the_report() {
    let s = healthy();
    let r = healthy_report();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("bundle");
    let written =
        bundle::write_bundle(&dir, &s.topology, &s.evidence, &r, &text(&r, false)).unwrap();
    // Paths compare by component, so `/` in `want` also matches Windows' `\`.
    let names: Vec<&std::path::Path> = written
        .iter()
        .map(|p| p.strip_prefix(&dir).unwrap())
        .collect();
    for want in [
        "topology.json",
        "evidence.json",
        "report.json",
        "report.txt",
        "nodes/node-1/iptables-legacy-save.txt",
        "nodes/node-1/conntrack-stats-before.txt",
        "nodes/node-1/files/proc_sys_net_netfilter_nf_conntrack_count.txt",
    ] {
        assert!(
            names.iter().any(|n| *n == std::path::Path::new(want)),
            "missing {want} in {names:?}"
        );
    }
    let dump = std::fs::read_to_string(dir.join("nodes/node-1/iptables-legacy-save.txt")).unwrap();
    assert_eq!(dump, crate::diagnose::testkit::IPT_HEALTHY);
    let back: Report =
        serde_json::from_str(&std::fs::read_to_string(dir.join("report.json")).unwrap()).unwrap();
    assert_eq!(back, r);
}

#[cfg(unix)]
#[test]
fn bundle_files_are_private() {
    use std::os::unix::fs::PermissionsExt;

    let s = healthy();
    let r = healthy_report();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("bundle");
    let written =
        bundle::write_bundle(&dir, &s.topology, &s.evidence, &r, &text(&r, false)).unwrap();
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&dir.join("nodes").join("node-1")), 0o700);
    for f in &written {
        assert_eq!(mode(f), 0o600, "{}", f.display());
    }
    // Writing again over an older, wider file leaves it private.
    std::fs::set_permissions(
        dir.join("report.txt"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    bundle::write_bundle(&dir, &s.topology, &s.evidence, &r, "again").unwrap();
    assert_eq!(mode(&dir.join("report.txt")), 0o600);
}

#[test]
fn safe_names_cannot_escape_the_bundle() {
    assert_eq!(bundle::safe_name("../../etc/passwd"), ".._.._etc_passwd");
    assert_eq!(bundle::safe_name(".."), "_..");
    assert_eq!(bundle::safe_name("/proc/sys/net/x"), "proc_sys_net_x");
    assert_eq!(bundle::safe_name("node-1.example"), "node-1.example");
}
