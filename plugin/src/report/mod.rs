//! The report: one versioned value built from the topology, the evidence and the diagnosis,
//! rendered as text ([`render_text`]), JSON ([`render_json`]) or YAML ([`render_yaml`]), and
//! written with the raw evidence into the bundle directory ([`bundle`]).
//!
//! The JSON/YAML shape is documented in docs/report-schema.md. Fields are only added (with
//! a default, so older reports still read); renaming, removing or changing the meaning of a
//! field bumps [`SCHEMA_VERSION`].

pub mod bundle;
mod ladder;
mod text;

use std::io::{self, Write};
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::diagnose::data_plane::DataPlane;
use crate::diagnose::{Check, Diagnosis, Finding, PacketLadder};
use crate::evidence::{CaptureKind, EphemeralLeft, Evidence, StepError};
use crate::exit::Outcome;
use crate::topology::Topology;

pub use text::render_text;

/// Version of the report's JSON/YAML schema.
pub const SCHEMA_VERSION: u32 = 1;

/// What the run concluded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Every check that ran is healthy and the pod probe ran.
    Healthy,
    /// At least one warning or error finding.
    ProblemsFound,
    /// No problem found, but the pod probe did not run, so health is not shown.
    Incomplete,
}

impl Verdict {
    /// The process outcome this verdict maps to (exit code 0, 1 or 2).
    pub fn outcome(self) -> Outcome {
        match self {
            Self::Healthy => Outcome::Healthy,
            Self::ProblemsFound => Outcome::ProblemsFound,
            Self::Incomplete => Outcome::CouldNotRun,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Self::Healthy => "HEALTHY",
            Self::ProblemsFound => "PROBLEMS FOUND",
            Self::Incomplete => "INCOMPLETE",
        }
    }
}

/// The pod the run was about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetInfo {
    pub namespace: String,
    pub name: String,
    #[serde(default)]
    pub node: Option<String>,
    pub dns_policy: String,
    /// The container examined (-c, else the default-container annotation, else the first):
    /// the probe shares its processes, and `libc` is its libc.
    #[serde(default)]
    pub container: Option<String>,
    /// The workload (`deployment/web`) the pod was chosen from, when one was named.
    #[serde(default)]
    pub chosen_from: Option<String>,
    /// glibc, musl, static (a static executable: no libc resolves its names), unknown or
    /// not_visible; None when the pod probe did not run.
    #[serde(default)]
    pub libc: Option<String>,
}

/// The cluster DNS as discovered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterDnsSummary {
    pub ips: Vec<IpAddr>,
    /// kubelet_configz, pod_resolv_conf, kube_dns_service or unknown.
    pub source: String,
    /// namespace/name of the Service owning the IP, if found.
    #[serde(default)]
    pub service: Option<String>,
    pub ready_endpoints: Vec<IpAddr>,
}

/// One capture point and its file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaptureEntry {
    pub name: String,
    pub kind: CaptureKind,
    /// The pcap's path (in the bundle when one was written).
    #[serde(default)]
    pub file: Option<String>,
    pub bytes: u64,
    #[serde(default)]
    pub error: Option<String>,
}

/// How long the run took.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timings {
    pub total_ms: u64,
    /// From start until the findings were known (before cleanup and bundle writing).
    pub time_to_verdict_ms: u64,
}

/// What the caller knows about the run and the report cannot derive.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunInfo {
    pub tool_version: String,
    /// The plan chosen: "ephemeral_capture", "node_capture", "probe_only" or "api_only".
    pub strategy: String,
    /// Why that plan (what preflight allowed or refused).
    pub strategy_reason: String,
    pub timings: Timings,
    /// The evidence bundle directory, when one is written.
    pub bundle_dir: Option<String>,
}

