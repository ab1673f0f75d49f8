//! Builders for small captures made in test code: DNS messages (hickory), packets
//! (etherparse), link-layer headers, and pcap / pcapng files written byte by byte.
#![allow(dead_code)] // each test binary uses a different part of this shared module

use dns_doctor::capture::dns::{DnsFlags, DnsMessage, Question};
use dns_doctor::capture::{DnsPacket, Timestamp, Transport};
use etherparse::PacketBuilder;
use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{rdata, Name, RData, Record, RecordType};
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

pub fn addr(s: &str) -> SocketAddr {
    s.parse().expect("socket address")
}

/// Wire-format DNS query.
pub fn query(id: u16, name: &str, qtype: RecordType) -> Vec<u8> {
    let mut m = Message::new(id, MessageType::Query, OpCode::Query);
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(Name::from_str(name).unwrap(), qtype));
    m.to_vec().unwrap()
}

/// Wire-format DNS response with A answers.
pub fn response(
    id: u16,
    name: &str,
    qtype: RecordType,
    rcode: ResponseCode,
    a: &[[u8; 4]],
) -> Vec<u8> {
    let mut m = Message::new(id, MessageType::Response, OpCode::Query);
    m.metadata.recursion_desired = true;
    m.metadata.recursion_available = true;
    m.metadata.response_code = rcode;
    let n = Name::from_str(name).unwrap();
    m.add_query(Query::query(n.clone(), qtype));
    for ip in a {
        m.add_answer(Record::from_rdata(
            n.clone(),
            60,
            RData::A(rdata::A(std::net::Ipv4Addr::from(*ip))),
        ));
    }
    m.to_vec().unwrap()
}

/// An Ethernet II frame carrying UDP.
pub fn eth_udp(src: SocketAddr, dst: SocketAddr, payload: &[u8]) -> Vec<u8> {
    build(
        PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2]),
        src,
        dst,
        payload,
    )
}

/// An Ethernet II frame with an 802.1Q tag carrying UDP.
pub fn eth_vlan_udp(src: SocketAddr, dst: SocketAddr, payload: &[u8]) -> Vec<u8> {
    let b = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
        .single_vlan(42.try_into().unwrap());
    let mut out = Vec::new();
    match (src.ip(), dst.ip()) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let b = b
                .ipv4(s.octets(), d.octets(), 64)
                .udp(src.port(), dst.port());
            b.write(&mut out, payload).unwrap();
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            let b = b
                .ipv6(s.octets(), d.octets(), 64)
                .udp(src.port(), dst.port());
            b.write(&mut out, payload).unwrap();
        }
        _ => panic!("mixed address families"),
    }
    out
}

/// A raw IP packet (no link header) carrying UDP.
pub fn ip_udp(src: SocketAddr, dst: SocketAddr, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    match (src.ip(), dst.ip()) {
        (IpAddr::V4(s), IpAddr::V4(d)) => PacketBuilder::ipv4(s.octets(), d.octets(), 64)
            .udp(src.port(), dst.port())
            .write(&mut out, payload)
            .unwrap(),
        (IpAddr::V6(s), IpAddr::V6(d)) => PacketBuilder::ipv6(s.octets(), d.octets(), 64)
            .udp(src.port(), dst.port())
            .write(&mut out, payload)
            .unwrap(),
        _ => panic!("mixed address families"),
    }
    out
}

/// TCP flags for [`eth_tcp`].
#[derive(Clone, Copy, Default)]
pub struct Flags {
    pub syn: bool,
    pub fin: bool,
    pub rst: bool,
}

