//! The probe on real DNS traffic in network namespaces: a real dnsmasq behind real
//! kube-proxy-shaped DNAT rules, faults made with real iptables rules, the real glibc
//! resolver, real tcpdump. See `dns_doctor_tests::netns` for the topology.
//!
//! Needs root and the tools of `tests/install-deps`; fails (never skips) without them.

use dns_doctor::capture::{analyze_capture, ExtractOptions, Outcome, TrackerConfig, Transaction};
use dns_doctor_probe::schema::{
    CaptureStop, ConnectOutcome, NodeSnapshot, PodReport, ProbeOutput, ProbeResult, QueryOutcome,
    QueryResult, ServerRole, Transport,
};
use dns_doctor_tests::netns::{self, Topology};
use dns_doctor_tests::probe;
use std::time::{Duration, Instant};

const PROBE_LIMIT: Duration = Duration::from_secs(60);

/// The pod-mode arguments every scenario uses: the nameserver from resolv.conf (the
/// ClusterIP), the endpoint directly, a cluster name and an external one. `overrides`
/// replace the value of a flag given here or add a flag.
fn pod_args(overrides: &[(&str, &str)]) -> Vec<String> {
    let mut flags: Vec<(&str, &str)> = vec![
        ("--timeout-ms", "1000"),
        ("--parallel-rounds", "6"),
        ("--parallel-wait-ms", "500"),
    ];
    for (flag, value) in overrides {
        match flags.iter_mut().find(|(f, _)| f == flag) {
            Some(entry) => entry.1 = value,
            None => flags.push((flag, value)),
        }
    }
    let mut args: Vec<String> = [
        "--endpoint",
        netns::SERVER_ADDR,
        "--name",
        "kubernetes.default",
        "--name",
        netns::EXTERNAL_NAME,
    ]
    .map(String::from)
    .to_vec();
    for (flag, value) in flags {
        args.extend([flag.to_owned(), value.to_owned()]);
    }
    args
}

/// [`probe::pod`] with owned arguments.
fn run_pod(topo: &Topology, args: &[String], limit: Duration) -> (ProbeOutput, PodReport) {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    probe::pod(&topo.client, &args, limit)
}

fn cluster_ip() -> std::net::SocketAddr {
    format!("{}:53", netns::CLUSTER_IP).parse().unwrap()
}

fn endpoint() -> std::net::SocketAddr {
    format!("{}:53", netns::SERVER_ADDR).parse().unwrap()
}

fn queries_to(
    report: &PodReport,
    server: std::net::SocketAddr,
    transport: Transport,
) -> Vec<&QueryResult> {
    let found: Vec<&QueryResult> = report
        .queries
        .iter()
        .filter(|q| q.server == server && q.transport == transport)
        .collect();
    assert!(
        !found.is_empty(),
        "no {transport:?} queries to {server} in {report:#?}"
    );
    found
}

fn connect_to(report: &PodReport, server: std::net::SocketAddr) -> ConnectOutcome {
    report
        .tcp_connects
        .iter()
        .find(|c| c.target == server)
        .unwrap_or_else(|| panic!("no TCP connect to {server}"))
        .outcome
}

fn assert_all(queries: &[&QueryResult], outcome: QueryOutcome) {
    assert!(!queries.is_empty(), "no query to check for {outcome:?}");
    for q in queries {
        assert_eq!(
            q.outcome, outcome,
            "{} {} {:?} to {}: {q:?}",
            q.qname, q.qtype, q.transport, q.server
        );
    }
}

fn answer_of<'r>(
    report: &'r PodReport,
    server: std::net::SocketAddr,
    qname: &str,
    qtype: &str,
) -> &'r QueryResult {
    report
        .queries
        .iter()
        .find(|q| {
            q.server == server
                && q.transport == Transport::Udp
                && q.qname == qname
                && q.qtype == qtype
        })
        .unwrap_or_else(|| panic!("no UDP {qtype} {qname} to {server}"))
}

