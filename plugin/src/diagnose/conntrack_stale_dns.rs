//! Rule: UDP conntrack entries on a node still send DNS to an endpoint that no longer
//! exists. After a DNS pod is replaced, kube-proxy deletes the UDP entries whose reply
//! comes from the removed endpoint; when that does not happen (no `conntrack` binary, a
//! bug, a data plane that never does it), a client that keeps sending from the same source
//! port keeps being DNATed to the gone pod until the entry expires, and with steady traffic
//! it never does.
//!
//! Read from the node probe's listings of the entries towards each cluster DNS address
//! (taken before and after the conntrack window; whether clients still send on an entry
//! shows in its remaining timeout and in a refresh between the two),
//! against the serving endpoints of the EndpointSlices and the node's own rules (entries the
//! current rules would create again are the stale-rules finding's). The harm shows in the
//! captures: queries from such a flow's address and port that nobody answered.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};

use dns_doctor_schema::protocol::{conntrack_dns_key, ListingStage};
use dns_doctor_schema::Transport;

use crate::evidence::CaptureKind;
use crate::node::conntrack_entries::{parse_conntrack_listing, parse_shown_count, ConntrackEntry};
use crate::node::service::Protocol;

use super::finding::{EvidenceRef, Finding, Severity};
use super::node_view::NodeView;
use super::Context;

pub const ID: &str = "conntrack-stale-dns-entries";

/// The node's UDP timeouts: what a packet resets an entry's timeout to.
pub const UDP_TIMEOUT_PATH: &str = "/proc/sys/net/netfilter/nf_conntrack_udp_timeout";
pub const UDP_TIMEOUT_STREAM_PATH: &str = "/proc/sys/net/netfilter/nf_conntrack_udp_timeout_stream";

/// A flow whose last packet is at most this old is in use: clients that keep one socket
/// send again within seconds (a resolver's retries, a forwarder's steady traffic).
pub const IN_USE_SECS: u64 = 10;

/// The shortest window over which two listings tell whether packets refreshed an entry.
const MIN_COMPARED_WINDOW_SECS: u64 = 3;

/// Stale entries quoted line by line, per node and DNS address.
const QUOTED: usize = 5;

/// An entry towards a DNS Service address whose reply comes from no serving endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaleEntry {
    pub node: String,
    /// The command key of the listing it is in.
    pub key: String,
    pub entry: ConntrackEntry,
    /// The listing's line, verbatim.
    pub text: String,
    /// Seconds between the last packet that refreshed it and the listing, from its
    /// remaining timeout and the node's UDP timeouts; None when those were not read.
    pub last_packet_secs: Option<u64>,
    /// Whether its timeout was refreshed between the two listings; None with one listing.
    pub refreshed: Option<bool>,
    /// Whether a client still sends on it: a packet within [`IN_USE_SECS`] (or the window,
    /// when longer) of the listing, or a refresh between the two listings; None when
    /// neither can be told.
    pub in_use: Option<bool>,
}

impl StaleEntry {
    /// The address the flow is sent to: the gone endpoint.
    pub fn gone(&self) -> IpAddr {
        self.entry.reply.src
    }

    /// The client end of the flow, as the client sees it.
    pub fn client(&self) -> Option<SocketAddr> {
        Some(SocketAddr::new(
            self.entry.original.src,
            self.entry.original.sport?,
        ))
    }

    fn server(&self) -> Option<SocketAddr> {
        Some(SocketAddr::new(
            self.entry.original.dst,
            self.entry.original.dport?,
        ))
    }
}

/// One node's listing of one DNS address: what was read, and whether it was all of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListingRead {
    pub node: String,
    pub key: String,
    pub service: SocketAddr,
    pub entries: usize,
    /// conntrack's own count of what it printed, when its stderr says.
    pub shown: Option<u64>,
}

impl ListingRead {
    /// The probe kept fewer entries than conntrack printed.
    pub fn cut(&self) -> bool {
        self.shown.is_some_and(|s| s > self.entries as u64)
    }
}

/// Serving endpoints of the DNS Service as `ip:port` on UDP: what kube-proxy keeps entries
/// for. Empty when the Service has none (then nothing is cleaned, and nothing is stale).
pub fn serving_udp(cx: &Context<'_>) -> BTreeSet<SocketAddr> {
    let t = cx.topology;
    let mut out = BTreeSet::new();
    for e in t.endpoints.iter().filter(|e| e.serving || e.ready) {
        let ports = e
            .ports
            .iter()
            .filter(|(proto, _)| proto.eq_ignore_ascii_case("UDP"))
            .map(|(_, p)| *p)
            .chain(t.endpoint_dns_port(e, "UDP"));
        out.extend(ports.map(|p| SocketAddr::new(e.ip, p)));
    }
    out
}