/// An Ethernet II frame carrying a TCP segment.
pub fn eth_tcp(src: SocketAddr, dst: SocketAddr, seq: u32, f: Flags, payload: &[u8]) -> Vec<u8> {
    let b = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2]);
    let mut out = Vec::new();
    macro_rules! tcp {
        ($ip:expr) => {{
            let mut t = $ip.tcp(src.port(), dst.port(), seq, 64240).ack(1);
            if f.syn {
                t = t.syn();
            }
            if f.fin {
                t = t.fin();
            }
            if f.rst {
                t = t.rst();
            }
            t.write(&mut out, payload).unwrap();
        }};
    }
    match (src.ip(), dst.ip()) {
        (IpAddr::V4(s), IpAddr::V4(d)) => tcp!(b.ipv4(s.octets(), d.octets(), 64)),
        (IpAddr::V6(s), IpAddr::V6(d)) => tcp!(b.ipv6(s.octets(), d.octets(), 64)),
        _ => panic!("mixed address families"),
    }
    out
}

fn build(
    b: etherparse::PacketBuilderStep<etherparse::Ethernet2Header>,
    src: SocketAddr,
    dst: SocketAddr,
    payload: &[u8],
) -> Vec<u8> {
    let mut out = Vec::new();
    match (src.ip(), dst.ip()) {
        (IpAddr::V4(s), IpAddr::V4(d)) => b
            .ipv4(s.octets(), d.octets(), 64)
            .udp(src.port(), dst.port())
            .write(&mut out, payload)
            .unwrap(),
        (IpAddr::V6(s), IpAddr::V6(d)) => b
            .ipv6(s.octets(), d.octets(), 64)
            .udp(src.port(), dst.port())
            .write(&mut out, payload)
            .unwrap(),
        _ => panic!("mixed address families"),
    }
    out
}

fn ethertype(ip: &[u8]) -> u16 {
    if ip[0] >> 4 == 6 {
        0x86dd
    } else {
        0x0800
    }
}

/// LINUX_SLL (cooked v1) header + IP packet.
pub fn sll(ip: &[u8]) -> Vec<u8> {
    let mut v = vec![0, 4, 0, 1, 0, 6, 2, 0, 0, 0, 0, 1, 0, 0];
    v.extend_from_slice(&ethertype(ip).to_be_bytes());
    v.extend_from_slice(ip);
    v
}

/// LINUX_SLL2 (cooked v2, what `tcpdump -i any` writes) header + IP packet.
pub fn sll2(ip: &[u8]) -> Vec<u8> {
    let mut v = ethertype(ip).to_be_bytes().to_vec();
    v.extend_from_slice(&[0, 0, 0, 0, 0, 3, 0, 1, 4, 6, 2, 0, 0, 0, 0, 1, 0, 0]);
    v.extend_from_slice(ip);
    v
}

/// BSD loopback (NULL) header in the given byte order + IP packet.
pub fn null(ip: &[u8], big_endian: bool) -> Vec<u8> {
    let family: u32 = if ip[0] >> 4 == 6 { 24 } else { 2 };
    let mut v = if big_endian {
        family.to_be_bytes()
    } else {
        family.to_le_bytes()
    }
    .to_vec();
    v.extend_from_slice(ip);
    v
}

/// A classic pcap file.
pub fn pcap(linktype: u32, nanos: bool, big_endian: bool, packets: &[(i64, Vec<u8>)]) -> Vec<u8> {
    let magic: u32 = if nanos { 0xa1b2_3c4d } else { 0xa1b2_c3d4 };
    let mut v = Vec::new();
    let w32 = |v: &mut Vec<u8>, x: u32| {
        v.extend_from_slice(&if big_endian {
            x.to_be_bytes()
        } else {
            x.to_le_bytes()
        })
    };
    let w16 = |v: &mut Vec<u8>, x: u16| {
        v.extend_from_slice(&if big_endian {
            x.to_be_bytes()
        } else {
            x.to_le_bytes()
        })
    };
    w32(&mut v, magic);
    w16(&mut v, 2);
    w16(&mut v, 4);
    w32(&mut v, 0);
    w32(&mut v, 0);
    w32(&mut v, 262_144);
    w32(&mut v, linktype);
    for (ns, data) in packets {
        let secs = (ns / 1_000_000_000) as u32;
        let frac = (ns % 1_000_000_000) as u32;
        w32(&mut v, secs);
        w32(&mut v, if nanos { frac } else { frac / 1000 });
        w32(&mut v, data.len() as u32);
        w32(&mut v, data.len() as u32);
        v.extend_from_slice(data);
    }
    v
}