#[test]
fn healthy_cluster_dns_answers_through_the_cluster_ip_and_the_endpoint() {
    let topo = Topology::new();
    let (output, report) = run_pod(&topo, &pod_args(&[]), PROBE_LIMIT);

    assert!(!output.deadline_hit);
    assert_eq!(
        report.resolv_conf.content.as_deref(),
        Some(netns::RESOLV_CONF)
    );
    assert_eq!(connect_to(&report, cluster_ip()), ConnectOutcome::Connected);
    assert_eq!(connect_to(&report, endpoint()), ConnectOutcome::Connected);
    for server in [cluster_ip(), endpoint()] {
        for transport in [Transport::Udp, Transport::Tcp] {
            assert_all(
                &queries_to(&report, server, transport),
                QueryOutcome::Answered,
            );
        }
        let a = answer_of(
            &report,
            server,
            "kubernetes.default.svc.cluster.local.",
            "A",
        );
        assert_eq!(a.answers, vec![format!("A {}", netns::KUBERNETES_A)]);
        let aaaa = answer_of(
            &report,
            server,
            "kubernetes.default.svc.cluster.local.",
            "AAAA",
        );
        assert_eq!(
            aaaa.answers,
            vec![format!("AAAA {}", netns::KUBERNETES_AAAA)]
        );
        let external = answer_of(&report, server, "external.test.", "A");
        assert_eq!(external.answers, vec![format!("A {}", netns::EXTERNAL_A)]);
        let missing = answer_of(
            &report,
            server,
            "kubernetes.default.default.svc.cluster.local.",
            "A",
        );
        assert_eq!(missing.rcode.as_deref(), Some("NXDOMAIN"));
    }
    // Under ndots:5 "kubernetes.default" resolves at the second search domain; the external
    // name only after all three domains failed: 4 and 8 queries per lookup.
    let expansion = &report.search_expansion;
    assert_eq!(expansion[0].name, "kubernetes.default");
    assert_eq!(expansion[0].first_answer_index, Some(1));
    assert_eq!(expansion[0].queries_per_lookup, 4);
    assert_eq!(expansion[1].first_answer_index, Some(3));
    assert_eq!(expansion[1].queries_per_lookup, 8);
    assert_eq!(report.parallel.len(), 2);
    for test in &report.parallel {
        assert_eq!(test.qname, "kubernetes.default.svc.cluster.local.");
        assert_eq!(test.same_socket.both_answered, 6, "{test:?}");
        assert_eq!(test.separate_sockets.both_answered, 6, "{test:?}");
    }
    assert_eq!(report.parallel[0].role, ServerRole::Nameserver);
    // dnsmasq saw queries that came through the DNAT (source: the client's own address).
    assert!(topo
        .dns_log()
        .contains(&format!("from {}", netns::CLIENT_ADDR)));
}

#[test]
fn a_stopped_server_is_refused_over_udp_and_tcp() {
    let mut topo = Topology::new();
    topo.stop_dns();
    // Refusals come back at once; the longer per-query timeout only keeps an ICMP error that
    // a loaded machine delivers late (softirq work waits for CPU) from reading as a timeout.
    let (_, report) = run_pod(&topo, &pod_args(&[("--timeout-ms", "3000")]), PROBE_LIMIT);

    // The server's kernel answers: ICMP port unreachable for UDP (reverse-translated through
    // the node's conntrack for the ClusterIP), RST for TCP.
    for server in [cluster_ip(), endpoint()] {
        assert_eq!(connect_to(&report, server), ConnectOutcome::Refused);
        assert_all(
            &queries_to(&report, server, Transport::Udp),
            QueryOutcome::Refused,
        );
        assert_all(
            &queries_to(&report, server, Transport::Tcp),
            QueryOutcome::Refused,
        );
    }
    // A server that answers no query has nothing to race: no parallel rounds wait on it.
    assert!(report.parallel.is_empty(), "{:?}", report.parallel);
}

#[test]
fn a_stopped_server_behind_a_drop_rule_times_out_instead() {
    let mut topo = Topology::new();
    topo.stop_dns();
    // A host firewall on the DNS server's machine: nothing answers, not even the kernel.
    topo.iptables(
        &topo.server,
        &["-A", "INPUT", "-p", "udp", "--dport", "53", "-j", "DROP"],
    );
    topo.iptables(
        &topo.server,
        &["-A", "INPUT", "-p", "tcp", "--dport", "53", "-j", "DROP"],
    );
    let (_, report) = run_pod(&topo, &pod_args(&[]), PROBE_LIMIT);

    for server in [cluster_ip(), endpoint()] {
        assert_eq!(connect_to(&report, server), ConnectOutcome::TimedOut);
        let udp = queries_to(&report, server, Transport::Udp);
        assert_all(&udp, QueryOutcome::TimedOut);
        assert_all(
            &queries_to(&report, server, Transport::Tcp),
            QueryOutcome::TimedOut,
        );
        // A path proven dead is given up: of the 16 UDP queries (2 names x 4 candidates x
        // A/AAAA) only those already in flight were sent, and no parallel round waited.
        assert!(
            udp.len() < 16,
            "{} UDP queries sent to a dead path",
            udp.len()
        );
    }
    assert!(report.parallel.is_empty(), "{:?}", report.parallel);
}

