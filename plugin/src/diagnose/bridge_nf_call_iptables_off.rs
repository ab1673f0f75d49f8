//! Rule: bridged pod traffic bypasses iptables on a node (`br_netfilter` not loaded, or
//! `net.bridge.bridge-nf-call-iptables = 0`). A DNS pod's reply to a client on the same
//! bridge then skips conntrack's reverse translation: it arrives from the DNS pod's own
//! address instead of the ClusterIP the client asked, and the resolver drops it.

use dns_doctor_schema::Transport;

use super::finding::{EvidenceRef, Finding, Severity};
use super::node_view::BRIDGE_NF_CALL_IPTABLES_PATH;
use super::observed::Tally;
use super::Context;

pub const ID: &str = "bridge-nf-call-iptables-off";

pub fn rule(cx: &Context<'_>) -> Option<Finding> {
    let mut evidence = Vec::new();
    let mut nodes = Vec::new();
    for n in &cx.nodes {
        // Only a node whose pods sit on a Linux bridge and whose ClusterIPs kube-proxy
        // translates in iptables/nft is exposed.
        let bridged = n.command("ip-addr").is_some_and(|c| {
            c.stdout
                .lines()
                .any(|l| l.trim_start().starts_with("bridge "))
        });
        if !bridged || n.kube_proxy_hooked != Some(true) {
            continue;
        }
        let setting = n.file(BRIDGE_NF_CALL_IPTABLES_PATH);
        let off = match setting {
            Some(v) => v == "0",
            // Absent: br_netfilter is not loaded, bridged frames never reach iptables.
            None => n
                .snapshot
                .files
                .iter()
                .any(|f| f.path == BRIDGE_NF_CALL_IPTABLES_PATH && f.content.is_none()),
        };
        if !off {
            continue;
        }
        nodes.push(n.node.to_string());
        evidence.push(EvidenceRef::new(
            format!("node:{}/files", n.node),
            match setting {
                Some(v) => format!("{BRIDGE_NF_CALL_IPTABLES_PATH} = {v}"),
                None => format!(
                    "{BRIDGE_NF_CALL_IPTABLES_PATH} does not exist: br_netfilter is not loaded"
                ),
            },
        ));
    }
    if nodes.is_empty() {
        return None;
    }
    // It breaks lookups when the ClusterIP fails while the endpoints answer directly.
    let breaking = cx.observed.as_ref().is_some_and(|o| {
        let udp = o.cluster_dns_tally(Transport::Udp);
        let direct = Tally::of(o.to_endpoints());
        evidence.push(EvidenceRef::new(
            "check:queries",
            format!("UDP to the DNS ClusterIP: {udp}"),
        ));
        udp.failed() > 0 && direct.mostly_ok()
    });
    Some(Finding {
        id: ID.into(),
        severity: if breaking { Severity::Error } else { Severity::Warning },
        summary: format!(
            "bridged pod traffic bypasses iptables on {}: replies from a DNS pod on the same node are not translated back to the ClusterIP",
            nodes.join(", ")
        ),
        evidence,
        remediation: vec![
            "Load br_netfilter and enable it: `modprobe br_netfilter; sysctl -w net.bridge.bridge-nf-call-iptables=1` (and persist both in /etc/modules-load.d and /etc/sysctl.d).".into(),
        ],
        loss_point: None,
        node_pair: None,
    })
}
