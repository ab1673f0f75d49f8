//! dns-doctor: find out why DNS fails for a pod, say what to do, and hand over the packets.
//!
//! Data flows one way: `cli` → `plan`/`kube` → `capture`/`node`/`dns_config` → `diagnose` →
//! `report`. Only `kube` talks to the Kubernetes API; everything else is pure.

pub mod capture;
pub mod dns_config;
pub mod node;
