//! Queries matched to responses, and the failure patterns that show in their timing.
//!
//! [`Tracker`] consumes DNS packets in capture order and hands every finished transaction to
//! a sink as soon as it is known (answered, or unanswered after [`TrackerConfig::timeout`]),
//! so its memory is bounded by the number of transactions open at once, not by the length
//! of the capture. What it keeps for the whole capture are counters, a fixed-size latency
//! histogram and a few examples per pattern.

use super::dns::{qtype_name, rcode_name, DnsPacket};
use super::histogram::{LatencyHistogram, LatencySummary};
use super::link::Transport;
use super::time::Timestamp;
use serde::Serialize;
use std::borrow::Cow;
use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, VecDeque};
use std::hash::BuildHasher;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// Hash maps keyed by addresses and names from the capture. foldhash is randomly seeded
/// (so crafted captures cannot force collisions) and several times faster than SipHash,
/// which matters with several lookups per packet.
type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;
type HashSet<K> = std::collections::HashSet<K, foldhash::fast::RandomState>;

const QTYPE_A: u16 = 1;
const QTYPE_AAAA: u16 = 28;
const RCODE_NOERROR: u8 = 0;
const RCODE_SERVFAIL: u8 = 2;
const RCODE_NXDOMAIN: u8 = 3;
const RCODE_REFUSED: u8 = 5;
/// NXDOMAIN answers remembered per client while looking for search-path chains.
const NX_PER_CLIENT: usize = 16;

/// Tuning of the matcher and the pattern detectors.
#[derive(Clone, Debug)]
pub struct TrackerConfig {
    /// A query with no response for this long is reported as unanswered (and forgotten).
    pub timeout: Duration,
    /// Queries still unanswered at the end of the capture but sent less than this before
    /// its last packet are "in flight", not lost: the capture may simply have stopped.
    pub in_flight_grace: Duration,
    /// A query re-sent after a gap in this range counts as the resolver-timeout retry
    /// (glibc and musl wait 5 s by default).
    pub retry_window: (Duration, Duration),
    /// A and AAAA queries for one name from one socket within this interval form a
    /// parallel pair (glibc and musl send both back to back).
    pub pair_window: Duration,
    /// NXDOMAIN answers for `name.<suffix>` this long before the answer for `name` count
    /// as that lookup's search-path expansion.
    pub search_window: Duration,
    /// How long after a truncated UDP answer the TCP retry is waited for.
    pub tc_retry_window: Duration,
    /// Examples kept per pattern, for evidence.
    pub max_examples: usize,
}

impl Default for TrackerConfig {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(30),
            in_flight_grace: Duration::from_secs(1),
            retry_window: (Duration::from_millis(4_000), Duration::from_millis(6_500)),
            pair_window: Duration::from_millis(10),
            search_window: Duration::from_secs(2),
            tc_retry_window: Duration::from_secs(5),
            max_examples: 10,
        }
    }
}

/// How a transaction ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// A response was matched.
    Answered,
    /// No response within the timeout, or none before the end of the capture.
    Unanswered,
    /// No response, but the query was sent just before the capture ended.
    InFlightAtEnd,
}

