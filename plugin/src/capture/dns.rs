//! DNS messages as seen on the wire, decoded with hickory-proto.
//!
//! The header and question are decoded strictly; the answer section leniently (decoding
//! stops at the first record it cannot read) so that a message with one odd record still
//! yields its ID, question and response code, as tcpdump shows them.

use super::decimal::push_ipv4;
use super::link::Transport;
use super::time::Timestamp;
use hickory_proto::op::Header;
use hickory_proto::rr::{Name, Record, RecordType};
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder};
use serde::Serialize;
use std::borrow::Cow;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};

/// At most this many answers are kept in presentation form per message.
const MAX_ANSWERS: usize = 32;

/// Why a payload is not a DNS message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DnsError {
    /// Shorter than the 12-byte header.
    #[error("{0} bytes is shorter than a DNS header")]
    TooShort(usize),
    /// The question section could not be decoded.
    #[error("question section unreadable: {0}")]
    BadQuestion(String),
}

/// Header flags of a DNS message.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct DnsFlags {
    /// Authoritative answer.
    pub aa: bool,
    /// Truncated: the answer did not fit, retry over TCP.
    pub tc: bool,
    /// Recursion desired.
    pub rd: bool,
    /// Recursion available.
    pub ra: bool,
    /// Authentic data (DNSSEC).
    pub ad: bool,
    /// Checking disabled (DNSSEC).
    pub cd: bool,
}

/// The first question of a message.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct Question {
    /// Name in presentation form with the trailing dot, e.g. `www.tcpdump.org.`.
    pub name: String,
    /// Numeric query type (1 = A, 28 = AAAA, ...).
    pub qtype: u16,
}

impl Question {
    /// The query type's mnemonic (`A`, `AAAA`, ...) or `TYPEnnn` (RFC 3597) when unknown.
    pub fn qtype_name(&self) -> String {
        qtype_name(self.qtype).into_owned()
    }
}

/// Mnemonic of a numeric query type, `TYPEnnn` when neither hickory nor the short list of
/// older types below knows it. Borrowed for the named types, so that naming the type of
/// every transaction allocates nothing.
pub fn qtype_name(qtype: u16) -> Cow<'static, str> {
    match RecordType::from(qtype) {
        RecordType::Unknown(n) => match n {
            17 => "RP".into(),
            18 => "AFSDB".into(),
            29 => "LOC".into(),
            36 => "KX".into(),
            38 => "A6".into(),
            99 => "SPF".into(),
            256 => "URI".into(),
            _ => format!("TYPE{n}").into(),
        },
        known => <&'static str>::from(known).into(),
    }
}

/// Mnemonic of a 4-bit response code (`NOERROR`, `NXDOMAIN`, ...), as the probe spells it.
pub fn rcode_name(rcode: u8) -> &'static str {
    dns_doctor_schema::rcode_name(u16::from(rcode)).unwrap_or("RESERVED")
}

/// A decoded DNS message, without the addresses it travelled between.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DnsMessage {
    /// Message ID.
    pub id: u16,
    /// `true` for a response (QR bit set).
    pub response: bool,
    /// 4-bit opcode (0 = QUERY).
    pub opcode: u8,
    /// 4-bit response code from the header (0 = NOERROR, 2 = SERVFAIL, 3 = NXDOMAIN, ...).
    pub rcode: u8,
    /// Header flags.
    pub flags: DnsFlags,
    /// Section counts from the header: questions, answers, authorities, additionals.
    pub counts: [u16; 4],
    /// The first question, if the message has one.
    pub question: Option<Question>,
    /// Answer records in presentation form (`A 192.0.2.1`), as far as they could be
    /// decoded and at most 32.
    pub answers: Vec<String>,
}

impl DnsMessage {
    /// Decodes a DNS message (without a TCP length prefix).
    pub fn parse(bytes: &[u8]) -> Result<Self, DnsError> {
        Self::decode(bytes, true)
    }

