//! Packet ladders: where each lost query was seen along the capture points, in order.

use serde::{Deserialize, Serialize};

use crate::capture::{Correlation, LostQuery};

/// One sighting of a lost query at a capture point.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LadderStep {
    pub point: String,
    /// Capture timestamp, RFC 3339 UTC with microseconds.
    pub time: String,
    /// Milliseconds after the first sighting (clocks of different nodes may disagree).
    pub offset_ms: f64,
    /// Client and server addresses as seen at this point (NAT rewrites them on the way).
    pub client: String,
    pub server: String,
    /// A response was seen at this point (it was then lost on its way back).
    pub answered: bool,
}

/// A query the client never got an answer for, followed across the capture points.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PacketLadder {
    pub dns_id: u16,
    pub qname: String,
    pub qtype: String,
    /// Every capture point, in path order (client side first): the ladder's columns.
    /// Points where the query was never seen are columns too, so the gap shows.
    pub points: Vec<String>,
    /// Sightings in path order: the ladder's rows.
    pub seen: Vec<LadderStep>,
    /// The last point where the query was seen: it died after this one.
    pub last_point: String,
    /// The first point where a response was seen, if any.
    pub answered_at: Option<String>,
}

/// Ladders for at most `limit` lost queries, earliest first; `points` are all capture point
/// names in path order.
pub fn ladders(correlation: &Correlation, points: &[String], limit: usize) -> Vec<PacketLadder> {
    correlation
        .lost
        .iter()
        .take(limit)
        .map(|l| ladder(l, points))
        .collect()
}

fn ladder(lost: &LostQuery, points: &[String]) -> PacketLadder {
    let first = lost.sightings.first().map(|s| s.time);
    let seen = lost
        .sightings
        .iter()
        .map(|s| LadderStep {
            point: s.point.clone(),
            time: s.time.to_string(),
            offset_ms: first.map_or(0.0, |f| {
                let ns = s.time.as_nanos() - f.as_nanos();
                ns as f64 / 1e6
            }),
            client: s.client.to_string(),
            server: s.server.to_string(),
            answered: s.answered,
        })
        .collect();
    // A point the caller did not list still gets a column, after the listed ones.
    let mut columns = points.to_vec();
    for s in &lost.sightings {
        if !columns.contains(&s.point) {
            columns.push(s.point.clone());
        }
    }
    PacketLadder {
        dns_id: lost.id,
        qname: lost.qname.clone(),
        qtype: lost.qtype.clone(),
        points: columns,
        seen,
        last_point: lost.last_seen_at.clone(),
        answered_at: lost.answered_at.clone(),
    }
}
