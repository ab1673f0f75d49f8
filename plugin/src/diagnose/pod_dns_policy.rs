//! Rule: the pod's dnsPolicy or dnsConfig sends its lookups somewhere other than the
//! cluster DNS, so cluster names do not resolve for it.

use super::finding::{EvidenceRef, Finding, Severity};
use super::observed::Tally;
use super::Context;

pub const ID: &str = "pod-dns-policy-bypasses-cluster-dns";

pub fn rule(cx: &Context<'_>) -> Option<Finding> {
    let t = &cx.topology.target;
    let cluster_ips = super::observed::cluster_dns_ips(cx.topology);
    let mut cluster_like: Vec<String> = cluster_ips.iter().map(|i| i.to_string()).collect();
    cluster_like.extend(
        cx.topology
            .node_local_dns
            .iter()
            .map(|n| n.local_ip.to_string()),
    );
    let why = match (t.dns_policy.as_str(), t.host_network) {
        ("Default", _) => "dnsPolicy Default: the pod uses its node's resolv.conf, not the cluster DNS".to_string(),
        ("ClusterFirst", true) => "hostNetwork with dnsPolicy ClusterFirst: Kubernetes falls back to the node's resolv.conf (ClusterFirstWithHostNet is needed)".to_string(),
        ("None", _) => {
            let ns = t.dns_config.as_ref().map(|c| c.nameservers.clone()).unwrap_or_default();
            if ns.iter().any(|n| cluster_like.contains(n)) {
                return None;
            }
            format!(
                "dnsPolicy None with nameservers [{}], none of them the cluster DNS ({})",
                ns.join(", "),
                cluster_like.join(", ")
            )
        }
        _ => return None,
    };
    if let Some(design) = cx.topology.bypasses_cluster_dns_by_design() {
        // Not a fault: say so, and let the upstream checks speak for this pod.
        return Some(Finding {
            id: ID.into(),
            severity: Severity::Info,
            summary: format!("the pod does not use the cluster DNS, by design: {design}"),
            evidence: vec![EvidenceRef::new(
                "api",
                format!("pod {}/{}: {why}", t.namespace, t.name),
            )],
            remediation: vec![
                "Nothing to change in its dnsPolicy; what matters for this pod is that its own nameservers (the node's resolv.conf, the upstream) answer external names.".into(),
            ],
            loss_point: None,
            node_pair: None,
        });
    }
    let mut evidence = vec![EvidenceRef::new(
        "api",
        format!("pod {}/{}: {why}", t.namespace, t.name),
    )];
    let mut cluster_names_fail = false;
    if let Some(o) = &cx.observed {
        let via_ns = Tally::of(o.to_nameservers().filter(|q| o.is_cluster_name(&q.qname)));
        let resolved = o
            .to_nameservers()
            .filter(|q| o.is_cluster_name(&q.qname))
            .any(|q| q.rcode.as_deref() == Some("NOERROR") && !q.answers.is_empty());
        // What the applications get decides: a cluster name whose lookup fails or is wrong.
        let apps_fail = cx.lookups.iter().any(|l| {
            crate::dns_config::names::is_cluster_name(&l.name, &cx.topology.cluster_dns.domain)
                && matches!(
                    l.verdict,
                    super::app_lookup::LookupVerdict::Fails
                        | super::app_lookup::LookupVerdict::Wrong
                )
        });
        cluster_names_fail = (via_ns.sent > 0 && !resolved) || apps_fail;
        evidence.push(EvidenceRef::new(
            "check:queries",
            format!(
                "cluster names via the pod's own nameservers: {}",
                if cluster_names_fail {
                    "not resolved"
                } else {
                    "resolved"
                }
            ),
        ));
        let via_cluster = o.cluster_dns_names_tally(true);
        if via_cluster.sent > 0 {
            evidence.push(EvidenceRef::new(
                "check:queries",
                format!("cluster names via the cluster DNS itself: {via_cluster}"),
            ));
        }
    }
    Some(Finding {
        id: ID.into(),
        severity: if cluster_names_fail { Severity::Error } else { Severity::Warning },
        summary: format!("the pod does not use the cluster DNS: {why}"),
        evidence,
        remediation: vec![
            "Use dnsPolicy ClusterFirst (ClusterFirstWithHostNet for hostNetwork pods) unless the pod must not resolve cluster names.".into(),
            format!(
                "With dnsPolicy None, list the cluster DNS ({}) in spec.dnsConfig.nameservers and the cluster search domains in searches.",
                cluster_like.join(", ")
            ),
        ],
        loss_point: None,
        node_pair: None,
    })
}
