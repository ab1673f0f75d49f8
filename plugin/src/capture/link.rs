//! From a captured frame to a UDP datagram or TCP segment: link layer, IPv4/IPv6, VLAN tags.
//!
//! etherparse slices Ethernet (with VLAN tags), IP and the transport headers, and pcap-parser
//! strips the Linux cooked headers (SLL, and SLL2 which `tcpdump -i any` writes). Only the
//! BSD loopback and PPP headers are read by hand because neither crate handles both byte
//! orders of the former or the latter at all.

use super::time::Timestamp;
use etherparse::defrag::IpDefragPool;
use etherparse::{
    EtherType, IpNumber, LaxNetSlice, LaxSlicedPacket, NetSlice, SlicedPacket, TransportSlice,
};
use pcap_parser::data::{get_packetdata_linux_sll, get_packetdata_linux_sll2, PacketData};
use pcap_parser::Linktype;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// Transport protocol a DNS message travelled over.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// DNS over UDP.
    Udp,
    /// DNS over TCP (RFC 1035 §4.2.2 length-prefixed).
    Tcp,
}

/// TCP header fields the stream reassembly needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpInfo {
    /// Sequence number of the first payload byte (or of the SYN).
    pub seq: u32,
    /// SYN flag.
    pub syn: bool,
    /// FIN flag.
    pub fin: bool,
    /// RST flag.
    pub rst: bool,
}

/// A transport-layer payload with its endpoints.
#[derive(Debug, PartialEq, Eq)]
pub struct Segment<'a> {
    /// Sender.
    pub src: SocketAddr,
    /// Receiver.
    pub dst: SocketAddr,
    /// UDP or TCP.
    pub transport: Transport,
    /// TCP header fields; `None` for UDP.
    pub tcp: Option<TcpInfo>,
    /// Transport payload (possibly cut short by the snap length).
    pub payload: &'a [u8],
}

/// Apple's PKTAP link type, and USER2 which macOS wrote for it before 258 was assigned.
const PKTAP: i32 = 258;
const USER2: i32 = 149;

/// BSD loopback address-family values for IPv6 (they differ between BSDs).
const AF_INET6_VALUES: [u32; 3] = [24, 28, 30];

/// Where the network layer of a frame starts.
enum Network<'a> {
    /// An Ethernet II frame (etherparse reads VLAN tags and the ether type).
    Ethernet(&'a [u8]),
    /// An IP packet, version in its first nibble.
    Ip(&'a [u8]),
    /// A packet of the given ether type.
    EtherType(u16, &'a [u8]),
}

/// Strips the link-layer header of a frame. `None` for link types without IP, damaged
/// headers and non-IP payloads.
fn network(linktype: Linktype, data: &[u8]) -> Option<Network<'_>> {
    Some(match linktype {
        Linktype::ETHERNET => Network::Ethernet(data),
        Linktype::RAW | Linktype(12) | Linktype(14) => Network::Ip(data),
        Linktype::IPV4 | Linktype::IPV6 => {
            // These link types promise one IP version; a packet of the other is invalid.
            let want = if linktype == Linktype::IPV4 { 4 } else { 6 };
            if data.first()? >> 4 != want {
                return None;
            }
            Network::Ip(data)
        }
        Linktype::NULL | Linktype::LOOP => {
            let family: [u8; 4] = data.get(..4)?.try_into().ok()?;
            let be = u32::from_be_bytes(family);
            let le = u32::from_le_bytes(family);
            // NULL is in the capturing host's byte order; LOOP is always big-endian.
            let is_ip = |v: u32| v == 2 || AF_INET6_VALUES.contains(&v);
            if !(is_ip(be) || (linktype == Linktype::NULL && is_ip(le))) {
                return None;
            }
            Network::Ip(&data[4..])
        }
        Linktype::LINUX_SLL | Linktype::LINUX_SLL2 => {
            let l3 = if linktype == Linktype::LINUX_SLL {
                get_packetdata_linux_sll(data, data.len())
            } else {
                get_packetdata_linux_sll2(data, data.len())
            };
            match l3? {
                PacketData::L3(ethertype, rest) => Network::EtherType(ethertype, rest),
                _ => return None,
            }
        }
        Linktype(9) | Linktype(50) => {
            // RFC 1662 framing: optional address/control 0xff 0x03, then the protocol.
            let rest = data.strip_prefix(&[0xff, 0x03]).unwrap_or(data);
            let proto = u16::from_be_bytes(rest.get(..2)?.try_into().ok()?);
            match proto {
                0x0021 | 0x0057 => Network::Ip(&rest[2..]),
                _ => return None,
            }
        }
        Linktype(PKTAP) | Linktype(USER2) => {
            // Apple's PKTAP: little-endian header length, record type (1 = packet) and
            // the link type of the packet that follows the header.
            let word = |at: usize| -> Option<u32> {
                Some(u32::from_le_bytes(data.get(at..at + 4)?.try_into().ok()?))
            };
            let (len, rectype, inner) = (word(0)? as usize, word(4)?, word(8)?);
            let inner = i32::try_from(inner).ok()?;
            if rectype != 1 || len < 12 || len > data.len() || [PKTAP, USER2].contains(&inner) {
                return None;
            }
            return network(Linktype(inner), &data[len..]);
        }
        _ => return None,
    })
}

/// What a frame holds, as far as DNS is concerned.
#[derive(Debug, PartialEq, Eq)]
pub enum Layer4<'a> {
    /// An unfragmented UDP datagram or TCP segment.
    Segment(Segment<'a>),
    /// A fragment of an IP packet; see [`Defragmenter`].
    Fragment,
}

/// Decodes the frame of a link type down to UDP/TCP. Returns `None` for anything that is
/// not IPv4/IPv6 UDP or TCP (ARP, ICMP, other link types, or headers too damaged to read).
/// Headers are read leniently: a packet cut short by the snap length still yields what
/// was captured of its payload.
pub fn segment(linktype: Linktype, data: &[u8]) -> Option<Layer4<'_>> {
    let net = network(linktype, data)?;
    match plain_udp(&net) {
        Some(seg) => Some(Layer4::Segment(seg)),
        None => sliced_segment(net),
    }
}

