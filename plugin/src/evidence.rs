//! What a run measured: probe documents, node snapshots and capture files, as plain values
//! filled by `kube::execute` and read by `diagnose` and `report`.

use std::path::PathBuf;

use dns_doctor_schema::{CaptureSummary, NodeSnapshot, PodReport};
use serde::{Deserialize, Serialize};

/// Everything collected in the measure step.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Evidence {
    /// The pod probe run in the target pod's network namespace.
    #[serde(default)]
    pub pod_probe: Option<PodReport>,
    /// Upstream queries made from inside each DNS pod's network namespace.
    #[serde(default)]
    pub upstream_probes: Vec<UpstreamProbe>,
    /// Node snapshots (rules, counters, sysctls), one per node checked.
    #[serde(default)]
    pub nodes: Vec<NodeEvidence>,
    /// Packet captures, one per capture point.
    #[serde(default)]
    pub captures: Vec<CapturePoint>,
    /// Steps that failed or were skipped, and why; the report shows them.
    #[serde(default)]
    pub step_errors: Vec<StepError>,
    /// Ephemeral containers this run added; they stay in the pod specs.
    #[serde(default)]
    pub ephemeral_containers: Vec<EphemeralLeft>,
}

/// The upstream resolvers queried from one DNS pod's network namespace.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UpstreamProbe {
    /// namespace/name of the DNS pod.
    pub dns_pod: String,
    pub report: PodReport,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeEvidence {
    pub node: String,
    pub snapshot: NodeSnapshot,
}

/// Where a capture was taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CaptureKind {
    /// Inside the target pod's network namespace.
    Pod,
    /// On a node, all interfaces (bridge, veths, uplink).
    Node,
    /// Inside a DNS pod's network namespace.
    DnsPod,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CapturePoint {
    /// Stable name, also the pcap's file stem: "pod-web-0", "node-worker-1", "dns-coredns-abc".
    pub name: String,
    pub kind: CaptureKind,
    /// The pcap in the evidence bundle (or a temporary directory).
    #[serde(default)]
    pub file: Option<PathBuf>,
    #[serde(default)]
    pub bytes: u64,
    #[serde(default)]
    pub summary: Option<CaptureSummary>,
    #[serde(default)]
    pub error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepError {
    pub step: String,
    pub error: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EphemeralLeft {
    /// namespace/name of the pod.
    pub pod: String,
    pub container: String,
    /// Confirmed terminated before the run ended.
    pub terminated: bool,
}
