//! DNS messages out of a capture: frames → UDP datagrams / reassembled TCP streams → DNS.

use super::dns::{DnsMessage, DnsPacket};
use super::link::{segment, Defragmenter, Layer4, Transport};
use super::reader::{CaptureError, CaptureReader};
use super::tcp::TcpReassembler;
use super::time::Timestamp;
use std::collections::VecDeque;
use std::io::Read;
use std::net::{IpAddr, SocketAddr};

/// Which packets are taken for DNS.
#[derive(Clone, Debug)]
pub struct ExtractOptions {
    /// Ports whose UDP and TCP traffic is decoded as DNS (either side of the packet).
    pub dns_ports: Vec<u16>,
    /// Also take UDP datagrams on other ports when they decode completely as a one-question
    /// standard query or response (DNS servers on unusual ports; false positives are rare
    /// because the whole message must decode with nothing left over).
    pub udp_any_port: bool,
    /// Only the DNS traffic of these clients: the queries they send and the responses they
    /// get. A capture in a node's network namespace (a hostNetwork pod's) also sees every
    /// pod's traffic bridged through the node; None keeps every client.
    pub clients: Option<Vec<IpAddr>>,
}

impl Default for ExtractOptions {
    fn default() -> Self {
        Self {
            dns_ports: vec![53, 5353, 5355, 8053],
            udp_any_port: true,
            clients: None,
        }
    }
}

impl ExtractOptions {
    /// Whether `p` belongs to one of the clients kept (always, without a client list).
    pub fn keeps_client(&self, p: &DnsPacket) -> bool {
        self.clients.as_ref().is_none_or(|c| {
            let client = if p.message.response { p.dst } else { p.src };
            c.contains(&client.ip())
        })
    }
}

/// Counters about what the extractor saw besides the DNS messages it returned.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct ExtractStats {
    /// Every frame in the capture.
    pub frames: u64,
    /// Frames that were not DNS (other protocols, TCP control segments, fragments).
    pub non_dns_frames: u64,
    /// Payloads on DNS ports that did not decode as DNS.
    pub malformed_dns: u64,
    /// TCP stream positions lost to gaps or limits (messages possibly missed).
    pub tcp_desyncs: u64,
}

/// Streams the DNS messages of a capture, in capture order.
///
/// Yields `Err` once if the capture is damaged part-way; everything before the damage has
/// been yielded, and the iterator ends after the error.
pub struct DnsReader<'r> {
    capture: CaptureReader<'r>,
    options: ExtractOptions,
    tcp: TcpReassembler,
    defrag: Defragmenter,
    queue: VecDeque<DnsPacket>,
    scratch: Vec<Vec<u8>>,
    stats: ExtractStats,
}