#[test]
fn udp_dropped_on_the_node_while_tcp_works() {
    let topo = Topology::new();
    topo.iptables(
        &topo.node,
        &["-A", "FORWARD", "-p", "udp", "--dport", "53", "-j", "DROP"],
    );
    let (_, report) = run_pod(&topo, &pod_args(&[]), PROBE_LIMIT);

    for server in [cluster_ip(), endpoint()] {
        assert_eq!(connect_to(&report, server), ConnectOutcome::Connected);
        assert_all(
            &queries_to(&report, server, Transport::Udp),
            QueryOutcome::TimedOut,
        );
        assert_all(
            &queries_to(&report, server, Transport::Tcp),
            QueryOutcome::Answered,
        );
        let tcp = report
            .queries
            .iter()
            .find(|q| {
                q.server == server
                    && q.transport == Transport::Tcp
                    && q.qname == "kubernetes.default.svc.cluster.local."
            })
            .expect("TCP query for the Service name");
        assert_eq!(tcp.answers.len(), 1, "{tcp:?}");
    }
    // No name resolves over UDP, so the expansion never stops early.
    assert_eq!(report.search_expansion[0].first_answer_index, None);
}

#[test]
fn without_the_dnat_rules_only_the_cluster_ip_fails() {
    let topo = Topology::new();
    topo.remove_dnat();
    let (_, report) = run_pod(&topo, &pod_args(&[]), PROBE_LIMIT);

    // Untranslated, 10.96.0.10 meets the node's blackhole route for the service range:
    // silence, as when a real node sends it to a gateway that drops it.
    assert_eq!(connect_to(&report, cluster_ip()), ConnectOutcome::TimedOut);
    assert_all(
        &queries_to(&report, cluster_ip(), Transport::Udp),
        QueryOutcome::TimedOut,
    );
    assert_all(
        &queries_to(&report, cluster_ip(), Transport::Tcp),
        QueryOutcome::TimedOut,
    );
    assert_eq!(connect_to(&report, endpoint()), ConnectOutcome::Connected);
    assert_all(
        &queries_to(&report, endpoint(), Transport::Udp),
        QueryOutcome::Answered,
    );
    assert_all(
        &queries_to(&report, endpoint(), Transport::Tcp),
        QueryOutcome::Answered,
    );
}

/// The node drops UDP DNS queries whose question ends in type AAAA, class IN: the root
/// label, QTYPE 28, QCLASS 1. With `every` set, only every n-th such query.
fn drop_aaaa(topo: &Topology, every: Option<u32>) {
    let mut rule = vec![
        "-A",
        "FORWARD",
        "-p",
        "udp",
        "--dport",
        "53",
        "-m",
        "string",
        "--algo",
        "bm",
        "--hex-string",
        "|00001c0001|",
    ];
    let every = every.map(|n| n.to_string());
    if let Some(n) = &every {
        rule.extend([
            "-m",
            "statistic",
            "--mode",
            "nth",
            "--every",
            n,
            "--packet",
            "0",
        ]);
    }
    rule.extend(["-j", "DROP"]);
    topo.iptables(&topo.node, &rule);
}

#[test]
fn dropped_aaaa_queries_show_as_missing_replies_in_the_parallel_rounds() {
    let topo = Topology::new();
    // Every second AAAA query is dropped: deterministic, and both outcomes occur.
    drop_aaaa(&topo, Some(2));
    let (_, report) = probe::pod(
        &topo.client,
        &[
            "--no-resolv-conf",
            "--server",
            netns::CLUSTER_IP,
            "--name",
            "kubernetes.default.svc.cluster.local.",
            "--parallel-rounds",
            "10",
            "--parallel-wait-ms",
            "400",
            "--timeout-ms",
            "800",
        ],
        PROBE_LIMIT,
    );
    let test = &report.parallel[0];
    let (same, separate) = (&test.same_socket, &test.separate_sockets);
    // A queries always pass; the rounds run concurrently, so the drops split between the
    // two tests in any proportion, but in total half the AAAA queries (±1) are lost. A test
    // stops early once ENOUGH_LOST_ROUNDS of its rounds lost a reply.
    for t in [same, separate] {
        assert_eq!(t.a_missing, 0, "{test:?}");
        assert_eq!(t.both_missing, 0, "{test:?}");
        assert_eq!(t.both_answered + t.aaaa_missing, t.rounds, "{test:?}");
        assert!(
            t.rounds == 10 || t.aaaa_missing == dns_doctor_probe::ENOUGH_LOST_ROUNDS,
            "a test ended early without enough lost rounds: {test:?}"
        );
    }
    let rounds = same.rounds + separate.rounds;
    let lost = same.aaaa_missing + separate.aaaa_missing;
    assert!(
        (rounds.saturating_sub(2)..=rounds + 2).contains(&(2 * lost)),
        "expected about half of {rounds} rounds to lose the AAAA reply: {test:?}"
    );
    // A round that lost its AAAA reply waited the whole window.
    assert!(same
        .round_ms
        .iter()
        .chain(&separate.round_ms)
        .any(|ms| *ms >= 400.0));
}

