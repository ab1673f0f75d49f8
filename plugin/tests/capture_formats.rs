//! Capture formats, link types and transports, on captures built byte by byte in the test:
//! the same DNS exchange must come out identical whatever the container and link layer.

mod capture_support;

use capture_support::*;
use dns_doctor::capture::{
    CaptureError, CaptureReader, DnsPacket, DnsReader, ExtractOptions, Transport,
};
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use std::io::Cursor;

const T0: i64 = 1_700_000_000_123_456_789;

fn read_all(bytes: Vec<u8>) -> (Vec<DnsPacket>, Option<CaptureError>) {
    let mut packets = Vec::new();
    let mut err = None;
    for item in
        DnsReader::new(Cursor::new(bytes), ExtractOptions::default()).expect("capture header")
    {
        match item {
            Ok(p) => packets.push(p),
            Err(e) => err = Some(e),
        }
    }
    (packets, err)
}

/// A query and its answer between a client and a server, as IP packets.
fn exchange(client: &str, server: &str) -> (Vec<u8>, Vec<u8>) {
    let q = query(4711, "web.example.test.", RecordType::A);
    let r = response(
        4711,
        "web.example.test.",
        RecordType::A,
        ResponseCode::NoError,
        &[[192, 0, 2, 10]],
    );
    (
        ip_udp(addr(client), addr(server), &q),
        ip_udp(addr(server), addr(client), &r),
    )
}

fn check_exchange(packets: &[DnsPacket], client: &str, server: &str, nanos: bool) {
    assert_eq!(packets.len(), 2, "{packets:#?}");
    let (q, r) = (&packets[0], &packets[1]);
    assert_eq!((q.src, q.dst), (addr(client), addr(server)));
    assert_eq!((r.src, r.dst), (addr(server), addr(client)));
    assert_eq!(q.transport, Transport::Udp);
    assert!(!q.message.response && r.message.response);
    assert_eq!(q.message.id, 4711);
    let question = q.message.question.as_ref().unwrap();
    assert_eq!(
        (question.name.as_str(), question.qtype),
        ("web.example.test.", 1)
    );
    assert_eq!(r.message.answers, vec!["A 192.0.2.10".to_string()]);
    let expected = if nanos { T0 } else { T0 / 1000 * 1000 };
    assert_eq!(q.time.as_nanos(), expected);
    assert_eq!(r.time.as_nanos() - q.time.as_nanos(), 1_500_000);
    assert_eq!((q.frame, r.frame), (1, 2));
}

#[test]
fn every_link_type_yields_the_same_packets() {
    for (client, server) in [
        ("192.0.2.1:40000", "192.0.2.53:53"),
        ("[2001:db8::1]:40000", "[2001:db8::53]:53"),
    ] {
        let (q, r) = exchange(client, server);
        let ipv6 = client.starts_with('[');
        let eth = |ip: &[u8]| {
            // Rebuild the Ethernet frame from the addresses rather than wrap the IP bytes.
            let payload = &ip[if ipv6 { 48 } else { 28 }..];
            let (s, d) = if ip == q.as_slice() {
                (client, server)
            } else {
                (server, client)
            };
            (
                eth_udp(addr(s), addr(d), payload),
                eth_vlan_udp(addr(s), addr(d), payload),
            )
        };
        let cases: Vec<(&str, u32, Vec<Vec<u8>>)> = vec![
            ("EN10MB", 1, vec![eth(&q).0, eth(&r).0]),
            ("EN10MB+802.1Q", 1, vec![eth(&q).1, eth(&r).1]),
            ("LINUX_SLL", 113, vec![sll(&q), sll(&r)]),
            ("LINUX_SLL2", 276, vec![sll2(&q), sll2(&r)]),
            ("RAW", 101, vec![q.clone(), r.clone()]),
            (
                if ipv6 { "IPV6" } else { "IPV4" },
                if ipv6 { 229 } else { 228 },
                vec![q.clone(), r.clone()],
            ),
            (
                "NULL little-endian",
                0,
                vec![null(&q, false), null(&r, false)],
            ),
            ("NULL big-endian", 0, vec![null(&q, true), null(&r, true)]),
            ("LOOP", 108, vec![null(&q, true), null(&r, true)]),
        ];
        for (name, linktype, frames) in cases {
            for (nanos, big_endian) in [(false, false), (true, false), (false, true), (true, true)]
            {
                let file = pcap(
                    linktype,
                    nanos,
                    big_endian,
                    &[(T0, frames[0].clone()), (T0 + 1_500_000, frames[1].clone())],
                );
                let (packets, err) = read_all(file);
                assert!(err.is_none(), "{name}: {err:?}");
                check_exchange(&packets, client, server, nanos);
            }
        }
    }
}