    /// With `shortcuts`, the forms nearly every message uses — an uncompressed question
    /// name of letters, digits, `-` and `_`, and A/AAAA answers owned by that name — are
    /// decoded by hand, and everything else by hickory; the result is the same as
    /// hickory's (the tests compare the two), only several times cheaper. Without, hickory
    /// decodes everything.
    fn decode(bytes: &[u8], shortcuts: bool) -> Result<Self, DnsError> {
        if bytes.len() < 12 {
            return Err(DnsError::TooShort(bytes.len()));
        }
        let mut decoder = BinDecoder::new(bytes);
        let header =
            Header::read(&mut decoder).map_err(|e| DnsError::BadQuestion(e.to_string()))?;
        let m = header.metadata;
        let counts = [
            header.counts.queries,
            header.counts.answers,
            header.counts.authorities,
            header.counts.additionals,
        ];
        if counts[0] == 0 {
            return Ok(Self::from_header(m, counts, None, Vec::new()));
        }
        let plain = if shortcuts {
            plain_name(bytes, decoder.index())
        } else {
            None
        };
        let by_hand = plain.is_some();
        let name = match plain {
            Some((name, len)) => {
                skip(&mut decoder, len);
                name
            }
            None => Name::read(&mut decoder)
                .map_err(|e| DnsError::BadQuestion(e.to_string()))?
                .to_ascii(),
        };
        let qtype = decoder
            .read_u16()
            .map_err(|e| DnsError::BadQuestion(e.to_string()))?
            .unverified(/* any value is a valid query type */);
        let question = Some(Question { name, qtype });
        // The class and any further questions are not needed; answers follow them.
        let skipped = decoder.read_u16().is_ok()
            && (1..counts[0]).all(|_| {
                Name::read(&mut decoder).is_ok()
                    && decoder.read_u16().is_ok()
                    && decoder.read_u16().is_ok()
            });
        let mut answers = Vec::new();
        if skipped {
            for _ in 0..counts[1].min(MAX_ANSWERS as u16) {
                // The shortcut's owner name points at the question name, so it is valid
                // only when that name was read by hand (and is therefore uncompressed).
                let quick = by_hand
                    .then(|| bytes.get(decoder.index()..).and_then(address_record))
                    .flatten();
                if let Some((text, len)) = quick {
                    skip(&mut decoder, len);
                    answers.push(text);
                    continue;
                }
                match Record::read(&mut decoder) {
                    Ok(r) => answers.push(present(&r)),
                    Err(_) => break,
                }
            }
        }
        Ok(Self::from_header(m, counts, question, answers))
    }

    fn from_header(
        m: hickory_proto::op::Metadata,
        counts: [u16; 4],
        question: Option<Question>,
        answers: Vec<String>,
    ) -> Self {
        Self {
            id: m.id,
            response: m.message_type == hickory_proto::op::MessageType::Response,
            opcode: u8::from(m.op_code),
            rcode: m.response_code.low(),
            flags: DnsFlags {
                aa: m.authoritative,
                tc: m.truncation,
                rd: m.recursion_desired,
                ra: m.recursion_available,
                ad: m.authentic_data,
                cd: m.checking_disabled,
            },
            counts,
            question,
            answers,
        }
    }

    /// The response code's mnemonic.
    pub fn rcode_name(&self) -> &'static str {
        rcode_name(self.rcode)
    }
}

/// `TYPE data` of a record. hickory's formatting of some malformed record data fails
/// (which `format!` would turn into a panic), so failures are caught and said.
fn present(r: &Record) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    if write!(s, "{} {}", r.record_type(), r.data).is_err() {
        s = format!("{} (unprintable data)", r.record_type());
    }
    s
}

/// Moves `decoder` past `len` bytes that were decoded by hand (and so are there).
fn skip(decoder: &mut BinDecoder<'_>, len: usize) {
    let _ = decoder.read_slice(len);
}

