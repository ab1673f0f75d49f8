//! dns-doctor-probe: the measuring half of dns-doctor, run inside the debug image.
//!
//! The library exports the probe's modes (`pod`, `node`, `capture`) behind [`cli::main`],
//! which the binary calls. The JSON [`schema`] it prints lives in the platform-neutral
//! `dns-doctor-schema` crate, which the plugin links instead of this Linux-only one.

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

pub use dns_doctor_schema as schema;
pub use dns_doctor_schema::protocol::DEFAULT_IMAGE;

/// When the parallel A/AAAA rounds stop early: after this many lost a reply.
pub use net::ENOUGH_LOST_ROUNDS;