/// One query (with its retransmissions) and its response, if any.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Transaction {
    /// DNS message ID.
    pub id: u16,
    /// Question name as sent, presentation form with trailing dot.
    pub qname: String,
    /// Question type mnemonic (`A`, `AAAA`, `TYPE65534`, ...).
    pub qtype: Cow<'static, str>,
    /// Numeric question type.
    pub qtype_code: u16,
    /// UDP or TCP.
    pub transport: Transport,
    /// Address and port the query came from.
    pub client: SocketAddr,
    /// Address and port the query was sent to.
    pub server: SocketAddr,
    /// Address the response came from when it differs from `server` (the capture point saw
    /// the query before and the response after a NAT, or the client accepted an answer from
    /// another address).
    pub responder: Option<SocketAddr>,
    /// Time of the first query packet.
    pub query_time: Timestamp,
    /// Frame number of the first query packet.
    pub query_frame: u64,
    /// Times the same query was sent again before an answer came.
    pub retransmissions: u32,
    /// How it ended.
    pub outcome: Outcome,
    /// Time of the response.
    pub response_time: Option<Timestamp>,
    /// Frame number of the response.
    pub response_frame: Option<u64>,
    /// Response code mnemonic (`NOERROR`, `NXDOMAIN`, `SERVFAIL`, ...).
    pub rcode: Option<&'static str>,
    /// Numeric response code.
    pub rcode_code: Option<u8>,
    /// The response had the TC (truncated) bit.
    pub truncated: bool,
    /// Answer records in presentation form.
    pub answers: Vec<String>,
    /// Length of the response's DNS message in bytes (for TCP without the 2-byte length
    /// prefix); None without a response. What a lost large answer is told apart by.
    pub response_size: Option<u32>,
    /// First query to response, in milliseconds with microsecond precision.
    pub latency_ms: Option<f64>,
}

/// One occurrence of a pattern, kept as evidence.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Example {
    /// When it happened (time of the query concerned).
    pub time: Timestamp,
    /// Frame number of the query concerned.
    pub frame: u64,
    /// Client address and port.
    pub client: SocketAddr,
    /// Server address and port.
    pub server: SocketAddr,
    /// DNS ID.
    pub id: u16,
    /// Question name.
    pub qname: String,
    /// Question type mnemonic.
    pub qtype: String,
    /// What exactly was seen.
    pub detail: String,
}

impl Example {
    /// One line of evidence: `frame 12 at <time>: <client> -> <server> id 7 AAAA? name — <detail>`.
    pub fn describe(&self) -> String {
        format!(
            "frame {} at {}: {} -> {} id {} {}? {} — {}",
            self.frame,
            self.time,
            self.client,
            self.server,
            self.id,
            self.qtype,
            self.qname,
            self.detail
        )
    }
}

/// Counters of the failure patterns.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct PatternCounts {
    /// Queries re-sent 4–6.5 s after an unanswered first attempt (same ID and socket, or a
    /// new query for the same question from the same client while the first was open).
    pub five_second_retries: u64,
    /// Parallel A/AAAA pairs seen.
    pub a_aaaa_pairs: u64,
    /// Pairs where exactly one of the two got a reply.
    pub a_aaaa_one_missing: u64,
    /// Pairs where neither got a reply.
    pub a_aaaa_both_missing: u64,
    /// Answered lookups that were preceded by NXDOMAINs for `name.<search suffix>`.
    pub search_path_lookups: u64,
    /// The NXDOMAIN answers those expansions cost.
    pub search_path_nxdomains: u64,
    /// Truncated UDP answers whose question was then answered over TCP.
    pub truncated_tcp_ok: u64,
    /// Truncated UDP answers whose TCP retry failed or went unanswered.
    pub truncated_tcp_failed: u64,
    /// Truncated UDP answers with no TCP retry seen.
    pub truncated_no_tcp: u64,
    /// SERVFAIL answers.
    pub servfail: u64,
    /// REFUSED answers.
    pub refused: u64,
}

/// Examples of each pattern, at most [`TrackerConfig::max_examples`] each.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct PatternExamples {
    /// Unanswered (lost) queries.
    pub lost: Vec<Example>,
    /// Five-second retries.
    pub five_second_retries: Vec<Example>,
    /// A/AAAA pairs with one reply missing (the example is the unanswered one).
    pub a_aaaa_one_missing: Vec<Example>,
    /// Search-path expansions (the example is the final, answered query).
    pub search_path: Vec<Example>,
    /// Truncated answers without a successful TCP retry.
    pub truncated_without_tcp: Vec<Example>,
    /// SERVFAIL or REFUSED answers.
    pub server_errors: Vec<Example>,
}

