//! Building DNS queries and reading responses (wire format through hickory-proto).

use hickory_proto::op::{Message, MessageType, OpCode, Query};
use hickory_proto::rr::{Name, RecordType};

#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    #[error("invalid name {name:?}")]
    InvalidName {
        name: String,
        #[source]
        source: hickory_proto::ProtoError,
    },
    #[error("unsupported query type {0:?}")]
    UnsupportedType(String),
    #[error("could not encode the query for {name}")]
    Encode {
        name: String,
        #[source]
        source: hickory_proto::ProtoError,
    },
    #[error("malformed DNS message")]
    Decode(#[source] hickory_proto::serialize::binary::DecodeError),
    #[error("message is not a response")]
    NotAResponse,
}

/// The query types the probe asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QType {
    A,
    Aaaa,
}

impl QType {
    pub fn as_str(self) -> &'static str {
        match self {
            QType::A => "A",
            QType::Aaaa => "AAAA",
        }
    }

    fn record_type(self) -> RecordType {
        match self {
            QType::A => RecordType::A,
            QType::Aaaa => RecordType::AAAA,
        }
    }
}

impl std::str::FromStr for QType {
    type Err = DnsError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_uppercase().as_str() {
            "A" => Ok(QType::A),
            "AAAA" => Ok(QType::Aaaa),
            _ => Err(DnsError::UnsupportedType(s.to_owned())),
        }
    }
}

/// Encodes a recursive query for `qname` (fully qualified, trailing dot) with message `id`,
/// without EDNS, as a stub resolver sends it.
pub fn build_query(id: u16, qname: &str, qtype: QType) -> Result<Vec<u8>, DnsError> {
    let name = Name::from_ascii(qname).map_err(|source| DnsError::InvalidName {
        name: qname.to_owned(),
        source,
    })?;
    let mut message = Message::new(id, MessageType::Query, OpCode::Query);
    message.metadata.recursion_desired = true;
    message.add_query(Query::query(name, qtype.record_type()));
    message.to_vec().map_err(|source| DnsError::Encode {
        name: qname.to_owned(),
        source,
    })
}

/// What the probe keeps of a response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub id: u16,
    /// Mnemonic such as "NOERROR", "NXDOMAIN"; "RCODE<n>" for values without one.
    pub rcode: String,
    /// Answer records as "TYPE data", e.g. "A 10.96.0.1", "CNAME x.example.".
    pub answers: Vec<String>,
    pub truncated: bool,
}

/// Decodes a response. A message that parses but is a query is rejected, so a reflected
/// packet is never mistaken for an answer.
pub fn parse_response(bytes: &[u8]) -> Result<Response, DnsError> {
    let message = Message::from_vec(bytes).map_err(DnsError::Decode)?;
    if message.metadata.message_type != MessageType::Response {
        return Err(DnsError::NotAResponse);
    }
    let answers = message
        .answers
        .iter()
        .map(|r| format!("{} {}", r.record_type(), r.data))
        .collect();
    Ok(Response {
        id: message.metadata.id,
        rcode: rcode_mnemonic(u16::from(message.metadata.response_code)),
        answers,
        truncated: message.metadata.truncation,
    })
}

/// The DNS message ID of a packet, if it is long enough to have one. Used to skip replies
/// to other queries without decoding them.
pub fn message_id(bytes: &[u8]) -> Option<u16> {
    Some(u16::from_be_bytes([*bytes.first()?, *bytes.get(1)?]))
}

/// RFC 1035 / IANA mnemonics, the spelling dig and the plugin use.
fn rcode_mnemonic(code: u16) -> String {
    crate::schema::rcode_name(code).map_or_else(|| format!("RCODE{code}"), str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::rr::rdata::{A, AAAA};
    use hickory_proto::rr::{RData, Record};

    #[test]
    fn a_query_is_encoded_as_a_stub_resolver_sends_it() {
        let bytes =
            build_query(0x1234, "kubernetes.default.svc.cluster.local.", QType::Aaaa).unwrap();
        // Header: id, flags with only RD set, one question, nothing else.
        assert_eq!(
            &bytes[..12],
            &[0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]
        );
        // The question ends with the root label, QTYPE 28 (AAAA), QCLASS IN.
        assert_eq!(&bytes[bytes.len() - 5..], &[0, 0, 28, 0, 1]);
        assert_eq!(message_id(&bytes), Some(0x1234));
    }

    #[test]
    fn invalid_names_are_rejected() {
        let long_label = format!("{}.test.", "a".repeat(64));
        assert!(matches!(
            build_query(1, &long_label, QType::A),
            Err(DnsError::InvalidName { .. })
        ));
    }

    #[test]
    fn a_response_is_read_back() {
        let name = Name::from_ascii("external.test.").unwrap();
        let mut message = Message::new(77, MessageType::Response, OpCode::Query);
        message.metadata.response_code = hickory_proto::op::ResponseCode::NoError;
        message.metadata.truncation = true;
        message.add_query(Query::query(name.clone(), RecordType::A));
        message.add_answer(Record::from_rdata(
            name.clone(),
            60,
            RData::A(A::new(203, 0, 113, 7)),
        ));
        message.add_answer(Record::from_rdata(
            name,
            60,
            RData::AAAA(AAAA::new(0xfd00, 0, 0, 0, 0, 0, 0, 7)),
        ));
        let response = parse_response(&message.to_vec().unwrap()).unwrap();
        assert_eq!(
            response,
            Response {
                id: 77,
                rcode: "NOERROR".to_owned(),
                answers: vec!["A 203.0.113.7".to_owned(), "AAAA fd00::7".to_owned()],
                truncated: true,
            }
        );
    }

    #[test]
    fn nxdomain_and_unknown_rcodes_are_named() {
        let mut message = Message::new(9, MessageType::Response, OpCode::Query);
        message.metadata.response_code = hickory_proto::op::ResponseCode::NXDomain;
        assert_eq!(
            parse_response(&message.to_vec().unwrap()).unwrap().rcode,
            "NXDOMAIN"
        );
        assert_eq!(rcode_mnemonic(11), "RCODE11");
    }

    #[test]
    fn queries_and_garbage_are_not_responses() {
        let query = build_query(5, "a.test.", QType::A).unwrap();
        assert!(matches!(
            parse_response(&query),
            Err(DnsError::NotAResponse)
        ));
        assert!(matches!(
            parse_response(&[1, 2, 3]),
            Err(DnsError::Decode(_))
        ));
        assert_eq!(message_id(&[7]), None);
    }
}
