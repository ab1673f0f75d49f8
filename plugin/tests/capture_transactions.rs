//! Transactions and failure patterns, on packet sequences built in the test.

mod capture_support;

use capture_support::packet;
use dns_doctor::capture::transactions::Analysis;
use dns_doctor::capture::{DnsPacket, Outcome, Tracker, TrackerConfig, Transaction, Transport};

const UDP: Transport = Transport::Udp;
const TCP: Transport = Transport::Tcp;
const A: u16 = 1;
const AAAA: u16 = 28;
const NOERROR: Option<(u8, bool)> = Some((0, false));
const NXDOMAIN: Option<(u8, bool)> = Some((3, false));

fn run(packets: &[DnsPacket], cfg: TrackerConfig) -> (Vec<Transaction>, Analysis) {
    let mut t = Tracker::new(cfg);
    let mut done = Vec::new();
    for p in packets {
        t.observe(p.clone(), &mut |tx| done.push(tx));
    }
    let a = t.finish(&mut |tx| done.push(tx));
    (done, a)
}

#[test]
fn query_matched_to_response_with_exact_latency() {
    let c = "10.244.0.5:41000";
    let s = "10.96.0.10:53";
    let (txs, a) = run(
        &[
            packet(
                0.0,
                c,
                s,
                UDP,
                7,
                "kubernetes.default.svc.cluster.local.",
                A,
                None,
            ),
            packet(
                1.234,
                s,
                c,
                UDP,
                7,
                "Kubernetes.Default.svc.cluster.local.",
                A,
                NOERROR,
            ),
        ],
        TrackerConfig::default(),
    );
    assert_eq!(txs.len(), 1);
    assert_eq!(txs[0].outcome, Outcome::Answered);
    assert_eq!(txs[0].latency_ms, Some(1.234));
    assert_eq!(txs[0].rcode, Some("NOERROR"));
    assert_eq!(txs[0].responder, None);
    let s = &a.summary;
    assert_eq!(
        (s.dns_messages, s.queries, s.responses, s.unanswered),
        (2, 1, 1, 0)
    );
    assert_eq!(s.latency.p50_ms, Some(1.234));
}

#[test]
fn dnat_seen_on_the_client_side_still_matches() {
    // The node-side capture sees the query to the ClusterIP and the answer from the
    // endpoint before it is translated back.
    let (txs, _) = run(
        &[
            packet(
                0.0,
                "10.244.0.5:41000",
                "10.96.0.10:53",
                UDP,
                9,
                "a.test.",
                A,
                None,
            ),
            packet(
                0.5,
                "10.244.0.7:53",
                "10.244.0.5:41000",
                UDP,
                9,
                "a.test.",
                A,
                NOERROR,
            ),
        ],
        TrackerConfig::default(),
    );
    assert_eq!(txs[0].outcome, Outcome::Answered);
    assert_eq!(txs[0].responder, Some("10.244.0.7:53".parse().unwrap()));
}

#[test]
fn five_second_retry_and_retransmissions() {
    let c = "10.244.0.5:41000";
    let s = "10.96.0.10:53";
    let (txs, a) = run(
        &[
            packet(0.0, c, s, UDP, 1, "a.test.", A, None),
            packet(5000.0, c, s, UDP, 1, "a.test.", A, None),
            packet(5002.0, s, c, UDP, 1, "a.test.", A, NOERROR),
            // A new socket and ID asking the same 5 s after an unanswered attempt.
            packet(6000.0, "10.244.0.5:41001", s, UDP, 2, "b.test.", A, None),
            packet(11100.0, "10.244.0.5:41002", s, UDP, 3, "b.test.", A, None),
            packet(
                11101.0,
                s,
                "10.244.0.5:41002",
                UDP,
                3,
                "b.test.",
                A,
                NOERROR,
            ),
        ],
        TrackerConfig::default(),
    );
    let p = &a.summary.patterns;
    assert_eq!(p.five_second_retries, 2);
    assert_eq!(a.summary.retransmissions, 1);
    let first = txs.iter().find(|t| t.id == 1).unwrap();
    assert_eq!(first.retransmissions, 1);
    assert_eq!(first.latency_ms, Some(5002.0));
    // The abandoned first attempt of b.test is unanswered.
    let lost = txs.iter().find(|t| t.id == 2).unwrap();
    assert_eq!(lost.outcome, Outcome::Unanswered);
    assert_eq!(a.summary.unanswered, 1);
    assert_eq!(a.examples.five_second_retries.len(), 2);
}

