//! Rule: kube-proxy's rules exist in both iptables backends on one node. The kernel runs
//! the legacy (x_tables) and the nft tables side by side, so a set left behind in one
//! backend by an older kube-proxy (or a node image switching `update-alternatives`)
//! keeps translating the DNS ClusterIP to whatever it last knew.

use super::finding::{EvidenceRef, Finding, Severity};
use super::Context;

pub const ID: &str = "iptables-legacy-and-nft";

pub fn rule(cx: &Context<'_>) -> Option<Finding> {
    let mut evidence = Vec::new();
    let mut differ = false;
    let mut nodes = Vec::new();
    for n in &cx.nodes {
        if n.hooked_in.len() < 2 {
            continue;
        }
        nodes.push(n.node.to_string());
        for key in &n.hooked_in {
            let eps: Vec<String> = n
                .translations
                .iter()
                .filter(|t| t.key == *key)
                .flat_map(|t| t.endpoints.iter().map(|e| e.address.to_string()))
                .collect();
            evidence.push(EvidenceRef::new(
                n.source(key),
                format!(
                    "kube-proxy chains hooked; DNS ClusterIP -> [{}]",
                    eps.join(", ")
                ),
            ));
        }
        let sets: Vec<Vec<String>> = n
            .hooked_in
            .iter()
            .map(|key| {
                let mut v: Vec<String> = n
                    .translations
                    .iter()
                    .filter(|t| t.key == *key)
                    .flat_map(|t| t.endpoints.iter().map(|e| e.address.to_string()))
                    .collect();
                v.sort();
                v.dedup();
                v
            })
            .collect();
        differ |= sets.windows(2).any(|w| w[0] != w[1]);
    }
    if nodes.is_empty() {
        return None;
    }
    Some(Finding {
        id: ID.into(),
        severity: if differ { Severity::Error } else { Severity::Warning },
        summary: format!(
            "kube-proxy's rules are in both iptables-legacy and iptables-nft on {}{}",
            nodes.join(", "),
            if differ {
                ", and they send the DNS ClusterIP to different endpoints"
            } else {
                ""
            }
        ),
        evidence,
        remediation: vec![
            "Find the backend kube-proxy uses now (its logs name it, and the node's `iptables --version` says legacy or nf_tables) and flush kube-proxy's chains from the other one (`iptables-legacy-save | grep KUBE` / `iptables-nft-save | grep KUBE`, then `kube-proxy --cleanup` with that backend, or reboot the node).".into(),
            "Make every component that writes iptables rules on the node (kube-proxy, the CNI, firewalls) use the same backend.".into(),
        ],
        loss_point: None,
        node_pair: None,
    })
}
