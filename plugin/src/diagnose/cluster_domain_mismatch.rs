//! Rule: the cluster domain pods are told to use is not the one the DNS server serves. The
//! kubelet's clusterDomain goes into every pod's search list (`<ns>.svc.<domain>
//! svc.<domain> <domain>`); CoreDNS answers Service names only in the zones of its
//! `kubernetes` plugin and forwards the rest upstream, which says NXDOMAIN. So a kubelet on
//! `cluster.local` with a Corefile on `cluster.test` makes every Service name unknown. A pod
//! whose search list lacks `svc.<clusterDomain>` cannot resolve short Service names either.

use crate::dns_config::corefile::parse_corefile;
use crate::dns_config::names::is_cluster_name;
use crate::topology::ClusterDnsSource;

use super::app_lookup::LookupVerdict;
use super::finding::{EvidenceRef, Finding, Severity};
use super::observed::describe_query;
use super::Context;

pub const ID: &str = "cluster-domain-mismatch";

/// The zones of the Corefile's `kubernetes` plugins (with a trailing dot), and the line of
/// the first; None when there is no Corefile, it does not parse, or it has no such plugin.
fn kubernetes_zones(corefile: &str) -> Option<(Vec<String>, usize)> {
    let cf = parse_corefile(corefile).ok()?;
    let mut zones: Vec<String> = Vec::new();
    let mut line = None;
    for b in &cf.server_blocks {
        let Some(z) = b.kubernetes_zones() else {
            continue;
        };
        line = line.or_else(|| b.plugin("kubernetes").map(|d| d.line));
        for zone in z {
            if !zones.contains(&zone) {
                zones.push(zone);
            }
        }
    }
    Some((zones, line?))
}

fn bare(zone: &str) -> &str {
    zone.trim_end_matches('.')
}

