//! Streaming pcap / pcapng reader: one frame at a time, never the whole file in memory.
//!
//! pcap-parser does the format work (both byte orders, micro- and nanosecond pcap,
//! pcapng sections and interfaces); this module turns its block stream into frames that
//! carry a timestamp in nanoseconds and the link type of their own interface, and turns every
//! way a file can be broken into a typed error instead of a panic or an endless loop.

use super::time::Timestamp;
use pcap_parser::pcapng::Block;
use pcap_parser::traits::PcapReaderIterator;
use pcap_parser::{create_reader, Linktype, PcapBlockOwned, PcapError};
use std::io::{Cursor, Read};

/// Initial read buffer; large enough for any frame of a default 256 KiB snaplen once grown.
const INITIAL_BUFFER: usize = 64 * 1024;
/// A record larger than this is treated as corruption rather than read into memory: the
/// largest snap length tcpdump uses is 256 KiB, and growing the buffer step by step towards
/// a bogus multi-gigabyte length would cost time on every damaged file.
const MAX_BLOCK: usize = 1024 * 1024;

/// Why a capture could not be read (or could not be read to its end).
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    /// The underlying reader failed.
    #[error("reading the capture failed")]
    Io(#[from] std::io::Error),
    /// The input is empty.
    #[error("the file is empty")]
    Empty,
    /// The first bytes are neither a pcap header nor a pcapng section header block.
    #[error("not a pcap or pcapng capture (unrecognised header)")]
    NotACapture,
    /// The input ends in the middle of a record, e.g. a capture copied while being written.
    #[error("truncated: the file ends inside a record at byte {offset}")]
    Truncated {
        /// Byte offset of the incomplete record.
        offset: u64,
    },
    /// A record claims to be larger than any sane capture record.
    #[error("record at byte {offset} is larger than {MAX_BLOCK} bytes")]
    RecordTooLarge {
        /// Byte offset of the record.
        offset: u64,
    },
    /// A record could not be parsed.
    #[error("malformed record at byte {offset}: {reason}")]
    Malformed {
        /// Byte offset of the record.
        offset: u64,
        /// What the parser rejected.
        reason: String,
    },
}

/// Container format of a capture.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CaptureFormat {
    /// Classic libpcap format.
    Pcap,
    /// pcapng.
    PcapNg,
}

/// One captured frame, borrowed from the reader until the next call.
#[derive(Debug)]
pub struct Frame<'a> {
    /// 1-based frame number, counted the way tcpdump and tshark number packets.
    pub number: u64,
    /// Capture time.
    pub time: Timestamp,
    /// Link-layer type of the interface the frame was captured on.
    pub linktype: Linktype,
    /// Captured bytes (possibly fewer than were on the wire).
    pub data: &'a [u8],
    /// Length of the packet on the wire.
    pub orig_len: u32,
}

#[derive(Clone, Copy, Debug)]
struct Interface {
    linktype: Linktype,
    resolution: u64,
    offset_secs: i64,
}

/// Reads frames from a pcap or pcapng stream.
///
/// After an error the reader is finished: further calls return `Ok(None)`, so a caller can
/// keep what it read before the damage.
pub struct CaptureReader<'r> {
    inner: Box<dyn PcapReaderIterator + Send + 'r>,
    format: CaptureFormat,
    capacity: usize,
    offset: u64,
    frames: u64,
    skipped: u64,
    legacy: Option<Interface>,
    interfaces: Vec<Interface>,
    buf: Vec<u8>,
    finished: bool,
}