/// A pcapng file (little-endian) with one section; each interface is (linktype,
/// if_tsresol as a power of ten), each packet (interface, nanoseconds, bytes).
pub fn pcapng(interfaces: &[(u16, u8)], packets: &[(u32, i64, Vec<u8>)]) -> Vec<u8> {
    fn block(v: &mut Vec<u8>, kind: u32, body: &[u8]) {
        let len = 12 + body.len().div_ceil(4) * 4;
        v.extend_from_slice(&kind.to_le_bytes());
        v.extend_from_slice(&(len as u32).to_le_bytes());
        v.extend_from_slice(body);
        v.resize(v.len() + (len - 12 - body.len()), 0);
        v.extend_from_slice(&(len as u32).to_le_bytes());
    }
    let mut v = Vec::new();
    let mut shb = 0x1a2b_3c4du32.to_le_bytes().to_vec();
    shb.extend_from_slice(&1u16.to_le_bytes());
    shb.extend_from_slice(&0u16.to_le_bytes());
    shb.extend_from_slice(&(-1i64).to_le_bytes());
    block(&mut v, 0x0a0d_0d0a, &shb);
    for (lt, resol) in interfaces {
        let mut idb = lt.to_le_bytes().to_vec();
        idb.extend_from_slice(&0u16.to_le_bytes());
        idb.extend_from_slice(&262_144u32.to_le_bytes());
        // if_tsresol option (code 9, length 1), padded, then opt_endofopt.
        idb.extend_from_slice(&9u16.to_le_bytes());
        idb.extend_from_slice(&1u16.to_le_bytes());
        idb.extend_from_slice(&[*resol, 0, 0, 0]);
        idb.extend_from_slice(&[0, 0, 0, 0]);
        block(&mut v, 1, &idb);
    }
    for (iface, ns, data) in packets {
        let resol = interfaces[*iface as usize].1;
        let units = (*ns as u128 * 10u128.pow(u32::from(resol)) / 1_000_000_000) as u64;
        let mut epb = iface.to_le_bytes().to_vec();
        epb.extend_from_slice(&((units >> 32) as u32).to_le_bytes());
        epb.extend_from_slice(&(units as u32).to_le_bytes());
        epb.extend_from_slice(&(data.len() as u32).to_le_bytes());
        epb.extend_from_slice(&(data.len() as u32).to_le_bytes());
        epb.extend_from_slice(data);
        block(&mut v, 6, &epb);
    }
    v
}

/// A decoded packet built directly, for transaction tests that need no capture file.
#[allow(clippy::too_many_arguments)]
pub fn packet(
    ms: f64,
    src: &str,
    dst: &str,
    transport: Transport,
    id: u16,
    name: &str,
    qtype: u16,
    response: Option<(u8, bool)>,
) -> DnsPacket {
    DnsPacket {
        frame: (ms * 1000.0) as u64,
        time: Timestamp::from_nanos(1_700_000_000_000_000_000 + (ms * 1e6) as i64),
        src: addr(src),
        dst: addr(dst),
        transport,
        // The header and the question, all the message holds: the name in wire form is one
        // byte longer than with its trailing dot, then type and class.
        size: u32::try_from(12 + name.len() + 1 + 4).unwrap(),
        message: DnsMessage {
            id,
            response: response.is_some(),
            opcode: 0,
            rcode: response.map_or(0, |r| r.0),
            flags: DnsFlags {
                tc: response.is_some_and(|r| r.1),
                rd: true,
                ..DnsFlags::default()
            },
            counts: [1, u16::from(response.is_some_and(|r| r.0 == 0)), 0, 0],
            question: Some(Question {
                name: name.to_string(),
                qtype,
            }),
            answers: Vec::new(),
        },
    }
}
