//! Shared helpers for the end-to-end tests: network namespaces, the test cluster, the built
//! binaries.
//!
//! The network-namespace tests (`tests/netns_probe.rs`) need root and the Debian packages
//! that `tests/install-deps` installs; they fail with a message naming what is missing.
//! Run them with `cargo test -p dns-doctor-tests --test netns_probe`; they build the probe
//! binary themselves (or use the one named by `$DNS_DOCTOR_PROBE`).

/// The real test cluster: kubeconfig, kubectl for setup, fault switches, the plugin run.
pub mod cluster;
/// Commands with deadlines; the environment check.
pub mod cmd;
/// The namespaces topology: client, node (kube-proxy style DNAT), DNS server.
pub mod netns;
/// The probe binary and its modes, run for real.
pub mod probe;
/// What the suite's scripts run, and the list of commands install-deps installs.
pub mod scripts;
/// Tools built from their Go modules into a cache (actionlint).
pub mod tools;