/// Counts over a whole capture. The first four fields count DNS messages the way tshark's
/// `dns` dissector does, so they can be compared with it directly.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Summary {
    /// DNS messages decoded (queries + responses).
    pub dns_messages: u64,
    /// Query messages (QR = 0), retransmissions included.
    pub queries: u64,
    /// Response messages (QR = 1), unmatched ones included.
    pub responses: u64,
    /// Query messages that no response matched (every copy of a retransmitted query whose
    /// transaction was never answered) — tshark's queries without `dns.response_in`.
    pub unanswered: u64,
    /// Distinct transactions (a query and its retransmissions are one).
    pub transactions: u64,
    /// Transactions answered.
    pub answered: u64,
    /// Transactions never answered (lost), excluding those in flight at the end.
    pub unanswered_transactions: u64,
    /// Transactions sent just before the capture ended and not answered.
    pub in_flight_at_end: u64,
    /// Query messages that repeated an open transaction.
    pub retransmissions: u64,
    /// Responses that matched no open query.
    pub unmatched_responses: u64,
    /// Messages without a question section (not matched).
    pub without_question: u64,
    /// Messages over UDP.
    pub udp_messages: u64,
    /// Messages over TCP.
    pub tcp_messages: u64,
    /// Responses with the TC bit.
    pub truncated_responses: u64,
    /// Matched responses by response code mnemonic.
    pub rcodes: BTreeMap<String, u64>,
    /// Latency of answered transactions.
    pub latency: LatencySummary,
    /// Time of the first DNS message.
    pub first_message: Option<Timestamp>,
    /// Time of the last DNS message.
    pub last_message: Option<Timestamp>,
    /// Failure patterns.
    pub patterns: PatternCounts,
}

/// Everything known about a capture once it has been read.
#[derive(Clone, Debug)]
pub struct Analysis {
    /// Counters.
    pub summary: Summary,
    /// Evidence for the patterns.
    pub examples: PatternExamples,
    /// The full latency distribution (mergeable across captures).
    pub histogram: LatencyHistogram,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Key {
    client: SocketAddr,
    transport: Transport,
    id: u16,
    qname: String,
    qtype: u16,
}

#[derive(Debug)]
struct Open {
    seq: u64,
    server: SocketAddr,
    /// The name as sent, when it differs from the (lower-case) key.
    qname: Option<String>,
    first: Timestamp,
    last: Timestamp,
    frame: u64,
    retransmissions: u32,
}

/// The last query for a question from a client, to spot a retry on a new socket.
struct RecentQuery {
    time: Timestamp,
    seq: u64,
    id: u16,
    port: u16,
}

/// An A or AAAA query waiting for its parallel partner.
struct PairCandidate {
    seq: u64,
    qtype: u16,
    time: Timestamp,
    outcome: Option<bool>,
}

struct Pair {
    answered: [Option<bool>; 2],
    examples: [Option<Example>; 2],
}

/// Matches queries to responses, streaming; see the module documentation.
pub struct Tracker {
    cfg: TrackerConfig,
    open: HashMap<Key, Vec<Open>>,
    open_count: usize,
    seq: u64,
    summary: Summary,
    histogram: LatencyHistogram,
    examples: PatternExamples,
    last_time: Option<Timestamp>,
    next_sweep: Option<Timestamp>,
    /// Sequence numbers of the open transactions.
    live: HashSet<u64>,
    /// Hashes stand in for (client, name, type) keys in the pattern maps: they are looked
    /// up for every query, and a (2^-64) collision could only misfile one heuristic hit.
    hasher: foldhash::fast::RandomState,
    recent: HashMap<u64, RecentQuery>,
    pair_candidates: HashMap<u64, PairCandidate>,
    /// Pair id and member index of transactions that belong to an A/AAAA pair.
    pair_of: HashMap<u64, (u64, usize)>,
    pairs: HashMap<u64, Pair>,
    nx_recent: HashMap<IpAddr, VecDeque<(Timestamp, String)>>,
    tc_pending: HashMap<(IpAddr, String, u16), Example>,
}

fn make_example(p: &Open, key: &Key, detail: String) -> Example {
    Example {
        time: p.first,
        frame: p.frame,
        client: key.client,
        server: p.server,
        id: key.id,
        qname: p.qname.clone().unwrap_or_else(|| key.qname.clone()),
        qtype: qtype_name(key.qtype).into_owned(),
        detail,
    }
}

fn push_example(list: &mut Vec<Example>, max: usize, e: Example) {
    if list.len() < max {
        list.push(e);
    }
}

impl Tracker {
    /// A tracker with nothing open.
    pub fn new(cfg: TrackerConfig) -> Self {
        Self {
            cfg,
            open: HashMap::default(),
            open_count: 0,
            seq: 0,
            summary: Summary::default(),
            histogram: LatencyHistogram::new(),
            examples: PatternExamples::default(),
            last_time: None,
            next_sweep: None,
            live: HashSet::default(),
            hasher: foldhash::fast::RandomState::default(),
            recent: HashMap::default(),
            pair_candidates: HashMap::default(),
            pair_of: HashMap::default(),
            pairs: HashMap::default(),
            nx_recent: HashMap::default(),
            tc_pending: HashMap::default(),
        }
    }

