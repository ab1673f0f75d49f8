//! Rule: queries to the DNS ClusterIP go unanswered while the DNS endpoints answer when asked
//! directly, and the pod's node shows why: kube-proxy's rules for the ClusterIP are missing
//! (flushed, never written) or kube-proxy is not running there.

use super::finding::{EvidenceRef, Finding, Severity};
use super::Context;

pub const ID: &str = "kube-proxy-not-translating";

pub fn rule(cx: &Context<'_>) -> Option<Finding> {
    let o = cx.observed.as_ref()?;
    let (udp, direct) = o.clusterip_dead_endpoints_alive()?;
    let node = cx.topology.target.node.as_deref()?;
    // No kube-proxy anywhere: the cluster's service data plane is something else (an eBPF
    // replacement such as Cilium's); missing iptables rules prove nothing about it.
    if cx.topology.kube_proxy.absent_by_design()
        && cx.nodes.iter().all(|n| n.kube_proxy_hooked != Some(true))
    {
        return None;
    }
    let mut evidence = vec![EvidenceRef::new(
        "check:queries",
        format!("UDP to the DNS ClusterIP: {udp}"),
    )];
    if direct.sent > 0 {
        evidence.push(EvidenceRef::new(
            "check:endpoints-direct",
            format!("the same queries straight to the DNS endpoints: {direct}"),
        ));
    }
    // Rules that do translate the ClusterIP make this a stale-rules case, not this one.
    if cx
        .target_node()
        .is_some_and(|n| n.translations.iter().any(|t| !t.endpoints.is_empty()))
    {
        return None;
    }
    let mut confirmed = Vec::new();
    let proxies: Vec<_> = cx
        .topology
        .kube_proxy
        .pods
        .iter()
        .filter(|p| p.node.as_deref() == Some(node))
        .collect();
    match proxies.first() {
        Some(p) if p.phase != "Running" || !p.ready => confirmed.push(EvidenceRef::new(
            "api",
            format!(
                "kube-proxy pod {} on {node}: phase {}, ready {}, {} restarts",
                p.name, p.phase, p.ready, p.restarts
            ),
        )),
        None if !cx.topology.kube_proxy.pods.is_empty() => confirmed.push(EvidenceRef::new(
            "api",
            format!("no kube-proxy pod on node {node}, while other nodes run one"),
        )),
        _ => {}
    }
    if let Some(n) = cx.target_node() {
        match n.kube_proxy_hooked {
            Some(false) => confirmed.push(EvidenceRef::new(
                n.source("iptables-save"),
                "no KUBE-SERVICES chain hooked into nat PREROUTING in either iptables backend: kube-proxy's rules are flushed or were never written",
            )),
            Some(true) => {
                let missing = n
                    .translations
                    .iter()
                    .filter(|t| t.endpoints.is_empty() && t.no_endpoints_rule.is_none());
                for t in missing {
                    confirmed.push(EvidenceRef::new(
                        n.source(t.key),
                        format!("no kube-proxy rule translates {}", t.service),
                    ));
                }
            }
            None => {}
        }
        if let Some(h) = n.http(super::node_view::HEALTHZ_KEY) {
            if h.status != Some(200) {
                confirmed.push(EvidenceRef::new(
                    n.source(super::node_view::HEALTHZ_KEY),
                    format!(
                        "kube-proxy {} answered {}",
                        h.url,
                        h.status.map_or_else(
                            || h.error.clone().unwrap_or_else(|| "nothing".into()),
                            |s| format!("HTTP {s}")
                        )
                    ),
                ));
            }
        }
    }
    if confirmed.is_empty() {
        return None;
    }
    evidence.extend(confirmed);
    Some(Finding {
        id: ID.into(),
        severity: Severity::Error,
        summary: format!(
            "kube-proxy is not translating the DNS ClusterIP on node {node}: queries to the ClusterIP die while the DNS pods answer directly"
        ),
        evidence,
        remediation: vec![
            format!("Check kube-proxy on {node}: `kubectl -n kube-system get pods -l k8s-app=kube-proxy -o wide` and its logs; restart it so it rewrites its rules."),
            "If something flushes iptables on the node (a firewall service, a provisioning script), stop it or make it keep the KUBE-* chains.".into(),
            "Make sure kube-proxy's mode and the iptables backend (legacy or nft) match what the node's other tools use.".into(),
        ],
        loss_point: Some(format!("node {node}")),
        node_pair: None,
    })
}