#[test]
// The measured time is worth seeing in the test log.
#[allow(clippy::print_stderr)]
fn dropped_aaaa_queries_stall_a_real_glibc_lookup_for_the_resolver_timeout() {
    let topo = Topology::new();
    drop_aaaa(&topo, None);
    // getaddrinfo(AF_UNSPEC) sends A and AAAA back to back from one socket, gets the A
    // reply, and waits its 5 s timeout for the AAAA one: the classic "5 second" symptom.
    // The trailing dot keeps the search list out of it (one lookup, one pair).
    let start = Instant::now();
    let ran = topo.exec_for(
        &topo.client,
        &["getent", "ahosts", "kubernetes.default.svc.cluster.local."],
        Duration::from_secs(30),
    );
    let elapsed = start.elapsed();
    eprintln!("glibc lookup took {elapsed:?}: {}", ran.stdout.trim());
    assert!(ran.status.success(), "getent failed: {}", ran.stderr);
    assert!(ran.stdout.contains(netns::KUBERNETES_A), "{}", ran.stdout);
    assert!(
        elapsed >= Duration::from_millis(4500),
        "lookup took only {elapsed:?}"
    );
}

/// The probe's own query log and the capture's transactions must tell the same story.
fn assert_capture_agrees(report: &PodReport, transactions: &[Transaction]) {
    let mut compared = 0;
    for q in report
        .queries
        .iter()
        .filter(|q| q.transport == Transport::Udp)
    {
        let Some(t) = transactions.iter().find(|t| {
            t.id == q.id
                && t.qname == q.qname
                && t.qtype == q.qtype
                && Some(t.client.port()) == q.source_port
        }) else {
            let near: Vec<&Transaction> = transactions
                .iter()
                .filter(|t| t.id == q.id || Some(t.client.port()) == q.source_port)
                .collect();
            panic!(
                "query {} {} to {} id {} from port {:?} ({:?}) is not in the capture; \
                 transactions with its ID or port: {near:#?}",
                q.qname, q.qtype, q.server, q.id, q.source_port, q.outcome
            );
        };
        assert_eq!(t.server, q.server, "{t:?}");
        match q.outcome {
            QueryOutcome::Answered => {
                assert_eq!(t.outcome, Outcome::Answered, "{q:?} vs {t:?}");
                assert_eq!(t.rcode, q.rcode.as_deref(), "{q:?} vs {t:?}");
                assert_eq!(t.answers.len(), q.answers.len(), "{q:?} vs {t:?}");
            }
            QueryOutcome::TimedOut => assert_ne!(t.outcome, Outcome::Answered, "{q:?} vs {t:?}"),
            other => panic!("unexpected outcome {other:?} in this scenario: {q:?}"),
        }
        compared += 1;
    }
    assert!(compared >= 16, "only {compared} queries compared");
}

#[test]
fn a_capture_in_the_client_namespace_stops_on_sigterm_and_agrees_with_the_probe() {
    let topo = Topology::new();
    drop_aaaa(&topo, Some(2));
    let pcap = topo.dir().join("client.pcap");
    let pcap_arg = pcap.to_str().unwrap();
    let mut capture = probe::Capture::start(
        Some(&topo.client),
        &["-i", "eth0", "--output", pcap_arg, "--seconds", "60"],
    );
    capture.wait_ready(Duration::from_secs(10));
    let tcpdump = probe::children_named(capture.pid(), "tcpdump");
    assert_eq!(tcpdump.len(), 1, "one tcpdump under the probe");

    let (_, report) = run_pod(&topo, &pod_args(&[("--parallel-rounds", "0")]), PROBE_LIMIT);
    assert!(
        report
            .queries
            .iter()
            .any(|q| q.outcome == QueryOutcome::TimedOut),
        "the AAAA drop should have cost some queries"
    );
    // tcpdump loses what it has not read from the kernel yet when it is stopped; give it a
    // moment to catch up, as the plugin should before stopping its captures.
    std::thread::sleep(Duration::from_millis(500));

    let stop = Instant::now();
    capture.signal("TERM");
    let (status, stdout, stderr) = capture.finish(Duration::from_secs(10));
    assert!(
        stop.elapsed() < Duration::from_secs(5),
        "stopping took {:?}",
        stop.elapsed()
    );
    assert_eq!(status.code(), Some(0), "{stderr:?}");
    let output: dns_doctor_probe::schema::ProbeOutput =
        serde_json::from_slice(&stdout).expect("capture summary on stdout");
    let ProbeResult::Capture(summary) = output.result else {
        panic!("not a capture summary")
    };
    assert_eq!(summary.stopped_by, CaptureStop::Signal);
    assert_eq!(summary.output, pcap_arg);
    assert!(
        summary.stderr.contains("packets captured"),
        "{}",
        summary.stderr
    );
    assert!(
        summary.stderr.contains("\n0 packets dropped by kernel"),
        "{}",
        summary.stderr
    );
    let size = std::fs::metadata(&pcap).unwrap().len();
    assert_eq!(size, summary.bytes_written);
    assert!(
        probe::wait_gone(tcpdump[0], Duration::from_secs(5)),
        "tcpdump {} still running",
        tcpdump[0]
    );

    let mut transactions = Vec::new();
    let analysis = analyze_capture(
        std::fs::File::open(&pcap).unwrap(),
        ExtractOptions::default(),
        TrackerConfig::default(),
        &mut |t| transactions.push(t),
    )
    .expect("the capture reads as pcap");
    assert_eq!(analysis.read_error, None);
    keep_artifact(&pcap, "client-aaaa-drop.pcap");
    assert_capture_agrees(&report, &transactions);
    assert_latencies_match_tcpdump(&pcap, &transactions);
}

