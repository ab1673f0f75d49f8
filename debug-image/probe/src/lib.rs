//! dns-doctor-probe: the measuring half of dns-doctor, run inside the debug image.
//!
//! The library exports the JSON [`schema`] shared with the plugin, and the probe's modes
//! (`pod`, `node`, `capture`) behind [`cli::main`], which the binary calls.

pub mod capture;
pub mod cgroup;
mod child;
pub mod cli;
pub mod dns;
pub mod libc_detect;
pub mod lifecycle;
mod net;
pub mod node;
pub mod output;
pub mod pcap_limit;
pub mod pod;
pub mod resolv;
pub mod schema;

/// When the parallel A/AAAA rounds stop early: after this many lost a reply.
pub use net::ENOUGH_LOST_ROUNDS;

/// The debug image this version of dns-doctor uses by default. The test harness tags the
/// image it builds with exactly this reference, so tests exercise the default.
pub const DEFAULT_IMAGE: &str = concat!("ghcr.io/dns-doctor/debug:v", env!("CARGO_PKG_VERSION"));
