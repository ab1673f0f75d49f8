//! Rule: NodeLocal DNSCache is deployed and the pod sends its lookups to it, but it does not
//! answer (or its pods are not all ready).

use std::net::IpAddr;

use super::finding::{EvidenceRef, Finding, Severity};
use super::observed::Tally;
use super::Context;

pub const ID: &str = "nodelocaldns-not-answering";

pub fn rule(cx: &Context<'_>) -> Option<Finding> {
    let nl = cx.topology.node_local_dns.as_ref()?;
    let local: IpAddr = nl.local_ip;
    let via_local = cx
        .observed
        .as_ref()
        .map(|o| Tally::of(o.report.queries.iter().filter(|q| q.server.ip() == local)));
    let not_ready = nl.ready < nl.desired;
    let failing = via_local.is_some_and(|t| t.all_failed());
    if !failing && !not_ready {
        return None;
    }
    let mut evidence = vec![EvidenceRef::new(
        "api",
        format!(
            "DaemonSet {}/{}: {} of {} pods ready, listening on {local}",
            nl.namespace, nl.name, nl.ready, nl.desired
        ),
    )];
    if let Some(t) = via_local.filter(|t| t.sent > 0) {
        evidence.push(EvidenceRef::new(
            "check:queries",
            format!("queries to {local}: {t}"),
        ));
    }
    Some(Finding {
        id: ID.into(),
        severity: if failing { Severity::Error } else { Severity::Warning },
        summary: if failing {
            format!("NodeLocal DNSCache at {local} does not answer the pod's queries")
        } else {
            format!("NodeLocal DNSCache {}/{} has pods that are not ready", nl.namespace, nl.name)
        },
        evidence,
        remediation: vec![
            format!("Check the node-local-dns pod on the target's node (`kubectl -n {} get pods -o wide`, its logs) and that it listens on {local}.", nl.namespace),
            "Check that its Corefile forwards cluster names to the DNS Service's upstream ClusterIP (kube-dns-upstream) and that Service has endpoints.".into(),
        ],
        loss_point: None,
        node_pair: None,
    })
}