/// tcpdump's own reading of the file: (time, client port, DNS id, is response) per DNS line.
fn tcpdump_dns_lines(pcap: &std::path::Path) -> Vec<(f64, u16, u16, bool)> {
    let out = std::process::Command::new("tcpdump")
        .args(["-n", "-tt", "-r"])
        .arg(pcap)
        .output()
        .expect("tcpdump reads the capture");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let port_of = |addr: &str| {
        addr.trim_end_matches(':')
            .rsplit('.')
            .next()?
            .parse::<u16>()
            .ok()
    };
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| {
            // 1732550000.123456 IP 10.123.1.2.48623 > 10.96.0.10.53: 14253+ A? name. (45)
            let words: Vec<&str> = line.split_whitespace().collect();
            let time: f64 = words.first()?.parse().ok()?;
            let gt = words.iter().position(|w| *w == ">")?;
            let (src, dst) = (words.get(gt - 1)?, words.get(gt + 1)?);
            let id: u16 = words
                .get(gt + 2)?
                .trim_end_matches(|c: char| !c.is_ascii_digit())
                .parse()
                .ok()?;
            let (src_port, dst_port) = (port_of(src)?, port_of(dst)?);
            let response = src_port == 53;
            Some((
                time,
                if response { dst_port } else { src_port },
                id,
                response,
            ))
        })
        .collect()
}

/// The analysis core's latencies agree with tcpdump's timestamps within 1 ms.
fn assert_latencies_match_tcpdump(pcap: &std::path::Path, transactions: &[Transaction]) {
    let lines = tcpdump_dns_lines(pcap);
    let mut compared = 0;
    for t in transactions
        .iter()
        .filter(|t| t.transport == dns_doctor::capture::Transport::Udp)
    {
        let Some(latency) = t.latency_ms else {
            continue;
        };
        let port = t.client.port();
        let first = |response: bool| {
            lines
                .iter()
                .find(|(_, p, id, r)| *p == port && *id == t.id && *r == response)
                .map(|l| l.0)
        };
        let (Some(q), Some(r)) = (first(false), first(true)) else {
            continue;
        };
        let by_tcpdump = (r - q) * 1000.0;
        assert!(
            (by_tcpdump - latency).abs() <= 1.0,
            "id {} port {port}: tcpdump says {by_tcpdump:.3} ms, the analysis {latency:.3} ms",
            t.id
        );
        compared += 1;
    }
    assert!(
        compared >= 16,
        "only {compared} latencies compared with tcpdump"
    );
}

/// Copies a capture to target/netns-captures/ for inspection after the run.
fn keep_artifact(path: &std::path::Path, name: &str) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/netns-captures");
    if std::fs::create_dir_all(&dir).is_ok() {
        let _ = std::fs::copy(path, dir.join(name));
    }
}

