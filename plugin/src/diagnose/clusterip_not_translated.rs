//! Rule: the cluster has no kube-proxy, and nothing else translates the DNS ClusterIP on the
//! pod's node (no rule for it in iptables, nftables or IPVS): queries to the ClusterIP die
//! while the DNS pods answer directly. Where kube-proxy is deployed,
//! `kube-proxy-not-translating` speaks instead.

use super::data_plane::{data_plane, DataPlaneKind};
use super::finding::{EvidenceRef, Finding, Severity};
use super::node_view::{IPTABLES_KEYS, IPVSADM_KEY, NFT_RULESET_KEY};
use super::Context;

pub const ID: &str = "clusterip-not-translated";

pub fn rule(cx: &Context<'_>) -> Option<Finding> {
    let o = cx.observed.as_ref()?;
    let (udp, direct) = o.clusterip_dead_endpoints_alive()?;
    let plane = data_plane(cx)?;
    if plane.kind != DataPlaneKind::NoneVisible {
        return None;
    }
    let node = cx.target_node()?;
    let ips: Vec<String> = super::observed::cluster_dns_ips(cx.topology)
        .iter()
        .map(ToString::to_string)
        .collect();
    let ips = ips.join(", ");
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
    evidence.push(EvidenceRef::new(
        "api",
        "no kube-proxy: no pod labelled k8s-app=kube-proxy, no DaemonSet and no ConfigMap kube-system/kube-proxy",
    ));
    let read: Vec<&str> = IPTABLES_KEYS
        .iter()
        .chain([NFT_RULESET_KEY, IPVSADM_KEY].iter())
        .copied()
        .filter(|k| node.command(k).is_some())
        .collect();
    evidence.push(EvidenceRef::new(
        format!("node:{}", node.node),
        format!(
            "no rule translates {ips} in {} (no KUBE-SERVICES chain, no kube-proxy table, no IPVS service, no other DNAT for it)",
            read.join(", ")
        ),
    ));
    Some(Finding {
        id: ID.into(),
        severity: Severity::Error,
        summary: format!(
            "nothing translates the DNS ClusterIP {ips} on node {}: the cluster has no kube-proxy and no other rule for it; queries to it die while the DNS pods answer directly",
            node.node
        ),
        evidence,
        remediation: vec![
            "Deploy a service proxy: kube-proxy (kubeadm: `kubeadm init phase addon kube-proxy`), or the kube-proxy replacement of your network plugin (Cilium: `kubeProxyReplacement: true`).".into(),
            format!(
                "If an eBPF data plane is meant to translate ClusterIPs here, check its agent on {}: it does not handle {ips}:53 (Cilium: `cilium-dbg service list` in the agent pod lists the Services it translates).",
                node.node
            ),
        ],
        loss_point: Some(format!("node {}", node.node)),
        node_pair: None,
    })
}