#[test]
fn parallel_a_aaaa_with_one_reply_missing() {
    let c = "10.244.0.5:41000";
    let s = "10.96.0.10:53";
    let (_, a) = run(
        &[
            // Pair 1: AAAA never answered.
            packet(0.0, c, s, UDP, 1, "a.test.", A, None),
            packet(0.1, c, s, UDP, 2, "a.test.", AAAA, None),
            packet(0.9, s, c, UDP, 1, "a.test.", A, NOERROR),
            // Pair 2: both answered, A answered before AAAA is even sent.
            packet(100.0, "10.244.0.5:41001", s, UDP, 3, "b.test.", A, None),
            packet(100.05, s, "10.244.0.5:41001", UDP, 3, "b.test.", A, NOERROR),
            packet(100.2, "10.244.0.5:41001", s, UDP, 4, "b.test.", AAAA, None),
            packet(
                100.9,
                s,
                "10.244.0.5:41001",
                UDP,
                4,
                "b.test.",
                AAAA,
                NOERROR,
            ),
            // Not a pair: 500 ms apart.
            packet(200.0, "10.244.0.5:41002", s, UDP, 5, "c.test.", A, None),
            packet(700.0, "10.244.0.5:41002", s, UDP, 6, "c.test.", AAAA, None),
            packet(701.0, s, "10.244.0.5:41002", UDP, 5, "c.test.", A, NOERROR),
            // The capture runs on well past the resolver's timeout.
            packet(9000.0, "10.244.0.5:41003", s, UDP, 7, "d.test.", A, None),
            packet(9000.5, s, "10.244.0.5:41003", UDP, 7, "d.test.", A, NOERROR),
        ],
        TrackerConfig::default(),
    );
    let p = &a.summary.patterns;
    assert_eq!(p.a_aaaa_pairs, 2);
    assert_eq!(p.a_aaaa_one_missing, 1);
    assert_eq!(a.examples.a_aaaa_one_missing[0].qtype, "AAAA");
}

#[test]
fn a_reply_cut_off_by_the_end_of_the_capture_is_not_a_lost_reply() {
    let c = "10.244.0.5:41000";
    let s = "10.96.0.10:53";
    let (txs, a) = run(
        &[
            packet(0.0, c, s, UDP, 1, "a.test.", A, None),
            packet(0.5, s, c, UDP, 1, "a.test.", A, NOERROR),
            // Pair 2: the A is answered, the capture stops 2 ms after the AAAA left.
            packet(100.0, c, s, UDP, 2, "b.test.", A, None),
            packet(100.1, c, s, UDP, 3, "b.test.", AAAA, None),
            packet(102.0, s, c, UDP, 2, "b.test.", A, NOERROR),
        ],
        TrackerConfig::default(),
    );
    let p = &a.summary.patterns;
    assert_eq!((p.a_aaaa_pairs, p.a_aaaa_one_missing), (0, 0));
    assert!(a.examples.a_aaaa_one_missing.is_empty());
    assert_eq!(a.summary.in_flight_at_end, 1);
    assert!(txs
        .iter()
        .any(|t| t.qtype == "AAAA" && t.outcome == Outcome::InFlightAtEnd));
}

#[test]
fn search_path_expansion_is_counted() {
    let c = "10.244.0.5:41000";
    let s = "10.96.0.10:53";
    let mut packets = Vec::new();
    let names = [
        "example.com.default.svc.cluster.local.",
        "example.com.svc.cluster.local.",
        "example.com.cluster.local.",
    ];
    for (i, n) in names.iter().enumerate() {
        let t = i as f64 * 2.0;
        packets.push(packet(t, c, s, UDP, i as u16, n, A, None));
        packets.push(packet(t + 1.0, s, c, UDP, i as u16, n, A, NXDOMAIN));
    }
    packets.push(packet(10.0, c, s, UDP, 9, "example.com.", A, None));
    packets.push(packet(11.0, s, c, UDP, 9, "example.com.", A, NOERROR));
    let (_, a) = run(&packets, TrackerConfig::default());
    let p = &a.summary.patterns;
    assert_eq!((p.search_path_lookups, p.search_path_nxdomains), (1, 3));
    assert!(a.examples.search_path[0]
        .detail
        .contains(".svc.cluster.local."));
    assert_eq!(a.summary.rcodes.get("NXDOMAIN"), Some(&3));
}

