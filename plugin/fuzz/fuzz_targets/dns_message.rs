//! Arbitrary bytes as a DNS message, and as a DNS-over-TCP stream cut into segments.
#![no_main]

use dns_doctor_fuzz::capture::dns::DnsMessage;
use dns_doctor_fuzz::capture::tcp::TcpReassembler;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = DnsMessage::parse(data);
    // The first byte picks segment sizes, so the same stream is split differently.
    let Some((&cut, stream)) = data.split_first() else {
        return;
    };
    let (src, dst) = (
        "192.0.2.1:40000".parse().unwrap(),
        "192.0.2.53:53".parse().unwrap(),
    );
    let mut r = TcpReassembler::new();
    let mut out = Vec::new();
    let step = usize::from(cut % 17) + 1;
    let mut seq = 1000u32;
    r.push(src, dst, seq - 1, true, false, &[], &mut out);
    for chunk in stream.chunks(step) {
        r.push(src, dst, seq, false, false, chunk, &mut out);
        seq = seq.wrapping_add(chunk.len() as u32);
    }
    for m in out {
        let _ = DnsMessage::parse(&m);
    }
});