#[test]
fn a_capture_through_netns_pid_streams_the_pcap_and_ends_at_its_time_limit() {
    let topo = Topology::new();
    // A process living in the client namespace, as a pod's container lives in the pod's.
    let mut holder = std::process::Command::new("ip")
        .args(["netns", "exec", &topo.client, "sleep", "60"])
        .spawn()
        .expect("start a process in the client namespace");
    let holder_pid = holder.id().to_string();
    let mut capture = probe::Capture::start(
        None,
        &[
            "--netns-pid",
            &holder_pid,
            "-i",
            "eth0",
            "--output",
            "-",
            "--seconds",
            "8",
        ],
    );
    capture.wait_ready(Duration::from_secs(10));
    let (_, report) = run_pod(&topo, &pod_args(&[("--parallel-rounds", "0")]), PROBE_LIMIT);
    let (status, stdout, stderr) = capture.finish(Duration::from_secs(20));
    let _ = holder.kill();
    let _ = holder.wait();

    assert_eq!(status.code(), Some(0), "{stderr:?}");
    let last = stderr.last().expect("stderr lines");
    let json = last
        .strip_prefix(dns_doctor_probe::output::SUMMARY_PREFIX)
        .unwrap_or_else(|| panic!("last stderr line is not the summary: {last}"));
    let output: dns_doctor_probe::schema::ProbeOutput = serde_json::from_str(json).unwrap();
    let ProbeResult::Capture(summary) = output.result else {
        panic!("not a capture summary")
    };
    assert_eq!(summary.stopped_by, CaptureStop::Deadline);
    assert_eq!(summary.netns_pid, holder_pid.parse().ok());
    assert_eq!(summary.output, "-");
    assert_eq!(u64::try_from(stdout.len()).unwrap(), summary.bytes_written);

    let mut transactions = Vec::new();
    analyze_capture(
        &stdout[..],
        ExtractOptions::default(),
        TrackerConfig::default(),
        &mut |t| transactions.push(t),
    )
    .expect("stdout is a pcap");
    assert_capture_agrees(&report, &transactions);
}

#[test]
fn a_capture_stops_at_its_byte_limit_with_a_valid_file() {
    let topo = Topology::new();
    let pcap = topo.dir().join("limited.pcap");
    let pcap_arg = pcap.to_str().unwrap();
    let mut capture = probe::Capture::start(
        Some(&topo.client),
        &[
            "-i",
            "eth0",
            "--output",
            pcap_arg,
            "--seconds",
            "30",
            "--max-bytes",
            "1000",
        ],
    );
    capture.wait_ready(Duration::from_secs(10));
    run_pod(&topo, &pod_args(&[("--parallel-rounds", "0")]), PROBE_LIMIT);
    let (status, stdout, _) = capture.finish(Duration::from_secs(20));
    assert_eq!(status.code(), Some(0));
    let output: dns_doctor_probe::schema::ProbeOutput = serde_json::from_slice(&stdout).unwrap();
    let ProbeResult::Capture(summary) = output.result else {
        panic!("not a capture summary")
    };
    assert_eq!(summary.stopped_by, CaptureStop::ByteLimit);
    let size = std::fs::metadata(&pcap).unwrap().len();
    assert_eq!(size, summary.bytes_written);
    assert!(size <= 1000 && size > 24, "size {size}");
    let mut count = 0;
    let analysis = analyze_capture(
        std::fs::File::open(&pcap).unwrap(),
        ExtractOptions::default(),
        TrackerConfig::default(),
        &mut |_| count += 1,
    )
    .unwrap();
    // Cut between packets: the reader finds no damage.
    assert_eq!(analysis.read_error, None);
    assert!(analysis.stats.frames >= 2, "{:?}", analysis.stats);
}

#[test]
fn a_killed_capture_takes_tcpdump_with_it() {
    let topo = Topology::new();
    let mut capture = probe::Capture::start(
        Some(&topo.client),
        &["-i", "eth0", "--output", "-", "--seconds", "60"],
    );
    capture.wait_ready(Duration::from_secs(10));
    let tcpdump = probe::children_named(capture.pid(), "tcpdump");
    assert_eq!(tcpdump.len(), 1);
    capture.signal("KILL");
    let _ = capture.finish(Duration::from_secs(10));
    assert!(
        probe::wait_gone(tcpdump[0], Duration::from_secs(5)),
        "tcpdump {} outlived the killed probe",
        tcpdump[0]
    );
}

#[test]
fn a_capture_past_its_hard_deadline_reports_partially_and_leaves_nothing_running() {
    let topo = Topology::new();
    let pcap = topo.dir().join("deadline.pcap");
    let pcap_arg = pcap.to_str().unwrap();
    // Build (or find) the binary before the clock starts.
    probe::binary();
    let start = Instant::now();
    let mut capture = probe::Capture::start(
        Some(&topo.client),
        &[
            "-i",
            "eth0",
            "--output",
            pcap_arg,
            "--seconds",
            "60",
            "--deadline-secs",
            "2",
        ],
    );
    capture.wait_ready(Duration::from_secs(10));
    let tcpdump = probe::children_named(capture.pid(), "tcpdump");
    assert_eq!(tcpdump.len(), 1);
    let (status, stdout, stderr) = capture.finish(Duration::from_secs(10));
    assert!(
        start.elapsed() < Duration::from_secs(6),
        "took {:?}",
        start.elapsed()
    );
    assert_eq!(status.code(), Some(0), "{stderr:?}");
    let output: ProbeOutput = serde_json::from_slice(&stdout).expect("summary on stdout");
    assert!(output.deadline_hit);
    let ProbeResult::Capture(summary) = output.result else {
        panic!("not a capture summary")
    };
    assert_eq!(summary.stopped_by, CaptureStop::Deadline);
    assert!(
        probe::wait_gone(tcpdump[0], Duration::from_secs(5)),
        "tcpdump {} still running",
        tcpdump[0]
    );
}