const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_IPV6: u16 = 0x86dd;
const IPPROTO_UDP: u8 = 17;

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

/// The UDP datagram of a packet in the form nearly every DNS packet has — untagged
/// Ethernet or bare IP, IPv4 without options and not a fragment or IPv6 without extension
/// headers, captured whole, with IP and UDP lengths that agree — read directly from the
/// bytes; `None` for anything else, which etherparse then reads. Slicing every packet with
/// etherparse copied its header structures several times and cost more than decoding the
/// DNS message in it; the result is the same (the tests compare the two).
fn plain_udp<'a>(net: &Network<'a>) -> Option<Segment<'a>> {
    let (version, ip) = match *net {
        Network::Ethernet(d) => match be16(d, 12)? {
            ETHERTYPE_IPV4 => (Some(4), &d[14..]),
            ETHERTYPE_IPV6 => (Some(6), &d[14..]),
            _ => return None,
        },
        Network::EtherType(ETHERTYPE_IPV4, d) => (Some(4), d),
        Network::EtherType(ETHERTYPE_IPV6, d) => (Some(6), d),
        Network::EtherType(..) => return None,
        Network::Ip(d) => (None, d),
    };
    let first = *ip.first()?;
    if version.is_some_and(|v| v != first >> 4) {
        return None;
    }
    let (src, dst, udp): (IpAddr, IpAddr, &[u8]) = match first >> 4 {
        4 => {
            let h = ip.get(..20)?;
            let total = usize::from(be16(h, 2)?);
            let fragment = be16(h, 6)? & 0x3fff; // more-fragments flag and offset
            if first & 0x0f != 5 || fragment != 0 || h[9] != IPPROTO_UDP {
                return None;
            }
            let src: [u8; 4] = h[12..16].try_into().ok()?;
            let dst: [u8; 4] = h[16..20].try_into().ok()?;
            (src.into(), dst.into(), ip.get(20..total)?)
        }
        6 => {
            let h = ip.get(..40)?;
            if h[6] != IPPROTO_UDP {
                return None;
            }
            let len = usize::from(be16(h, 4)?);
            let src: [u8; 16] = h[8..24].try_into().ok()?;
            let dst: [u8; 16] = h[24..40].try_into().ok()?;
            (src.into(), dst.into(), ip.get(40..40 + len)?)
        }
        _ => return None,
    };
    if udp.len() < 8 || usize::from(be16(udp, 4)?) != udp.len() {
        return None;
    }
    Some(Segment {
        src: SocketAddr::new(src, be16(udp, 0)?),
        dst: SocketAddr::new(dst, be16(udp, 2)?),
        transport: Transport::Udp,
        tcp: None,
        payload: &udp[8..],
    })
}