/// Longest wire form of a name decoded by hand; longer ones are left to hickory, which
/// enforces the 255-octet limit.
const PLAIN_NAME_MAX: usize = 200;

/// Label bytes hickory prints as they are anywhere in a label: letters, digits and `_`.
const PLAIN: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 256 {
        t[b] = (b as u8).is_ascii_alphanumeric() || b == b'_' as usize;
        b += 1;
    }
    t
};

/// The presentation form (with trailing dot) and wire length of the name at `start`, when
/// it is uncompressed and every label is made of bytes hickory prints unescaped (letters,
/// digits, `_`, `-` after a label's first byte, `*` as its first); `None` for anything else.
fn plain_name(bytes: &[u8], start: usize) -> Option<(String, usize)> {
    let mut at = start;
    loop {
        let len = usize::from(*bytes.get(at)?);
        if len == 0 {
            break;
        }
        // Compression pointers and the reserved label types are hickory's to decode.
        if len > 63 || at + 1 + len - start > PLAIN_NAME_MAX {
            return None;
        }
        let (&first, rest) = bytes.get(at + 1..at + 1 + len)?.split_first()?;
        let plain = (PLAIN[usize::from(first)] || first == b'*')
            && rest.iter().all(|&b| PLAIN[usize::from(b)] || b == b'-');
        if !plain {
            return None;
        }
        at += 1 + len;
    }
    if at == start {
        return Some((".".into(), 1));
    }
    // The labels as they are on the wire, each length byte after the first turned into a
    // dot and the root label's zero into the final one.
    let mut text = bytes[start + 1..=at].to_vec();
    let mut dot = usize::from(bytes[start]);
    while dot < text.len() {
        let next = usize::from(text[dot]);
        text[dot] = b'.';
        dot += next + 1;
    }
    Some((String::from_utf8(text).ok()?, at + 1 - start))
}

/// Owner name: a compression pointer to the question name right after the header.
const OWNER_IS_QUESTION: [u8; 2] = [0xc0, 12];
const CLASS_IN: [u8; 2] = [0, 1];

/// `A 192.0.2.1` or `AAAA 2001:db8::1` and the record's length, for an IN-class A or AAAA
/// record (of the right data length) at the start of `rest` whose owner is the question
/// name; `None` for any other record.
fn address_record(rest: &[u8]) -> Option<(String, usize)> {
    // Owner, type, class, TTL, data length; then the data.
    let fixed = rest.get(..12)?;
    if fixed[..2] != OWNER_IS_QUESTION || fixed[4..6] != CLASS_IN {
        return None;
    }
    let rtype = u16::from_be_bytes([fixed[2], fixed[3]]);
    let rdlen = usize::from(u16::from_be_bytes([fixed[10], fixed[11]]));
    let data = rest.get(12..12 + rdlen)?;
    let text = match (rtype, <[u8; 4]>::try_from(data), <[u8; 16]>::try_from(data)) {
        (1, Ok(v4), _) => {
            let mut text = Vec::with_capacity("A 255.255.255.255".len());
            text.extend_from_slice(b"A ");
            push_ipv4(&mut text, Ipv4Addr::from(v4));
            String::from_utf8(text).ok()?
        }
        (28, _, Ok(v6)) => format!("AAAA {}", Ipv6Addr::from(v6)),
        _ => return None,
    };
    Some((text, 12 + rdlen))
}

/// A DNS message with where and when it was captured.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DnsPacket {
    /// Frame number in the capture (for TCP: the frame that completed the message).
    pub frame: u64,
    /// Capture time of that frame.
    pub time: Timestamp,
    /// Sender.
    pub src: SocketAddr,
    /// Receiver.
    pub dst: SocketAddr,
    /// UDP or TCP.
    pub transport: Transport,
    /// Length of the DNS message in bytes: the UDP payload, or for TCP the reassembled
    /// message without its 2-byte length prefix.
    pub size: u32,
    /// The message.
    #[serde(flatten)]
    pub message: DnsMessage,
}

#[cfg(test)]
mod tests;