pub fn rule(cx: &Context<'_>) -> Option<Finding> {
    let topo = cx.topology;
    let t = &topo.target;
    if topo.bypasses_cluster_dns_by_design().is_some() || t.dns_policy == "Default" {
        return None;
    }
    // The kubelet's clusterDomain is known only from configz; otherwise the domain in the
    // topology is a default guess, and the pod's search list says what its kubelet wrote.
    let kubelet = (topo.cluster_dns.source == ClusterDnsSource::KubeletConfigz)
        .then(|| bare(&topo.cluster_dns.domain).to_ascii_lowercase())
        .filter(|d| !d.is_empty());
    let conf = cx.observed.as_ref().and_then(|o| o.resolv_conf());
    let searched = conf.as_ref().and_then(|c| {
        c.search
            .iter()
            .find_map(|s| bare(s).strip_prefix("svc."))
            .map(str::to_ascii_lowercase)
    });
    let domain = kubelet.clone().or_else(|| searched.clone())?;
    let from = if kubelet.is_some() {
        format!("the kubelet's clusterDomain (configz) is {domain}")
    } else {
        format!("the pod's search list names svc.{domain}")
    };

    let mut evidence = Vec::new();
    let mut short = Vec::new();
    let mut remediation = Vec::new();

    let zones = topo.corefile.as_deref().and_then(kubernetes_zones);
    if let Some((zones, line)) = zones.filter(|(z, _)| !z.contains(&format!("{domain}."))) {
        let served: Vec<&str> = zones.iter().map(|z| bare(z)).collect();
        let cluster_zone = served
            .iter()
            .find(|z| !z.ends_with(".arpa"))
            .copied()
            .unwrap_or_default();
        evidence.push(EvidenceRef::new("api", from));
        evidence.push(EvidenceRef::new(
            "api:corefile",
            format!(
                "line {line}: kubernetes {}: Service names are answered only under these zones; names under {domain} are forwarded upstream",
                served.join(" ")
            ),
        ));
        short.push(format!(
            "pods use {domain}, the Corefile's kubernetes plugin serves {}",
            served.join(" ")
        ));
        let ns = topo
            .dns_service
            .as_ref()
            .map_or("kube-system", |s| s.namespace.as_str());
        let mut new_zones = vec![domain.clone()];
        new_zones.extend(
            served
                .iter()
                .filter(|z| z.ends_with(".arpa"))
                .map(|z| z.to_string()),
        );
        remediation.push(format!(
            "Change the Corefile (the DNS pods' ConfigMap in {ns}, usually `coredns`), line {line}, to `kubernetes {}`: the Corefile is one object, while clusterDomain `{domain}` is in every kubelet's configuration and every pod's resolv.conf.",
            new_zones.join(" ")
        ));
        if !cluster_zone.is_empty() {
            remediation.push(format!(
                "Or, if `{cluster_zone}` is the intended domain: set `clusterDomain: {cluster_zone}` in every node's kubelet configuration, restart the kubelets, and recreate the pods (their resolv.conf is written when they start)."
            ));
        }
    }

    // A hostNetwork pod with ClusterFirst gets the node's resolv.conf: that is
    // `pod-dns-policy-bypasses-cluster-dns`, not a domain mismatch.
    // So is dnsPolicy None with no cluster DNS among its nameservers: its search list
    // cannot matter while its lookups never reach the cluster DNS.
    let cluster_ips = super::observed::cluster_dns_ips(topo);
    let none_elsewhere = t.dns_policy == "None"
        && !t.dns_config.as_ref().is_some_and(|c| {
            c.nameservers
                .iter()
                .any(|n| n.parse().is_ok_and(|ip| cluster_ips.contains(&ip)))
        });
    let node_resolv_conf = (t.host_network && t.dns_policy == "ClusterFirst") || none_elsewhere;
    if let (Some(kubelet), Some(conf), false) = (&kubelet, &conf, node_resolv_conf) {
        let want = format!("svc.{kubelet}");
        if !conf
            .search
            .iter()
            .any(|s| bare(s).eq_ignore_ascii_case(&want))
        {
            let search = if conf.search.is_empty() {
                "nothing".to_string()
            } else {
                conf.search.join(" ")
            };
            evidence.push(EvidenceRef::new(
                "probe:resolv.conf",
                format!("the pod's resolv.conf searches {search}: no {want}"),
            ));
            short.push(format!("the pod's search list lacks {want}"));
            remediation.push(if t.dns_policy == "None" {
                format!(
                    "The pod has dnsPolicy None: add `{ns}.svc.{kubelet}`, `{want}` and `{kubelet}` to its spec.dnsConfig.searches, so short Service names resolve.",
                    ns = t.namespace
                )
            } else {
                format!(
                    "The kubelet writes `{ns}.svc.{kubelet} {want} {kubelet}` into the resolv.conf of {policy} pods: recreate the pod (it started under another clusterDomain), and check spec.dnsConfig.searches and the node's kubelet configuration.",
                    ns = t.namespace,
                    policy = t.dns_policy
                )
            });
        }
    }
    if short.is_empty() {
        return None;
    }

    // Error when the pod's Service names indeed do not resolve.
    let failing: Vec<_> = super::app_lookups::judged(cx)
        .filter(|l| is_cluster_name(&l.name, &domain) && l.verdict == LookupVerdict::Fails)
        .collect();
    for l in &failing {
        evidence.push(EvidenceRef::new("check:app-lookups", l.describe()));
    }
    if let Some(o) = &cx.observed {
        let fqdns: Vec<String> = topo
            .known_services
            .iter()
            .map(|s| format!("{}.{}.svc.{domain}.", s.name, s.namespace))
            .collect();
        evidence.extend(
            o.to_cluster_dns()
                .filter(|q| {
                    q.rcode.as_deref() == Some("NXDOMAIN")
                        && fqdns.iter().any(|f| f.eq_ignore_ascii_case(&q.qname))
                })
                .take(2)
                .map(|q| EvidenceRef::new("probe", describe_query(q))),
        );
    }
    Some(Finding {
        id: ID.into(),
        severity: if failing.is_empty() {
            Severity::Warning
        } else {
            Severity::Error
        },
        summary: format!("cluster domain mismatch: {}", short.join("; ")),
        evidence,
        remediation,
        loss_point: None,
        node_pair: None,
    })
}
