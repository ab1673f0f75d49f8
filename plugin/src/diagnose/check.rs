//! One step of the runbook as a checklist line: what was checked and how it came out.

use std::fmt;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckStatus {
    Pass,
    Warn,
    Fail,
    /// Not checked: the evidence was not collected (node checks off, step failed, ...).
    Skipped,
}

impl CheckStatus {
    /// Upper-case label used in the text report.
    pub fn label(self) -> &'static str {
        match self {
            Self::Pass => "PASS",
            Self::Warn => "WARN",
            Self::Fail => "FAIL",
            Self::Skipped => "SKIP",
        }
    }
}

impl fmt::Display for CheckStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Check {
    /// Stable identifier, e.g. "endpoints-present"; findings refer to it as `check:<id>`.
    pub id: String,
    /// The runbook step, phrased as what should hold.
    pub title: String,
    pub status: CheckStatus,
    /// One line saying what was seen.
    pub detail: String,
}

impl Check {
    pub fn new(id: &str, title: &str, status: CheckStatus, detail: impl Into<String>) -> Self {
        Self {
            id: id.to_string(),
            title: title.to_string(),
            status,
            detail: detail.into(),
        }
    }
}