/// Every stale entry on every node, and what each listing held.
pub fn stale_entries(cx: &Context<'_>) -> (Vec<StaleEntry>, Vec<ListingRead>) {
    let serving = serving_udp(cx);
    let mut stale = Vec::new();
    let mut reads = Vec::new();
    if serving.is_empty() {
        return (stale, reads);
    }
    let services = crate::plan::conntrack_dns_services(cx.topology);
    for n in &cx.nodes {
        // Addresses the node's current rules send the ClusterIP to: entries towards them
        // are what those rules make, the stale-rules finding's business.
        let translated: BTreeSet<IpAddr> = n
            .endpoints_for(Protocol::Udp)
            .iter()
            .map(|e| e.address)
            .collect();
        for service in &services {
            let after_key = conntrack_dns_key(ListingStage::After, *service);
            let before_key = conntrack_dns_key(ListingStage::Before, *service);
            let (key, out) = match (n.command(&after_key), n.command(&before_key)) {
                (Some(out), _) => (after_key, out),
                (None, Some(out)) => (before_key.clone(), out),
                (None, None) => continue,
            };
            let listing = parse_conntrack_listing(&out.stdout);
            reads.push(ListingRead {
                node: n.node.to_string(),
                key: key.clone(),
                service: *service,
                entries: listing.entries.len(),
                shown: parse_shown_count(&out.stderr),
            });
            let earlier = (key != before_key)
                .then(|| n.command(&before_key))
                .flatten()
                .map(|o| parse_conntrack_listing(&o.stdout));
            let lines: Vec<&str> = out.stdout.lines().collect();
            let window_secs = n.snapshot.conntrack_window_ms / 1000;
            for e in listing.entries {
                if !is_towards(&e, *service) || !e.is_dnat() {
                    continue;
                }
                let reply_from = SocketAddr::new(e.reply.src, e.reply.sport.unwrap_or(0));
                if serving.contains(&reply_from) || translated.contains(&e.reply.src) {
                    continue;
                }
                // Timeouts read in whole seconds: listings closer than that cannot tell.
                let comparable = window_secs >= MIN_COMPARED_WINDOW_SECS;
                let refreshed = earlier.as_ref().filter(|_| comparable).and_then(|l| {
                    l.entries
                        .iter()
                        .find(|b| b.original == e.original && b.reply == e.reply)
                        .map(|b| refreshed_between(b, &e, window_secs))
                });
                let last_packet_secs = last_packet_secs(&e, n);
                let recent = last_packet_secs.map(|ago| ago <= IN_USE_SECS.max(window_secs + 1));
                let in_use = match (recent, refreshed) {
                    (Some(true), _) | (_, Some(true)) => Some(true),
                    (None, None) => None,
                    _ => Some(false),
                };
                stale.push(StaleEntry {
                    node: n.node.to_string(),
                    key: key.clone(),
                    text: lines
                        .get(e.line - 1)
                        .map(|l| l.trim().to_string())
                        .unwrap_or_default(),
                    entry: e,
                    last_packet_secs,
                    refreshed,
                    in_use,
                });
            }
        }
    }
    (stale, reads)
}

fn is_towards(e: &ConntrackEntry, service: SocketAddr) -> bool {
    e.protocol == "udp"
        && e.original.dst == service.ip()
        && e.original.dport == Some(service.port())
}

/// Packets refreshed the entry between the listings when its timeout went down by less
/// than the time that passed (at least the window; one second of rounding allowed).
fn refreshed_between(before: &ConntrackEntry, after: &ConntrackEntry, window_secs: u64) -> bool {
    after.timeout_secs + window_secs >= before.timeout_secs + 2
}

/// How long ago the last packet refreshed the entry: a packet resets an assured UDP entry
/// to the stream timeout and any other to the UDP timeout, so the remaining timeout says
/// when that was.
fn last_packet_secs(e: &ConntrackEntry, n: &NodeView<'_>) -> Option<u64> {
    let path = if e.assured {
        UDP_TIMEOUT_STREAM_PATH
    } else {
        UDP_TIMEOUT_PATH
    };
    let full: u64 = n.file(path)?.parse().ok()?;
    Some(full.saturating_sub(e.timeout_secs))
}

