//! Reading packet captures and turning them into DNS transactions.
//!
//! The pipeline, each stage usable on its own:
//! [`CaptureReader`] (pcap/pcapng frames) → [`link::segment`] (UDP/TCP) →
//! [`DnsReader`] (DNS messages; TCP streams and IP fragments reassembled) →
//! [`Tracker`] (transactions, patterns, examples) and, across capture points,
//! [`correlate()`]. What the patterns mean is judged in `diagnose`, for a live run and for
//! `analyze` alike.
//! Everything is streaming and pure: the only I/O is reading the `Read` handed in.

pub mod correlate;
mod decimal;
pub mod dns;
pub mod extract;
pub mod histogram;
pub mod link;
pub mod reader;
pub mod tcp;
#[cfg(test)]
mod testdata;
pub mod time;
pub mod transaction_json;
pub mod transactions;

pub use correlate::{
    correlate, CapturePoint, CorrelateConfig, Correlation, Delivered, LostQuery, MatchKind,
    Sighting,
};
pub use dns::{DnsMessage, DnsPacket, Question};
pub use extract::{DnsReader, ExtractOptions, ExtractStats};
pub use link::Transport;
pub use reader::{CaptureError, CaptureFormat, CaptureReader};
pub use time::Timestamp;
pub use transactions::{Analysis, Outcome, Summary, Tracker, TrackerConfig, Transaction};

use std::io::Read;

/// The analysis of one capture file.
#[derive(Clone, Debug)]
pub struct CaptureAnalysis {
    /// Transactions, patterns, latency.
    pub analysis: Analysis,
    /// Frames and non-DNS traffic.
    pub stats: ExtractStats,
    /// DNS messages of clients outside [`ExtractOptions::clients`], left out.
    pub other_clients: u64,
    /// pcap or pcapng.
    pub format: CaptureFormat,
    /// Set when the file is damaged part-way (typically cut off while being written);
    /// everything before the damage was analysed.
    pub read_error: Option<String>,
}

/// Reads a whole capture, handing each finished transaction to `sink` as soon as it is
/// known. Fails only when the input is not a capture at all; damage after the header
/// ends the reading and is reported in [`CaptureAnalysis::read_error`].
pub fn analyze_capture<'r, R: Read + Send + 'r>(
    input: R,
    extract: ExtractOptions,
    config: TrackerConfig,
    sink: &mut dyn FnMut(Transaction),
) -> Result<CaptureAnalysis, CaptureError> {
    Ok(analyze_reader(
        CaptureReader::new(input)?,
        extract,
        config,
        sink,
    ))
}

/// [`analyze_capture`] for a capture that is already open (its header checked).
pub fn analyze_reader(
    reader: CaptureReader<'_>,
    extract: ExtractOptions,
    config: TrackerConfig,
    sink: &mut dyn FnMut(Transaction),
) -> CaptureAnalysis {
    let format = reader.format();
    let scope = ExtractOptions {
        clients: extract.clients.clone(),
        ..ExtractOptions::default()
    };
    let mut dns = DnsReader::from_capture(reader, extract);
    let mut tracker = Tracker::new(config);
    let mut read_error = None;
    let mut other_clients = 0;
    for item in dns.by_ref() {
        match item {
            Ok(p) if scope.keeps_client(&p) => tracker.observe(p, sink),
            Ok(_) => other_clients += 1,
            Err(e) => read_error = Some(e.to_string()),
        }
    }
    let analysis = tracker.finish(sink);
    CaptureAnalysis {
        analysis,
        stats: dns.stats(),
        other_clients,
        format,
        read_error,
    }
}