    /// Transactions currently waiting for a response.
    pub fn open_transactions(&self) -> usize {
        self.open_count
    }

    /// Feeds one packet; finished transactions go to `sink`. Takes the packet by value so
    /// its name and answers move into the transaction instead of being copied.
    pub fn observe(&mut self, mut p: DnsPacket, sink: &mut dyn FnMut(Transaction)) {
        let now = p.time;
        self.last_time = Some(self.last_time.map_or(now, |t| t.max(now)));
        if self.summary.first_message.is_none() {
            self.summary.first_message = Some(now);
        }
        self.summary.last_message = self.last_time;
        match self.next_sweep {
            Some(t) if now < t => {}
            _ => {
                self.sweep(now, sink);
                self.next_sweep = Some(now.saturating_add(Duration::from_secs(1)));
            }
        }
        self.summary.dns_messages += 1;
        match p.transport {
            Transport::Udp => self.summary.udp_messages += 1,
            Transport::Tcp => self.summary.tcp_messages += 1,
        }
        let m = &p.message;
        if m.response {
            self.summary.responses += 1;
            if m.flags.tc {
                self.summary.truncated_responses += 1;
            }
        } else {
            self.summary.queries += 1;
        }
        let response = m.response;
        let Some(q) = p.message.question.take() else {
            self.summary.without_question += 1;
            if response {
                self.summary.unmatched_responses += 1;
            }
            return;
        };
        // Names match case-insensitively (resolvers may randomise case, RFC draft 0x20);
        // the name as sent is kept only when it differs from the lower-case key.
        let (qname, display) = if q.name.bytes().any(|b| b.is_ascii_uppercase()) {
            (q.name.to_ascii_lowercase(), Some(q.name))
        } else {
            (q.name, None)
        };
        if response {
            self.on_response(p, qname, q.qtype, sink);
        } else {
            self.on_query(&p, qname, display, q.qtype);
        }
    }

