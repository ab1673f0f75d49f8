//! Cutting a pcap stream at a byte limit without cutting a packet in half, so a capture
//! stopped by its size limit is still a valid file.

/// Length of the classic pcap file header.
const FILE_HEADER: usize = 24;
/// Length of a classic pcap record header.
const RECORD_HEADER: usize = 16;

/// Feeds on a pcap byte stream and lets through whole units (the file header, then whole
/// records) while they fit in the limit. A stream that is not classic pcap (pcapng, say) is
/// let through byte for byte up to the limit.
#[derive(Debug)]
pub struct PcapLimiter {
    limit: u64,
    passed: u64,
    pending: Vec<u8>,
    state: State,
    full: bool,
}

#[derive(Debug, Clone, Copy)]
enum State {
    /// Waiting for the magic number.
    Start,
    /// The file header is next; record fields are little-endian when true.
    FileHeader(bool),
    Records(bool),
    /// Not classic pcap: bytes pass unexamined.
    Opaque,
}

impl PcapLimiter {
    pub fn new(limit: u64) -> Self {
        Self {
            limit,
            passed: 0,
            pending: Vec::new(),
            state: State::Start,
            full: false,
        }
    }

    /// Bytes let through so far.
    pub fn passed(&self) -> u64 {
        self.passed
    }

    /// True once a unit did not fit: nothing more will pass.
    pub fn is_full(&self) -> bool {
        self.full
    }

    /// Takes the next chunk of the stream and returns the bytes that may be written.
    pub fn feed(&mut self, chunk: &[u8]) -> Vec<u8> {
        if self.full {
            return Vec::new();
        }
        if let State::Opaque = self.state {
            return self.pass_opaque(chunk);
        }
        self.pending.extend_from_slice(chunk);
        let mut out = Vec::new();
        loop {
            let unit = match self.state {
                State::Start => {
                    let Some(magic) = self.pending.get(..4) else {
                        break;
                    };
                    self.state = match magic_byte_order(magic) {
                        Some(little) => State::FileHeader(little),
                        None => State::Opaque,
                    };
                    continue;
                }
                State::Opaque => {
                    let rest = std::mem::take(&mut self.pending);
                    out.extend(self.pass_opaque(&rest));
                    break;
                }
                State::FileHeader(_) => FILE_HEADER,
                State::Records(little) => {
                    let Some(field) = self.pending.get(8..12) else {
                        break;
                    };
                    let bytes = [field[0], field[1], field[2], field[3]];
                    let captured = if little {
                        u32::from_le_bytes(bytes)
                    } else {
                        u32::from_be_bytes(bytes)
                    };
                    RECORD_HEADER.saturating_add(usize::try_from(captured).unwrap_or(usize::MAX))
                }
            };
            if self.pending.len() < unit {
                break;
            }
            let unit_len = u64::try_from(unit).unwrap_or(u64::MAX);
            if self.passed.saturating_add(unit_len) > self.limit {
                self.full = true;
                self.pending.clear();
                break;
            }
            out.extend(self.pending.drain(..unit));
            self.passed += unit_len;
            if let State::FileHeader(little) = self.state {
                self.state = State::Records(little);
            }
        }
        out
    }

    fn pass_opaque(&mut self, chunk: &[u8]) -> Vec<u8> {
        let room = usize::try_from(self.limit - self.passed).unwrap_or(usize::MAX);
        let take = chunk.len().min(room);
        self.passed += u64::try_from(take).unwrap_or(u64::MAX);
        if take < chunk.len() || self.passed == self.limit {
            self.full = true;
        }
        chunk[..take].to_vec()
    }
}

/// Byte order of the record fields from a pcap magic number (microsecond or nanosecond).
fn magic_byte_order(magic: &[u8]) -> Option<bool> {
    match magic {
        [0xd4, 0xc3, 0xb2, 0xa1] | [0x4d, 0x3c, 0xb2, 0xa1] => Some(true),
        [0xa1, 0xb2, 0xc3, 0xd4] | [0xa1, 0xb2, 0x3c, 0x4d] => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> Vec<u8> {
        let mut h = vec![0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0];
        h.extend_from_slice(&[0; 8]);
        h.extend_from_slice(&262_144u32.to_le_bytes());
        h.extend_from_slice(&1u32.to_le_bytes());
        h
    }

    fn record(len: u32, fill: u8) -> Vec<u8> {
        let mut r = vec![0u8; 8];
        r.extend_from_slice(&len.to_le_bytes());
        r.extend_from_slice(&len.to_le_bytes());
        r.extend(std::iter::repeat_n(fill, len as usize));
        r
    }

    fn stream() -> Vec<u8> {
        [header(), record(60, 1), record(100, 2), record(80, 3)].concat()
    }

    #[test]
    fn everything_passes_under_the_limit_whatever_the_chunking() {
        let whole = stream();
        for chunk in [1, 7, 16, 24, 1000] {
            let mut limiter = PcapLimiter::new(1 << 20);
            let out: Vec<u8> = whole.chunks(chunk).flat_map(|c| limiter.feed(c)).collect();
            assert_eq!(out, whole, "chunk size {chunk}");
            assert!(!limiter.is_full());
        }
    }

    #[test]
    fn the_limit_cuts_between_records() {
        let whole = stream();
        // Header (24) + first record (76) + second (116) = 216; the third (96) does not fit.
        let mut limiter = PcapLimiter::new(250);
        let out: Vec<u8> = whole.chunks(10).flat_map(|c| limiter.feed(c)).collect();
        assert_eq!(out, whole[..216]);
        assert_eq!(limiter.passed(), 216);
        assert!(limiter.is_full());
        assert!(limiter.feed(&record(10, 9)).is_empty());
    }

    #[test]
    fn big_endian_files_are_understood() {
        let mut h = vec![0xa1, 0xb2, 0xc3, 0xd4];
        h.extend_from_slice(&[0; 20]);
        let mut r = vec![0u8; 8];
        r.extend_from_slice(&4u32.to_be_bytes());
        r.extend_from_slice(&4u32.to_be_bytes());
        r.extend_from_slice(&[7; 4]);
        let whole = [h, r.clone(), r].concat();
        let mut limiter = PcapLimiter::new(24 + 20);
        assert_eq!(limiter.feed(&whole), whole[..44]);
        assert!(limiter.is_full());
    }

    #[test]
    fn other_formats_are_cut_at_the_byte_limit() {
        let mut limiter = PcapLimiter::new(10);
        let out = limiter.feed(&[0x0a, 0x0d, 0x0d, 0x0a, 1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(out.len(), 10);
        assert!(limiter.is_full());
    }
}
