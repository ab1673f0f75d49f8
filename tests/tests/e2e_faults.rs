//! Diagnosis on the real cluster (issue 5): for every fault switch of tests/cluster, the
//! doctor run against an affected client pod exits 1 and names the cause as its top finding,
//! with evidence and remediation; with the fault off it exits 0 with no error finding, ten
//! times in a row. The runbook's faults use the plain client pods; the scenarios beyond it
//! that are about one pod's configuration (search-path, dns-bypass, nodelocaldns-down) bring
//! their own client pod, which the fault switch creates and removes. A switch that makes the
//! cluster work another way (no-kube-proxy-replaced: a replacement data plane) is a scenario
//! whose expected outcome is healthy: exit 0 and no warning.
//!
//! The suite writes the accuracy table (scenario, expected finding, found finding, exit
//! code, time to verdict) to docs/accuracy.md and into README.md between its markers, so
//! the README always shows the table the last run produced.
//!
//! Needs the cluster from tests/cluster/up; built only with `--features cluster`.

use std::time::Duration;

use dns_doctor_tests::cluster::*;

struct Row {
    scenario: String,
    client: &'static str,
    expected: &'static str,
    found: String,
    /// The top finding's pair of nodes, "from → to", where it names one.
    node_pair: String,
    code: Option<i32>,
    verdict_ms: u64,
    ok: bool,
    detail: String,
}

/// The expected finding of a scenario that must come out healthy: exit 0 and no warning
/// or error finding, whether a fault switch is on (a cluster that works another way) or not.
const HEALTHY: &str = "(none)";

/// The fake upstream's name whose answer (40 addresses) is too big for UDP.
const BIG_NAME: &str = "big.external.test";

/// The fake upstream's name whose answer (100 addresses, about 1.6 kB) fills a full-size
/// TCP segment.
const HUGE_NAME: &str = "huge.external.test";

fn run_json(client: &str, external_name: &str) -> (Option<i32>, serde_json::Value, String) {
    let run = doctor(&[
        client,
        "-n",
        CLIENT_NS,
        "--external-name",
        external_name,
        "-o",
        "json",
        "--capture-seconds",
        "15",
        "--timeout",
        "150s",
    ]);
    let v = serde_json::from_str(&run.stdout).unwrap_or(serde_json::Value::Null);
    (run.code, v, run.stderr)
}

fn top_finding(report: &serde_json::Value) -> String {
    report["findings"]
        .as_array()
        .and_then(|f| f.first())
        .filter(|f| f["severity"] == "error" || f["severity"] == "warning")
        .and_then(|f| f["id"].as_str())
        .unwrap_or("(none)")
        .to_string()
}

/// The top finding's node pair as "from → to", or "-".
fn node_pair(report: &serde_json::Value) -> String {
    let pair = &report["findings"][0]["node_pair"];
    match (pair["from"].as_str(), pair["to"].as_str()) {
        (Some(from), Some(to)) => format!("{from} → {to}"),
        _ => "-".to_string(),
    }
}

