//! What the probe prints besides its JSON document, the keys under which it records what
//! the plugin looks up, and which image it ships in: what both sides must agree on byte
//! for byte.

/// Printed on stderr by `dns-doctor-probe capture` once tcpdump has opened the interface
/// and installed its filter: traffic sent after it is captured.
pub const READY_LINE: &str = "dns-doctor-probe-ready";

/// Prefix of the summary line on stderr when the pcap itself goes to stdout; the rest of
/// the line is the compact JSON document.
pub const SUMMARY_PREFIX: &str = "dns-doctor-probe-summary: ";

/// The debug image this version of dns-doctor uses by default. The test harness tags the
/// image it builds with exactly this reference, so tests exercise the default.
pub const DEFAULT_IMAGE: &str = concat!("ghcr.io/dns-doctor/debug:v", env!("CARGO_PKG_VERSION"));

/// When a conntrack listing of a DNS Service address was taken: before and after the
/// conntrack window, so that the plugin sees which entries packets kept alive in between.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListingStage {
    Before,
    After,
}

/// The command key of the UDP conntrack listing of one DNS Service address, e.g.
/// `conntrack-dns-after@10.96.0.10:53`.
pub fn conntrack_dns_key(stage: ListingStage, service: std::net::SocketAddr) -> String {
    let stage = match stage {
        ListingStage::Before => "before",
        ListingStage::After => "after",
    };
    format!("conntrack-dns-{stage}@{service}")
}
