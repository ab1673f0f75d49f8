//! Rule: a capture holds no DNS message at all: it was taken where DNS does not pass, with a
//! filter that excludes it, or while nothing resolved. Nothing can be concluded from it.

use super::finding::{EvidenceRef, Finding, Severity};
use super::Context;
use crate::evidence::CaptureKind;

pub const ID: &str = "no-dns-traffic";

/// Where the client resolves, DNS must show: an empty capture there was taken wrongly.
const CAPTURE_AGAIN: &str = "Capture again with a filter such as `port 53` on the interface the pod's traffic crosses (tcpdump -i any inside the pod's network namespace), while the application resolves names.";
/// Further along the path, an empty capture means the queries did not get that far.
const NOT_REACHED: &str = "If the capture point is on the path of the pod's queries (its node, a DNS pod), they did not reach it: the captures closer to the pod show where they were last seen.";

pub fn rule(cx: &Context<'_>) -> Option<Finding> {
    let empty: Vec<_> = cx
        .captures
        .iter()
        .filter(|c| c.analysis.analysis.summary.dns_messages == 0)
        .collect();
    let first = empty.first()?;
    let summary = if empty.len() == 1 {
        format!(
            "no DNS message in the capture {} ({} frames)",
            first.name, first.analysis.stats.frames
        )
    } else {
        format!("{} captures hold no DNS message", empty.len())
    };
    Some(Finding {
        id: ID.into(),
        severity: Severity::Info,
        summary,
        evidence: empty
            .iter()
            .map(|c| {
                EvidenceRef::new(
                    c.source(),
                    format!(
                        "0 DNS messages in {} frames ({} not DNS)",
                        c.analysis.stats.frames, c.analysis.stats.non_dns_frames
                    ),
                )
            })
            .collect(),
        remediation: if empty.iter().any(|c| c.kind == CaptureKind::Pod) {
            vec![CAPTURE_AGAIN.into(), NOT_REACHED.into()]
        } else {
            vec![NOT_REACHED.into(), CAPTURE_AGAIN.into()]
        },
        loss_point: None,
        node_pair: None,
    })
}