/// [`segment`] by etherparse, for every form of packet.
fn sliced_segment(net: Network<'_>) -> Option<Layer4<'_>> {
    let sliced = match net {
        Network::Ethernet(d) => LaxSlicedPacket::from_ethernet(d).ok()?,
        Network::Ip(d) => LaxSlicedPacket::from_ip(d).ok()?,
        Network::EtherType(t, d) => LaxSlicedPacket::from_ether_type(EtherType(t), d),
    };
    let (src_ip, dst_ip): (IpAddr, IpAddr) = match sliced.net.as_ref()? {
        LaxNetSlice::Ipv4(v4) => {
            if v4.is_payload_fragmented() {
                return Some(Layer4::Fragment);
            }
            let h = v4.header();
            (h.source_addr().into(), h.destination_addr().into())
        }
        LaxNetSlice::Ipv6(v6) => {
            if v6.is_payload_fragmented() {
                return Some(Layer4::Fragment);
            }
            let h = v6.header();
            (h.source_addr().into(), h.destination_addr().into())
        }
        LaxNetSlice::Arp(_) => return None,
    };
    match sliced.transport? {
        TransportSlice::Udp(udp) => Some(Layer4::Segment(Segment {
            src: SocketAddr::new(src_ip, udp.source_port()),
            dst: SocketAddr::new(dst_ip, udp.destination_port()),
            transport: Transport::Udp,
            tcp: None,
            payload: udp.payload(),
        })),
        TransportSlice::Tcp(tcp) => Some(Layer4::Segment(Segment {
            src: SocketAddr::new(src_ip, tcp.source_port()),
            dst: SocketAddr::new(dst_ip, tcp.destination_port()),
            transport: Transport::Tcp,
            tcp: Some(TcpInfo {
                seq: tcp.sequence_number(),
                syn: tcp.syn(),
                fin: tcp.fin(),
                rst: tcp.rst(),
            }),
            payload: tcp.payload(),
        })),
        _ => None,
    }
}

/// Reassembles fragmented IP packets carrying UDP (DNS answers larger than the path MTU
/// arrive as IP fragments). etherparse does the reassembly; this bounds its memory by
/// dropping reassemblies that have not completed within [`Defragmenter::MAX_AGE`].
#[derive(Default)]
pub struct Defragmenter {
    pool: IpDefragPool<Timestamp, ()>,
    next_expiry: Option<Timestamp>,
}

/// A UDP datagram rebuilt from fragments.
#[derive(Debug)]
pub struct Datagram {
    /// Sender.
    pub src: SocketAddr,
    /// Receiver.
    pub dst: SocketAddr,
    /// UDP payload.
    pub payload: Vec<u8>,
}

impl Defragmenter {
    /// Fragments older than this are given up (Linux waits 30 s, `ipfrag_time`).
    pub const MAX_AGE: Duration = Duration::from_secs(30);

    /// Feeds a frame that [`segment`] reported as a fragment; returns the UDP datagram
    /// when this fragment completes one.
    pub fn push(&mut self, linktype: Linktype, data: &[u8], time: Timestamp) -> Option<Datagram> {
        if self.next_expiry.is_none_or(|t| time >= t) {
            let max = Self::MAX_AGE;
            self.pool.retain(|started| time.since(*started) < max);
            self.next_expiry = Some(time.saturating_add(Duration::from_secs(1)));
        }
        // Reassembly needs the exact lengths, so the frame is sliced strictly here.
        let sliced = match network(linktype, data)? {
            Network::Ethernet(d) => SlicedPacket::from_ethernet(d).ok()?,
            Network::Ip(d) => SlicedPacket::from_ip(d).ok()?,
            Network::EtherType(t, d) => SlicedPacket::from_ether_type(EtherType(t), d).ok()?,
        };
        let (src_ip, dst_ip): (IpAddr, IpAddr) = match sliced.net.as_ref()? {
            NetSlice::Ipv4(v4) => (
                v4.header().source_addr().into(),
                v4.header().destination_addr().into(),
            ),
            NetSlice::Ipv6(v6) => (
                v6.header().source_addr().into(),
                v6.header().destination_addr().into(),
            ),
            NetSlice::Arp(_) => return None,
        };
        let whole = self.pool.process_sliced_packet(&sliced, time, ()).ok()??;
        let datagram = (whole.ip_number == IpNumber::UDP && whole.payload.len() >= 8).then(|| {
            let p = &whole.payload;
            Datagram {
                src: SocketAddr::new(src_ip, u16::from_be_bytes([p[0], p[1]])),
                dst: SocketAddr::new(dst_ip, u16::from_be_bytes([p[2], p[3]])),
                payload: p[8..].to_vec(),
            }
        });
        self.pool.return_buf(whole);
        datagram
    }
}

#[cfg(test)]
mod tests;