    fn on_query(&mut self, p: &DnsPacket, qname: String, display: Option<String>, qtype: u16) {
        let key = Key {
            client: p.src,
            transport: p.transport,
            id: p.message.id,
            qname,
            qtype,
        };
        let (lo, hi) = self.cfg.retry_window;
        let rkey = self.hasher.hash_one((p.src.ip(), &key.qname, qtype));
        let pkey = (qtype == QTYPE_A || qtype == QTYPE_AAAA).then(|| self.pair_key(&key));
        // One lookup serves the retransmission check and the insertion.
        let mut entry = self.open.entry(key);
        if let Entry::Occupied(e) = &mut entry {
            if let Some(i) = e.get().iter().position(|o| o.server == p.dst) {
                let gap = p.time.since(e.get()[i].last);
                // The evidence is the retry itself.
                let example = (gap >= lo && gap <= hi).then(|| {
                    let detail = format!(
                        "re-sent {:.1} s after the previous attempt with no answer",
                        gap.as_secs_f64()
                    );
                    let mut ex = make_example(&e.get()[i], e.key(), detail);
                    ex.frame = p.frame;
                    ex.time = p.time;
                    ex
                });
                let o = &mut e.get_mut()[i];
                o.retransmissions += 1;
                o.last = p.time;
                self.summary.retransmissions += 1;
                // A retry on a new socket is timed from this, the latest attempt.
                if let Some(r) = self.recent.get_mut(&rkey) {
                    if r.seq == o.seq {
                        r.time = p.time;
                    }
                }
                if let Some(ex) = example {
                    self.summary.patterns.five_second_retries += 1;
                    push_example(
                        &mut self.examples.five_second_retries,
                        self.cfg.max_examples,
                        ex,
                    );
                }
                return;
            }
        }
        self.seq += 1;
        let seq = self.seq;
        let open = Open {
            seq,
            server: p.dst,
            qname: display,
            first: p.time,
            last: p.time,
            frame: p.frame,
            retransmissions: 0,
        };
        // The same question from the same client, re-asked on a new socket or with a new
        // ID while the first attempt is still unanswered: the resolver timed out and retried.
        if let Some(prev) = self.recent.get(&rkey) {
            let gap = p.time.since(prev.time);
            if self.live.contains(&prev.seq) && gap >= lo && gap <= hi {
                self.summary.patterns.five_second_retries += 1;
                let detail = format!(
                    "asked again {:.1} s after an unanswered query (ID {}, port {})",
                    gap.as_secs_f64(),
                    prev.id,
                    prev.port
                );
                let e = make_example(&open, entry.key(), detail);
                push_example(
                    &mut self.examples.five_second_retries,
                    self.cfg.max_examples,
                    e,
                );
            }
        }
        self.recent.insert(
            rkey,
            RecentQuery {
                time: p.time,
                seq,
                id: p.message.id,
                port: p.src.port(),
            },
        );
        entry.or_default().push(open);
        self.live.insert(seq);
        self.open_count += 1;
        if let Some(pkey) = pkey {
            self.pair_up(pkey, qtype, seq, p.time);
        }
    }

    fn pair_key(&self, key: &Key) -> u64 {
        self.hasher
            .hash_one((key.client, key.transport, &key.qname))
    }

    fn pair_up(&mut self, pkey: u64, qtype: u16, seq: u64, now: Timestamp) {
        let partner = match self.pair_candidates.get(&pkey) {
            Some(c) if c.qtype != qtype && now.since(c.time) <= self.cfg.pair_window => {
                self.pair_candidates.remove(&pkey)
            }
            _ => None,
        };
        let Some(c) = partner else {
            self.pair_candidates.insert(
                pkey,
                PairCandidate {
                    seq,
                    qtype,
                    time: now,
                    outcome: None,
                },
            );
            return;
        };
        let pid = seq;
        self.summary.patterns.a_aaaa_pairs += 1;
        let mut pair = Pair {
            answered: [c.outcome, None],
            examples: [None, None],
        };
        if c.outcome.is_none() {
            if self.live.contains(&c.seq) {
                self.pair_of.insert(c.seq, (pid, 0));
            } else {
                // The partner ended without being recorded; treat it as answered.
                pair.answered[0] = Some(true);
            }
        }
        self.pair_of.insert(seq, (pid, 1));
        self.pairs.insert(pid, pair);
    }

    /// Records how a transaction that may belong to an A/AAAA pair ended.
    fn resolve_pair(&mut self, key: &Key, open: &Open, answered: bool) {
        if let Some((pid, idx)) = self.pair_of.remove(&open.seq) {
            let unanswered_example = (!answered).then(|| {
                make_example(
                    open,
                    key,
                    "no reply, while the parallel query of the other address family was answered"
                        .into(),
                )
            });
            let Some(pair) = self.pairs.get_mut(&pid) else {
                return;
            };
            pair.answered[idx] = Some(answered);
            pair.examples[idx] = unanswered_example;
            if let [Some(a), Some(b)] = pair.answered {
                let pair = self.pairs.remove(&pid).expect("present");
                if a != b {
                    self.summary.patterns.a_aaaa_one_missing += 1;
                    if let Some(e) = pair.examples.into_iter().flatten().next() {
                        push_example(
                            &mut self.examples.a_aaaa_one_missing,
                            self.cfg.max_examples,
                            e,
                        );
                    }
                } else if !a {
                    self.summary.patterns.a_aaaa_both_missing += 1;
                }
            }
        } else {
            let pkey = self.pair_key(key);
            if let Some(c) = self.pair_candidates.get_mut(&pkey) {
                if c.seq == open.seq {
                    c.outcome = Some(answered);
                }
            }
        }
    }

