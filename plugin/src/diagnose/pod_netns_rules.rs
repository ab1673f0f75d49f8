//! Rules in the pod's own network namespace that decide DNS before a packet leaves the
//! pod: a DROP/REJECT of port 53 (a NetworkPolicy some CNIs enforce there, a sidecar's
//! egress lockdown, a rule someone added), or a REDIRECT/DNAT of port 53 to another first
//! hop (a service mesh's DNS proxy). The probe reads them from inside the pod.

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};

use dns_doctor_schema::PodReport;

use crate::dns_config::resolv_conf::parse_resolv_conf;
use crate::node::iptables::{parse_iptables_save, IptablesSave, Rule, Table, Target};
use crate::topology::Topology;

use super::app_lookup::LookupVerdict;
use super::finding::{EvidenceRef, Finding, Severity};
use super::observed::{Observed, Tally};
use super::Context;

pub const ID_DROPS: &str = "pod-netns-drops-dns";
pub const ID_REDIRECTS: &str = "dns-redirected-in-pod";

/// A rule of the pod's netns that meets DNS queries, with the dump it came from.
#[derive(Debug, Clone)]
pub struct Hit {
    /// The probe's command key of the dump, e.g. `iptables-nft-save`.
    pub key: String,
    pub rule: Rule,
}

impl Hit {
    /// Where a redirect sends the queries instead: `local port 15053`, `10.0.0.5:53`.
    pub fn target(&self) -> String {
        redirect_target(&self.rule)
    }

    /// Whether DNS to `server` meets this rule.
    pub fn takes(&self, server: IpAddr) -> bool {
        meets_dns(&self.rule, &[server])
    }
}

/// The DROP/REJECT rules and the redirects of the pod's own network namespace that DNS to
/// one of `servers` meets, from the probe's dumps. Nothing for a hostNetwork pod: it shares
/// the node's namespace, whose rules (kube-proxy's DNAT of the ClusterIP among them) the
/// node checks read.
pub fn dns_rules(
    report: &PodReport,
    servers: &[IpAddr],
    host_network: bool,
) -> (Vec<Hit>, Vec<Hit>) {
    let mut drops = Vec::new();
    let mut redirects = Vec::new();
    if host_network {
        return (drops, redirects);
    }
    for out in &report.netns_rules {
        if out.exit_code != Some(0) || out.error.is_some() {
            continue;
        }
        let Ok(save) = parse_iptables_save(&out.stdout) else {
            continue;
        };
        for rule in reachable(&save, "filter", "OUTPUT") {
            if matches!(rule.target, Some(Target::Drop | Target::Reject { .. }))
                && meets_dns(&rule, servers)
            {
                drops.push(Hit {
                    key: out.key.clone(),
                    rule,
                });
            }
        }
        // kube-proxy's own chains translate Services; they are not a first hop of the pod.
        for rule in reachable(&save, "nat", "OUTPUT")
            .into_iter()
            .filter(|r| !r.chain.starts_with("KUBE-"))
        {
            let redirect = match &rule.target {
                Some(Target::Dnat { .. }) => true,
                Some(Target::Other { name, .. }) => name == "REDIRECT",
                _ => false,
            };
            if redirect && meets_dns(&rule, servers) {
                redirects.push(Hit {
                    key: out.key.clone(),
                    rule,
                });
            }
        }
    }
    (drops, redirects)
}

/// The servers whose DNS the pod's own rules are judged for: the cluster DNS and the
/// nameservers of its resolv.conf.
fn pod_servers(o: &Observed<'_>) -> Vec<IpAddr> {
    let mut servers: Vec<IpAddr> = o.cluster_dns_ips();
    if let Some(conf) = o.resolv_conf() {
        servers.extend(conf.nameservers.iter().map(|n| n.address));
    }
    servers
}

