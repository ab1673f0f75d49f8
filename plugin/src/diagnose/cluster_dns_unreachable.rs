//! Fallback rule: the pod's queries to the cluster DNS fail, and no rule proved why. Keeps a
//! failing run from ever reading as healthy, and lists the runbook's remaining suspects.

use dns_doctor_probe::schema::Transport;

use super::finding::{EvidenceRef, Finding, Severity};
use super::Context;

pub const ID: &str = "cluster-dns-unreachable";

pub fn rule(cx: &Context<'_>, found: &[Finding]) -> Option<Finding> {
    let o = cx.observed.as_ref()?;
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
    Some(Finding {
        id: ID.into(),
        severity,
        summary: if all_failed {
            format!("the pod gets no answer from the cluster DNS {}, and no single cause was proven", ips.join(", "))
        } else {
            format!("{failed} of {} queries to the cluster DNS {} failed", udp.sent + tcp.sent, ips.join(", "))
        },
        evidence,
        remediation: vec![
            "Check that the node firewall and the security groups open the cluster IP range and the pod range for UDP and TCP 53, in particular between the pod's node and the DNS pods' nodes.".into(),
            "Check that kube-proxy runs on the pod's node and that its rules translate the DNS ClusterIP (run again without --no-node-checks to let dns-doctor compare them).".into(),
            "Capture at the pod, its node and the DNS pods (run again without --no-capture) to find where the queries die.".into(),
        ],
        loss_point: None,
    })
}