    /// Drops the A/AAAA pair a query belongs to, when that query's outcome is unknown.
    fn forget_pair(&mut self, key: &Key, open: &Open) {
        if let Some((pid, _)) = self.pair_of.remove(&open.seq) {
            if self.pairs.remove(&pid).is_some() {
                self.summary.patterns.a_aaaa_pairs -= 1;
            }
        } else {
            let pkey = self.pair_key(key);
            if self
                .pair_candidates
                .get(&pkey)
                .is_some_and(|c| c.seq == open.seq)
            {
                self.pair_candidates.remove(&pkey);
            }
        }
    }

    fn take_open(&mut self, key: &Key, responder: SocketAddr) -> Option<(Open, bool)> {
        // Taken out and put back in the rare case that more queries share the key: one
        // lookup instead of two for the usual single one.
        let (stored, mut list) = self.open.remove_entry(key)?;
        // Prefer the query sent to the address that answers; otherwise the oldest one
        // (the answer comes from a translated address).
        let (idx, same) = match list.iter().position(|o| o.server == responder) {
            Some(i) => (i, true),
            None => (0, false),
        };
        let o = list.remove(idx);
        if !list.is_empty() {
            self.open.insert(stored, list);
        }
        self.open_count -= 1;
        self.live.remove(&o.seq);
        Some((o, same))
    }

    fn on_response(
        &mut self,
        p: DnsPacket,
        qname: String,
        qtype: u16,
        sink: &mut dyn FnMut(Transaction),
    ) {
        let key = Key {
            client: p.dst,
            transport: p.transport,
            id: p.message.id,
            qname,
            qtype,
        };
        let Some((open, same_server)) = self.take_open(&key, p.src) else {
            self.summary.unmatched_responses += 1;
            return;
        };
        let m = &p.message;
        let latency = p.time.since(open.first);
        self.histogram.record(latency);
        self.summary.answered += 1;
        self.summary.transactions += 1;
        let name = rcode_name(m.rcode);
        // Looked up before inserting, so that only a code's first answer allocates its key.
        match self.summary.rcodes.get_mut(name) {
            Some(n) => *n += 1,
            None => {
                self.summary.rcodes.insert(name.to_string(), 1);
            }
        }
        match m.rcode {
            RCODE_SERVFAIL | RCODE_REFUSED => {
                if m.rcode == RCODE_SERVFAIL {
                    self.summary.patterns.servfail += 1;
                } else {
                    self.summary.patterns.refused += 1;
                }
                let e = make_example(&open, &key, format!("answered {}", rcode_name(m.rcode)));
                push_example(&mut self.examples.server_errors, self.cfg.max_examples, e);
            }
            _ => {}
        }
        let (rcode, tc) = (m.rcode, m.flags.tc);
        self.resolve_pair(&key, &open, true);
        self.search_path(&key, &open, rcode, p.time);
        self.truncation(&key, &open, Some(rcode), tc);
        sink(Transaction {
            id: key.id,
            qname: open.qname.unwrap_or(key.qname),
            qtype: qtype_name(key.qtype),
            qtype_code: key.qtype,
            transport: key.transport,
            client: key.client,
            server: open.server,
            responder: (!same_server).then_some(p.src),
            query_time: open.first,
            query_frame: open.frame,
            retransmissions: open.retransmissions,
            outcome: Outcome::Answered,
            response_time: Some(p.time),
            response_frame: Some(p.frame),
            rcode: Some(rcode_name(rcode)),
            rcode_code: Some(rcode),
            truncated: tc,
            answers: p.message.answers,
            response_size: Some(p.size),
            latency_ms: Some((latency.as_secs_f64() * 1e6).round() / 1e3),
        });
    }

