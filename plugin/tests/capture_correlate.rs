//! Following lost queries across capture points (pod, node, DNS pod) through DNAT and SNAT.

mod capture_support;

use capture_support::packet;
use dns_doctor::capture::correlate::{correlate, CapturePoint, CorrelateConfig, MatchKind};
use dns_doctor::capture::{DnsPacket, Tracker, TrackerConfig, Transport};

const UDP: Transport = Transport::Udp;
const NOERROR: Option<(u8, bool)> = Some((0, false));

/// The transactions of one point. Each capture runs on for a minute after the packets
/// given, so that unanswered queries are lost rather than still in flight at its end.
fn point(name: &str, packets: &[DnsPacket]) -> CapturePoint {
    let mut t = Tracker::new(TrackerConfig::default());
    let mut transactions = Vec::new();
    let (c, s) = ("10.244.0.9:42000", "10.96.0.10:53");
    let tail = [
        packet(60_000.0, c, s, UDP, 99, "end.test.", 1, None),
        packet(60_001.0, s, c, UDP, 99, "end.test.", 1, NOERROR),
    ];
    for p in packets.iter().chain(&tail) {
        t.observe(p.clone(), &mut |tx| transactions.push(tx));
    }
    t.finish(&mut |tx| transactions.push(tx));
    CapturePoint {
        name: name.to_string(),
        transactions,
    }
}

#[test]
fn lost_queries_are_followed_to_the_last_point_that_saw_them() {
    let pod = "10.244.0.5:41000";
    let vip = "10.96.0.10:53";
    let ep = "10.244.0.7:53";
    let snat = "10.244.0.1:61000";
    // The node's clock is 300 ms ahead of the pod's.
    let skew = 300.0;
    let pod_side = point(
        "pod",
        &[
            packet(0.0, pod, vip, UDP, 1, "ok.test.", 1, None),
            packet(2.0, vip, pod, UDP, 1, "ok.test.", 1, NOERROR),
            packet(10.0, pod, vip, UDP, 2, "dies-on-node.test.", 1, None),
            packet(20.0, pod, vip, UDP, 3, "answer-lost.test.", 1, None),
            packet(30.0, pod, vip, UDP, 4, "snat.test.", 1, None),
            packet(40.0, pod, vip, UDP, 5, "never-left.test.", 1, None),
            packet(9000.0, pod, vip, UDP, 6, "late.test.", 1, None),
        ],
    );
    let node = point(
        "node:eth0",
        &[
            packet(skew + 0.5, pod, ep, UDP, 1, "ok.test.", 1, None),
            packet(skew + 1.5, ep, pod, UDP, 1, "ok.test.", 1, NOERROR),
            packet(skew + 10.5, pod, ep, UDP, 2, "dies-on-node.test.", 1, None),
            packet(skew + 20.5, pod, ep, UDP, 3, "answer-lost.test.", 1, None),
            packet(skew + 30.5, snat, ep, UDP, 4, "snat.test.", 1, None),
        ],
    );
    let dns_pod = point(
        "dns-pod:coredns-1",
        &[
            packet(skew + 0.7, pod, ep, UDP, 1, "ok.test.", 1, None),
            packet(skew + 1.2, ep, pod, UDP, 1, "ok.test.", 1, NOERROR),
            packet(skew + 20.7, pod, ep, UDP, 3, "answer-lost.test.", 1, None),
            packet(
                skew + 21.0,
                ep,
                pod,
                UDP,
                3,
                "answer-lost.test.",
                1,
                NOERROR,
            ),
        ],
    );
    let c = correlate(&[pod_side, node, dns_pod], CorrelateConfig::default());
    let by_name = |n: &str| {
        c.lost
            .iter()
            .find(|l| l.qname == n)
            .unwrap_or_else(|| panic!("{n} not lost"))
    };
    assert!(c.lost.iter().all(|l| l.qname != "ok.test."));
    assert_eq!(c.lost.len(), 5, "{:#?}", c.lost);

    let l = by_name("dies-on-node.test.");
    assert_eq!(l.last_seen_at, "node:eth0");
    assert_eq!(l.answered_at, None);
    let points: Vec<&str> = l.sightings.iter().map(|s| s.point.as_str()).collect();
    assert_eq!(points, ["pod", "node:eth0"]);
    assert_eq!(l.sightings[1].server, ep.parse().unwrap());

    let l = by_name("answer-lost.test.");
    assert_eq!(l.last_seen_at, "dns-pod:coredns-1");
    assert_eq!(l.answered_at.as_deref(), Some("dns-pod:coredns-1"));
    // The size of the answer each point saw: only the DNS pod saw one (header and
    // question of the test packet: 12 + 18 + 4 bytes).
    let sizes: Vec<Option<u32>> = l.sightings.iter().map(|s| s.response_size).collect();
    assert_eq!(sizes, [None, None, Some(34)]);

    let l = by_name("snat.test.");
    assert_eq!(l.last_seen_at, "node:eth0");
    assert_eq!(l.sightings[1].matched_by, MatchKind::Snat);

    assert_eq!(by_name("never-left.test.").last_seen_at, "pod");
    assert_eq!(by_name("late.test.").sightings.len(), 1);

    let counts: Vec<(&str, u64)> = c
        .lost_by_last_point
        .iter()
        .map(|(p, n)| (p.as_str(), *n))
        .collect();
    assert_eq!(
        counts,
        [("pod", 2), ("node:eth0", 2), ("dns-pod:coredns-1", 1)]
    );

    // What got through to each point, by the address it came from: the pod saw the
    // ClusterIP answer ok.test. (25 bytes), the DNS pod answered it and answer-lost.test.;
    // every point also saw the ClusterIP answer the tail's end.test. (26 bytes).
    let delivered: Vec<(&str, String, u64, u32)> = c
        .delivered
        .iter()
        .map(|d| (d.point.as_str(), d.server.to_string(), d.answers, d.largest))
        .collect();
    assert_eq!(
        delivered,
        [
            ("pod", "10.96.0.10".to_string(), 2, 26),
            ("node:eth0", "10.96.0.10".to_string(), 1, 26),
            ("node:eth0", "10.244.0.7".to_string(), 1, 25),
            ("dns-pod:coredns-1", "10.96.0.10".to_string(), 1, 26),
            ("dns-pod:coredns-1", "10.244.0.7".to_string(), 2, 34),
        ]
    );
}