/// Lost queries of flows that have a stale entry: (flow, how many, the points where they
/// were last seen), from the correlation, else from the pod capture's examples.
fn lost_on_stale_flows(
    cx: &Context<'_>,
    flows: &BTreeSet<(SocketAddr, SocketAddr)>,
) -> Vec<(SocketAddr, usize, BTreeMap<String, usize>, String)> {
    let mut by_flow: BTreeMap<SocketAddr, (usize, BTreeMap<String, usize>, String)> =
        BTreeMap::new();
    if let Some(c) = cx.correlation {
        let pod_points: Vec<&str> = cx
            .captures
            .iter()
            .filter(|p| p.kind == CaptureKind::Pod)
            .map(|p| p.name)
            .collect();
        for lost in &c.lost {
            let Some(s) = lost
                .sightings
                .iter()
                .find(|s| pod_points.contains(&s.point.as_str()))
            else {
                continue;
            };
            if !flows.contains(&(s.client, s.server)) {
                continue;
            }
            let entry = by_flow.entry(s.client).or_default();
            entry.0 += 1;
            *entry.1.entry(lost.last_seen_at.clone()).or_default() += 1;
            if entry.2.is_empty() {
                entry.2 = format!(
                    "id {} {} {} at {}: {} -> {}, no answer",
                    lost.id, lost.qtype, lost.qname, s.time, s.client, s.server
                );
            }
        }
    } else if let Some(pod) = cx.pod_capture() {
        for ex in &pod.analysis.analysis.examples.lost {
            if !flows.contains(&(ex.client, ex.server)) {
                continue;
            }
            let entry = by_flow.entry(ex.client).or_default();
            entry.0 += 1;
            *entry.1.entry(pod.name.to_string()).or_default() += 1;
            if entry.2.is_empty() {
                entry.2 = ex.describe();
            }
        }
    }
    by_flow
        .into_iter()
        .map(|(client, (n, points, example))| (client, n, points, example))
        .collect()
}

