//! DNS messages as seen on the wire, decoded with hickory-proto.
//!
//! The header and question are decoded strictly; the answer section leniently (decoding
//! stops at the first record it cannot read) so that a message with one odd record still
//! yields its ID, question and response code, as tcpdump shows them.

use super::link::Transport;
use super::time::Timestamp;
use hickory_proto::op::Header;
use hickory_proto::rr::{Name, Record, RecordType};
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder};
use serde::Serialize;
use std::net::SocketAddr;

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
        qtype_name(self.qtype)
    }
}

/// Mnemonic of a numeric query type, `TYPEnnn` when neither hickory nor the short list of
/// older types below knows it.
pub fn qtype_name(qtype: u16) -> String {
    match RecordType::from(qtype) {
        RecordType::Unknown(n) => match n {
            17 => "RP".into(),
            18 => "AFSDB".into(),
            29 => "LOC".into(),
            36 => "KX".into(),
            38 => "A6".into(),
            99 => "SPF".into(),
            256 => "URI".into(),
            _ => format!("TYPE{n}"),
        },
        known => known.to_string(),
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
        let mut question = None;
        if counts[0] > 0 {
            let name =
                Name::read(&mut decoder).map_err(|e| DnsError::BadQuestion(e.to_string()))?;
            let qtype = decoder
                .read_u16()
                .map_err(|e| DnsError::BadQuestion(e.to_string()))?
                .unverified(/* any value is a valid query type */);
            question = Some(Question {
                name: name.to_ascii(),
                qtype,
            });
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
                    match Record::read(&mut decoder) {
                        Ok(r) => answers.push(present(&r)),
                        Err(_) => break,
                    }
                }
            }
            return Ok(Self::from_header(m, counts, question, answers));
        }
        Ok(Self::from_header(m, counts, question, Vec::new()))
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
    /// The message.
    #[serde(flatten)]
    pub message: DnsMessage,
}