    /// Search-path expansion: NXDOMAIN for `name.suffix` shortly before `name` resolves.
    fn search_path(&mut self, key: &Key, open: &Open, rcode: u8, now: Timestamp) {
        let client = key.client.ip();
        if rcode == RCODE_NXDOMAIN {
            let list = self.nx_recent.entry(client).or_default();
            if list.len() >= NX_PER_CLIENT {
                list.pop_front();
            }
            list.push_back((now, key.qname.clone()));
            return;
        }
        if rcode != RCODE_NOERROR {
            return;
        }
        let Some(list) = self.nx_recent.get_mut(&client) else {
            return;
        };
        let window = self.cfg.search_window;
        // Runs for every answer: the cheap tests first, and the list left alone unless
        // something in it is an expansion.
        let expansion = |t: &Timestamp, name: &str| {
            name.len() > key.qname.len()
                && name.starts_with(key.qname.as_str())
                && now.since(*t) <= window
        };
        if !list.iter().any(|(t, name)| expansion(t, name)) {
            return;
        }
        let before = list.len();
        let mut suffixes = Vec::new();
        list.retain(|(t, name)| {
            let expanded = expansion(t, name);
            if expanded {
                suffixes.push(name[key.qname.len()..].to_string());
            }
            !expanded
        });
        let n = (before - list.len()) as u64;
        if list.is_empty() {
            self.nx_recent.remove(&client);
        }
        if n > 0 {
            self.summary.patterns.search_path_lookups += 1;
            self.summary.patterns.search_path_nxdomains += n;
            let detail = format!(
                "answered after {n} NXDOMAIN for search suffixes {}",
                suffixes.join(", ")
            );
            let e = make_example(open, key, detail);
            push_example(&mut self.examples.search_path, self.cfg.max_examples, e);
        }
    }

    /// Truncated UDP answers and the TCP retry that should follow them.
    fn truncation(&mut self, key: &Key, open: &Open, rcode: Option<u8>, tc: bool) {
        // The key (a copy of the name) is built only where it is used, not for every
        // transaction.
        let tkey = || (key.client.ip(), key.qname.clone(), key.qtype);
        match key.transport {
            Transport::Udp if tc => {
                let e = make_example(open, key, "truncated answer over UDP".into());
                self.tc_pending.insert(tkey(), e);
            }
            Transport::Tcp if !self.tc_pending.is_empty() => {
                if let Some(mut e) = self.tc_pending.remove(&tkey()) {
                    if matches!(rcode, Some(RCODE_NOERROR) | Some(RCODE_NXDOMAIN)) {
                        self.summary.patterns.truncated_tcp_ok += 1;
                    } else {
                        self.summary.patterns.truncated_tcp_failed += 1;
                        e.detail = match rcode {
                            Some(r) => format!("truncated; the TCP retry got {}", rcode_name(r)),
                            None => "truncated; the TCP retry was not answered".into(),
                        };
                        push_example(
                            &mut self.examples.truncated_without_tcp,
                            self.cfg.max_examples,
                            e,
                        );
                    }
                }
            }
            Transport::Udp | Transport::Tcp => {}
        }
    }

