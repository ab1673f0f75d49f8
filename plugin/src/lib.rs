//! dns-doctor: find out why DNS fails for a pod, say what to do, and hand over the packets.
//!
//! Data flows one way: `cli` → `plan`/`kube` → `capture`/`node`/`dns_config` → `diagnose` →
//! `report`. Only `kube` talks to the Kubernetes API; everything else is pure.

pub mod access;
pub mod analyze;
pub mod app;
pub mod capture;
pub mod cli;
pub mod complete;
pub mod diagnose;
pub mod dns_config;
pub mod doctor;
pub mod error;
pub mod evidence;
pub mod exit;
pub mod kube;
pub mod node;
pub mod plan;
pub mod printer;
pub mod private_fs;
pub mod progress;
pub mod report;
pub mod target;
pub mod topology;