fn addr_list<T: ToString>(items: impl IntoIterator<Item = T>) -> String {
    items
        .into_iter()
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

fn describe(s: &StaleEntry, target: Option<IpAddr>, window_ms: u64) -> String {
    let mut notes = Vec::new();
    if Some(s.entry.original.src) == target {
        notes.push("the target pod's own flow".to_string());
    }
    if let Some(ago) = s.last_packet_secs {
        notes.push(format!("last packet {ago} s before this listing"));
    }
    match s.refreshed {
        Some(true) => notes.push(format!(
            "refreshed between the two listings, {:.0} s apart",
            window_ms as f64 / 1000.0
        )),
        Some(false) => notes.push("not refreshed between the two listings".to_string()),
        None => {}
    }
    match s.in_use {
        Some(true) => notes.push("in use".to_string()),
        Some(false) => notes.push("idle, expiring".to_string()),
        None => {}
    }
    let mut d = format!("line {}: {}", s.entry.line, s.text);
    if !notes.is_empty() {
        d.push_str(&format!(" ({})", notes.join("; ")));
    }
    d
}

pub fn rule(cx: &Context<'_>) -> Option<Finding> {
    let (stale, reads) = stale_entries(cx);
    if stale.is_empty() {
        return None;
    }
    let t = cx.topology;
    let target = t.target.ip;
    let serving = serving_udp(cx);
    let flows: BTreeSet<(SocketAddr, SocketAddr)> = stale
        .iter()
        .filter_map(|s| Some((s.client()?, s.server()?)))
        .collect();
    let lost = lost_on_stale_flows(cx, &flows);
    let target_stale: Vec<&StaleEntry> = stale
        .iter()
        .filter(|s| Some(s.entry.original.src) == target)
        .collect();
    // The pod's own stale flow hurts unless the listings show it decaying unused.
    let target_in_use = target_stale.iter().any(|s| {
        s.in_use != Some(false)
            || lost
                .iter()
                .any(|(client, _, _, _)| Some(*client) == s.client())
    });
    let udp_failed = cx
        .observed
        .as_ref()
        .map_or(0, |o| o.cluster_dns_tally(Transport::Udp).failed());
    let severity = if target_in_use || udp_failed > 0 {
        Severity::Error
    } else {
        Severity::Warning
    };

    let mut evidence = Vec::new();
    let mut nodes: Vec<&str> = Vec::new();
    let mut gone_by_node: BTreeMap<(&str, IpAddr), BTreeSet<IpAddr>> = BTreeMap::new();
    for read in &reads {
        let here: Vec<&StaleEntry> = stale
            .iter()
            .filter(|s| s.node == read.node && s.key == read.key)
            .collect();
        if here.is_empty() {
            continue;
        }
        if !nodes.contains(&read.node.as_str()) {
            nodes.push(read.node.as_str());
        }
        let mut by_gone: BTreeMap<IpAddr, usize> = BTreeMap::new();
        for s in &here {
            *by_gone.entry(s.gone()).or_default() += 1;
            gone_by_node
                .entry((read.node.as_str(), read.service.ip()))
                .or_default()
                .insert(s.gone());
        }
        let timeouts = here.iter().map(|s| s.entry.timeout_secs);
        let (lo, hi) = (
            timeouts.clone().min().unwrap_or(0),
            timeouts.max().unwrap_or(0),
        );
        let source = format!("node:{}/{}", read.node, read.key);
        evidence.push(EvidenceRef::new(
            source.clone(),
            format!(
                "{} of {} UDP entries towards {} are DNATed to addresses that are not serving DNS endpoints: {}; they expire in {lo}-{hi} s unless packets refresh them",
                here.len(),
                read.entries,
                read.service,
                addr_list(
                    by_gone
                        .iter()
                        .map(|(ip, n)| format!("{ip} ({})", plural(*n, "entry", "entries")))
                ),
            ),
        ));
        let window_ms = cx
            .nodes
            .iter()
            .find(|n| n.node == read.node)
            .map_or(0, |n| n.snapshot.conntrack_window_ms);
        let mut quoted: Vec<&&StaleEntry> = here.iter().collect();
        // The target's own flows and the live ones first.
        quoted.sort_by_key(|s| {
            (
                Some(s.entry.original.src) != target,
                s.in_use != Some(true),
                s.entry.line,
            )
        });
        for s in quoted.iter().take(QUOTED) {
            evidence.push(EvidenceRef::new(
                source.clone(),
                describe(s, target, window_ms),
            ));
        }
        if here.len() > QUOTED {
            evidence.push(EvidenceRef::new(
                source.clone(),
                format!("... and {} more stale entries", here.len() - QUOTED),
            ));
        }
        if read.cut() {
            evidence.push(EvidenceRef::new(
                source,
                format!(
                    "the listing was cut: {} of the {} entries conntrack printed were kept; stale entries among the rest are not counted here",
                    read.entries,
                    read.shown.unwrap_or_default()
                ),
            ));
        }
    }
    let clients: BTreeSet<IpAddr> = stale.iter().map(|s| s.entry.original.src).collect();
    evidence.push(EvidenceRef::new(
        "conntrack",
        format!(
            "clients with stale entries: {}",
            addr_list(clients.iter().map(|c| if Some(*c) == target {
                format!(
                    "{c} (the target pod {}/{})",
                    t.target.namespace, t.target.name
                )
            } else {
                c.to_string()
            }))
        ),
    ));
    let pod_point = cx.pod_capture().map(|p| p.source());
    for (client, n, points, example) in &lost {
        evidence.push(EvidenceRef::new(
            pod_point.clone().unwrap_or_else(|| "captures".into()),
            format!(
                "{n} queries from {client} (a flow with a stale entry) got no answer; last seen at {}",
                addr_list(points.iter().map(|(p, k)| format!("{p} ({k})")))
            ),
        ));
        evidence.push(EvidenceRef::new(
            pod_point.clone().unwrap_or_else(|| "captures".into()),
            example.clone(),
        ));
    }
    if let Some(o) = cx.observed.as_ref() {
        evidence.push(EvidenceRef::new(
            "check:queries",
            format!(
                "the probe's UDP queries to the cluster DNS (new source ports, not the stale flows): {}",
                o.cluster_dns_tally(Transport::Udp)
            ),
        ));
    }
    let service = t
        .dns_service
        .as_ref()
        .map_or("the DNS Service".to_string(), |s| {
            format!("{}/{}", s.namespace, s.name)
        });
    evidence.push(EvidenceRef::new(
        "api",
        format!(
            "serving endpoints of {service}: {}",
            addr_list(serving.iter())
        ),
    ));
    for n in &nodes {
        evidence.extend(super::kube_proxy_stale_rules::kube_proxy_pods_on(t, n));
    }

    let gone: BTreeSet<IpAddr> = stale.iter().map(StaleEntry::gone).collect();
    let summary = if target_stale.is_empty() {
        format!(
            "{} UDP conntrack entries on {} still send DNS from {} to {}, which no longer {}: those clients' queries die until the entries expire",
            stale.len(),
            nodes.join(", "),
            plural(clients.len(), "client", "clients"),
            addr_list(gone.iter()),
            if gone.len() == 1 { "is a DNS endpoint" } else { "are DNS endpoints" },
        )
    } else {
        format!(
            "stale UDP conntrack entries on {} send the pod's DNS flow {} to {}, which no longer {}: its queries to {} from that port die",
            nodes.join(", "),
            addr_list(target_stale.iter().filter_map(|s| s.client())),
            addr_list(target_stale.iter().map(|s| s.gone()).collect::<BTreeSet<_>>()),
            if gone.len() == 1 { "is a DNS endpoint" } else { "are DNS endpoints" },
            addr_list(target_stale.iter().filter_map(|s| s.server()).collect::<BTreeSet<_>>()),
        )
    };
    let mut remediation = Vec::new();
    for ((node, cluster_ip), gone) in &gone_by_node {
        let cmds: Vec<String> = gone
            .iter()
            .map(|g| format!("`conntrack -D -p udp --orig-dst {cluster_ip} --reply-src {g}`"))
            .collect();
        remediation.push(format!(
            "On {node}, delete the stale entries: {}. The next packet of each flow is then translated to a serving endpoint.",
            cmds.join("; ")
        ));
    }
    let proxy_pods: Vec<String> = t
        .kube_proxy
        .pods
        .iter()
        .filter(|p| p.node.as_deref().is_some_and(|n| nodes.contains(&n)))
        .map(|p| format!("`kubectl -n kube-system logs {}`", p.name))
        .collect();
    remediation.push(format!(
        "Find out why they were left: kube-proxy deletes a Service's UDP entries when an endpoint goes away. Look for conntrack errors in its log ({}): \"Failed to clear all conntrack entries\", \"Failed to list conntrack entries\", or, in older versions, the `conntrack` binary missing from its image.",
        if proxy_pods.is_empty() {
            "the kube-proxy pod on those nodes".to_string()
        } else {
            proxy_pods.join(", ")
        }
    ));
    remediation.push("Upgrade kube-proxy (or the service data plane that replaces it) if it does not clear the UDP entries of removed endpoints; current kube-proxy reconciles them against the serving endpoints on every endpoint change.".into());
    remediation.push("Clients that send every query from one socket (a fixed source port: long-lived UDP sockets, DNS forwarders and caches) keep such an entry alive for as long as they send; restart them after a DNS rollout, or have them open a new socket when queries time out.".into());
    let loss_point = lost
        .iter()
        .flat_map(|(_, _, points, _)| points.iter())
        .max_by_key(|(_, k)| **k)
        .map(|(p, _)| p.clone());
    Some(Finding {
        id: ID.into(),
        severity,
        summary,
        evidence,
        remediation,
        loss_point,
        node_pair: None,
    })
}

fn plural(n: usize, one: &str, many: &str) -> String {
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{n} {many}")
    }
}

