//! A finding: one named cause or observation, with what it rests on and what to do.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Info,
    Warning,
    Error,
}

/// One piece of evidence a finding rests on: which check, which packets, which rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EvidenceRef {
    /// Where it came from: "probe", "capture:pod-web-0", "node:worker-1/iptables", "api", "logs:coredns-x".
    pub source: String,
    pub detail: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    /// Stable identifier scripts can match on, e.g. "dns-service-no-endpoints".
    pub id: String,
    pub severity: Severity,
    /// One line naming the cause.
    pub summary: String,
    pub evidence: Vec<EvidenceRef>,
    /// What to do, most likely fix first.
    pub remediation: Vec<String>,
    /// For packet loss: the last capture point where the lost queries were seen.
    #[serde(default)]
    pub loss_point: Option<String>,
    /// For loss between two nodes: the node the packets left and the node they never
    /// reached.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_pair: Option<NodePair>,
}

/// Two nodes, in the direction the lost packets travelled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodePair {
    /// The node the packets were last seen on.
    pub from: String,
    /// The node they were sent to and never reached.
    pub to: String,
}

impl EvidenceRef {
    pub fn new(source: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            source: source.into(),
            detail: detail.into(),
        }
    }
}

impl Severity {
    /// Upper-case label used in the text report.
    pub fn label(self) -> &'static str {
        match self {
            Self::Info => "INFO",
            Self::Warning => "WARNING",
            Self::Error => "ERROR",
        }
    }
}
