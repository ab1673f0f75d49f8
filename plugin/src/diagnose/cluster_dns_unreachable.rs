//! Fallback rule: the pod's queries to the cluster DNS fail, and no rule proved why. Keeps a
//! failing run from ever reading as healthy, and lists the runbook's remaining suspects.
//! Without the pod probe (`analyze`, or a run whose probe could not start) the pod's
//! capture stands in: queries it shows leaving that were never answered.

use dns_doctor_schema::Transport;

use super::finding::{EvidenceRef, Finding, Severity};
use super::{Context, PointAnalysis};

pub const ID: &str = "cluster-dns-unreachable";

/// The share of a capture's transactions left unanswered from which the loss is an error:
/// resolvers retry, but at this rate lookups fail often enough for applications to notice.
pub const CAPTURE_ERROR_SHARE: f64 = 0.01;

pub fn rule(cx: &Context<'_>, found: &[Finding]) -> Option<Finding> {
    let Some(o) = cx.observed.as_ref() else {
        return from_capture(cx.pod_capture()?, found);
    };
    let udp = o.cluster_dns_tally(Transport::Udp);
    let tcp = o.cluster_dns_tally(Transport::Tcp);
    let failed = udp.failed() + tcp.failed();
    if failed == 0 {
        return None;
    }
    let worst_found = found.iter().map(|f| f.severity).max();
    let all_failed = udp.sent + tcp.sent == failed;
    let severity = if all_failed {
        Severity::Error
    } else {
        Severity::Warning
    };
    if worst_found.is_some_and(|w| w >= severity) {
        return None;
    }
    let ips: Vec<String> = o.cluster_dns_ips().iter().map(|i| i.to_string()).collect();
    let mut evidence = vec![
        EvidenceRef::new("check:queries", format!("UDP to the cluster DNS: {udp}")),
        EvidenceRef::new("check:queries", format!("TCP to the cluster DNS: {tcp}")),
    ];
    for c in o.cluster_dns_connects() {
        evidence.push(EvidenceRef::new(
            "check:tcp-connect",
            format!(
                "TCP connect to {}: {} in {:.0} ms",
                c.target,
                super::checklist::connect_label(c.outcome),
                c.latency_ms
            ),
        ));
    }
    // No rule proved a cause: still say where the packets die, and what to check there.
    let place = super::loss_place::locate(cx);
    let headline = if all_failed {
        format!(
            "the pod gets no answer from the cluster DNS {}",
            ips.join(", ")
        )
    } else {
        format!(
            "{failed} of {} queries to the cluster DNS {} failed",
            udp.sent + tcp.sent,
            ips.join(", ")
        )
    };
    let summary = match &place {
        Some(p) => format!("{headline}: the queries die {}", p.place.words()),
        None => format!("{headline}, and no rule proved why"),
    };
    let mut remediation = Vec::new();
    if let Some(p) = &place {
        evidence.push(EvidenceRef::new("captures", p.seen.clone()));
        remediation.push(p.next.to_string());
    }
    remediation.extend([
        "Check that the node firewall and the security groups open the cluster IP range and the pod range for UDP and TCP 53, in particular between the pod's node and the DNS pods' nodes.".to_string(),
        "Check that kube-proxy runs on the pod's node and that its rules translate the DNS ClusterIP (run again without --no-node-checks to let dns-doctor compare them).".to_string(),
    ]);
    if cx.captures.is_empty() {
        remediation.push("Capture at the pod, its node and the DNS pods (run again without --no-capture) to find where the queries die.".into());
    }
    Some(Finding {
        id: ID.into(),
        severity,
        summary,
        evidence,
        remediation,
        loss_point: place.map(|p| p.point.unwrap_or_else(|| p.place.words().to_string())),
        node_pair: None,
    })
}

/// The capture-only branch: the pod's capture shows queries that were never answered. A
/// capture alone cannot say where they died, so the advice is to capture along the path.
fn from_capture(c: &PointAnalysis<'_>, found: &[Finding]) -> Option<Finding> {
    let s = &c.analysis.analysis.summary;
    if s.unanswered_transactions == 0 {
        return None;
    }
    let share = s.unanswered_transactions as f64 / s.transactions.max(1) as f64;
    let severity = if share >= CAPTURE_ERROR_SHARE {
        Severity::Error
    } else {
        Severity::Warning
    };
    if found.iter().any(|f| f.severity >= severity) {
        return None;
    }
    let mut evidence = vec![EvidenceRef::new(
        c.source(),
        format!(
            "{} of {} transactions unanswered ({} in flight when the capture ended, not counted)",
            s.unanswered_transactions, s.transactions, s.in_flight_at_end
        ),
    )];
    evidence.extend(
        c.analysis
            .analysis
            .examples
            .lost
            .iter()
            .map(|e| c.example(e)),
    );
    Some(Finding {
        id: ID.into(),
        severity,
        summary: format!(
            "{} of {} DNS queries ({:.1} %) in the capture were never answered",
            s.unanswered_transactions,
            s.transactions,
            share * 100.0
        ),
        evidence,
        remediation: vec![
            "Find where the queries die: capture at the pod's node and at the DNS pods as well (`kubectl dns-doctor pod/NAME` does this and follows each lost query across the points).".into(),
            "Check that the DNS pods are ready and that kube-proxy's rules send the DNS ClusterIP to live endpoints.".into(),
            "Check that no node firewall, NetworkPolicy or security group drops UDP or TCP port 53 between the pod, its node and the DNS pods.".into(),
        ],
        loss_point: None,
        node_pair: None,
    })
}
