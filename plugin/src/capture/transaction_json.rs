//! A transaction's JSON form, written straight into a byte buffer.
//!
//! `analyze -o json` writes every transaction of a capture, hundreds of thousands of them.
//! Through serde_json's generic path (every key escaped at run time, addresses and times
//! formatted through `std::fmt`) that cost more than reading and matching the packets.
//! [`TransactionWriter`] writes the bytes `serde_json::to_writer` writes for the derived
//! `Serialize` — that stays the definition, and the tests hold the two equal — several
//! times faster.

use super::decimal::{push_ipv4, push_u64};
use super::link::Transport;
use super::time::Rfc3339Writer;
use super::transactions::{Outcome, Transaction};
use serde_json::ser::{CompactFormatter, Formatter};
use std::io::{self, Write};
use std::net::SocketAddr;

/// Writes transactions as JSON; keeps what it can reuse from one to the next.
#[derive(Debug, Default)]
pub struct TransactionWriter {
    times: Rfc3339Writer,
}

impl TransactionWriter {
    /// Appends `t` as compact JSON, byte for byte what serde_json writes for it.
    pub fn write(&mut self, out: &mut Vec<u8>, t: &Transaction) -> io::Result<()> {
        write_transaction(out, t, &mut self.times)
    }
}

fn write_transaction(
    out: &mut Vec<u8>,
    t: &Transaction,
    times: &mut Rfc3339Writer,
) -> io::Result<()> {
    // Destructured without `..`, so that a new field cannot be forgotten here.
    let Transaction {
        id,
        qname,
        qtype,
        qtype_code,
        transport,
        client,
        server,
        responder,
        query_time,
        query_frame,
        retransmissions,
        outcome,
        response_time,
        response_frame,
        rcode,
        rcode_code,
        truncated,
        answers,
        response_size,
        latency_ms,
    } = t;
    out.extend_from_slice(b"{\"id\":");
    push_u64(out, u64::from(*id));
    out.extend_from_slice(b",\"qname\":");
    push_str(out, qname);
    out.extend_from_slice(b",\"qtype\":");
    push_str(out, qtype);
    out.extend_from_slice(b",\"qtype_code\":");
    push_u64(out, u64::from(*qtype_code));
    out.extend_from_slice(match transport {
        Transport::Udp => b",\"transport\":\"udp\"",
        Transport::Tcp => b",\"transport\":\"tcp\"",
    });
    out.extend_from_slice(b",\"client\":");
    push_addr(out, client)?;
    out.extend_from_slice(b",\"server\":");
    push_addr(out, server)?;
    out.extend_from_slice(b",\"responder\":");
    match responder {
        Some(a) => push_addr(out, a)?,
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b",\"query_time\":\"");
    times.push(*query_time, out);
    out.extend_from_slice(b"\",\"query_frame\":");
    push_u64(out, *query_frame);
    out.extend_from_slice(b",\"retransmissions\":");
    push_u64(out, u64::from(*retransmissions));
    out.extend_from_slice(match outcome {
        Outcome::Answered => b",\"outcome\":\"answered\"".as_slice(),
        Outcome::Unanswered => b",\"outcome\":\"unanswered\"",
        Outcome::InFlightAtEnd => b",\"outcome\":\"in_flight_at_end\"",
    });
    out.extend_from_slice(b",\"response_time\":");
    match response_time {
        Some(time) => {
            out.push(b'"');
            times.push(*time, out);
            out.push(b'"');
        }
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b",\"response_frame\":");
    push_opt_u64(out, *response_frame);
    out.extend_from_slice(b",\"rcode\":");
    match rcode {
        Some(r) => push_str(out, r),
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b",\"rcode_code\":");
    push_opt_u64(out, rcode_code.map(u64::from));
    out.extend_from_slice(if *truncated {
        b",\"truncated\":true"
    } else {
        b",\"truncated\":false"
    });
    out.extend_from_slice(b",\"answers\":[");
    for (i, a) in answers.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        push_str(out, a);
    }
    out.extend_from_slice(b"],\"response_size\":");
    push_opt_u64(out, response_size.map(u64::from));
    out.extend_from_slice(b",\"latency_ms\":");
    match latency_ms {
        Some(v) => push_millis(out, *v)?,
        None => out.extend_from_slice(b"null"),
    }
    out.push(b'}');
    Ok(())
}

/// A latency in milliseconds as serde_json writes it. The tracker rounds latencies to
/// whole microseconds, and for those (below a million seconds) the shortest decimal that
/// reads back as the same number, which is what serde_json's formatter writes, is the
/// count of microseconds with the point three digits from the right and trailing zeros
/// dropped (`12.3`, `2.0`): written so directly, since the general float formatting was the
/// largest cost left in this writer. Other values go through serde_json's formatter
/// (finite ones; it writes NaN and infinities as null).
fn push_millis(out: &mut Vec<u8>, v: f64) -> io::Result<()> {
    let micros = (v * 1000.0).round();
    if v.is_sign_positive() && micros < 1e12 && micros / 1000.0 == v {
        let micros = micros as u64;
        push_u64(out, micros / 1000);
        let mut fraction = [b'.', b'0', b'0', b'0'];
        let mut rest = micros % 1000;
        for digit in fraction[1..].iter_mut().rev() {
            *digit = b'0' + (rest % 10) as u8;
            rest /= 10;
        }
        let mut len = fraction.len();
        while len > 2 && fraction[len - 1] == b'0' {
            len -= 1;
        }
        out.extend_from_slice(&fraction[..len]);
    } else if v.is_finite() {
        CompactFormatter.write_f64(out, v)?;
    } else {
        out.extend_from_slice(b"null");
    }
    Ok(())
}

