//! Rule: kube-proxy's rules on a node send the DNS ClusterIP to endpoints other than the
//! ready endpoints of the EndpointSlices: stale rules (kube-proxy stopped updating them).
//!
//! How strong the evidence is depends on what the extra targets are. Rules that still name
//! pods no EndpointSlice lists any more are stale: an error. Rules that differ only by
//! endpoints whose readiness just changed (listed as not ready, or ready without a rule yet)
//! are also what every node shows for a second or two after a DNS pod restarts, until
//! kube-proxy's next sync: a warning, so that the restart's own finding (an OOM kill, a
//! crash loop) names the cause.

use std::collections::BTreeSet;
use std::net::IpAddr;

use crate::node::service::Protocol;

use super::finding::{EvidenceRef, Finding, Severity};
use super::Context;

pub const ID: &str = "kube-proxy-stale-rules";

pub fn rule(cx: &Context<'_>) -> Option<Finding> {
    let ready: BTreeSet<IpAddr> = cx.topology.ready_endpoint_ips().into_iter().collect();
    if ready.is_empty() {
        return None;
    }
    let listed: BTreeSet<IpAddr> = cx.topology.endpoints.iter().map(|e| e.ip).collect();
    let mut evidence = Vec::new();
    let mut gone_anywhere = false;
    let mut nodes = Vec::new();
    for n in &cx.nodes {
        for proto in [Protocol::Udp, Protocol::Tcp] {
            let eps = n.endpoints_for(proto);
            if eps.is_empty() {
                continue;
            }
            let programmed: BTreeSet<IpAddr> = eps.iter().map(|e| e.address).collect();
            if programmed == ready {
                continue;
            }
            let (unready, gone): (Vec<IpAddr>, Vec<IpAddr>) = programmed
                .difference(&ready)
                .partition(|i| listed.contains(i));
            let missing: Vec<String> = ready
                .difference(&programmed)
                .map(|i| i.to_string())
                .collect();
            gone_anywhere |= !gone.is_empty();
            if !nodes.contains(&n.node) {
                nodes.push(n.node);
            }
            let mut detail = format!("DNS ClusterIP ({proto}) is sent to");
            for e in &eps {
                detail.push_str(&format!(" {} [{}]", e.address, e.source));
            }
            if !gone.is_empty() {
                detail.push_str(&format!(
                    "; endpoints no EndpointSlice lists any more: {}",
                    join(&gone)
                ));
            }
            if !unready.is_empty() {
                detail.push_str(&format!(
                    "; endpoints the EndpointSlices list as not ready: {}",
                    join(&unready)
                ));
            }
            if !missing.is_empty() {
                detail.push_str(&format!(
                    "; ready endpoints without a rule: {}",
                    missing.join(", ")
                ));
            }
            let key = n
                .translations
                .iter()
                .find(|t| t.service.protocol == proto && !t.endpoints.is_empty())
                .map_or("iptables-save", |t| t.key);
            evidence.push(EvidenceRef::new(n.source(key), detail));
        }
    }
    if evidence.is_empty() {
        return None;
    }
    let ready_list: Vec<String> = ready.iter().map(|i| i.to_string()).collect();
    evidence.push(EvidenceRef::new(
        "api",
        format!(
            "ready endpoints in the EndpointSlices: {}",
            ready_list.join(", ")
        ),
    ));
    for n in &nodes {
        evidence.extend(kube_proxy_pods_on(cx.topology, n));
    }
    let node_list = nodes.join(", ");
    let (severity, summary) = if gone_anywhere {
        (
            Severity::Error,
            format!(
                "kube-proxy's rules on {node_list} translate the DNS ClusterIP to pods that no longer exist: the rules are stale"
            ),
        )
    } else {
        (
            Severity::Warning,
            format!(
                "kube-proxy's rules on {node_list} do not yet follow the DNS endpoints' latest readiness change: stale if it persists beyond kube-proxy's next sync"
            ),
        )
    };
    Some(Finding {
        id: ID.into(),
        severity,
        summary,
        evidence,
        remediation: vec![
            "Check that kube-proxy runs on those nodes and can reach the API server (its logs show failed watches); restart it so it resyncs its rules.".into(),
            "If kube-proxy was stopped on purpose, its leftover rules must be removed (`kube-proxy --cleanup`) or it must be started again.".into(),
        ],
        loss_point: None,
    })
}

fn join(ips: &[IpAddr]) -> String {
    ips.iter()
        .map(IpAddr::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// API evidence on the kube-proxy pods of `node`: phase, readiness, restarts.
pub fn kube_proxy_pods_on<'a>(
    topology: &'a crate::topology::Topology,
    node: &'a str,
) -> impl Iterator<Item = EvidenceRef> + 'a {
    topology
        .kube_proxy
        .pods
        .iter()
        .filter(move |p| p.node.as_deref() == Some(node))
        .map(move |p| {
            EvidenceRef::new(
                "api",
                format!(
                    "kube-proxy pod {} on {node}: phase {}, ready {}, {} restarts",
                    p.name, p.phase, p.ready, p.restarts
                ),
            )
        })
}
