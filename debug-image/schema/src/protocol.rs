//! What the probe prints besides its JSON document, and which image it ships in: the
//! constants both sides must agree on byte for byte.

/// Printed on stderr by `dns-doctor-probe capture` once tcpdump has opened the interface
/// and installed its filter: traffic sent after it is captured.
pub const READY_LINE: &str = "dns-doctor-probe-ready";

/// Prefix of the summary line on stderr when the pcap itself goes to stdout; the rest of
/// the line is the compact JSON document.
pub const SUMMARY_PREFIX: &str = "dns-doctor-probe-summary: ";

/// The debug image this version of dns-doctor uses by default. The test harness tags the
/// image it builds with exactly this reference, so tests exercise the default.
pub const DEFAULT_IMAGE: &str = concat!("ghcr.io/dns-doctor/debug:v", env!("CARGO_PKG_VERSION"));
