//! Arbitrary bytes as a capture file: pcap/pcapng reading, link layers, IP, UDP, TCP
//! reassembly, DNS decoding, transaction tracking and findings must never panic or hang.
#![no_main]

use dns_doctor_fuzz::capture::{analyze_capture, findings, ExtractOptions, TrackerConfig};
use libfuzzer_sys::fuzz_target;
use std::io::Cursor;

fuzz_target!(|data: &[u8]| {
    let mut transactions = 0usize;
    if let Ok(analysis) = analyze_capture(
        Cursor::new(data),
        ExtractOptions::default(),
        TrackerConfig::default(),
        &mut |_| transactions += 1,
    ) {
        let _ = findings(&analysis);
        assert!(analysis.analysis.summary.transactions as usize == transactions);
    }
});