#[test]
fn the_hard_deadline_prints_the_partial_result_and_exits() {
    let topo = Topology::new();
    topo.iptables(
        &topo.node,
        &["-A", "FORWARD", "-p", "udp", "--dport", "53", "-j", "DROP"],
    );
    topo.iptables(
        &topo.node,
        &["-A", "FORWARD", "-p", "tcp", "--dport", "53", "-j", "DROP"],
    );
    probe::binary();
    let start = Instant::now();
    let (output, report) = run_pod(
        &topo,
        &pod_args(&[("--timeout-ms", "20000"), ("--deadline-secs", "2")]),
        Duration::from_secs(15),
    );
    let elapsed = start.elapsed();
    assert!(output.deadline_hit);
    assert!(elapsed < Duration::from_secs(5), "took {elapsed:?}");
    assert!(output.duration_ms >= 2000);
    // What was measured before the deadline is there: the resolv.conf read at the start.
    assert_eq!(
        report.resolv_conf.content.as_deref(),
        Some(netns::RESOLV_CONF)
    );
}

#[test]
fn node_mode_snapshots_the_kube_proxy_rules_and_counters() {
    let topo = Topology::new();
    let ran = probe::run_in(
        &topo.node,
        &[
            "node",
            "--node-name",
            "netns-node",
            "--conntrack-window-ms",
            "300",
        ],
        PROBE_LIMIT,
    );
    assert_eq!(ran.status.code(), Some(0), "{}", ran.stderr);
    let output = probe::parse_output(&ran);
    let ProbeResult::Node(snapshot) = output.result else {
        panic!("not a node snapshot")
    };
    let NodeSnapshot {
        node,
        commands,
        files,
        http,
        conntrack_window_ms,
        pod_cgroups,
    } = snapshot;
    assert_eq!(node, "netns-node");
    // No --pod-uid asked for, no cgroup read.
    assert!(pod_cgroups.is_empty(), "{pod_cgroups:?}");
    assert!(conntrack_window_ms >= 300);
    let command = |key: &str| {
        commands
            .iter()
            .find(|c| c.key == key)
            .unwrap_or_else(|| panic!("no command {key} in {commands:#?}"))
    };
    // The default iptables here is the nft backend: the rules appear there.
    let nft_save = command("iptables-nft-save");
    assert_eq!(nft_save.exit_code, Some(0), "{nft_save:?}");
    assert!(
        nft_save
            .stdout
            .contains("-A KUBE-SERVICES -d 10.96.0.10/32 -p udp"),
        "{}",
        nft_save.stdout
    );
    assert!(nft_save.stdout.contains("--to-destination 10.123.2.2:53"));
    assert!(command("nft-list-ruleset")
        .stdout
        .contains("KUBE-SVC-TCOU7JCQXEZGVUNU"));
    for key in ["conntrack-stats-before", "conntrack-stats-after"] {
        let stats = command(key);
        assert_eq!(stats.exit_code, Some(0), "{stats:?}");
        assert!(stats.stdout.contains("insert_failed"), "{}", stats.stdout);
    }
    assert!(command("ip-addr").stdout.contains("to-srv"));
    assert!(command("ip-route").stdout.contains("10.123.2.0/30"));
    // Recorded whatever happens; without IPVS in the kernel it exits non-zero or is missing.
    let ipvsadm = command("ipvsadm");
    assert_eq!(ipvsadm.argv, ["ipvsadm", "-Ln"]);
    assert!(
        ipvsadm.exit_code.is_some() || ipvsadm.error.is_some(),
        "{ipvsadm:?}"
    );
    let forward = files
        .iter()
        .find(|f| f.path == "/proc/sys/net/ipv4/ip_forward")
        .unwrap();
    assert_eq!(forward.content.as_deref(), Some("1\n"));
    // No kube-proxy in the namespace: the loopback connections are refused and say so.
    assert_eq!(http.len(), 2);
    assert!(
        http.iter().all(|h| h.status.is_none() && h.error.is_some()),
        "{http:?}"
    );
}

