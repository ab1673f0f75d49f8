//! Rule: a capture could not be read to its end (typically copied or cut off while tcpdump
//! was still writing it). Everything before the damage was analysed; what came after is
//! missing from every other finding.

use super::finding::{EvidenceRef, Finding, Severity};
use super::Context;

pub const ID: &str = "capture-damaged";

pub fn rule(cx: &Context<'_>) -> Option<Finding> {
    let damaged: Vec<_> = cx
        .captures
        .iter()
        .filter_map(|c| Some((c, c.analysis.read_error.as_deref()?)))
        .collect();
    let (first, err) = damaged.first()?;
    let summary = if damaged.len() == 1 {
        format!(
            "the capture {} could not be read to its end: {err}",
            first.name
        )
    } else {
        format!("{} captures could not be read to their end", damaged.len())
    };
    Some(Finding {
        id: ID.into(),
        severity: Severity::Info,
        summary,
        evidence: damaged
            .iter()
            .map(|(c, err)| {
                EvidenceRef::new(
                    c.source(),
                    format!("{err}; {} frames read before the damage", c.analysis.stats.frames),
                )
            })
            .collect(),
        remediation: vec![
            "Take the capture again and let tcpdump exit cleanly (-c or -G/-W, or SIGINT) before copying the file.".into(),
        ],
        loss_point: None,
        node_pair: None,
    })
}