/// The redirects of the pod's own network namespace that DNS to its servers takes.
pub fn redirects(cx: &Context<'_>) -> Vec<Hit> {
    let Some(o) = cx.observed.as_ref() else {
        return Vec::new();
    };
    dns_rules(o.report, &pod_servers(o), cx.topology.target.host_network).1
}

/// Where the pod's DNS to `server` really goes first, when a rule in its own namespace
/// redirects it: e.g. `local port 15053`. The probe's queries took the same way.
pub fn first_hop(redirects: &[Hit], server: IpAddr) -> Option<String> {
    redirects.iter().find(|h| h.takes(server)).map(Hit::target)
}

/// The tcpdump filter that captures DNS at the pod's first hop: port 53, plus the local
/// ports and addresses its redirects send DNS to (otherwise the capture would miss every
/// redirected query), plus ICMP unreachables (how a first hop where nothing listens
/// answers UDP). None when nothing redirects DNS.
pub fn capture_filter(report: &PodReport, topology: &Topology) -> Option<String> {
    let mut servers = super::observed::cluster_dns_ips(topology);
    if let Some(text) = report.resolv_conf.content.as_deref() {
        servers.extend(
            parse_resolv_conf(text)
                .nameservers
                .iter()
                .map(|n| n.address),
        );
    }
    let (_, redirects) = dns_rules(report, &servers, topology.target.host_network);
    let mut extra: Vec<String> = Vec::new();
    for h in &redirects {
        for term in first_hop_filter(&h.rule) {
            if !extra.contains(&term) {
                extra.push(term);
            }
        }
    }
    (!extra.is_empty()).then(|| {
        format!(
            "port 53 or {} or icmp[icmptype] == icmp-unreach",
            extra.join(" or ")
        )
    })
}

/// tcpdump terms for where one redirect sends DNS.
fn first_hop_filter(r: &Rule) -> Vec<String> {
    let port_term = |spec: &str| -> Option<String> {
        match spec.split_once('-') {
            Some((lo, hi)) => {
                let (lo, hi) = (lo.parse::<u16>().ok()?, hi.parse::<u16>().ok()?);
                Some(format!("portrange {lo}-{hi}"))
            }
            None => Some(format!("port {}", spec.parse::<u16>().ok()?)),
        }
    };
    match &r.target {
        Some(Target::Other { name, options }) if name == "REDIRECT" => options
            .iter()
            .filter(|o| o.name == "to-ports")
            .flat_map(|o| o.values.iter())
            .flat_map(|v| v.split(','))
            .filter_map(port_term)
            .filter(|t| t != "port 53")
            .collect(),
        Some(Target::Dnat {
            to_destination: Some(d),
        }) => {
            // `IP:PORT`, `[IP6]:PORT`, `IP:LO-HI`; without a port the queries keep port 53.
            let (host, port) = match d.parse::<SocketAddr>() {
                Ok(sa) => (sa.ip().to_string(), sa.port().to_string()),
                Err(_) => match d.rsplit_once(':') {
                    Some((h, p)) if h.parse::<std::net::Ipv4Addr>().is_ok() => {
                        (h.to_string(), p.to_string())
                    }
                    _ => return Vec::new(),
                },
            };
            match port_term(&port) {
                Some(p) if p != "port 53" => vec![format!("(host {host} and {p})")],
                _ => Vec::new(),
            }
        }
        _ => Vec::new(),
    }
}