#[test]
fn pcapng_interfaces_keep_their_own_link_type_and_resolution() {
    let (q, r) = exchange("192.0.2.1:40000", "192.0.2.53:53");
    // Interface 0: Ethernet, microseconds. Interface 1: SLL2, nanoseconds.
    let q_eth = eth_udp(addr("192.0.2.1:40000"), addr("192.0.2.53:53"), &q[28..]);
    let file = pcapng(
        &[(1, 6), (276, 9)],
        &[(0, T0, q_eth), (1, T0 + 1_500_000, sll2(&r))],
    );
    let (packets, err) = read_all(file);
    assert!(err.is_none(), "{err:?}");
    assert_eq!(packets.len(), 2);
    assert_eq!(packets[0].time.as_nanos(), T0 / 1000 * 1000);
    assert_eq!(packets[1].time.as_nanos(), T0 + 1_500_000);
    assert!(packets[1].message.response);
}

#[test]
fn dns_over_tcp_is_reassembled() {
    let c = addr("[2001:db8::1]:50000");
    let s = addr("[2001:db8::53]:53");
    let framed = |m: Vec<u8>| {
        let mut v = (m.len() as u16).to_be_bytes().to_vec();
        v.extend(m);
        v
    };
    // Two queries in one segment; the two answers in one stream split into three segments,
    // delivered out of order and with a retransmission.
    let mut queries = framed(query(1, "a.example.test.", RecordType::A));
    queries.extend(framed(query(2, "b.example.test.", RecordType::AAAA)));
    let mut answers = framed(response(
        1,
        "a.example.test.",
        RecordType::A,
        ResponseCode::NoError,
        &[[192, 0, 2, 1]],
    ));
    answers.extend(framed(response(
        2,
        "b.example.test.",
        RecordType::AAAA,
        ResponseCode::NXDomain,
        &[],
    )));
    let (a1, rest) = answers.split_at(10);
    let (a2, a3) = rest.split_at(45);
    let syn = Flags {
        syn: true,
        ..Flags::default()
    };
    let fin = Flags {
        fin: true,
        ..Flags::default()
    };
    let none = Flags::default();
    let frames = vec![
        eth_tcp(c, s, 1000, syn, &[]),
        eth_tcp(s, c, 5000, syn, &[]),
        eth_tcp(c, s, 1001, none, &queries),
        eth_tcp(s, c, 5001 + 10, none, a2),
        eth_tcp(s, c, 5001, none, a1),
        eth_tcp(s, c, 5001, none, a1),
        eth_tcp(s, c, 5001 + 55, fin, a3),
    ];
    let packets: Vec<(i64, Vec<u8>)> = frames
        .into_iter()
        .enumerate()
        .map(|(i, f)| (T0 + i as i64 * 1000, f))
        .collect();
    let (got, err) = read_all(pcap(1, false, false, &packets));
    assert!(err.is_none());
    let ids: Vec<(u16, bool, u64)> = got
        .iter()
        .map(|p| (p.message.id, p.message.response, p.frame))
        .collect();
    // Both queries complete in frame 3; answer 1 completes when the gap is filled (frame 5),
    // answer 2 with the last segment (frame 7).
    assert_eq!(
        ids,
        vec![(1, false, 3), (2, false, 3), (1, true, 5), (2, true, 7)]
    );
    assert!(got.iter().all(|p| p.transport == Transport::Tcp));
    assert_eq!(got[3].message.rcode, 3);
}

