//! Diagnosis: evidence in, findings out. Pure functions, one rule per file.
//!
//! [`diagnose`] runs every rule over the same [`Context`], orders the findings so that the
//! root cause comes first, and builds the runbook checklist and the packet ladders. Rules
//! never parse raw text themselves: they call the parsers in `node`, `dns_config` and
//! `capture`.

pub mod app_lookup;
pub mod check;
pub mod checklist;
pub mod corefile_view;
pub mod data_plane;
pub mod dns_pod_resources;
pub mod finding;
pub mod ladder;
pub mod libc_advice;
pub mod loss_place;
pub mod network_policy_eval;
pub mod node_view;
pub mod observed;

pub mod app_lookups;
pub mod bridge_nf_call_iptables_off;
pub mod capture_damaged;
pub mod cluster_dns_unreachable;
pub mod cluster_domain_mismatch;
pub mod clusterip_not_translated;
pub mod conntrack_stale_dns;
pub mod conntrack_table_near_full;
pub mod cross_node_path;
pub mod dns_pods_cpu_throttled;
pub mod dns_pods_not_ready;
pub mod dns_pods_oom_killed;
pub mod dns_server_errors;
pub mod dns_service_missing;
pub mod dns_service_no_endpoints;
pub mod dns_service_port_mismatch;
pub mod five_second_latency;
pub mod iptables_backends_conflict;
pub mod kube_proxy_not_translating;
pub mod kube_proxy_stale_rules;
pub mod network_policy_blocks_dns;
pub mod no_dns_traffic;
pub mod node_firewall;
pub mod nodelocaldns_not_answering;
pub mod one_replica_broken;
pub mod overlay_mtu;
pub mod pod_dns_policy;
pub mod pod_netns_rules;
pub mod search_path_amplification;
pub mod truncated_no_tcp;
pub mod udp_blocked;
pub mod upstream_failing;

use serde::{Deserialize, Serialize};

use crate::capture::transactions::Example;
use crate::capture::{CaptureAnalysis, Correlation};
use crate::evidence::{CaptureKind, Evidence};
use crate::topology::Topology;

pub use check::{Check, CheckStatus};
pub use finding::{EvidenceRef, Finding, Severity};
pub use ladder::{LadderStep, PacketLadder};
use node_view::{DnsTargets, NodeView};
use observed::Observed;

/// The analysis of one capture point's pcap.
#[derive(Debug, Clone, Copy)]
pub struct PointAnalysis<'a> {
    /// The capture point's name, as in [`Evidence::captures`].
    pub name: &'a str,
    pub kind: CaptureKind,
    pub analysis: &'a CaptureAnalysis,
}

impl PointAnalysis<'_> {
    /// The evidence source naming this point: `capture:<name>`.
    pub fn source(&self) -> String {
        format!("capture:{}", self.name)
    }

    /// One example of a pattern seen at this point, as evidence (with its frame number).
    pub fn example(&self, e: &Example) -> EvidenceRef {
        EvidenceRef::new(self.source(), e.describe())
    }
}

/// Everything a diagnosis looks at. Captures are given in path order (the target pod, then
/// nodes, then DNS pods), the order `capture::correlate` was given.
///
/// `analyze` diagnoses a capture file on its own: a default [`Topology`] (no pod, no cluster
/// examined), an [`Evidence`] without probe or node snapshots, the file as the one capture of
/// kind [`CaptureKind::Pod`], and no correlation. Rules that need the cluster or the probe
/// stay silent there; the capture's own signals are reported under the same ids as in a
/// live run.
#[derive(Debug, Clone, Copy)]
pub struct DiagnosisInput<'a> {
    pub topology: &'a Topology,
    pub evidence: &'a Evidence,
    pub captures: &'a [PointAnalysis<'a>],
    /// Lost queries followed across the capture points; None when fewer than two points
    /// were captured.
    pub correlation: Option<&'a Correlation>,
}

/// What is wrong, the runbook as a checklist, and where lost queries died.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Diagnosis {
    /// Root cause first: errors before warnings before info; within a severity, in causal
    /// order (see [`PRIORITY`]).
    pub findings: Vec<Finding>,
    pub checklist: Vec<Check>,
    pub lost_queries: Vec<PacketLadder>,
    /// Each name as the pod's applications look it up, replayed over the measurements.
    #[serde(default)]
    pub lookups: Vec<app_lookup::AppLookup>,
    /// The service data plane seen on the target's node; None when no cluster was examined.
    #[serde(default)]
    pub data_plane: Option<data_plane::DataPlane>,
}