#[cfg(test)]
mod tests {
    use dns_doctor_schema::protocol::{conntrack_dns_key, ListingStage};
    use dns_doctor_schema::QueryOutcome;

    use super::*;
    use crate::capture::correlate::{LostQuery, MatchKind, Sighting};
    use crate::capture::{Correlation, Timestamp};
    use crate::diagnose::testkit::*;
    use crate::diagnose::{diagnose, Diagnosis, DiagnosisInput, PointAnalysis};

    const BEFORE: &str = include_str!("../../tests/fixtures/node/conntrack-L-dns-before.txt");
    const BEFORE_STDERR: &str =
        include_str!("../../tests/fixtures/node/conntrack-L-dns-before.stderr.txt");
    const AFTER: &str = include_str!("../../tests/fixtures/node/conntrack-L-dns-after.txt");
    const AFTER_STDERR: &str =
        include_str!("../../tests/fixtures/node/conntrack-L-dns-after.stderr.txt");
    /// The rules of the namespace the listings come from, after its rollout.
    const RULES_AFTER: &str =
        include_str!("../../tests/fixtures/node/iptables-nft-after-rollout.txt");
    const UDP_TIMEOUT: &str =
        include_str!("../../tests/fixtures/node/nf_conntrack_udp_timeout.txt");
    const UDP_TIMEOUT_STREAM: &str =
        include_str!("../../tests/fixtures/node/nf_conntrack_udp_timeout_stream.txt");
    /// The client whose fixed-port flow kept sending during the listings.
    const LIVE_CLIENT: &str = "10.244.0.4";
    /// The client whose fixed-port flow stopped: its entry decays.
    const IDLE_CLIENT: &str = "10.244.0.5";
    const GONE: &str = "10.244.0.2";

