//! The same query seen at several capture points (pod, node, DNS pod): where lost queries die.
//!
//! A query keeps its DNS ID and question end to end, while NAT rewrites its addresses: the
//! server address changes at the node (DNAT of the ClusterIP to an endpoint), and the client
//! address and port may change too (SNAT, masquerade). Sightings are therefore matched by
//! ID + question + client port within a time window, falling back to ID + question + time
//! when the port was rewritten; addresses are never part of the match.
//!
//! One point may see one query twice: a node's capture on every interface sees it before
//! the ClusterIP's DNAT (from the pod's interface) and after it (on the way out to another
//! node, now addressed to the endpoint), microseconds apart. Both views are sightings of
//! that one query at that point; the second says which endpoint it went to.

use super::link::Transport;
use super::time::Timestamp;
use super::transactions::{Outcome, Transaction};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// The transactions seen at one capture point.
#[derive(Clone, Debug)]
pub struct CapturePoint {
    /// Name of the point, e.g. `pod`, `node:eth0`, `dns-pod:coredns-xyz`.
    pub name: String,
    /// Its transactions (answered and unanswered).
    pub transactions: Vec<Transaction>,
}

/// How two sightings were recognised as the same query.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MatchKind {
    /// Same ID, question and client port.
    Exact,
    /// Same ID and question, client port rewritten (SNAT), close in time.
    Snat,
}

/// One capture point's view of a query.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Sighting {
    /// Capture point name.
    pub point: String,
    /// When the query was first seen there.
    pub time: Timestamp,
    /// Client address as seen there.
    pub client: SocketAddr,
    /// Server address as seen there.
    pub server: SocketAddr,
    /// Whether a response was seen there.
    pub answered: bool,
    /// Response code seen there.
    pub rcode: Option<String>,
    /// Size in bytes of the answer's DNS message seen there (None when no answer was).
    pub response_size: Option<u32>,
    /// How this sighting was matched to the first one.
    pub matched_by: MatchKind,
}

/// A query that the client never got an answer for, followed along the path.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LostQuery {
    /// DNS ID.
    pub id: u16,
    /// Question name.
    pub qname: String,
    /// Question type.
    pub qtype: String,
    /// UDP or TCP. A TCP answer lost for good was lost with every retransmission of it.
    pub transport: Transport,
    /// Where it was seen, in the order the points were given (client side first).
    pub sightings: Vec<Sighting>,
    /// The last point (in path order) where the query was seen: it died after this one.
    pub last_seen_at: String,
    /// The first point where a response to it was seen, if any: the response was then lost
    /// on its way back between that point and the client.
    pub answered_at: Option<String>,
}

/// The answers one capture point saw from one address: what got through to there, and how
/// large it was, to set beside the answers that did not.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Delivered {
    /// Capture point name.
    pub point: String,
    /// The address the answers came from as seen there: the responder when it differs from
    /// the server asked (a reply seen before its source was translated back), else the
    /// server.
    pub server: IpAddr,
    /// Answers seen.
    pub answers: u64,
    /// Size in bytes of the largest answer's DNS message.
    pub largest: u32,
}

impl LostQuery {
    /// The points that saw the query, in path order, each once (a point may have seen it
    /// twice, before and after a NAT).
    pub fn points(&self) -> Vec<&str> {
        let mut points: Vec<&str> = self.sightings.iter().map(|s| s.point.as_str()).collect();
        points.dedup();
        points
    }
}

/// Result of correlating capture points.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Correlation {
    /// Every lost query with where it was seen.
    pub lost: Vec<LostQuery>,
    /// Lost queries by the point where they were last seen.
    pub lost_by_last_point: Vec<(String, u64)>,
    /// Answers seen at each point, by the address they came from, in point order.
    pub delivered: Vec<Delivered>,
}

/// Correlation tuning.
#[derive(Clone, Copy, Debug)]
pub struct CorrelateConfig {
    /// Largest time difference between sightings of one query (clock skew between nodes
    /// plus transit).
    pub window: Duration,
}

/// The largest gap between two views of one query at one point under different server
/// addresses (before and after a NAT on the same host). A resolver's retry or its next
/// nameserver comes a timeout later, far beyond it.
const NAT_VIEWS_GAP: Duration = Duration::from_millis(10);

impl Default for CorrelateConfig {
    fn default() -> Self {
        Self {
            window: Duration::from_secs(2),
        }
    }
}

type Index = HashMap<(u16, String, u16), Vec<usize>>;

fn index(p: &CapturePoint) -> Index {
    let mut idx: Index = HashMap::new();
    for (i, t) in p.transactions.iter().enumerate() {
        idx.entry((t.id, t.qname.to_ascii_lowercase(), t.qtype_code))
            .or_default()
            .push(i);
    }
    idx
}

fn gap(a: Timestamp, b: Timestamp) -> Duration {
    a.since(b).max(b.since(a))
}