    fn expire(
        &mut self,
        key: Key,
        open: Open,
        outcome: Outcome,
        sink: &mut dyn FnMut(Transaction),
    ) {
        self.live.remove(&open.seq);
        self.summary.transactions += 1;
        self.summary.unanswered += 1 + u64::from(open.retransmissions);
        if outcome == Outcome::Unanswered {
            self.summary.unanswered_transactions += 1;
            let detail = format!("no response; sent {} time(s)", 1 + open.retransmissions);
            let e = make_example(&open, &key, detail);
            push_example(&mut self.examples.lost, self.cfg.max_examples, e);
            self.resolve_pair(&key, &open, false);
        } else {
            self.summary.in_flight_at_end += 1;
            // The capture stopped before the reply could arrive: nothing is known about
            // this query, so its A/AAAA pair proves neither a lost reply nor an answer.
            self.forget_pair(&key, &open);
        }
        self.truncation(&key, &open, None, false);
        sink(Transaction {
            id: key.id,
            qname: open.qname.unwrap_or(key.qname),
            qtype: qtype_name(key.qtype),
            qtype_code: key.qtype,
            transport: key.transport,
            client: key.client,
            server: open.server,
            responder: None,
            query_time: open.first,
            query_frame: open.frame,
            retransmissions: open.retransmissions,
            outcome,
            response_time: None,
            response_frame: None,
            rcode: None,
            rcode_code: None,
            truncated: false,
            answers: Vec::new(),
            response_size: None,
            latency_ms: None,
        });
    }

    /// Expires timed-out transactions and forgets pattern state too old to matter.
    fn sweep(&mut self, now: Timestamp, sink: &mut dyn FnMut(Transaction)) {
        let timeout = self.cfg.timeout;
        let stale: Vec<Key> = self
            .open
            .iter()
            .filter(|(_, l)| l.iter().any(|o| now.since(o.last) > timeout))
            .map(|(k, _)| k.clone())
            .collect();
        let mut expired = Vec::new();
        for k in stale {
            if let Some(list) = self.open.remove(&k) {
                let (old, keep): (Vec<Open>, Vec<Open>) =
                    list.into_iter().partition(|o| now.since(o.last) > timeout);
                if !keep.is_empty() {
                    self.open.insert(k.clone(), keep);
                }
                expired.extend(old.into_iter().map(|o| (k.clone(), o)));
            }
        }
        expired.sort_by_key(|(_, o)| o.seq);
        self.open_count -= expired.len();
        for (k, o) in expired {
            self.expire(k, o, Outcome::Unanswered, sink);
        }
        let keep = self.cfg.retry_window.1.max(timeout);
        self.recent.retain(|_, r| now.since(r.time) <= keep);
        let pw = self.cfg.pair_window;
        self.pair_candidates.retain(|_, c| now.since(c.time) <= pw);
        let sw = self.cfg.search_window;
        self.nx_recent.retain(|_, l| {
            l.retain(|(t, _)| now.since(*t) <= sw);
            !l.is_empty()
        });
        let tw = self.cfg.tc_retry_window;
        let mut gave_up = Vec::new();
        self.tc_pending.retain(|_, e| {
            if now.since(e.time) > tw {
                gave_up.push(e.clone());
                false
            } else {
                true
            }
        });
        for e in gave_up {
            self.no_tcp_retry(e);
        }
    }

    fn no_tcp_retry(&mut self, mut e: Example) {
        self.summary.patterns.truncated_no_tcp += 1;
        e.detail = "truncated over UDP and no TCP retry was seen".into();
        push_example(
            &mut self.examples.truncated_without_tcp,
            self.cfg.max_examples,
            e,
        );
    }

    /// Ends the capture: every open transaction is unanswered (or in flight at the end).
    pub fn finish(mut self, sink: &mut dyn FnMut(Transaction)) -> Analysis {
        let end = self.last_time.unwrap_or_default();
        let mut rest: Vec<(Key, Open)> = self
            .open
            .drain()
            .flat_map(|(k, l)| l.into_iter().map(move |o| (k.clone(), o)))
            .collect();
        self.open_count = 0;
        rest.sort_by_key(|(_, o)| o.seq);
        for (k, o) in rest {
            let outcome = if end.since(o.last) < self.cfg.in_flight_grace {
                Outcome::InFlightAtEnd
            } else {
                Outcome::Unanswered
            };
            self.expire(k, o, outcome, sink);
        }
        let pending: Vec<Example> = self.tc_pending.drain().map(|(_, e)| e).collect();
        for e in pending {
            self.no_tcp_retry(e);
        }
        self.summary.latency = self.histogram.summary();
        Analysis {
            summary: self.summary,
            examples: self.examples,
            histogram: self.histogram,
        }
    }
}