impl Diagnosis {
    /// The finding to name as the cause: the first warning or error.
    pub fn root_cause(&self) -> Option<&Finding> {
        self.findings
            .first()
            .filter(|f| f.severity >= Severity::Warning)
    }

    /// True when some finding is a warning or an error.
    pub fn has_problems(&self) -> bool {
        self.root_cause().is_some()
    }
}

/// Finding ids in causal order: when two findings of one severity are present, the one
/// earlier here explains the other (no endpoints explains timeouts, not the reverse).
pub const PRIORITY: &[&str] = &[
    dns_service_missing::ID,
    dns_service_no_endpoints::ID,
    // The OOM kill is the more precise name for a crash loop it causes.
    dns_pods_oom_killed::ID,
    dns_pods_not_ready::ID_CRASHLOOP,
    dns_pods_not_ready::ID_NOT_READY,
    dns_service_port_mismatch::ID,
    network_policy_blocks_dns::ID,
    nodelocaldns_not_answering::ID,
    pod_netns_rules::ID_DROPS,
    pod_netns_rules::ID_REDIRECTS,
    kube_proxy_not_translating::ID,
    clusterip_not_translated::ID,
    // Two backends, one stale, explain the stale translation they cause.
    iptables_backends_conflict::ID,
    kube_proxy_stale_rules::ID,
    bridge_nf_call_iptables_off::ID,
    node_firewall::ID,
    udp_blocked::ID,
    // Names the pair of nodes and the size above which their path loses the answers: the
    // more precise name for the loss the next two would report.
    overlay_mtu::ID,
    // Names the pair of nodes whose path loses the queries a broken-looking replica misses.
    cross_node_path::ID,
    cluster_domain_mismatch::ID,
    // A throttled DNS server answers late or not at all: the timeouts and SERVFAILs below
    // can be its consequence.
    dns_pods_cpu_throttled::ID,
    upstream_failing::ID,
    one_replica_broken::ID,
    five_second_latency::ID,
    truncated_no_tcp::ID,
    // Hurts the flows that still use the entries; any cause above hurts every query.
    conntrack_stale_dns::ID,
    conntrack_table_near_full::ID,
    pod_dns_policy::ID,
    search_path_amplification::ID,
    // SERVFAILs for search-list expansions are a consequence of the search path.
    dns_server_errors::ID,
    cluster_dns_unreachable::ID,
    capture_damaged::ID,
    no_dns_traffic::ID,
    app_lookups::ID_NAMESERVER,
    app_lookups::ID_WRONG,
    app_lookups::ID_FAILS,
    app_lookups::ID_SLOW,
    app_lookups::ID_UNEXPLAINED,
];

/// How many lost queries get a packet ladder in the report.
pub const MAX_LADDERS: usize = 10;

/// The derived view every rule reads: the input plus the probe's results sorted by server.
#[derive(Debug, Clone)]
pub struct Context<'a> {
    pub topology: &'a Topology,
    pub evidence: &'a Evidence,
    /// The pod probe's results; None when the probe did not run.
    pub observed: Option<Observed<'a>>,
    pub nodes: Vec<NodeView<'a>>,
    pub captures: &'a [PointAnalysis<'a>],
    pub correlation: Option<&'a Correlation>,
    /// The names the probe resolved, replayed through the pod's resolver path.
    pub lookups: Vec<app_lookup::AppLookup>,
}

impl<'a> Context<'a> {
    pub fn new(input: &DiagnosisInput<'a>) -> Self {
        Self {
            topology: input.topology,
            evidence: input.evidence,
            observed: input
                .evidence
                .pod_probe
                .as_ref()
                .map(|r| Observed::new(r, input.topology)),
            nodes: {
                let targets = DnsTargets::from_topology(input.topology);
                input
                    .evidence
                    .nodes
                    .iter()
                    .map(|n| NodeView::new(n, &targets))
                    .collect()
            },
            captures: input.captures,
            correlation: input.correlation,
            lookups: input
                .evidence
                .pod_probe
                .as_ref()
                .and_then(|r| {
                    let conf = crate::dns_config::resolv_conf::parse_resolv_conf(
                        r.resolv_conf.content.as_deref()?,
                    );
                    Some(app_lookup::replay(
                        r,
                        &conf,
                        &input.topology.cluster_dns.domain,
                        &input.topology.known_services,
                    ))
                })
                .unwrap_or_default(),
        }
    }

