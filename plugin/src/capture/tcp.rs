//! Per-direction reassembly of DNS-over-TCP streams (RFC 1035 §4.2.2, RFC 7766).
//!
//! Each direction of a connection is a byte stream of 2-byte length prefixes followed by
//! messages; a segment may carry several messages or part of one. Segments are placed by
//! sequence number: retransmitted bytes are dropped, early (out-of-order) segments wait in a
//! small bounded queue until the gap fills. Every buffer and the number of flows is bounded,
//! so a hostile capture cannot make memory grow without limit.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;

/// Flows tracked at once; the least recently used one is dropped beyond this.
const MAX_FLOWS: usize = 16_384;
/// Out-of-order segments kept per flow.
const MAX_PENDING_SEGMENTS: usize = 64;
/// Bytes buffered per flow: one maximal message with its prefix, plus one segment.
const MAX_BUFFER: usize = 65_537 + 65_535;

/// A reassembled DNS message, without its length prefix.
pub type Message = Vec<u8>;

#[derive(Default)]
struct Flow {
    /// Sequence number of the next byte expected; `None` until the first segment is seen.
    next_seq: Option<u32>,
    /// Contiguous bytes not yet consumed as messages.
    buf: Vec<u8>,
    /// Segments that arrived ahead of `next_seq`, keyed by their sequence number.
    pending: BTreeMap<u32, Vec<u8>>,
    last_used: u64,
}

/// Reassembles DNS messages from TCP segments, per direction of each connection.
#[derive(Default)]
pub struct TcpReassembler {
    flows: HashMap<(SocketAddr, SocketAddr), Flow>,
    clock: u64,
    /// Messages dropped because of gaps, oversize buffers or evicted flows.
    pub desyncs: u64,
}

/// `a - b` in sequence space (RFC 793 modular arithmetic).
fn seq_diff(a: u32, b: u32) -> i32 {
    a.wrapping_sub(b) as i32
}

impl TcpReassembler {
    /// A reassembler with no flows.
    pub fn new() -> Self {
        Self::default()
    }

    /// Flows currently tracked.
    pub fn flows(&self) -> usize {
        self.flows.len()
    }

    /// Feeds one segment from `src` to `dst` and appends every DNS message it completes
    /// (without the length prefix) to `out`.
    #[allow(clippy::too_many_arguments)]
    pub fn push(
        &mut self,
        src: SocketAddr,
        dst: SocketAddr,
        seq: u32,
        syn: bool,
        fin_or_rst: bool,
        payload: &[u8],
        out: &mut Vec<Message>,
    ) {
        self.clock += 1;
        let key = (src, dst);
        if syn {
            // A SYN starts a new stream: data begins one after its sequence number.
            let flow = self.flow(key);
            *flow = Flow {
                next_seq: Some(seq.wrapping_add(1)),
                last_used: flow.last_used,
                ..Flow::default()
            };
            if payload.is_empty() {
                return;
            }
        }
        let data_seq = if syn { seq.wrapping_add(1) } else { seq };
        if !payload.is_empty() {
            let desynced = {
                let flow = self.flow(key);
                flow.accept(data_seq, payload);
                flow.drain(out)
            };
            if desynced {
                self.desyncs += 1;
            }
        }
        if fin_or_rst {
            self.flows.remove(&key);
        }
    }

    fn flow(&mut self, key: (SocketAddr, SocketAddr)) -> &mut Flow {
        if !self.flows.contains_key(&key) && self.flows.len() >= MAX_FLOWS {
            if let Some(oldest) = self
                .flows
                .iter()
                .min_by_key(|(_, f)| f.last_used)
                .map(|(k, _)| *k)
            {
                self.flows.remove(&oldest);
                self.desyncs += 1;
            }
        }
        let clock = self.clock;
        let flow = self.flows.entry(key).or_default();
        flow.last_used = clock;
        flow
    }
}

impl Flow {
    /// Places a segment in the stream.
    fn accept(&mut self, seq: u32, payload: &[u8]) {
        let next = *self.next_seq.get_or_insert(seq);
        let diff = seq_diff(seq, next);
        if diff > 0 {
            // Early segment: hold it until the gap fills, or give up on the gap when the
            // queue is full (the missing bytes were never captured).
            if self.pending.len() >= MAX_PENDING_SEGMENTS {
                self.resync();
            } else {
                self.pending.entry(seq).or_insert_with(|| payload.to_vec());
                return;
            }
            let first = self.pending.keys().next().copied().unwrap_or(seq);
            self.next_seq = Some(first);
            self.pending.entry(seq).or_insert_with(|| payload.to_vec());
            self.fill_from_pending();
            return;
        }
        let skip = diff.unsigned_abs() as usize;
        if skip < payload.len() {
            self.append(&payload[skip..]);
        }
        self.fill_from_pending();
    }