    fn key(stage: ListingStage) -> String {
        conntrack_dns_key(stage, sock(CLUSTER_IP))
    }

    /// The healthy test cluster after a CoreDNS rollout as the fixtures saw it: endpoints
    /// and rules on 10.244.0.6/.7, the listings of the node's entries before and after a
    /// 4 s window and its UDP timeouts, the target pod `client`.
    fn after_rollout(client: &str) -> Scenario {
        let mut s = healthy();
        for (i, new) in ["10.244.0.6", "10.244.0.7"].into_iter().enumerate() {
            s.topology.endpoints[i].ip = ip(new);
            s.topology.dns_pods[i].ip = Some(ip(new));
        }
        s.topology.target.ip = Some(ip(client));
        s.set_node_command("iptables-legacy-save", "");
        s.set_node_command("iptables-nft-save", RULES_AFTER);
        for (stage, out, err) in [
            (ListingStage::Before, BEFORE, BEFORE_STDERR),
            (ListingStage::After, AFTER, AFTER_STDERR),
        ] {
            s.set_node_command(&key(stage), out);
            let snap = &mut s.evidence.nodes[0].snapshot;
            snap.commands.last_mut().unwrap().stderr = err.to_string();
        }
        s.evidence.nodes[0].snapshot.conntrack_window_ms = 4000;
        s.set_node_file(UDP_TIMEOUT_PATH, UDP_TIMEOUT);
        s.set_node_file(UDP_TIMEOUT_STREAM_PATH, UDP_TIMEOUT_STREAM);
        // The probe asked the endpoints the fixtures' rules send to.
        for q in &mut s.probe().queries {
            if q.server.ip() == ip(EP_A) {
                q.server = sock("10.244.0.6");
            } else if q.server.ip() == ip(EP_B) {
                q.server = sock("10.244.0.7");
            }
        }
        s
    }

    fn ours(d: &Diagnosis) -> Option<&Finding> {
        d.findings.iter().find(|f| f.id == ID)
    }