fn push_opt_u64(out: &mut Vec<u8>, v: Option<u64>) {
    match v {
        Some(v) => push_u64(out, v),
        None => out.extend_from_slice(b"null"),
    }
}

/// `"address:port"`, as serde writes a `SocketAddr` (its `Display` form; nothing to escape).
fn push_addr(out: &mut Vec<u8>, a: &SocketAddr) -> io::Result<()> {
    out.push(b'"');
    match a {
        SocketAddr::V4(v4) => {
            push_ipv4(out, *v4.ip());
            out.push(b':');
            push_u64(out, u64::from(v4.port()));
        }
        SocketAddr::V6(v6) => write!(out, "{v6}")?,
    }
    out.push(b'"');
    Ok(())
}

/// A JSON string with serde_json's escapes: `"` and `\`, the short forms of backspace,
/// form feed, newline, carriage return and tab, `\u00XX` for other control characters;
/// everything else as it is.
fn push_str(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    let bytes = s.as_bytes();
    if !bytes.iter().any(|&b| b < 0x20 || b == b'"' || b == b'\\') {
        // Names and records nearly never need an escape.
        out.extend_from_slice(bytes);
        out.push(b'"');
        return;
    }
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escape: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            0x08 => b"\\b",
            0x0c => b"\\f",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x00..=0x1f => &[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[usize::from(b >> 4)],
                HEX[usize::from(b & 0xf)],
            ],
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        out.extend_from_slice(escape);
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

const HEX: [u8; 16] = *b"0123456789abcdef";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::testdata::{captures, fixtures, tcpdump_suite};
    use crate::capture::{analyze_capture, ExtractOptions, Timestamp, TrackerConfig};
    use std::io::BufReader;

    fn same_as_serde(writer: &mut TransactionWriter, t: &Transaction) {
        let mut ours = Vec::new();
        writer.write(&mut ours, t).unwrap();
        assert_eq!(
            String::from_utf8(ours).unwrap(),
            serde_json::to_string(t).unwrap()
        );
    }

    /// Every transaction of the fixtures (both outcomes, UDP and TCP, IPv4 and IPv6,
    /// truncated answers, NXDOMAIN, retransmissions) and of tcpdump's test captures (odd
    /// names, types and records).
    #[test]
    fn capture_transactions_are_written_as_serde_writes_them() {
        let mut files = captures(&fixtures());
        files.extend(captures(&tcpdump_suite()));
        let mut seen = 0;
        for path in files {
            // One writer for a whole file, as analyze uses it.
            let mut writer = TransactionWriter::default();
            let file = BufReader::new(std::fs::File::open(&path).unwrap());
            let _ = analyze_capture(
                file,
                ExtractOptions::default(),
                TrackerConfig::default(),
                &mut |t| {
                    same_as_serde(&mut writer, &t);
                    seen += 1;
                },
            );
        }
        assert!(seen > 50, "only {seen} transactions in the captures");
    }

    #[test]
    fn unusual_values_are_written_as_serde_writes_them() {
        let mut t = Transaction {
            id: 65_535,
            qname: "we\"ird\\na\u{1}me\u{1f}\n\t\r\u{8}\u{c}\u{7f}é.".into(),
            qtype: "TYPE65534".into(),
            qtype_code: 65_534,
            transport: Transport::Tcp,
            client: "[fe80::1%7]:5353".parse().unwrap(),
            server: "[2001:db8::53]:53".parse().unwrap(),
            responder: Some("0.0.0.0:0".parse().unwrap()),
            query_time: Timestamp::from_nanos(i64::MIN),
            query_frame: u64::MAX,
            retransmissions: u32::MAX,
            outcome: Outcome::InFlightAtEnd,
            response_time: Some(Timestamp::from_nanos(i64::MAX)),
            response_frame: Some(0),
            rcode: Some("RESERVED"),
            rcode_code: Some(15),
            truncated: true,
            answers: vec!["TXT \"a\\\"b\"".into(), String::new()],
            response_size: Some(u32::MAX),
            latency_ms: Some(1e300),
        };
        let mut writer = TransactionWriter::default();
        same_as_serde(&mut writer, &t);
        for latency in [
            0.0,
            0.001,
            1.5,
            30_000.0,
            123_456.789,
            f64::NAN,
            f64::INFINITY,
        ] {
            t.latency_ms = Some(latency);
            same_as_serde(&mut writer, &t);
        }
        t.outcome = Outcome::Unanswered;
        (t.responder, t.response_time, t.response_frame) = (None, None, None);
        (t.rcode, t.rcode_code) = (None, None);
        // Every latency the tracker can give up to 200 ms, then a sample up to a million s,
        // and values it never gives.
        let spread =
            (0..200_000u64).chain((0..100_000u64).map(|i| i * 9_999_991 % 1_000_000_000_000));
        let odd = [
            -1.0,
            -0.0,
            0.1 + 0.2,
            1e-7,
            1e15,
            1e16,
            123.456_789,
            f64::MAX,
            f64::MIN_POSITIVE,
        ];
        let mut expected = Vec::new();
        let mut ours = Vec::new();
        for v in spread
            .map(|micros| (micros as f64 / 1e6 * 1e6).round() / 1e3)
            .chain(odd)
        {
            expected.clear();
            ours.clear();
            serde_json::to_writer(&mut expected, &v).unwrap();
            push_millis(&mut ours, v).unwrap();
            assert_eq!(ours, expected, "{v}");
        }
        t.outcome = Outcome::Unanswered;
        (t.responder, t.response_time, t.response_frame) = (None, None, None);
        (t.rcode, t.rcode_code, t.latency_ms) = (None, None, None);
        t.answers.clear();
        t.response_size = None;
        same_as_serde(&mut writer, &t);
    }
}