    fn append(&mut self, bytes: &[u8]) {
        if self.buf.len() + bytes.len() > MAX_BUFFER {
            self.buf.clear();
        }
        self.buf.extend_from_slice(bytes);
        let next = self.next_seq.unwrap_or(0);
        self.next_seq = Some(next.wrapping_add(bytes.len() as u32));
    }

    /// Moves queued segments that now touch the stream into the buffer.
    fn fill_from_pending(&mut self) {
        while let Some((&seq, _)) = self.pending.iter().next() {
            let next = self.next_seq.unwrap_or(seq);
            let diff = seq_diff(seq, next);
            if diff > 0 {
                break;
            }
            let data = self.pending.remove(&seq).unwrap_or_default();
            let skip = diff.unsigned_abs() as usize;
            if skip < data.len() {
                self.append(&data[skip..]);
            }
        }
    }

    /// Forgets buffered bytes after a gap that will never fill.
    fn resync(&mut self) {
        self.buf.clear();
    }

    /// Cuts complete messages off the front of the buffer. Returns `true` when the stream
    /// was found out of step (a zero length prefix) and its buffer dropped.
    fn drain(&mut self, out: &mut Vec<Message>) -> bool {
        let mut start = 0;
        let mut desynced = false;
        while self.buf.len() - start >= 2 {
            let len = usize::from(u16::from_be_bytes([self.buf[start], self.buf[start + 1]]));
            if len < 12 {
                // No DNS message is shorter than its header: we are not at a message boundary.
                desynced = true;
                start = self.buf.len();
                break;
            }
            if self.buf.len() - start - 2 < len {
                break;
            }
            out.push(self.buf[start + 2..start + 2 + len].to_vec());
            start += 2 + len;
        }
        self.buf.drain(..start);
        desynced
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn framed(msgs: &[&[u8]]) -> Vec<u8> {
        let mut v = Vec::new();
        for m in msgs {
            v.extend_from_slice(&(m.len() as u16).to_be_bytes());
            v.extend_from_slice(m);
        }
        v
    }

    #[test]
    fn splits_joins_and_reorders() {
        let a = [1u8; 20];
        let b = [2u8; 30];
        let c = [3u8; 14];
        let stream = framed(&[&a, &b, &c]);
        let (s, d) = (addr("10.0.0.1:1000"), addr("10.0.0.2:53"));
        let mut r = TcpReassembler::new();
        let mut out = Vec::new();
        r.push(s, d, 99, true, false, &[], &mut out);
        // Segment 2 (bytes 10..40) first, then segment 1, a retransmission of 1, then the rest.
        r.push(s, d, 110, false, false, &stream[10..40], &mut out);
        assert!(out.is_empty());
        r.push(s, d, 100, false, false, &stream[..10], &mut out);
        assert_eq!(out, vec![a.to_vec()]);
        r.push(s, d, 100, false, false, &stream[..10], &mut out);
        r.push(s, d, 140, false, true, &stream[40..], &mut out);
        assert_eq!(out, vec![a.to_vec(), b.to_vec(), c.to_vec()]);
        assert_eq!(r.flows(), 0);
    }

    #[test]
    fn sequence_wraps_and_gaps_resync() {
        let a = [7u8; 12];
        let stream = framed(&[&a, &a]);
        let (s, d) = (addr("[::1]:1000"), addr("[::1]:53"));
        let mut r = TcpReassembler::new();
        let mut out = Vec::new();
        r.push(s, d, u32::MAX - 3, false, false, &stream[..8], &mut out);
        r.push(s, d, 4, false, false, &stream[8..], &mut out);
        assert_eq!(out.len(), 2);
        // A flow whose start was never captured and which is not at a boundary.
        let mut out = Vec::new();
        r.push(d, s, 5000, false, false, &[0, 1, 9, 9, 9], &mut out);
        assert!(out.is_empty());
        assert_eq!(r.desyncs, 1);
    }
}
