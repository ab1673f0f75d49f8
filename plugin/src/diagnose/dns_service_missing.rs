//! Rule: no Service owns the cluster DNS address, so nothing behind it can answer.

use super::finding::{EvidenceRef, Finding, Severity};
use super::observed::describe_query;
use super::Context;

pub const ID: &str = "dns-service-missing";

pub fn rule(cx: &Context<'_>) -> Option<Finding> {
    let topo = cx.topology;
    if topo.dns_service.is_some() || topo.cluster_dns.ips.is_empty() {
        return None;
    }
    // A failed lookup (forbidden list) is not evidence that the Service is missing.
    if topo.gaps.iter().any(|g| g.contains("Service")) {
        return None;
    }
    // With NodeLocal DNSCache the kubelet hands out the cache's link-local address, which no
    // Service owns by design.
    if let Some(nl) = &topo.node_local_dns {
        if topo.cluster_dns.ips.contains(&nl.local_ip) {
            return None;
        }
    }
    let ips: Vec<String> = topo
        .cluster_dns
        .ips
        .iter()
        .map(|ip| ip.to_string())
        .collect();
    let ips = ips.join(", ");
    let mut evidence = vec![
        EvidenceRef::new(
            "api",
            format!(
                "cluster DNS address {ips} (from {:?}) is the ClusterIP of no Service",
                topo.cluster_dns.source
            ),
        ),
        EvidenceRef::new("check:dns-service", "no Service found by IP"),
    ];
    if let Some(o) = &cx.observed {
        evidence.extend(
            o.to_cluster_dns()
                .take(2)
                .map(|q| EvidenceRef::new("probe", describe_query(q))),
        );
    }
    Some(Finding {
        id: ID.into(),
        severity: Severity::Error,
        summary: format!("no Service owns the cluster DNS address {ips}: pods send DNS to an address nothing answers"),
        evidence,
        remediation: vec![
            format!("Recreate the DNS Service (kubeadm: kube-dns in kube-system, selector k8s-app=kube-dns, ports 53/UDP and 53/TCP) with spec.clusterIP {ips}."),
            "Or, if the DNS Service has a different ClusterIP on purpose, set the kubelet's clusterDNS (--cluster-dns) on every node to that IP and recreate the pods.".into(),
        ],
        loss_point: None,
        node_pair: None,
    })
}