    fn text(f: &Finding) -> String {
        f.evidence
            .iter()
            .map(|e| format!("{}: {}", e.source, e.detail))
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn the_pods_own_flow_sent_to_a_gone_endpoint_is_the_error() {
        let s = after_rollout(LIVE_CLIENT);
        let d = s.diagnose();
        let f = d.root_cause().expect("a problem");
        assert_eq!(f.id, ID, "{:#?}", d.findings);
        assert_eq!(f.severity, Severity::Error);
        assert!(
            f.summary.contains("10.244.0.4:20053") && f.summary.contains(GONE),
            "{}",
            f.summary
        );
        let t = text(f);
        let source = format!("node:node-1/{}", key(ListingStage::After));
        assert!(
            t.contains(&format!("{source}: 2 of 7 UDP entries towards 10.96.0.10:53 are DNATed to addresses that are not serving DNS endpoints: 10.244.0.2 (2 entries); they expire in 109-118 s")),
            "{t}"
        );
        // The pod's own entry, quoted from the listing, first, and seen refreshed.
        assert!(
            t.contains(&format!("{source}: line 2: udp      17 118 src=10.244.0.4 dst=10.96.0.10 sport=20053 dport=53 src=10.244.0.2 dst=10.244.0.4 sport=53 dport=20053 [ASSURED] mark=0 use=3 (the target pod's own flow; last packet 2 s before this listing; refreshed between the two listings, 4 s apart; in use)")),
            "{t}"
        );
        assert!(t.contains("line 7: udp      17 109 src=10.244.0.5 dst=10.96.0.10 sport=20054 dport=53 src=10.244.0.2 dst=10.244.0.5 sport=53 dport=20054 [ASSURED] mark=0 use=1 (last packet 11 s before this listing; not refreshed between the two listings; idle, expiring)"), "{t}");
        assert!(
            t.contains(
                "clients with stale entries: 10.244.0.4 (the target pod default/web-0), 10.244.0.5"
            ),
            "{t}"
        );
        assert!(
            t.contains(
                "api: serving endpoints of kube-system/kube-dns: 10.244.0.6:53, 10.244.0.7:53"
            ),
            "{t}"
        );
        assert!(
            t.contains("kube-proxy pod kube-proxy-x7k2p on node-1"),
            "{t}"
        );
        assert!(
            f.remediation[0]
                .contains("`conntrack -D -p udp --orig-dst 10.96.0.10 --reply-src 10.244.0.2`"),
            "{:?}",
            f.remediation
        );
        assert!(f.remediation[1].contains("`kubectl -n kube-system logs kube-proxy-x7k2p`"));
        // The entries of the new endpoints are not stale, nor is anything else wrong.
        assert_eq!(
            d.findings
                .iter()
                .filter(|f| f.severity >= Severity::Warning)
                .count(),
            1,
            "{:#?}",
            d.findings
        );
    }

    #[test]
    fn another_clients_stale_entries_are_a_warning_never_healthy() {
        // The target is a third pod: its own queries work, other clients' flows die.
        let d = after_rollout("10.244.0.8").diagnose();
        let f = ours(&d).expect("finding");
        assert_eq!(f.severity, Severity::Warning);
        assert!(d.has_problems());
        assert_eq!(d.root_cause().map(|f| f.id.as_str()), Some(ID));
        assert!(
            f.summary.starts_with("2 UDP conntrack entries on node-1 still send DNS from 2 clients to 10.244.0.2, which no longer is a DNS endpoint"),
            "{}",
            f.summary
        );
        // The target's own entry, when the listings show it decaying unused: a warning too.
        let d = after_rollout(IDLE_CLIENT).diagnose();
        assert_eq!(ours(&d).map(|f| f.severity), Some(Severity::Warning));
        assert!(d.has_problems());
    }

    #[test]
    fn failing_lookups_make_it_an_error() {
        let mut s = after_rollout("10.244.0.8");
        s.set_queries(
            |q| is_cluster_dns(q) && q.transport == Transport::Udp && q.id % 3 == 0,
            QueryOutcome::TimedOut,
            None,
        );
        let f = s.diagnose();
        assert_eq!(ours(&f).map(|f| f.severity), Some(Severity::Error));
    }

    #[test]
    fn whether_a_flow_is_in_use_comes_from_its_timeout_or_the_two_listings() {
        let in_use = |s: &Scenario| -> Vec<(IpAddr, Option<bool>)> {
            let input = DiagnosisInput {
                topology: &s.topology,
                evidence: &s.evidence,
                captures: &[],
                correlation: None,
            };
            stale_entries(&Context::new(&input))
                .0
                .iter()
                .map(|e| (e.entry.original.src, e.in_use))
                .collect()
        };
        let live = (ip(LIVE_CLIENT), Some(true));
        let idle = (ip(IDLE_CLIENT), Some(false));
        assert_eq!(in_use(&after_rollout(LIVE_CLIENT)), vec![live, idle]);
        // Without the UDP timeouts: the two listings compared.
        let mut s = after_rollout(LIVE_CLIENT);
        s.evidence.nodes[0].snapshot.files.clear();
        assert_eq!(in_use(&s), vec![live, idle]);
        // Unless they were taken too close together to tell.
        s.evidence.nodes[0].snapshot.conntrack_window_ms = 800;
        assert_eq!(
            in_use(&s),
            vec![(ip(LIVE_CLIENT), None), (ip(IDLE_CLIENT), None)]
        );
        // Without the earlier listing: the timeouts alone.
        let drop_before = |s: &mut Scenario| {
            s.evidence.nodes[0]
                .snapshot
                .commands
                .retain(|c| c.key != key(ListingStage::Before))
        };
        let mut s = after_rollout(LIVE_CLIENT);
        drop_before(&mut s);
        assert_eq!(in_use(&s), vec![live, idle]);
        // With neither, nothing says the pod's flow is unused: still an error.
        s.evidence.nodes[0].snapshot.files.clear();
        assert_eq!(
            in_use(&s),
            vec![(ip(LIVE_CLIENT), None), (ip(IDLE_CLIENT), None)]
        );
        let d = s.diagnose();
        let f = ours(&d).expect("finding");
        assert_eq!(f.severity, Severity::Error);
        let t = text(f);
        assert!(
            !t.contains("last packet") && !t.contains("in use") && !t.contains("idle"),
            "{t}"
        );
    }

    #[test]
    fn entries_of_serving_endpoints_or_of_the_current_rules_are_not_stale() {
        // The old endpoint still serves (terminating): kube-proxy keeps its flows too.
        let mut s = after_rollout(LIVE_CLIENT);
        let mut old = s.topology.endpoints[0].clone();
        old.ip = ip(GONE);
        old.ready = false;
        old.terminating = true;
        s.topology.endpoints.push(old);
        assert!(ours(&s.diagnose()).is_none());
        // The node's rules still send the ClusterIP to the old endpoint: stale rules make
        // these entries, and that finding names them.
        let mut s = after_rollout(LIVE_CLIENT);
        s.set_node_command("iptables-nft-save", "");
        s.set_node_command("iptables-legacy-save", IPT_HEALTHY);
        let d = s.diagnose();
        assert!(ours(&d).is_none(), "{:#?}", d.findings);
        assert_eq!(
            d.root_cause().map(|f| f.id.as_str()),
            Some(crate::diagnose::kube_proxy_stale_rules::ID)
        );
        // Without serving endpoints nothing is cleaned, and nothing is stale.
        let mut s = after_rollout(LIVE_CLIENT);
        s.topology.endpoints.clear();
        assert!(stale_entries(&Context::new(&DiagnosisInput {
            topology: &s.topology,
            evidence: &s.evidence,
            captures: &[],
            correlation: None,
        }))
        .0
        .is_empty());
    }

    #[test]
    fn a_cut_listing_says_so() {
        let mut s = after_rollout(LIVE_CLIENT);
        let cmd = s.evidence.nodes[0]
            .snapshot
            .commands
            .iter_mut()
            .find(|c| c.key == key(ListingStage::After))
            .unwrap();
        cmd.stderr = "conntrack v1.4.7 (conntrack-tools): 120000 flow entries have been shown.\ndns-doctor-probe: stdout cut to its first 2097100 bytes: 107000 more lines (16050000 bytes) were read and not kept\n".into();
        let d = s.diagnose();
        let t = text(ours(&d).unwrap());
        assert!(
            t.contains("the listing was cut: 7 of the 120000 entries conntrack printed were kept"),
            "{t}"
        );
    }

    fn lost(id: u16, client: &str, points: &[&str]) -> LostQuery {
        LostQuery {
            transport: crate::capture::Transport::Udp,
            id,
            qname: CLUSTER_NAME.into(),
            qtype: "A".into(),
            sightings: points
                .iter()
                .enumerate()
                .map(|(i, p)| Sighting {
                    point: p.to_string(),
                    time: Timestamp::from_nanos(1_764_000_000_000_000_000 + i as i64 * 40_000),
                    client: client.parse().unwrap(),
                    server: "10.96.0.10:53".parse().unwrap(),
                    answered: false,
                    rcode: None,
                    response_size: None,
                    matched_by: MatchKind::Exact,
                })
                .collect(),
            last_seen_at: points.last().unwrap().to_string(),
            answered_at: None,
        }
    }

    #[test]
    fn lost_queries_of_the_stale_flow_show_the_harm_and_where_it_dies() {
        let s = after_rollout(IDLE_CLIENT);
        let pod = capture_analysis(3);
        let node = capture_analysis(3);
        let points = [
            PointAnalysis {
                name: "pod-web-0",
                kind: CaptureKind::Pod,
                analysis: &pod,
            },
            PointAnalysis {
                name: "node-node-1",
                kind: CaptureKind::Node,
                analysis: &node,
            },
        ];
        // Two queries of the decaying flow and one from another port were lost.
        let correlation = Correlation {
            lost: vec![
                lost(7, "10.244.0.5:20054", &["pod-web-0", "node-node-1"]),
                lost(8, "10.244.0.5:20054", &["pod-web-0", "node-node-1"]),
                lost(9, "10.244.0.5:41000", &["pod-web-0"]),
            ],
            lost_by_last_point: vec![("node-node-1".into(), 2), ("pod-web-0".into(), 1)],
            delivered: Vec::new(),
        };
        let d = diagnose(&DiagnosisInput {
            topology: &s.topology,
            evidence: &s.evidence,
            captures: &points,
            correlation: Some(&correlation),
        });
        let f = ours(&d).expect("finding");
        // Its flow lost queries during the run: in use after all.
        assert_eq!(f.severity, Severity::Error);
        assert_eq!(f.loss_point.as_deref(), Some("node-node-1"));
        let t = text(f);
        assert!(
            t.contains("capture:pod-web-0: 2 queries from 10.244.0.5:20054 (a flow with a stale entry) got no answer; last seen at node-node-1 (2)"),
            "{t}"
        );
        assert!(
            t.contains("id 7 A kubernetes.default.svc.cluster.local. at 2025-11-24T16:00:00.000000Z: 10.244.0.5:20054 -> 10.96.0.10:53, no answer"),
            "{t}"
        );
    }
}
