//! The test cluster's three-node shape, reduced to two nodes, with the captures and lost
//! queries the rules about nodes read: the target pod on node-1 with coredns-a, coredns-b
//! alone on node-2.

use std::collections::BTreeMap;

use dns_doctor_schema::QueryOutcome;

use super::{capture_analysis, healthy, ip, sock, Scenario, EP_B};
use crate::capture::correlate::{Delivered, LostQuery, MatchKind, Sighting};
use crate::capture::{CaptureAnalysis, Correlation, Timestamp};
use crate::diagnose::{diagnose, Diagnosis, DiagnosisInput, PointAnalysis};
use crate::evidence::CaptureKind;

/// The capture points: the pod, both nodes, both DNS pods.
pub const POINTS: [(&str, CaptureKind); 5] = [
    ("pod-web-0", CaptureKind::Pod),
    ("node-node-1", CaptureKind::Node),
    ("node-node-2", CaptureKind::Node),
    ("dns-coredns-a", CaptureKind::DnsPod),
    ("dns-coredns-b", CaptureKind::DnsPod),
];

/// coredns-b alone on node-2 (with a snapshot of node-2 like node-1's); the probe's direct
/// queries to coredns-b time out.
pub fn two_nodes() -> Scenario {
    let mut s = healthy();
    s.topology.endpoints[1].node = Some("node-2".into());
    s.topology.dns_pods[1].node = Some("node-2".into());
    let mut node2 = s.evidence.nodes[0].clone();
    node2.node = "node-2".into();
    node2.snapshot.node = "node-2".into();
    s.evidence.nodes.push(node2);
    s.set_queries(|q| q.server.ip() == ip(EP_B), QueryOutcome::TimedOut, None);
    s
}

/// A query from the pod to coredns-b, seen at `points` (answered at `answered_at`).
pub fn lost(id: u16, points: &[&str], answered_at: Option<&str>) -> LostQuery {
    LostQuery {
        transport: crate::capture::Transport::Udp,
        id,
        qname: "kubernetes.default.svc.cluster.local.".into(),
        qtype: "A".into(),
        sightings: points
            .iter()
            .enumerate()
            .map(|(i, p)| Sighting {
                point: p.to_string(),
                // Each node's own clock, far apart: only which node saw it counts.
                time: Timestamp::from_nanos(1_764_000_000_000_000_000 + i as i64 * 3_000_000_000),
                client: "10.244.0.5:40001".parse().unwrap(),
                server: sock(EP_B),
                answered: answered_at == Some(*p),
                rcode: None,
                response_size: None,
                matched_by: MatchKind::Exact,
            })
            .collect(),
        last_seen_at: points.last().unwrap().to_string(),
        answered_at: answered_at.map(str::to_string),
    }
}

/// Diagnoses `s` with a capture at every point of [`POINTS`] and `lost` as the correlation.
pub fn run(s: &Scenario, lost: Vec<LostQuery>) -> Diagnosis {
    run_with(s, lost, Vec::new(), capture_analysis(0))
}

/// [`run`], with the answers that arrived at each point and what the pod's own capture
/// shows.
pub fn run_with(
    s: &Scenario,
    lost: Vec<LostQuery>,
    delivered: Vec<Delivered>,
    pod: CaptureAnalysis,
) -> Diagnosis {
    let mut analyses: Vec<CaptureAnalysis> = POINTS.iter().map(|_| capture_analysis(0)).collect();
    analyses[0] = pod;
    let points: Vec<PointAnalysis<'_>> = POINTS
        .iter()
        .zip(&analyses)
        .map(|((name, kind), analysis)| PointAnalysis {
            name,
            kind: *kind,
            analysis,
        })
        .collect();
    let mut by_point: BTreeMap<String, u64> = BTreeMap::new();
    for l in &lost {
        *by_point.entry(l.last_seen_at.clone()).or_default() += 1;
    }
    let correlation = Correlation {
        lost,
        lost_by_last_point: by_point.into_iter().collect(),
        delivered,
    };
    diagnose(&DiagnosisInput {
        topology: &s.topology,
        evidence: &s.evidence,
        captures: &points,
        correlation: Some(&correlation),
    })
}