pub fn rule(cx: &Context<'_>) -> Vec<Finding> {
    let Some(o) = cx.observed.as_ref() else {
        return Vec::new();
    };
    let (drops, redirects) = dns_rules(o.report, &pod_servers(o), cx.topology.target.host_network);
    let mut findings = Vec::new();
    let clusterip_dead = o
        .cluster_dns_tally(dns_doctor_schema::Transport::Udp)
        .mostly_failed();
    if !drops.is_empty() {
        findings.push(Finding {
            id: ID_DROPS.into(),
            severity: if clusterip_dead { Severity::Error } else { Severity::Warning },
            summary: "a rule in the pod's own network namespace drops DNS before it leaves the pod".into(),
            evidence: evidence(&drops),
            remediation: vec![
                "Find who wrote the rule (its comment and chain name: a CNI enforcing NetworkPolicy inside the pod, a sidecar or init container locking egress down) and allow UDP and TCP 53 to the cluster DNS there.".into(),
                "If it enforces a NetworkPolicy, add an egress rule allowing DNS to the DNS pods (see the NetworkPolicy finding, if any).".into(),
            ],
            loss_point: Some("the pod's network namespace".into()),
            node_pair: None,
        });
    }
    if !redirects.is_empty() {
        findings.push(redirect_finding(cx, o, &redirects));
    }
    findings
}

/// The redirect as the cause or as a fact: what the probe's queries, which took it, got
/// at the first hop.
fn redirect_finding(cx: &Context<'_>, o: &Observed<'_>, redirects: &[Hit]) -> Finding {
    let failing = cx
        .lookups
        .iter()
        .any(|l| matches!(l.verdict, LookupVerdict::Fails | LookupVerdict::Wrong));
    let targets: BTreeSet<String> = redirects.iter().map(Hit::target).collect();
    let targets = targets.into_iter().collect::<Vec<_>>().join(", ");
    // The probe's queries to each redirected server: they went to the first hop.
    let mut servers: Vec<IpAddr> = Vec::new();
    for q in &o.report.queries {
        let ip = q.server.ip();
        if !servers.contains(&ip) && redirects.iter().any(|h| h.takes(ip)) {
            servers.push(ip);
        }
    }
    let through = Tally::of(
        o.report
            .queries
            .iter()
            .filter(|q| servers.contains(&q.server.ip())),
    );
    let mut evidence_refs = Vec::new();
    for ip in &servers {
        let t = Tally::of(o.report.queries.iter().filter(|q| q.server.ip() == *ip));
        let hop = first_hop(redirects, *ip).unwrap_or_default();
        evidence_refs.push(EvidenceRef::new(
            "check:queries",
            format!("the probe's queries to {ip}:53 went to {hop} instead: {t}"),
        ));
    }
    let at_hop = if through.sent == 0 || through.ok > 0 {
        String::new()
    } else if through.refused == through.sent {
        ", where nothing listens (every query refused)".into()
    } else if through.timed_out + through.refused == through.sent {
        ", which does not answer".into()
    } else {
        ", which answers with errors".into()
    };
    evidence_refs.extend(evidence(redirects));
    let mut remediation = Vec::new();
    if failing && through.sent > 0 && through.refused == through.sent {
        remediation.push(format!("Nothing listens on {targets} in the pod: start the DNS proxy that should (a service mesh sidecar's DNS proxy, e.g. Istio's agent on port 15053, must be running before the application resolves: `holdApplicationUntilProxyStarts`), or remove the redirect (Istio: turn DNS capture off for the pod, `ISTIO_META_DNS_CAPTURE: \"false\"`).") );
    }
    remediation.push("The probe's queries took the same redirect, so its results are what that first hop answers. If it is a service mesh's DNS proxy (e.g. Istio's on port 15053), check that proxy: its logs, its configuration for DNS capture, and that it forwards to the cluster DNS.".into());
    Finding {
        id: ID_REDIRECTS.into(),
        severity: if failing { Severity::Error } else { Severity::Info },
        summary: format!(
            "DNS from the pod is redirected inside its network namespace to {targets}{at_hop}: the first hop is not the cluster DNS{}",
            if failing { ", and lookups through it fail" } else { "" }
        ),
        evidence: evidence_refs,
        remediation,
        loss_point: None,
        node_pair: None,
    }
}

fn evidence(hits: &[Hit]) -> Vec<EvidenceRef> {
    hits.iter()
        .map(|h| {
            EvidenceRef::new(
                format!("probe:netns/{}", h.key),
                format!("line {}: {}", h.rule.line, h.rule.text),
            )
        })
        .collect()
}