impl<'r> CaptureReader<'r> {
    /// Opens a capture, detecting pcap or pcapng from its first bytes.
    pub fn new<R: Read + Send + 'r>(mut input: R) -> Result<Self, CaptureError> {
        // Read the head fully so format detection never depends on how a short read splits it.
        let mut head = Vec::with_capacity(INITIAL_BUFFER);
        (&mut input)
            .take(INITIAL_BUFFER as u64)
            .read_to_end(&mut head)?;
        if head.is_empty() {
            return Err(CaptureError::Empty);
        }
        let format = if head.len() >= 4 && head[..4] == [0x0a, 0x0d, 0x0d, 0x0a] {
            CaptureFormat::PcapNg
        } else {
            CaptureFormat::Pcap
        };
        let inner =
            create_reader(INITIAL_BUFFER, Cursor::new(head).chain(input)).map_err(|e| match e {
                PcapError::HeaderNotRecognized => CaptureError::NotACapture,
                PcapError::Incomplete(_) | PcapError::UnexpectedEof | PcapError::Eof => {
                    CaptureError::Truncated { offset: 0 }
                }
                PcapError::ReadError => {
                    CaptureError::Io(std::io::Error::other("read of capture header failed"))
                }
                other => CaptureError::Malformed {
                    offset: 0,
                    reason: format!("{other:?}"),
                },
            })?;
        Ok(Self {
            inner,
            format,
            capacity: INITIAL_BUFFER,
            offset: 0,
            frames: 0,
            skipped: 0,
            legacy: None,
            interfaces: Vec::new(),
            buf: Vec::with_capacity(2048),
            finished: false,
        })
    }

    /// The container format.
    pub fn format(&self) -> CaptureFormat {
        self.format
    }

    /// Frames counted so far, including skipped ones.
    pub fn frames(&self) -> u64 {
        self.frames
    }

    /// Frames that could not be attributed to an interface (pcapng packets naming an
    /// interface that was never described); they are counted but not returned.
    pub fn skipped(&self) -> u64 {
        self.skipped
    }

    /// The next frame, `Ok(None)` at the end, or the error that ended the stream.
    pub fn next_frame(&mut self) -> Result<Option<Frame<'_>>, CaptureError> {
        if self.finished {
            return Ok(None);
        }
        match self.advance() {
            Ok(Some((time, linktype, orig_len))) => Ok(Some(Frame {
                number: self.frames,
                time,
                linktype,
                data: &self.buf,
                orig_len,
            })),
            Ok(None) => {
                self.finished = true;
                Ok(None)
            }
            Err(e) => {
                self.finished = true;
                Err(e)
            }
        }
    }

    /// Moves to the next packet record, copying its bytes into `self.buf`.
    fn advance(&mut self) -> Result<Option<(Timestamp, Linktype, u32)>, CaptureError> {
        loop {
            let before = self.inner.data().len();
            match self.inner.next() {
                Ok((0, _)) => {
                    return Err(CaptureError::Malformed {
                        offset: self.offset,
                        reason: "zero-length record".into(),
                    })
                }
                Ok((len, block)) => {
                    let packet = match block {
                        PcapBlockOwned::LegacyHeader(h) => {
                            self.legacy = Some(Interface {
                                linktype: h.network,
                                resolution: if h.is_nanosecond_precision() {
                                    1_000_000_000
                                } else {
                                    1_000_000
                                },
                                offset_secs: i64::from(h.thiszone),
                            });
                            None
                        }
                        PcapBlockOwned::Legacy(b) => {
                            self.frames += 1;
                            match self.legacy {
                                Some(i) => {
                                    self.buf.clear();
                                    self.buf.extend_from_slice(b.data);
                                    Some((
                                        Timestamp::from_parts(
                                            i64::from(b.ts_sec) + i.offset_secs,
                                            u64::from(b.ts_usec),
                                            i.resolution,
                                        ),
                                        i.linktype,
                                        b.origlen,
                                    ))
                                }
                                None => {
                                    self.skipped += 1;
                                    None
                                }
                            }
                        }
                        PcapBlockOwned::NG(Block::SectionHeader(_)) => {
                            // Interface ids are per section.
                            self.interfaces.clear();
                            None
                        }
                        PcapBlockOwned::NG(Block::InterfaceDescription(idb)) => {
                            self.interfaces.push(Interface {
                                linktype: idb.linktype,
                                resolution: idb.ts_resolution().unwrap_or(1_000_000),
                                offset_secs: idb.ts_offset(),
                            });
                            None
                        }
                        PcapBlockOwned::NG(Block::EnhancedPacket(epb)) => {
                            self.frames += 1;
                            match self.interfaces.get(epb.if_id as usize) {
                                Some(i) => {
                                    let ts = (u64::from(epb.ts_high) << 32) | u64::from(epb.ts_low);
                                    let secs = (ts / i.resolution) as i64;
                                    let time = Timestamp::from_parts(
                                        secs.saturating_add(i.offset_secs),
                                        ts % i.resolution,
                                        i.resolution,
                                    );
                                    let caplen = (epb.caplen as usize).min(epb.data.len());
                                    self.buf.clear();
                                    self.buf.extend_from_slice(&epb.data[..caplen]);
                                    Some((time, i.linktype, epb.origlen))
                                }
                                None => {
                                    self.skipped += 1;
                                    None
                                }
                            }
                        }
                        PcapBlockOwned::NG(Block::SimplePacket(spb)) => {
                            self.frames += 1;
                            match self.interfaces.first() {
                                Some(i) => {
                                    let len = (spb.origlen as usize).min(spb.data.len());
                                    self.buf.clear();
                                    self.buf.extend_from_slice(&spb.data[..len]);
                                    // Simple packet blocks carry no timestamp.
                                    Some((Timestamp::default(), i.linktype, spb.origlen))
                                }
                                None => {
                                    self.skipped += 1;
                                    None
                                }
                            }
                        }
                        PcapBlockOwned::NG(_) => None,
                    };
                    self.inner.consume(len);
                    self.offset += len as u64;
                    if packet.is_some() {
                        return Ok(packet);
                    }
                }
                Err(PcapError::Eof) => return Ok(None),
                Err(PcapError::Incomplete(_)) => {
                    self.inner.refill().map_err(|_| {
                        CaptureError::Io(std::io::Error::other("read of capture failed"))
                    })?;
                    // A refill that adds nothing to a full buffer means the record needs more room.
                    if self.inner.data().len() == before && !self.inner.reader_exhausted() {
                        self.grow()?;
                    }
                }
                Err(PcapError::BufferTooSmall) => self.grow()?,
                Err(PcapError::UnexpectedEof) => {
                    return Err(CaptureError::Truncated {
                        offset: self.offset,
                    })
                }
                Err(PcapError::ReadError) => {
                    return Err(CaptureError::Io(std::io::Error::other(
                        "read of capture failed",
                    )))
                }
                Err(e) => {
                    let reason = match e {
                        PcapError::NomError(_, kind) | PcapError::OwnedNomError(_, kind) => {
                            format!("{kind:?}")
                        }
                        PcapError::HeaderNotRecognized => "unrecognised block".into(),
                        _ => "unparseable".into(),
                    };
                    return Err(CaptureError::Malformed {
                        offset: self.offset,
                        reason,
                    });
                }
            }
        }
    }

    fn grow(&mut self) -> Result<(), CaptureError> {
        let next = self.capacity * 2;
        if next > MAX_BLOCK || !self.inner.grow(next) {
            return Err(CaptureError::RecordTooLarge {
                offset: self.offset,
            });
        }
        self.capacity = next;
        Ok(())
    }
}
