//! Rule: the DNS Service exists but nothing ready stands behind it.

use super::finding::{EvidenceRef, Finding, Severity};
use super::observed::describe_query;
use super::Context;

pub const ID: &str = "dns-service-no-endpoints";

/// Fires when the Service has no ready endpoint and no DNS pod exists that could become one
/// (pods that exist but fail are `dns-pods-*`, the more precise cause).
pub fn rule(cx: &Context<'_>) -> Option<Finding> {
    let svc = cx.topology.dns_service.as_ref()?;
    if !cx.topology.ready_endpoint_ips().is_empty() {
        return None;
    }
    if super::dns_pods_not_ready::failing_pods(cx.topology)
        .next()
        .is_some()
    {
        return None;
    }
    let not_ready = cx.topology.endpoints.iter().filter(|e| !e.ready).count();
    let mut evidence = vec![EvidenceRef::new(
        "check:endpoints-present",
        format!(
            "EndpointSlices of {}/{}: 0 ready endpoints, {not_ready} not ready; {} DNS pods found",
            svc.namespace,
            svc.name,
            cx.topology.dns_pods.len()
        ),
    )];
    if let Some(o) = &cx.observed {
        evidence.extend(
            o.to_cluster_dns()
                .take(2)
                .map(|q| EvidenceRef::new("probe", describe_query(q))),
        );
    }
    let selector: Vec<String> = svc
        .selector
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let selector = selector.join(",");
    Some(Finding {
        id: ID.into(),
        severity: Severity::Error,
        summary: format!(
            "the DNS Service {}/{} ({}) has no ready endpoints: no DNS pod is running behind it",
            svc.namespace, svc.name, svc.cluster_ip
        ),
        evidence,
        remediation: vec![
            format!(
                "Start the DNS pods: check the DNS Deployment in {} (replicas > 0, e.g. `kubectl -n {} scale deployment coredns --replicas=2`) and why its pods are not created (events, quota, scheduling).",
                svc.namespace, svc.namespace
            ),
            format!("Check that the Service selector ({selector}) matches the DNS pods' labels."),
        ],
        loss_point: None,
        node_pair: None,
    })
}
