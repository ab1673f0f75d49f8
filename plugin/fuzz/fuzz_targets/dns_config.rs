//! Arbitrary text as a resolv.conf and as a Corefile, with the search expansion and the
//! Corefile views the diagnosis uses. None may panic or hang (the Corefile parser caps its
//! nesting, so deep braces must not exhaust the stack).
#![no_main]

use dns_doctor_fuzz::dns_config::{corefile, resolv_conf};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let rc = resolv_conf::parse_resolv_conf(&text);
    let _ = rc.candidates("a.b");
    let _ = resolv_conf::musl_search_candidates("x", rc.ndots, &rc.search);
    if let Ok(cf) = corefile::parse_corefile(&text) {
        for block in &cf.server_blocks {
            let _ = block.forward();
            let _ = block.cache();
            let _ = block.kubernetes_zones();
            let _ = block.serves_root();
        }
    }
});
