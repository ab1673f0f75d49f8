//! Rule: queried directly, one DNS endpoint fails while the others answer. Through the
//! ClusterIP a share of lookups lands on it and fails.

use super::finding::{EvidenceRef, Finding, Severity};
use super::Context;

pub const ID: &str = "one-replica-broken";

pub fn rule(cx: &Context<'_>) -> Option<Finding> {
    let o = cx.observed.as_ref()?;
    let broken = o.broken_endpoints();
    if broken.is_empty() {
        return None;
    }
    let per = o.per_endpoint();
    let name_of = |ip: &std::net::IpAddr| cx.topology.endpoint_pod_name(ip);
    let evidence = per
        .iter()
        .map(|(ip, t)| {
            EvidenceRef::new(
                "check:endpoints-direct",
                format!("endpoint {ip} ({}): {t}", name_of(ip)),
            )
        })
        .collect();
    let names: Vec<String> = broken
        .iter()
        .map(|(ip, _)| format!("{} ({ip})", name_of(ip)))
        .collect();
    Some(Finding {
        id: ID.into(),
        severity: Severity::Error,
        summary: format!(
            "DNS replica {} does not answer while the other {} do: lookups the ClusterIP sends there fail",
            names.join(", "),
            per.len() - broken.len()
        ),
        evidence,
        remediation: vec![
            "Delete the broken DNS pod so its Deployment replaces it; read its logs first (`kubectl logs`) for the reason.".into(),
            "If it is Ready while not answering, give the DNS container a readiness probe that tests resolution (CoreDNS: the ready plugin on :8181), so a broken replica leaves the endpoints.".into(),
            "If the replica answers locally but not from other nodes, check the firewall / security group of its node for UDP and TCP 53 from the pod range.".into(),
        ],
        loss_point: None,
        node_pair: None,
    })
}