#[test]
fn dns_on_unusual_ports_is_recognised_only_when_it_is_dns() {
    let c = addr("192.0.2.1:40000");
    let q = query(9, "x.example.test.", RecordType::A);
    let frames = vec![
        (T0, eth_udp(c, addr("192.0.2.53:8053"), &q)),
        (T0 + 1, eth_udp(c, addr("192.0.2.53:5300"), &q)),
        (
            T0 + 2,
            eth_udp(
                c,
                addr("192.0.2.53:5301"),
                b"definitely not a DNS message at all",
            ),
        ),
        (T0 + 3, eth_udp(c, addr("192.0.2.53:137"), &q)),
    ];
    let (got, _) = read_all(pcap(1, false, false, &frames));
    let ports: Vec<u16> = got.iter().map(|p| p.dst.port()).collect();
    assert_eq!(ports, vec![8053, 5300]);
}

#[test]
fn broken_files_are_errors_not_panics() {
    assert!(matches!(
        CaptureReader::new(Cursor::new(Vec::new())),
        Err(CaptureError::Empty)
    ));
    assert!(matches!(
        CaptureReader::new(Cursor::new(b"GET / HTTP/1.1\r\n\r\n".to_vec())),
        Err(CaptureError::NotACapture)
    ));
    // Cut in the middle of the second record: the first packet survives, then an error.
    let (q, r) = exchange("192.0.2.1:40000", "192.0.2.53:53");
    let mut file = pcap(101, false, false, &[(T0, q), (T0 + 1, r)]);
    file.truncate(file.len() - 7);
    let (got, err) = read_all(file);
    assert_eq!(got.len(), 1);
    assert!(
        matches!(err, Some(CaptureError::Truncated { .. })),
        "{err:?}"
    );
    // A record claiming 4 GiB: rejected without trying to buffer it.
    let mut huge = pcap(101, false, false, &[]);
    huge.extend_from_slice(&[0; 8]);
    huge.extend_from_slice(&u32::MAX.to_le_bytes());
    huge.extend_from_slice(&u32::MAX.to_le_bytes());
    huge.extend_from_slice(&[0x45; 64]);
    let (got, err) = read_all(huge);
    assert!(got.is_empty());
    assert!(err.is_some());
    // A pcapng packet for an interface that was never described is skipped and counted.
    let (q, _) = exchange("192.0.2.1:40000", "192.0.2.53:53");
    let mut file = pcapng(&[(101, 6)], &[(0, T0, q)]);
    file[28 + 32 + 8] = 7; // interface id of the packet block
    let mut reader = CaptureReader::new(Cursor::new(file)).unwrap();
    assert!(reader.next_frame().unwrap().is_none());
    assert_eq!((reader.frames(), reader.skipped()), (1, 1));
}

/// Inputs the fuzz targets once crashed on (tests/fixtures/captures/fuzz-regressions):
/// each must now be read to the end without a panic.
#[test]
fn fuzz_regressions_do_not_panic() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/captures/fuzz-regressions");
    let mut seen = 0;
    for entry in std::fs::read_dir(dir).expect("fuzz-regressions dir") {
        let bytes = std::fs::read(entry.expect("entry").path()).expect("read");
        // The targets feed the bytes both as a capture and as one DNS message.
        let _ = dns_doctor::capture::DnsMessage::parse(&bytes);
        let result = dns_doctor::capture::analyze_capture(
            Cursor::new(bytes),
            ExtractOptions::default(),
            dns_doctor::capture::TrackerConfig::default(),
            &mut |_| {},
        );
        // Whether a file is accepted does not matter; getting here does.
        let _ = result.map(|a| dns_doctor::analyze::findings(std::path::Path::new("fuzz"), &a));
        seen += 1;
    }
    assert!(seen >= 3);
}