/// The plugin ends the node's conntrack window once the pod probe is done (`stop --only
/// node` sends SIGTERM): the snapshot is still completed, with both conntrack snapshots and
/// the window as it really was.
#[test]
fn node_mode_window_ends_early_on_sigterm() {
    let topo = Topology::new();
    let started = std::time::Instant::now();
    let node = probe::Capture::start_mode(
        Some(&topo.node),
        "node",
        &[
            "--node-name",
            "netns-node",
            "--conntrack-window-ms",
            "30000",
        ],
    );
    std::thread::sleep(Duration::from_millis(1500));
    node.signal("TERM");
    let (status, stdout, stderr) = node.finish(Duration::from_secs(20));
    let elapsed = started.elapsed();
    assert_eq!(status.code(), Some(0), "{}", stderr.join("\n"));
    let output: dns_doctor_probe::schema::ProbeOutput =
        serde_json::from_slice(&stdout).expect("one JSON document");
    let ProbeResult::Node(snapshot) = output.result else {
        panic!("not a node snapshot")
    };
    assert!(
        elapsed < Duration::from_secs(15),
        "the window did not end on SIGTERM: {elapsed:?}"
    );
    assert!(
        snapshot.conntrack_window_ms < 15_000,
        "window {} ms",
        snapshot.conntrack_window_ms
    );
    for key in ["conntrack-stats-before", "conntrack-stats-after"] {
        let stats = snapshot
            .commands
            .iter()
            .find(|c| c.key == key)
            .unwrap_or_else(|| panic!("no {key}"));
        assert_eq!(stats.exit_code, Some(0), "{stats:?}");
    }
}

/// With `--dns-service`, the node lists the UDP conntrack entries towards the DNS Service:
/// here the pod probe's queries through the ClusterIP, each DNATed to the server. Over the
/// byte cap the listing keeps whole lines and says on stderr that it was cut, next to
/// conntrack's own count of what it printed.
#[test]
fn node_mode_lists_the_conntrack_entries_towards_the_dns_service() {
    use dns_doctor::node::conntrack_entries::{parse_conntrack_listing, parse_shown_count};
    let topo = Topology::new();
    let (_, report) = run_pod(&topo, &pod_args(&[("--parallel-rounds", "0")]), PROBE_LIMIT);
    let sent = queries_to(&report, cluster_ip(), Transport::Udp).len();
    let node = |max_bytes: &str| {
        let ran = probe::run_in(
            &topo.node,
            &[
                "node",
                "--conntrack-window-ms",
                "300",
                "--dns-service",
                netns::CLUSTER_IP,
                "--conntrack-list-max-bytes",
                max_bytes,
            ],
            PROBE_LIMIT,
        );
        assert_eq!(ran.status.code(), Some(0), "{}", ran.stderr);
        let ProbeResult::Node(snapshot) = probe::parse_output(&ran).result else {
            panic!("not a node snapshot")
        };
        snapshot
    };
    let whole = node("1048576");
    for key in [
        "conntrack-dns-before@10.96.0.10:53",
        "conntrack-dns-after@10.96.0.10:53",
    ] {
        let out = whole
            .commands
            .iter()
            .find(|c| c.key == key)
            .unwrap_or_else(|| panic!("no {key} in {:#?}", whole.commands));
        assert_eq!(out.exit_code, Some(0), "{out:?}");
        let listing = parse_conntrack_listing(&out.stdout);
        assert!(listing.skipped.is_empty(), "{:?}", listing.skipped);
        // One entry per query (a new socket each), all from the client to the ClusterIP,
        // answered by the server behind it.
        assert_eq!(listing.entries.len(), sent, "{}", out.stdout);
        assert_eq!(parse_shown_count(&out.stderr), Some(sent as u64));
        for e in &listing.entries {
            assert_eq!(e.protocol, "udp");
            assert_eq!(e.original.src.to_string(), netns::CLIENT_ADDR);
            assert_eq!(e.original.dst.to_string(), netns::CLUSTER_IP);
            assert_eq!(e.original.dport, Some(53));
            assert_eq!(e.reply.src.to_string(), netns::SERVER_ADDR);
            assert!(!e.unreplied, "{e:?}");
        }
    }
    let cut = node("1024");
    let out = cut
        .commands
        .iter()
        .find(|c| c.key == "conntrack-dns-after@10.96.0.10:53")
        .expect("the listing");
    let kept = parse_conntrack_listing(&out.stdout).entries.len();
    assert!(out.stdout.len() <= 1024 && out.stdout.ends_with('\n'));
    assert!(kept > 0 && kept < sent, "kept {kept} of {sent}");
    assert_eq!(
        parse_shown_count(&out.stderr),
        Some(sent as u64),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains(&format!(
            "dns-doctor-probe: stdout cut to its first {} bytes: {} more lines",
            out.stdout.len(),
            sent - kept
        )),
        "{}",
        out.stderr
    );
}