/// Follows every lost query across the capture points. Give the points in path order,
/// from the client outwards (pod, node, DNS pod): "last seen" and the ordering of
/// sightings follow that order, because clocks of different machines cannot be trusted
/// to order packets.
pub fn correlate(points: &[CapturePoint], cfg: CorrelateConfig) -> Correlation {
    let indexes: Vec<Index> = points.iter().map(index).collect();
    let mut used: Vec<Vec<bool>> = points
        .iter()
        .map(|p| vec![false; p.transactions.len()])
        .collect();
    let mut lost = Vec::new();
    for (pi, point) in points.iter().enumerate() {
        for (ti, t) in point.transactions.iter().enumerate() {
            if used[pi][ti] || t.outcome != Outcome::Unanswered {
                continue;
            }
            used[pi][ti] = true;
            let key = (t.id, t.qname.to_ascii_lowercase(), t.qtype_code);
            let mut group = vec![(pi, ti, MatchKind::Exact)];
            for (oi, other) in points.iter().enumerate() {
                if oi == pi {
                    continue;
                }
                let Some(cands) = indexes[oi].get(&key) else {
                    continue;
                };
                let best = cands
                    .iter()
                    .filter(|&&c| !used[oi][c])
                    .map(|&c| {
                        let o = &other.transactions[c];
                        let kind = if o.client.port() == t.client.port() {
                            MatchKind::Exact
                        } else {
                            MatchKind::Snat
                        };
                        (c, kind, gap(o.query_time, t.query_time))
                    })
                    .filter(|(_, _, g)| *g <= cfg.window)
                    .min_by_key(|(_, kind, g)| (*kind != MatchKind::Exact, *g));
                if let Some((c, kind, _)) = best {
                    used[oi][c] = true;
                    group.push((oi, c, kind));
                }
            }
            // The other views of each sighting at its own point: the same query and client
            // port under another server address, a NAT on that host apart.
            for (gp, gc, kind) in group.clone() {
                let seen = &points[gp].transactions[gc];
                for &c in indexes[gp].get(&key).into_iter().flatten() {
                    let o = &points[gp].transactions[c];
                    if !used[gp][c]
                        && o.client.port() == seen.client.port()
                        && o.server != seen.server
                        && gap(o.query_time, seen.query_time) <= NAT_VIEWS_GAP
                    {
                        used[gp][c] = true;
                        group.push((gp, c, kind));
                    }
                }
            }
            group.sort_by_key(|(p, _, _)| *p);
            let sightings: Vec<Sighting> = group
                .iter()
                .map(|&(p, c, kind)| {
                    let o = &points[p].transactions[c];
                    Sighting {
                        point: points[p].name.clone(),
                        time: o.query_time,
                        client: o.client,
                        server: o.server,
                        answered: o.outcome == Outcome::Answered,
                        rcode: o.rcode.map(str::to_string),
                        response_size: o.response_size,
                        matched_by: kind,
                    }
                })
                .collect();
            // If the client-most point saw an answer, the client got it: not lost.
            if sightings.first().is_some_and(|s| s.answered) {
                continue;
            }
            let last_seen_at = sightings
                .last()
                .map(|s| s.point.clone())
                .unwrap_or_default();
            let answered_at = sightings
                .iter()
                .find(|s| s.answered)
                .map(|s| s.point.clone());
            lost.push(LostQuery {
                id: t.id,
                qname: t.qname.clone(),
                qtype: t.qtype.to_string(),
                transport: t.transport,
                sightings,
                last_seen_at,
                answered_at,
            });
        }
    }
    lost.sort_by_key(|l| l.sightings.first().map(|s| s.time));
    let mut by_point: Vec<(String, u64)> = points.iter().map(|p| (p.name.clone(), 0)).collect();
    for l in &lost {
        if let Some(e) = by_point.iter_mut().find(|(n, _)| *n == l.last_seen_at) {
            e.1 += 1;
        }
    }
    by_point.retain(|(_, n)| *n > 0);
    Correlation {
        lost,
        lost_by_last_point: by_point,
        delivered: delivered(points),
    }
}

/// Answered transactions per point and answering address, counted with their largest size
/// (a tally, so its size does not grow with the capture's length).
fn delivered(points: &[CapturePoint]) -> Vec<Delivered> {
    let mut tally: BTreeMap<(usize, IpAddr), (u64, u32)> = BTreeMap::new();
    for (pi, point) in points.iter().enumerate() {
        for t in &point.transactions {
            let Some(size) = t.response_size else {
                continue;
            };
            let from = t.responder.unwrap_or(t.server).ip();
            let e = tally.entry((pi, from)).or_default();
            e.0 += 1;
            e.1 = e.1.max(size);
        }
    }
    tally
        .into_iter()
        .map(|((pi, server), (answers, largest))| Delivered {
            point: points[pi].name.clone(),
            server,
            answers,
            largest,
        })
        .collect()
}