#[test]
fn truncation_and_the_tcp_retry() {
    let s = "10.96.0.10:53";
    let tc = Some((0, true));
    let (_, a) = run(
        &[
            // Retried over TCP and answered.
            packet(0.0, "10.244.0.5:41000", s, UDP, 1, "big.test.", 16, None),
            packet(1.0, s, "10.244.0.5:41000", UDP, 1, "big.test.", 16, tc),
            packet(2.0, "10.244.0.5:50000", s, TCP, 2, "big.test.", 16, None),
            packet(3.0, s, "10.244.0.5:50000", TCP, 2, "big.test.", 16, NOERROR),
            // Never retried.
            packet(100.0, "10.244.0.5:41001", s, UDP, 3, "big2.test.", 16, None),
            packet(101.0, s, "10.244.0.5:41001", UDP, 3, "big2.test.", 16, tc),
            // Retried over TCP, and that got SERVFAIL.
            packet(200.0, "10.244.0.5:41002", s, UDP, 4, "big3.test.", 16, None),
            packet(201.0, s, "10.244.0.5:41002", UDP, 4, "big3.test.", 16, tc),
            packet(202.0, "10.244.0.5:50001", s, TCP, 5, "big3.test.", 16, None),
            packet(
                203.0,
                s,
                "10.244.0.5:50001",
                TCP,
                5,
                "big3.test.",
                16,
                Some((2, false)),
            ),
        ],
        TrackerConfig::default(),
    );
    let p = &a.summary.patterns;
    assert_eq!(a.summary.truncated_responses, 3);
    assert_eq!(
        (
            p.truncated_tcp_ok,
            p.truncated_no_tcp,
            p.truncated_tcp_failed
        ),
        (1, 1, 1)
    );
    assert_eq!(p.servfail, 1);
}

#[test]
fn memory_is_bounded_by_open_transactions() {
    // 100,000 unanswered queries over 1000 s with a 2 s timeout: they must leave as they
    // expire, not pile up until the end.
    let cfg = TrackerConfig {
        timeout: std::time::Duration::from_secs(2),
        ..TrackerConfig::default()
    };
    let mut t = Tracker::new(cfg);
    let mut emitted = 0u64;
    let mut peak = 0;
    for i in 0..100_000u32 {
        let p = packet(
            f64::from(i) * 10.0,
            &format!("10.244.0.5:{}", 1024 + i % 60_000),
            "10.96.0.10:53",
            UDP,
            (i % 65_536) as u16,
            &format!("n{i}.test."),
            A,
            None,
        );
        t.observe(p, &mut |_| emitted += 1);
        peak = peak.max(t.open_transactions());
    }
    assert!(peak <= 400, "{peak} transactions open at once");
    assert!(emitted > 99_000, "only {emitted} expired on the way");
    let a = t.finish(&mut |_| emitted += 1);
    assert_eq!(emitted, 100_000);
    assert_eq!(a.summary.unanswered, 100_000);
    // Sent in the last second before the capture ended: in flight, not lost.
    assert_eq!(a.summary.in_flight_at_end, 100);
}

/// The response's size is the DNS message's length: a UDP payload, and for TCP the
/// reassembled message without its length prefix. truncated.pcap holds a truncated TXT
/// answer over UDP, then the whole answer over TCP; tshark reads the UDP payload as 34 bytes
/// (udp.length 42) and the TCP message as 649 bytes (dns.length, tcp.len 651).
#[test]
fn response_sizes_are_the_dns_message_lengths_over_udp_and_tcp() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/captures/truncated.pcap"
    );
    let mut txs = Vec::new();
    dns_doctor::capture::analyze_capture(
        std::io::BufReader::new(std::fs::File::open(path).unwrap()),
        dns_doctor::capture::ExtractOptions::default(),
        TrackerConfig::default(),
        &mut |t| txs.push(t),
    )
    .unwrap();
    let size = |id: u16, transport: Transport| {
        txs.iter()
            .find(|t| t.id == id && t.transport == transport)
            .unwrap_or_else(|| panic!("transaction {id:#x} over {transport:?}: {txs:?}"))
            .response_size
    };
    assert_eq!(size(0x82aa, UDP), Some(34));
    assert_eq!(size(0x99db, TCP), Some(649));
    // The second TCP retry was refused: no response, no size.
    assert!(txs
        .iter()
        .filter(|t| t.outcome != Outcome::Answered)
        .all(|t| t.response_size.is_none()));
    assert_eq!(size(0x270e, UDP), Some(34));
}