fn redirect_target(r: &Rule) -> String {
    match &r.target {
        Some(Target::Dnat {
            to_destination: Some(d),
        }) => d.clone(),
        Some(Target::Other { options, .. }) => options
            .iter()
            .find(|o| o.name == "to-ports")
            .map(|o| format!("local port {}", o.values.join(",")))
            .unwrap_or_else(|| "a local port".into()),
        _ => "another address".into(),
    }
}

/// Rules of `chain` and of the user chains it jumps to, in order.
fn reachable(save: &IptablesSave, table: &str, chain: &str) -> Vec<Rule> {
    let Some(t) = save.table(table) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut seen = BTreeSet::new();
    walk(t, chain, &mut seen, &mut out);
    out
}

fn walk(t: &Table, chain: &str, seen: &mut BTreeSet<String>, out: &mut Vec<Rule>) {
    if !seen.insert(chain.to_string()) {
        return;
    }
    let Some(c) = t.chain(chain) else { return };
    for r in &c.rules {
        if let Some(Target::Chain { name, .. }) = &r.target {
            walk(t, name, seen, out);
        } else {
            out.push(r.clone());
        }
    }
}

/// Whether a DNS query from the pod to one of `servers` meets the rule: UDP or TCP (or
/// any protocol), destination port 53 (or any), one of the servers (or any destination),
/// leaving by anything but loopback.
fn meets_dns(r: &Rule, servers: &[IpAddr]) -> bool {
    let proto_ok = match &r.protocol {
        None => true,
        Some(p) if p.negated => !matches!(p.value.as_str(), "udp" | "tcp"),
        Some(p) => matches!(p.value.as_str(), "udp" | "tcp" | "all"),
    };
    let port_ok = match r.destination_ports() {
        None => true,
        Some(p) => p.value.contains(53) != p.negated,
    };
    let dst_ok = match &r.destination {
        None => true,
        Some(d) => servers.iter().any(|ip| d.value.contains(ip)) != d.negated,
    };
    let out_ok = match &r.out_interface {
        None => true,
        Some(i) => (i.value == "lo") == i.negated,
    };
    proto_ok && port_ok && dst_ok && out_ok
}

#[cfg(test)]
mod tests {
    use dns_doctor_schema::{ConnectOutcome, QueryOutcome};

    use super::super::testkit::*;
    use super::*;
    use crate::diagnose::Severity;

    /// `iptables-nft-save` in client-glibc's network namespace on the test cluster with its
    /// `dns-redirect` fault on, as the probe dumped it (fixtures/node/README.md).
    const MESH_REDIRECT: &str =
        include_str!("../../tests/fixtures/node/pod-netns-iptables-nft-mesh-redirect.txt");

    fn with_mesh_redirect() -> Scenario {
        let mut s = healthy();
        s.probe().netns_rules = vec![command("iptables-nft-save", MESH_REDIRECT)];
        s
    }