    /// The target pod's node snapshot, if one was taken.
    pub fn target_node(&self) -> Option<&NodeView<'a>> {
        let node = self.topology.target.node.as_deref()?;
        self.nodes.iter().find(|n| n.node == node)
    }

    /// Where most lost queries were last seen: the capture point's name and kind, and how
    /// many of all lost queries died after it.
    pub fn main_loss_point(&self) -> Option<(&'a str, CaptureKind, u64, usize)> {
        let c = self.correlation?;
        let (name, count) = c.lost_by_last_point.iter().max_by_key(|(_, n)| *n)?;
        let point = self.captures.iter().find(|p| p.name == name)?;
        Some((point.name, point.kind, *count, c.lost.len()))
    }

    /// The capture of the target pod, if one was taken.
    pub fn pod_capture(&self) -> Option<&PointAnalysis<'a>> {
        self.captures.iter().find(|c| c.kind == CaptureKind::Pod)
    }
}

/// Runs every rule and orders the findings root cause first.
pub fn diagnose(input: &DiagnosisInput<'_>) -> Diagnosis {
    let cx = Context::new(input);
    let mut findings: Vec<Finding> = Vec::new();
    findings.extend(dns_service_missing::rule(&cx));
    findings.extend(dns_service_no_endpoints::rule(&cx));
    findings.extend(dns_pods_not_ready::rule(&cx));
    findings.extend(dns_pods_oom_killed::rule(&cx));
    findings.extend(dns_pods_cpu_throttled::rule(&cx));
    findings.extend(dns_service_port_mismatch::rule(&cx));
    findings.extend(network_policy_blocks_dns::rule(&cx));
    findings.extend(nodelocaldns_not_answering::rule(&cx));
    findings.extend(pod_netns_rules::rule(&cx));
    findings.extend(kube_proxy_not_translating::rule(&cx));
    findings.extend(clusterip_not_translated::rule(&cx));
    findings.extend(kube_proxy_stale_rules::rule(&cx));
    findings.extend(iptables_backends_conflict::rule(&cx));
    findings.extend(bridge_nf_call_iptables_off::rule(&cx));
    let firewall = node_firewall::rule(&cx, &findings);
    findings.extend(firewall);
    findings.extend(udp_blocked::rule(&cx));
    findings.extend(cluster_domain_mismatch::rule(&cx));
    findings.extend(upstream_failing::rule(&cx));
    // Before the rules that would blame the loss it explains on the path as a whole or on
    // TCP; they look at what it found.
    findings.extend(overlay_mtu::rule(&cx));
    findings.extend(cross_node_path::rule(&cx, &findings));
    findings.extend(one_replica_broken::rule(&cx));
    findings.extend(five_second_latency::rule(&cx));
    findings.extend(truncated_no_tcp::rule(&cx, &findings));
    findings.extend(conntrack_stale_dns::rule(&cx));
    findings.extend(conntrack_table_near_full::rule(&cx));
    findings.extend(pod_dns_policy::rule(&cx));
    findings.extend(search_path_amplification::rule(&cx));
    // The fallback looks at what the others found, so it runs after them.
    findings.extend(cluster_dns_unreachable::rule(&cx, &findings));
    // After upstream-failing, which explains SERVFAIL answers when present; after the
    // fallback too, since answers with errors do not explain queries left unanswered.
    let server_errors = dns_server_errors::rule(&cx, &findings);
    findings.extend(server_errors);
    findings.extend(capture_damaged::rule(&cx));
    findings.extend(no_dns_traffic::rule(&cx));
    // What the applications experience: always reported, ranked after any cause.
    findings.extend(app_lookups::rule(&cx));
    let checklist = checklist::checklist(&cx);
    // Never healthy while a step did not pass, even if no rule explains it.
    findings.extend(app_lookups::unexplained(&checklist, &findings));
    order(&mut findings);
    let points: Vec<String> = input.captures.iter().map(|c| c.name.to_string()).collect();
    Diagnosis {
        data_plane: data_plane::data_plane(&cx),
        checklist,
        lost_queries: input
            .correlation
            .map(|c| ladder::ladders(c, &points, MAX_LADDERS))
            .unwrap_or_default(),
        findings,
        lookups: cx.lookups,
    }
}

/// Sorts findings root cause first: by severity; within a severity, causes before the
/// symptoms they explain (what the applications experience), then by [`PRIORITY`],
/// stable otherwise.
pub fn order(findings: &mut [Finding]) {
    findings.sort_by_key(|f| {
        let rank = PRIORITY
            .iter()
            .position(|id| *id == f.id)
            .unwrap_or(PRIORITY.len());
        let symptom = app_lookups::SYMPTOMS.contains(&f.id.as_str());
        (std::cmp::Reverse(f.severity), symptom, rank)
    });
}

#[cfg(test)]
pub(crate) mod testkit;
#[cfg(test)]
mod tests;
