//! Rule: a node's conntrack table is nearly full; new flows (DNS queries among them) are
//! dropped once it is.

use crate::node::conntrack::{
    conntrack_delta, parse_conntrack_fill, parse_conntrack_stats, ConntrackDelta,
};

use super::finding::{EvidenceRef, Finding, Severity};
use super::node_view::{
    NodeView, CONNTRACK_AFTER_KEY, CONNTRACK_BEFORE_KEY, CONNTRACK_COUNT_PATH, CONNTRACK_MAX_PATH,
};
use super::Context;

pub const ID: &str = "conntrack-table-near-full";

/// Fill ratio (count / max) from which the table counts as nearly full.
pub const NEAR_FULL: f64 = 0.9;

/// Counter changes between the node's two `conntrack -S` snapshots.
pub fn stats_delta(n: &NodeView<'_>) -> Option<ConntrackDelta> {
    let before = parse_conntrack_stats(&n.command(CONNTRACK_BEFORE_KEY)?.stdout).ok()?;
    let after = parse_conntrack_stats(&n.command(CONNTRACK_AFTER_KEY)?.stdout).ok()?;
    Some(conntrack_delta(&before, &after))
}

pub fn rule(cx: &Context<'_>) -> Option<Finding> {
    let mut evidence = Vec::new();
    let mut worst: f64 = 0.0;
    let mut nodes = Vec::new();
    for n in &cx.nodes {
        let (Some(count), Some(max)) = (n.file(CONNTRACK_COUNT_PATH), n.file(CONNTRACK_MAX_PATH))
        else {
            continue;
        };
        let Ok(fill) = parse_conntrack_fill(count, max) else {
            continue;
        };
        let Some(ratio) = fill.ratio() else { continue };
        if ratio < NEAR_FULL {
            continue;
        }
        worst = worst.max(ratio);
        nodes.push(n.node.to_string());
        evidence.push(EvidenceRef::new(
            n.source("nf_conntrack"),
            format!(
                "nf_conntrack_count {} of nf_conntrack_max {} ({:.0} %)",
                fill.count,
                fill.max,
                ratio * 100.0
            ),
        ));
        if let Some(d) = stats_delta(n) {
            evidence.push(EvidenceRef::new(
                n.source("conntrack-stats"),
                format!(
                    "conntrack -S over {} ms: drop +{}, early_drop +{}, insert_failed +{}",
                    n.snapshot.conntrack_window_ms,
                    d.drop(),
                    d.get("early_drop"),
                    d.insert_failed()
                ),
            ));
        }
    }
    if nodes.is_empty() {
        return None;
    }
    Some(Finding {
        id: ID.into(),
        severity: if worst >= 0.98 { Severity::Error } else { Severity::Warning },
        summary: format!(
            "the conntrack table on {} is {:.0} % full: new connections, DNS queries included, are dropped when it fills",
            nodes.join(", "),
            worst * 100.0
        ),
        evidence,
        remediation: vec![
            "Raise net.netfilter.nf_conntrack_max on the node (kube-proxy's conntrack.maxPerCore / min settings).".into(),
            "Find what creates so many flows (`conntrack -L | awk '{print $3}' | sort | uniq -c`), e.g. a UDP flood or short-lived connections.".into(),
            "Lower UDP conntrack timeouts (net.netfilter.nf_conntrack_udp_timeout) so finished DNS flows leave the table sooner; NodeLocal DNSCache also removes DNS flows from it.".into(),
        ],
        loss_point: None,
        node_pair: None,
    })
}