/// The whole report, as written by `-o json|yaml` and into report.json.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub schema_version: u32,
    pub tool_version: String,
    pub target: TargetInfo,
    pub verdict: Verdict,
    /// The process exit code for this verdict: 0 healthy, 1 problems found, 2 incomplete.
    pub exit_code: u8,
    /// The root cause's summary, or a sentence saying all is well / what is missing.
    pub headline: String,
    pub strategy: String,
    pub strategy_reason: String,
    pub cluster_dns: ClusterDnsSummary,
    /// The service data plane that translates ClusterIPs on the target's node, as seen.
    #[serde(default)]
    pub data_plane: Option<DataPlane>,
    /// Root cause first.
    pub findings: Vec<Finding>,
    pub checklist: Vec<Check>,
    pub lost_queries: Vec<PacketLadder>,
    /// Each name as the pod's applications look it up: answer, wall time, verdict.
    #[serde(default)]
    pub lookups: Vec<crate::diagnose::app_lookup::AppLookup>,
    pub capture_points: Vec<CaptureEntry>,
    /// Ephemeral containers this run added: they stay in the pod specs.
    pub ephemeral_containers: Vec<EphemeralLeft>,
    pub timings: Timings,
    pub step_errors: Vec<StepError>,
    /// Discovery steps that could not be done, and why.
    #[serde(default)]
    pub discovery_gaps: Vec<String>,
    /// The evidence bundle directory (pcaps, node snapshots, report.json), if written.
    #[serde(default)]
    pub bundle_dir: Option<String>,
}

impl Report {
    pub fn new(
        topology: &Topology,
        evidence: &Evidence,
        diagnosis: Diagnosis,
        run: RunInfo,
    ) -> Self {
        let verdict = if diagnosis.has_problems() {
            Verdict::ProblemsFound
        } else if evidence.pod_probe.is_none() {
            Verdict::Incomplete
        } else {
            Verdict::Healthy
        };
        let headline = match (verdict, diagnosis.root_cause()) {
            (_, Some(f)) => f.summary.clone(),
            (Verdict::Incomplete, None) => {
                "the pod probe did not run, so DNS from the pod was not tested".to_string()
            }
            _ => "DNS works from this pod: every check passed".to_string(),
        };
        let t = &topology.target;
        let libc = evidence.pod_probe.as_ref().and_then(|p| {
            serde_json::to_value(p.libc.kind)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
        });
        let source = serde_json::to_value(topology.cluster_dns.source)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        Self {
            schema_version: SCHEMA_VERSION,
            tool_version: run.tool_version,
            target: TargetInfo {
                namespace: t.namespace.clone(),
                name: t.name.clone(),
                node: t.node.clone(),
                dns_policy: t.dns_policy.clone(),
                container: t.containers.first().cloned(),
                chosen_from: topology.chosen_from.clone(),
                libc,
            },
            verdict,
            exit_code: verdict.outcome().code(),
            headline,
            strategy: run.strategy,
            strategy_reason: run.strategy_reason,
            cluster_dns: ClusterDnsSummary {
                ips: topology.cluster_dns.ips.clone(),
                source,
                service: topology
                    .dns_service
                    .as_ref()
                    .map(|s| format!("{}/{}", s.namespace, s.name)),
                ready_endpoints: topology.ready_endpoint_ips(),
            },
            data_plane: diagnosis.data_plane,
            findings: diagnosis.findings,
            checklist: diagnosis.checklist,
            lost_queries: diagnosis.lost_queries,
            lookups: diagnosis.lookups,
            capture_points: evidence
                .captures
                .iter()
                .map(|c| CaptureEntry {
                    name: c.name.clone(),
                    kind: c.kind,
                    file: c.file.as_ref().map(|f| f.display().to_string()),
                    bytes: c.bytes,
                    error: c.error.clone(),
                })
                .collect(),
            ephemeral_containers: evidence.ephemeral_containers.clone(),
            timings: run.timings,
            step_errors: evidence.step_errors.clone(),
            discovery_gaps: topology.gaps.clone(),
            bundle_dir: run.bundle_dir,
        }
    }
}

/// Writes the report as pretty JSON, with a final newline.
pub fn render_json(report: &Report, out: &mut dyn Write) -> io::Result<()> {
    serde_json::to_writer_pretty(&mut *out, report)?;
    out.write_all(b"\n")
}

/// Writes the report as YAML.
pub fn render_yaml(report: &Report, out: &mut dyn Write) -> io::Result<()> {
    serde_norway::to_writer(&mut *out, report).map_err(io::Error::other)
}

#[cfg(test)]
mod tests;