impl<'r> DnsReader<'r> {
    /// Opens a capture; fails if its header is not pcap or pcapng.
    pub fn new<R: Read + Send + 'r>(
        input: R,
        options: ExtractOptions,
    ) -> Result<Self, CaptureError> {
        Ok(Self::from_capture(CaptureReader::new(input)?, options))
    }

    /// Wraps an already opened capture.
    pub fn from_capture(capture: CaptureReader<'r>, options: ExtractOptions) -> Self {
        Self {
            capture,
            options,
            tcp: TcpReassembler::new(),
            defrag: Defragmenter::default(),
            queue: VecDeque::new(),
            scratch: Vec::new(),
            stats: ExtractStats::default(),
        }
    }

    /// What was seen so far.
    pub fn stats(&self) -> ExtractStats {
        ExtractStats {
            frames: self.capture.frames(),
            tcp_desyncs: self.tcp.desyncs,
            ..self.stats
        }
    }

    /// Reads frames until one yields a DNS message, which is returned (any further
    /// messages of the same frame are queued), or the capture ends. Returned, not queued:
    /// moving every packet through the queue was a measurable share of the reading.
    fn fill(&mut self) -> Result<Option<DnsPacket>, CaptureError> {
        loop {
            let Some(frame) = self.capture.next_frame()? else {
                return Ok(None);
            };
            let seg = match segment(frame.linktype, frame.data) {
                Some(Layer4::Segment(seg)) => seg,
                Some(Layer4::Fragment) => {
                    let (number, time) = (frame.number, frame.time);
                    match self.defrag.push(frame.linktype, frame.data, time) {
                        Some(d) => {
                            let p = udp_dns(
                                &self.options,
                                &mut self.stats,
                                number,
                                time,
                                d.src,
                                d.dst,
                                &d.payload,
                            );
                            if p.is_some() {
                                return Ok(p);
                            }
                        }
                        None => self.stats.non_dns_frames += 1,
                    }
                    continue;
                }
                None => {
                    self.stats.non_dns_frames += 1;
                    continue;
                }
            };
            let ports = &self.options.dns_ports;
            let on_port = || ports.contains(&seg.src.port()) || ports.contains(&seg.dst.port());
            let (number, time) = (frame.number, frame.time);
            match (seg.transport, seg.tcp) {
                (Transport::Tcp, Some(tcp)) if on_port() => {
                    self.scratch.clear();
                    self.tcp.push(
                        seg.src,
                        seg.dst,
                        tcp.seq,
                        tcp.syn,
                        tcp.fin || tcp.rst,
                        seg.payload,
                        &mut self.scratch,
                    );
                    if self.scratch.is_empty() {
                        self.stats.non_dns_frames += 1;
                    }
                    for bytes in self.scratch.drain(..) {
                        match DnsMessage::parse(&bytes) {
                            Ok(message) => self.queue.push_back(DnsPacket {
                                frame: number,
                                time,
                                src: seg.src,
                                dst: seg.dst,
                                transport: Transport::Tcp,
                                size: wire_size(&bytes),
                                message,
                            }),
                            Err(_) => self.stats.malformed_dns += 1,
                        }
                    }
                    if let Some(p) = self.queue.pop_front() {
                        return Ok(Some(p));
                    }
                }
                (Transport::Udp, _) => {
                    let p = udp_dns(
                        &self.options,
                        &mut self.stats,
                        number,
                        time,
                        seg.src,
                        seg.dst,
                        seg.payload,
                    );
                    if p.is_some() {
                        return Ok(p);
                    }
                }
                _ => self.stats.non_dns_frames += 1,
            }
        }
    }
}

/// The DNS message of a UDP datagram, if it is one; counts what it is not.
fn udp_dns(
    options: &ExtractOptions,
    stats: &mut ExtractStats,
    frame: u64,
    time: Timestamp,
    src: SocketAddr,
    dst: SocketAddr,
    payload: &[u8],
) -> Option<DnsPacket> {
    let ports = &options.dns_ports;
    let parsed = if ports.contains(&src.port()) || ports.contains(&dst.port()) {
        let parsed = DnsMessage::parse(payload).ok();
        if parsed.is_none() {
            stats.malformed_dns += 1;
        }
        parsed
    } else if options.udp_any_port
        && !NOT_DNS_PORTS.contains(&src.port())
        && !NOT_DNS_PORTS.contains(&dst.port())
        && looks_like_dns(payload)
    {
        DnsMessage::parse(payload).ok()
    } else {
        None
    };
    if parsed.is_none() {
        stats.non_dns_frames += 1;
    }
    Some(DnsPacket {
        frame,
        time,
        src,
        dst,
        transport: Transport::Udp,
        size: wire_size(payload),
        message: parsed?,
    })
}

/// A message's length as [`DnsPacket::size`] holds it. A DNS message never reaches 4 GiB
/// (TCP's length prefix is 16 bits, and so is UDP's length field).
fn wire_size(bytes: &[u8]) -> u32 {
    u32::try_from(bytes.len()).unwrap_or(u32::MAX)
}

/// Ports of protocols that borrow the DNS wire format but are not DNS (NetBIOS name
/// service), never taken by the any-port heuristic.
const NOT_DNS_PORTS: [u16; 1] = [137];

/// Strict test for DNS on a port not known to carry it: one question, standard query
/// opcode, and the whole datagram decodes with no bytes left over.
fn looks_like_dns(payload: &[u8]) -> bool {
    if payload.len() < 17 || payload[4..6] != [0, 1] || (payload[2] >> 3) & 0x0f != 0 {
        return false;
    }
    use hickory_proto::serialize::binary::{BinDecodable, BinDecoder};
    let mut decoder = BinDecoder::new(payload);
    hickory_proto::op::Message::read(&mut decoder).is_ok() && decoder.is_empty()
}

impl Iterator for DnsReader<'_> {
    type Item = Result<DnsPacket, CaptureError>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Some(p) = self.queue.pop_front() {
            return Some(Ok(p));
        }
        self.fill().transpose()
    }
}