/// A DNS answer too large for one packet arrives as IP fragments (here out of order).
#[test]
fn fragmented_udp_answers_are_reassembled() {
    use etherparse::{IpFragOffset, IpNumber, Ipv4Header};
    let (c, s) = (addr("192.0.2.1:40000"), addr("192.0.2.53:53"));
    let addrs: Vec<[u8; 4]> = (0..60).map(|i| [198, 51, 100, i]).collect();
    let answer = response(
        77,
        "many.example.test.",
        RecordType::A,
        ResponseCode::NoError,
        &addrs,
    );
    let whole = ip_udp(s, c, &answer);
    let udp = &whole[20..];
    assert!(udp.len() > 800);
    let fragment = |offset: usize, chunk: &[u8], more: bool| {
        let mut h = Ipv4Header::new(
            chunk.len() as u16,
            64,
            IpNumber::UDP,
            [192, 0, 2, 53],
            [192, 0, 2, 1],
        )
        .unwrap();
        h.identification = 4242;
        h.more_fragments = more;
        h.fragment_offset = IpFragOffset::try_new((offset / 8) as u16).unwrap();
        h.header_checksum = h.calc_header_checksum();
        let mut v = h.to_bytes().to_vec();
        v.extend_from_slice(chunk);
        v
    };
    let frames = vec![
        (
            T0,
            ip_udp(c, s, &query(77, "many.example.test.", RecordType::A)),
        ),
        (T0 + 1000, fragment(512, &udp[512..], false)),
        (T0 + 2000, fragment(0, &udp[..512], true)),
    ];
    let (got, err) = read_all(pcap(101, false, false, &frames));
    assert!(err.is_none(), "{err:?}");
    assert_eq!(got.len(), 2, "{got:#?}");
    let r = &got[1];
    assert!(r.message.response);
    assert_eq!((r.message.id, r.frame, r.src, r.dst), (77, 3, s, c));
    assert_eq!(r.message.counts[1], 60);
    assert_eq!(r.message.answers.len(), 32);
}

/// A node's capture sees its own DNS and every pod's bridged through it: with a client
/// list, only the queries of those clients and the responses to them are analysed.
#[test]
fn a_client_list_keeps_only_those_clients_traffic() {
    use dns_doctor::capture::{analyze_capture, TrackerConfig};
    // The node (10.244.0.1 on its bridge) asks a DNS pod; a pod (10.244.0.7) asks too,
    // and gets no answer.
    let (node_q, node_r) = exchange("10.244.0.1:40000", "10.244.0.3:53");
    let (pod_q, _) = exchange("10.244.0.7:40001", "10.244.0.3:53");
    let frames = [
        (T0, sll(&node_q)),
        (T0 + 1_000, sll(&pod_q)),
        (T0 + 1_500_000, sll(&node_r)),
        (T0 + 9_000_000_000, sll(&node_q)),
    ];
    let run = |clients: Option<Vec<std::net::IpAddr>>| {
        let mut transactions = Vec::new();
        let a = analyze_capture(
            Cursor::new(pcap(113, true, false, &frames)),
            ExtractOptions {
                clients,
                ..ExtractOptions::default()
            },
            TrackerConfig::default(),
            &mut |t| transactions.push(t),
        )
        .expect("capture header");
        (a, transactions)
    };
    let (all, all_tx) = run(None);
    assert_eq!((all.analysis.summary.queries, all.other_clients), (3, 0));
    assert!(all_tx.iter().any(|t| t.client == addr("10.244.0.7:40001")));

    let node_ips = vec!["10.252.0.1".parse().unwrap(), "10.244.0.1".parse().unwrap()];
    let (own, own_tx) = run(Some(node_ips));
    assert_eq!(own.analysis.summary.queries, 2);
    assert_eq!(own.analysis.summary.responses, 1);
    assert_eq!(own.other_clients, 1);
    assert!(own_tx
        .iter()
        .all(|t| t.client.ip().to_string() == "10.244.0.1"));
    assert_eq!(own.analysis.summary.unanswered_transactions, 0);
}