#[test]
fn sightings_outside_the_window_are_different_queries() {
    let pod = "10.244.0.5:41000";
    let vip = "10.96.0.10:53";
    let a = point("pod", &[packet(0.0, pod, vip, UDP, 7, "x.test.", 1, None)]);
    // Same ID and question, 10 s later elsewhere: a different query.
    let b = point(
        "node",
        &[packet(10_000.0, pod, vip, UDP, 7, "x.test.", 1, None)],
    );
    let c = correlate(&[a, b], CorrelateConfig::default());
    assert_eq!(c.lost.len(), 2);
    assert!(c.lost.iter().all(|l| l.sightings.len() == 1));
}

/// A node capturing on every interface sees a query twice: from the pod's interface, to
/// the ClusterIP, and on its way to another node, DNATed to the endpoint. It is one query:
/// one lost query, with both views as sightings at that point, the second naming the
/// endpoint it went to.
#[test]
fn a_nodes_two_views_of_one_query_around_its_dnat_are_one_query() {
    let pod = "10.244.1.2:36312";
    let vip = "10.96.0.10:53";
    let ep = "10.244.3.2:53";
    let pod_side = point("pod", &[packet(0.0, pod, vip, UDP, 9, "x.test.", 1, None)]);
    let node1 = point(
        "node-1",
        &[
            packet(0.001, pod, vip, UDP, 9, "x.test.", 1, None),
            packet(0.008, pod, ep, UDP, 9, "x.test.", 1, None),
        ],
    );
    let node3 = point(
        "node-3",
        &[packet(0.02, pod, ep, UDP, 9, "x.test.", 1, None)],
    );
    let c = correlate(&[pod_side, node1, node3], CorrelateConfig::default());
    assert_eq!(c.lost.len(), 1, "{:#?}", c.lost);
    let l = &c.lost[0];
    let seen: Vec<(&str, String)> = l
        .sightings
        .iter()
        .map(|s| (s.point.as_str(), s.server.to_string()))
        .collect();
    assert_eq!(
        seen,
        [
            ("pod", vip.to_string()),
            ("node-1", vip.to_string()),
            ("node-1", ep.to_string()),
            ("node-3", ep.to_string()),
        ]
    );
    assert_eq!(l.last_seen_at, "node-3");
    assert_eq!(c.lost_by_last_point, [("node-3".to_string(), 1)]);

    // A second query to another server a resolver timeout later is another query.
    let pod_side = point(
        "pod",
        &[
            packet(0.0, pod, vip, UDP, 9, "x.test.", 1, None),
            packet(1000.0, pod, "10.96.0.11:53", UDP, 9, "x.test.", 1, None),
        ],
    );
    let c = correlate(&[pod_side], CorrelateConfig::default());
    assert_eq!(c.lost.len(), 2, "{:#?}", c.lost);
}