    #[test]
    fn nothing_listening_at_the_redirect_is_named_as_the_first_hop() {
        let mut s = with_mesh_redirect();
        s.set_queries(is_cluster_dns, QueryOutcome::Refused, None);
        s.set_connects(|c| c.target.ip() == ip(CLUSTER_IP), ConnectOutcome::Refused);
        let d = s.diagnose();
        let f = &d.findings[0];
        assert_eq!(f.id, ID_REDIRECTS, "{:?}", d.findings);
        assert_eq!(f.severity, Severity::Error);
        assert!(
            f.summary
                .contains("local port 15053, where nothing listens (every query refused)"),
            "{}",
            f.summary
        );
        let evidence: Vec<&str> = f.evidence.iter().map(|e| e.detail.as_str()).collect();
        assert!(
            evidence[0].starts_with(
                "the probe's queries to 10.96.0.10:53 went to local port 15053 instead: 0/"
            ),
            "{evidence:?}"
        );
        assert!(evidence
            .iter()
            .any(|e| e.starts_with("line 11: -A DNSDOCTOR-MESH-OUTPUT")));
        assert!(f.remediation[0].contains("Nothing listens on local port 15053"));
        // The checklist says where the queries to the cluster DNS went.
        let check = |id: &str| {
            d.checklist
                .iter()
                .find(|c| c.id == id)
                .map(|c| c.detail.clone())
                .unwrap_or_default()
        };
        assert!(
            check("pod-nameservers").starts_with(
                "10.96.0.10 (the cluster DNS, redirected in the pod to local port 15053): 0/"
            ),
            "{}",
            check("pod-nameservers")
        );
        assert!(check("tcp-connect")
            .starts_with("10.96.0.10:53 (redirected in the pod to local port 15053) refused"));
        assert!(
            check("queries").ends_with("; redirected in the pod: 10.96.0.10 -> local port 15053")
        );
        // The ClusterIP fails while the endpoints answer: not kube-proxy's doing.
        assert!(!d
            .findings
            .iter()
            .any(|f| f.id == super::super::kube_proxy_not_translating::ID));
    }

    #[test]
    fn a_proxy_that_does_not_answer_is_told_from_one_that_is_not_there() {
        let mut s = with_mesh_redirect();
        s.set_queries(is_cluster_dns, QueryOutcome::TimedOut, None);
        let d = s.diagnose();
        let f = &d.findings[0];
        assert_eq!(f.id, ID_REDIRECTS);
        assert!(
            f.summary
                .contains("local port 15053, which does not answer"),
            "{}",
            f.summary
        );
        assert!(!f.remediation[0].contains("Nothing listens"));
    }

    #[test]
    fn a_working_redirect_is_reported_without_blame() {
        let d = with_mesh_redirect().diagnose();
        let f = d.findings.iter().find(|f| f.id == ID_REDIRECTS).unwrap();
        assert_eq!(f.severity, Severity::Info);
        assert_eq!(
            f.summary,
            "DNS from the pod is redirected inside its network namespace to local port 15053: the first hop is not the cluster DNS"
        );
        assert!(!d.has_problems());
    }

    #[test]
    fn the_pod_capture_follows_the_redirect() {
        let s = with_mesh_redirect();
        let report = s.evidence.pod_probe.as_ref().unwrap();
        assert_eq!(
            capture_filter(report, &s.topology).as_deref(),
            Some("port 53 or port 15053 or icmp[icmptype] == icmp-unreach")
        );
        // Without a redirect the probe's own filter (port 53) stays.
        assert_eq!(capture_filter(&healthy_report(), &s.topology), None);
        // A hostNetwork pod's nat rules are the node's (kube-proxy's DNAT): no first hop.
        let mut host = s.topology.clone();
        host.target.host_network = true;
        assert_eq!(capture_filter(report, &host), None);
    }

    #[test]
    fn dnat_redirects_add_their_address_and_port() {
        let s = healthy();
        let mut report = healthy_report();
        report.netns_rules = vec![command(
            "iptables-legacy-save",
            "*nat\n:OUTPUT ACCEPT [0:0]\n-A OUTPUT -d 10.96.0.10/32 -p udp -m udp --dport 53 -j DNAT --to-destination 169.254.1.1:5300\n-A OUTPUT -d 10.96.0.10/32 -p tcp -m tcp --dport 53 -j DNAT --to-destination 169.254.1.2\n-A OUTPUT -p udp -m udp --dport 53 -j REDIRECT --to-ports 5300-5301\nCOMMIT\n",
        )];
        assert_eq!(
            capture_filter(&report, &s.topology).as_deref(),
            Some("port 53 or (host 169.254.1.1 and port 5300) or portrange 5300-5301 or icmp[icmptype] == icmp-unreach")
        );
    }

    fn healthy_report() -> PodReport {
        healthy()
            .evidence
            .pod_probe
            .expect("the healthy scenario has a probe")
    }
}
