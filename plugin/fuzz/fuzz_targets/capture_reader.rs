//! Arbitrary bytes as a capture file: pcap/pcapng reading, link layers, IP, UDP, TCP
//! reassembly, DNS decoding, transaction tracking and the evidence lines of its pattern
//! examples must never panic or hang.
#![no_main]

use dns_doctor_fuzz::capture::{analyze_capture, ExtractOptions, TrackerConfig};
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
        let ex = &analysis.analysis.examples;
        for e in ex
            .lost
            .iter()
            .chain(&ex.five_second_retries)
            .chain(&ex.a_aaaa_one_missing)
            .chain(&ex.search_path)
            .chain(&ex.truncated_without_tcp)
            .chain(&ex.server_errors)
        {
            let _ = e.describe();
        }
        assert!(analysis.analysis.summary.transactions as usize == transactions);
    }
});