fn errors(report: &serde_json::Value) -> Vec<String> {
    report["findings"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|f| f["severity"] == "error" || f["severity"] == "warning")
        .map(|f| f["id"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// The top finding's evidence, one `source: detail` per item: what a failed row needs to
/// be understood from CI's log alone.
fn evidence_lines(report: &serde_json::Value) -> String {
    report["findings"][0]["evidence"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            format!(
                "{}: {}",
                e["source"].as_str().unwrap_or_default(),
                e["detail"].as_str().unwrap_or_default()
            )
        })
        .collect::<Vec<_>>()
        .join(" | ")
}

fn scenario(
    name: &str,
    client: &'static str,
    expected: &'static str,
    fault_name: Option<&'static str>,
) -> Row {
    scenario_asking(name, client, EXTERNAL_NAME, (expected, None), fault_name)
}

/// A scenario whose application needs `external_name` (the doctor's --external-name); the
/// expected top finding, and the node pair it must name where the cause lies between nodes.
fn scenario_asking(
    name: &str,
    client: &'static str,
    external_name: &str,
    (expected, expected_pair): (&'static str, Option<String>),
    fault_name: Option<&'static str>,
) -> Row {
    let _fault = fault_name.map(Fault::on);
    let (code, report, stderr) = run_json(client, external_name);
    let found = top_finding(&report);
    let node_pair = node_pair(&report);
    let verdict_ms = report["timings"]["time_to_verdict_ms"]
        .as_u64()
        .unwrap_or(0);
    let ok = if expected == HEALTHY {
        code == Some(0) && errors(&report).is_empty()
    } else {
        code == Some(1)
            && found == expected
            && expected_pair.as_ref().is_none_or(|p| *p == node_pair)
    };
    let mut detail = String::new();
    if !ok {
        detail = format!(
            "findings {:?}; top finding's evidence: {}; stderr: {}",
            errors(&report),
            evidence_lines(&report),
            stderr.lines().rev().take(5).collect::<Vec<_>>().join(" | ")
        );
    } else if expected != HEALTHY {
        // The named cause carries its evidence and remediation.
        let top = &report["findings"][0];
        assert!(
            top["evidence"].as_array().is_some_and(|e| !e.is_empty()),
            "{name}: top finding has no evidence"
        );
        assert!(
            top["remediation"].as_array().is_some_and(|r| !r.is_empty()),
            "{name}: top finding has no remediation"
        );
    }
    Row {
        scenario: name.to_string(),
        client,
        expected,
        found,
        node_pair,
        code,
        verdict_ms,
        ok,
        detail,
    }
}

fn table(rows: &[Row]) -> String {
    let mut t = String::from("| scenario | client | expected finding | found finding | node pair | exit code | time to verdict | result |\n|---|---|---|---|---|---|---|---|\n");
    for r in rows {
        t.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {:.1} s | {} |\n",
            r.scenario,
            r.client,
            r.expected,
            r.found,
            r.node_pair,
            r.code.map_or("none".to_string(), |c| c.to_string()),
            r.verdict_ms as f64 / 1000.0,
            if r.ok { "pass" } else { "FAIL" }
        ));
    }
    t
}

fn publish(table: &str) {
    let root = repo_root();
    let doc = format!("# Diagnosis accuracy\n\nWritten by `tests/tests/e2e_faults.rs` on its last run against the test cluster ({} run(s) of each fault scenario; `tests/accuracy 3` for the published table).\n\n{table}", runs_per_fault());
    std::fs::write(root.join("docs/accuracy.md"), doc).expect("write docs/accuracy.md");
    let readme_path = root.join("README.md");
    let readme = std::fs::read_to_string(&readme_path).expect("README.md");
    const BEGIN: &str = "<!-- accuracy:begin -->";
    const END: &str = "<!-- accuracy:end -->";
    if let (Some(b), Some(e)) = (readme.find(BEGIN), readme.find(END)) {
        let updated = format!("{}{BEGIN}\n{table}{}", &readme[..b], &readme[e..]);
        std::fs::write(&readme_path, updated).expect("write README.md");
    }
}

/// How often each fault scenario runs, from `DNS_DOCTOR_ACCURACY_RUNS` (default 1):
/// `tests/run` asks for 1, `tests/accuracy` for 3 unless told otherwise.
fn runs_per_fault() -> usize {
    std::env::var("DNS_DOCTOR_ACCURACY_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n: &usize| (1..=10).contains(n))
        .unwrap_or(1)
}

#[test]
fn every_fault_is_named_and_the_healthy_cluster_is_clean() {
    let _guard = cluster_lock();
    let mut rows = Vec::new();
    for i in 1..=10 {
        let client = if i % 2 == 0 {
            MUSL_CLIENT
        } else {
            GLIBC_CLIENT
        };
        rows.push(scenario(
            &format!("healthy (run {i})"),
            client,
            "(none)",
            None,
        ));
    }
    // A name whose answer is too big for UDP is healthy too: fetched over TCP.
    rows.push(scenario_asking(
        "healthy (a big answer, over TCP)",
        GLIBC_CLIENT,
        HUGE_NAME,
        (HEALTHY, None),
        None,
    ));
    // (fault, client pod, the name its application needs, the expected top finding)
    let bridge_nf_client = if multinode() {
        "client-dnsnode"
    } else {
        GLIBC_CLIENT
    };
    let faults: &[(&'static str, &'static str, &str, &'static str)] = &[
        (
            "coredns-down",
            GLIBC_CLIENT,
            EXTERNAL_NAME,
            "dns-service-no-endpoints",
        ),
        (
            "coredns-crashloop",
            GLIBC_CLIENT,
            EXTERNAL_NAME,
            "dns-pods-crashloop",
        ),
        (
            "kube-proxy-down",
            GLIBC_CLIENT,
            EXTERNAL_NAME,
            "kube-proxy-not-translating",
        ),
        (
            "stale-rules",
            GLIBC_CLIENT,
            EXTERNAL_NAME,
            "kube-proxy-stale-rules",
        ),
        (
            "node-firewall",
            GLIBC_CLIENT,
            EXTERNAL_NAME,
            "node-firewall",
        ),
        ("udp-blocked", GLIBC_CLIENT, EXTERNAL_NAME, "udp-blocked"),
        (
            "upstream-down",
            GLIBC_CLIENT,
            EXTERNAL_NAME,
            "upstream-failing",
        ),
        (
            "aaaa-drop",
            GLIBC_CLIENT,
            EXTERNAL_NAME,
            "five-second-latency",
        ),
        (
            "aaaa-drop",
            MUSL_CLIENT,
            EXTERNAL_NAME,
            "five-second-latency",
        ),
        // Beyond the runbook.
        (
            "truncated-tcp-blocked",
            GLIBC_CLIENT,
            BIG_NAME,
            "truncated-no-tcp",
        ),
        (
            "conntrack-near-full",
            GLIBC_CLIENT,
            EXTERNAL_NAME,
            "conntrack-table-near-full",
        ),
        (
            "one-replica-broken",
            GLIBC_CLIENT,
            EXTERNAL_NAME,
            "one-replica-broken",
        ),
        (
            "nodelocaldns-down",
            "client-nodelocal",
            EXTERNAL_NAME,
            "nodelocaldns-not-answering",
        ),
        (
            "search-path",
            "client-ndots",
            EXTERNAL_NAME,
            "search-path-amplification",
        ),
        (
            "dns-bypass",
            "client-bypass",
            EXTERNAL_NAME,
            "pod-dns-policy-bypasses-cluster-dns",
        ),
        // The causes the field reports most.
        (
            "dead-nameserver",
            "client-deadns",
            EXTERNAL_NAME,
            "nameserver-not-answering",
        ),
        ("wrong-answer", GLIBC_CLIENT, EXTERNAL_NAME, "wrong-answer"),
        (
            "network-policy",
            GLIBC_CLIENT,
            EXTERNAL_NAME,
            "network-policy-blocks-dns",
        ),
        (
            "service-port-mismatch",
            GLIBC_CLIENT,
            EXTERNAL_NAME,
            "dns-service-port-mismatch",
        ),
        (
            "cluster-domain-mismatch",
            GLIBC_CLIENT,
            EXTERNAL_NAME,
            "cluster-domain-mismatch",
        ),
        (
            "coredns-rbac",
            GLIBC_CLIENT,
            EXTERNAL_NAME,
            "dns-pods-not-ready",
        ),
        (
            "iptables-dual",
            GLIBC_CLIENT,
            EXTERNAL_NAME,
            "iptables-legacy-and-nft",
        ),
        // Only replies that stay on one bridge skip the reverse NAT: on three nodes the
        // client beside a DNS replica shows it.
        (
            "bridge-nf-off",
            bridge_nf_client,
            EXTERNAL_NAME,
            "bridge-nf-call-iptables-off",
        ),
        // No kube-proxy: nothing translates the ClusterIP, which is no kube-proxy crash;
        // or a replacement data plane does, which is healthy.
        (
            "no-kube-proxy",
            GLIBC_CLIENT,
            EXTERNAL_NAME,
            "clusterip-not-translated",
        ),
        (
            "no-kube-proxy-replaced",
            GLIBC_CLIENT,
            EXTERNAL_NAME,
            HEALTHY,
        ),
        // A mesh sidecar's DNS capture with no sidecar listening: the redirect in the
        // pod's own namespace is the cause, not kube-proxy (the ClusterIP fails while the
        // endpoints answer, as when kube-proxy is down).
        (
            "dns-redirect",
            GLIBC_CLIENT,
            EXTERNAL_NAME,
            "dns-redirected-in-pod",
        ),
        (
            "conntrack-stale",
            GLIBC_CLIENT,
            EXTERNAL_NAME,
            "conntrack-stale-dns-entries",
        ),
        // The DNS pods' resources: OOMKilled (ready again), CPU-throttled.
        (
            "coredns-oom",
            GLIBC_CLIENT,
            EXTERNAL_NAME,
            "dns-pods-oom-killed",
        ),
        (
            "coredns-cpu-throttled",
            GLIBC_CLIENT,
            EXTERNAL_NAME,
            "dns-pods-cpu-throttled",
        ),
    ];
    // Faults between nodes, only where there are several.
    // (fault, client pod, the name its application needs, the expected top finding, the
    // node pair it names)
    let client_node = node_of(GLIBC_CLIENT);
    let multinode_faults: Vec<(
        &'static str,
        &'static str,
        &str,
        &'static str,
        Option<String>,
    )> = if multinode() {
        vec![
            (
                "vxlan-blocked",
                GLIBC_CLIENT,
                EXTERNAL_NAME,
                "cross-node-path-broken",
                Some(format!("{client_node} → dnsdoctor-node2")),
            ),
            // Only the big answer's packets exceed the path between node 2 and the client's
            // node; they travel as replies, from node 2.
            (
                "overlay-mtu",
                GLIBC_CLIENT,
                HUGE_NAME,
                "overlay-mtu-too-small",
                Some(format!("dnsdoctor-node2 → {client_node}")),
            ),
            // A firewall on one DNS replica's node only.
            (
                "dns-node-firewall",
                GLIBC_CLIENT,
                EXTERNAL_NAME,
                "node-firewall",
                None,
            ),
            (
                "policy-port-mismatch",
                GLIBC_CLIENT,
                EXTERNAL_NAME,
                "network-policy-blocks-dns",
                None,
            ),
        ]
    } else {
        Vec::new()
    };
    let runs = runs_per_fault();
    let all = faults
        .iter()
        .map(|&(f, c, n, e)| (f, c, n, e, None))
        .chain(multinode_faults);
    for (fault, client, name, expected, pair) in all {
        for run in 1..=runs {
            let label = if runs > 1 {
                format!("{fault} (run {run}/{runs})")
            } else {
                fault.to_string()
            };
            rows.push(scenario_asking(
                &label,
                client,
                name,
                (expected, pair.clone()),
                Some(fault),
            ));
        }
    }
    let t = table(&rows);
    publish(&t);
    #[allow(
        clippy::print_stdout,
        reason = "the table is the suite's report (--nocapture)"
    )]
    {
        println!("{t}");
    }
    let failed: Vec<String> = rows
        .iter()
        .filter(|r| !r.ok)
        .map(|r| {
            format!(
                "{} ({}): expected {}, found {} (node pair {}), exit {:?}; {}",
                r.scenario, r.client, r.expected, r.found, r.node_pair, r.code, r.detail
            )
        })
        .collect();
    assert!(
        failed.is_empty(),
        "scenarios not diagnosed correctly:\n{}",
        failed.join("\n")
    );
    assert!(
        eventually(Duration::from_secs(60), || leftovers().is_empty()),
        "left behind: {:?}",
        leftovers()
    );
}

/// Without kube-proxy the report says which data plane it saw, in JSON and in text: the
/// replacement's nftables table when one translates the ClusterIP, none when nothing does.
#[test]
fn without_kube_proxy_the_report_names_the_data_plane_it_saw() {
    let _guard = cluster_lock();
    let node = node_of(GLIBC_CLIENT);
    let cases: [(&'static str, Option<i32>, &str, String); 2] = [
        (
            "no-kube-proxy-replaced",
            Some(0),
            "other",
            format!("data plane: no kube-proxy in this cluster; another data plane translates the DNS ClusterIP on {node}: nftables table ip dnsdoctor-lb"),
        ),
        (
            "no-kube-proxy",
            Some(1),
            "none_visible",
            format!("data plane: no kube-proxy in this cluster, and no rule for the DNS ClusterIP in iptables, nftables or IPVS on {node}"),
        ),
    ];
    for (fault_name, code, kind, text_line) in cases {
        let _fault = Fault::on(fault_name);
        let dir = tempfile::tempdir().expect("temporary directory");
        let bundle = dir.path().join("bundle");
        let run = doctor(&[
            GLIBC_CLIENT,
            "-n",
            CLIENT_NS,
            "--external-name",
            EXTERNAL_NAME,
            "-o",
            "json",
            "--timeout",
            "150s",
            "--output-dir",
            bundle.to_str().expect("UTF-8 path"),
        ]);
        let report = run.json();
        assert_eq!(
            run.code,
            code,
            "{fault_name}: findings {:?}; top finding's evidence: {}; stderr: {}",
            errors(&report),
            evidence_lines(&report),
            run.stderr
        );
        assert_eq!(
            report["data_plane"]["kind"], kind,
            "{fault_name}: {}",
            report["data_plane"]
        );
        let text = std::fs::read_to_string(bundle.join("report.txt")).expect("report.txt");
        assert!(
            text.lines().any(|l| l.trim_start().starts_with(&text_line)),
            "{fault_name}: no line starting {text_line:?} in\n{text}"
        );
    }
}
