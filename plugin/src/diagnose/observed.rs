//! What the pod probe observed, sorted the way rules ask about it: which server (the cluster
//! DNS address, an endpoint, an upstream), which transport, cluster or external names.

use std::fmt;
use std::net::IpAddr;

use dns_doctor_schema::{
    ConnectOutcome, PodReport, QueryOutcome, QueryResult, ServerRole, TcpConnect, Transport,
};

use crate::dns_config::resolv_conf::{parse_resolv_conf, ResolvConf};
use crate::topology::Topology;

/// The share of tries, in percent, that makes a path "working" or "dead".
pub const MOSTLY: usize = 95;

/// Counts of probe queries by how they ended.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    pub sent: usize,
    /// A response arrived with NOERROR or NXDOMAIN: the server did its job.
    pub ok: usize,
    /// A response arrived with SERVFAIL, REFUSED or another failing rcode.
    pub failed_rcode: usize,
    pub timed_out: usize,
    /// ICMP port unreachable / RST, or no route.
    pub refused: usize,
    pub error: usize,
}

impl Tally {
    pub fn of<'q>(queries: impl IntoIterator<Item = &'q QueryResult>) -> Self {
        let mut t = Self::default();
        for q in queries {
            t.sent += 1;
            match q.outcome {
                QueryOutcome::Answered if answered_ok(q) => t.ok += 1,
                QueryOutcome::Answered => t.failed_rcode += 1,
                QueryOutcome::TimedOut => t.timed_out += 1,
                QueryOutcome::Refused | QueryOutcome::Unreachable => t.refused += 1,
                QueryOutcome::Error => t.error += 1,
            }
        }
        t
    }

    /// Queries that got no usable answer.
    pub fn failed(&self) -> usize {
        self.sent - self.ok
    }

    /// At least one query was sent and none got a usable answer.
    pub fn all_failed(&self) -> bool {
        self.sent > 0 && self.ok == 0
    }

    /// At least one query was sent and every one got a usable answer.
    pub fn all_ok(&self) -> bool {
        self.sent > 0 && self.ok == self.sent
    }

    /// "It works": at least [`MOSTLY`] percent of the queries got a usable answer, or all
    /// but one stray of a good number. A conclusion rests on proportions, so one lost
    /// packet does not flip it.
    pub fn mostly_ok(&self) -> bool {
        self.sent > 0 && self.failed() <= self.strays()
    }

    /// "It is dead": at most a stray share of the queries got a usable answer; one answer
    /// that slipped through does not make a dead path look alive.
    pub fn mostly_failed(&self) -> bool {
        self.sent > 0 && self.ok <= self.strays()
    }

    /// How many tries may go the other way without changing the conclusion: the
    /// (100 - [`MOSTLY`]) percent, and at least one out of [`STRAY_MIN_TRIES`] or more.
    fn strays(&self) -> usize {
        let share = self.sent * (100 - MOSTLY) / 100;
        if self.sent >= STRAY_MIN_TRIES {
            share.max(1)
        } else {
            share
        }
    }
}

/// With fewer tries than this, every one counts.
pub const STRAY_MIN_TRIES: usize = 8;

impl fmt::Display for Tally {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{} answered", self.ok, self.sent)?;
        let mut parts = Vec::new();
        if self.timed_out > 0 {
            parts.push(format!("{} timed out", self.timed_out));
        }
        if self.refused > 0 {
            parts.push(format!("{} refused/unreachable", self.refused));
        }
        if self.failed_rcode > 0 {
            parts.push(format!("{} SERVFAIL/REFUSED", self.failed_rcode));
        }
        if self.error > 0 {
            parts.push(format!("{} errors", self.error));
        }
        if !parts.is_empty() {
            write!(f, " ({})", parts.join(", "))?;
        }
        Ok(())
    }
}

/// NOERROR or NXDOMAIN: a name server that answers these is working.
pub fn answered_ok(q: &QueryResult) -> bool {
    q.outcome == QueryOutcome::Answered
        && matches!(q.rcode.as_deref(), Some("NOERROR") | Some("NXDOMAIN"))
}

/// The probe's results, with the topology needed to tell cluster names and addresses apart.
#[derive(Debug, Clone, Copy)]
pub struct Observed<'a> {
    pub report: &'a PodReport,
    topology: &'a Topology,
}

impl<'a> Observed<'a> {
    pub fn new(report: &'a PodReport, topology: &'a Topology) -> Self {
        Self { report, topology }
    }

    /// The addresses that are "the cluster DNS": the kubelet's clusterDNS and the Service IP.
    pub fn cluster_dns_ips(&self) -> Vec<IpAddr> {
        cluster_dns_ips(self.topology)
    }

    /// The pod's resolv.conf, parsed, when the probe could read it.
    pub fn resolv_conf(&self) -> Option<ResolvConf> {
        self.report
            .resolv_conf
            .content
            .as_deref()
            .map(parse_resolv_conf)
    }

    /// True for names inside the cluster domain (e.g. `kubernetes.default.svc.cluster.local.`).
    pub fn is_cluster_name(&self, qname: &str) -> bool {
        let domain = if self.topology.cluster_dns.domain.is_empty() {
            "cluster.local"
        } else {
            self.topology.cluster_dns.domain.trim_end_matches('.')
        };
        let name = qname.trim_end_matches('.').to_ascii_lowercase();
        name == domain || name.ends_with(&format!(".{domain}"))
    }

    /// Queries the pod sent to the cluster DNS address: as its nameserver, or, when its
    /// resolv.conf names another one (dnsPolicy None, a NodeLocal cache), as the address the
    /// plugin asked the probe to test besides.
    pub fn to_cluster_dns(&self) -> impl Iterator<Item = &'a QueryResult> + '_ {
        let ips = self.cluster_dns_ips();
        self.report.queries.iter().filter(move |q| {
            matches!(q.role, ServerRole::Nameserver | ServerRole::Explicit)
                && ips.contains(&q.server.ip())
        })
    }

    /// Queries sent straight to DNS endpoints (pod IPs), bypassing the Service: to those
    /// the ClusterIP leads to, i.e. not to endpoints the EndpointSlices mark not ready (an
    /// older probe asked those too; they are the DNS-pods finding's business).
    pub fn to_endpoints(&self) -> impl Iterator<Item = &'a QueryResult> + Clone + 'a {
        let topology = self.topology;
        self.report
            .queries
            .iter()
            .filter(move |q| q.role == ServerRole::Endpoint && !not_ready(topology, q.server.ip()))
    }

    /// Queries sent straight to endpoints the EndpointSlices mark not ready.
    pub fn to_not_ready_endpoints(&self) -> impl Iterator<Item = &'a QueryResult> + Clone + 'a {
        let topology = self.topology;
        self.report
            .queries
            .iter()
            .filter(move |q| q.role == ServerRole::Endpoint && not_ready(topology, q.server.ip()))
    }

    /// Queries to the pod's own nameservers, whatever address they have.
    pub fn to_nameservers(&self) -> impl Iterator<Item = &'a QueryResult> + 'a {
        self.report
            .queries
            .iter()
            .filter(|q| q.role == ServerRole::Nameserver)
    }

    /// Cluster DNS queries over one transport.
    pub fn cluster_dns_tally(&self, transport: Transport) -> Tally {
        Tally::of(self.to_cluster_dns().filter(|q| q.transport == transport))
    }

    /// Cluster DNS queries for cluster names (`true`) or external names (`false`).
    pub fn cluster_dns_names_tally(&self, cluster_names: bool) -> Tally {
        Tally::of(
            self.to_cluster_dns()
                .filter(|q| self.is_cluster_name(&q.qname) == cluster_names),
        )
    }

    /// Direct queries per ready endpoint address, in the order the probe tried them.
    pub fn per_endpoint(&self) -> Vec<(IpAddr, Tally)> {
        per_server(self.to_endpoints())
    }

    /// Direct queries per not-ready endpoint address: shown, never judged.
    pub fn per_not_ready_endpoint(&self) -> Vec<(IpAddr, Tally)> {
        per_server(self.to_not_ready_endpoints())
    }

    /// Endpoints that failed every direct query while at least one other endpoint answered:
    /// replicas that are broken while the Service still sends lookups to them.
    pub fn broken_endpoints(&self) -> Vec<(IpAddr, Tally)> {
        let per = self.per_endpoint();
        if per.len() < 2 || !per.iter().any(|(_, t)| t.ok > 0) {
            return Vec::new();
        }
        per.into_iter().filter(|(_, t)| t.all_failed()).collect()
    }

    /// Servers (nameserver, cluster DNS address, endpoint or upstream) that answered none
    /// of the probe's UDP queries: whatever a client sends there stalls until it times out.
    pub fn silent_servers(&self) -> Vec<IpAddr> {
        let mut ips: Vec<IpAddr> = Vec::new();
        for q in self.report.queries.iter() {
            if q.transport == Transport::Udp && !ips.contains(&q.server.ip()) {
                ips.push(q.server.ip());
            }
        }
        ips.retain(|ip| {
            Tally::of(
                self.report
                    .queries
                    .iter()
                    .filter(|q| q.transport == Transport::Udp && q.server.ip() == *ip),
            )
            .all_failed()
        });
        ips
    }

    /// TCP connects to the cluster DNS address.
    pub fn cluster_dns_connects(&self) -> impl Iterator<Item = &'a TcpConnect> + '_ {
        let ips = self.cluster_dns_ips();
        self.report.tcp_connects.iter().filter(move |c| {
            matches!(c.role, ServerRole::Nameserver | ServerRole::Explicit)
                && ips.contains(&c.target.ip())
        })
    }

    /// Whether any TCP connect to the cluster DNS address succeeded (None: none was tried).
    pub fn cluster_dns_tcp_connects_ok(&self) -> Option<bool> {
        let mut any = false;
        for c in self.cluster_dns_connects() {
            if c.outcome == ConnectOutcome::Connected {
                return Some(true);
            }
            any = true;
        }
        any.then_some(false)
    }
}

/// True when the EndpointSlices list `ip` as not ready; unknown addresses count as ready.
fn not_ready(topology: &Topology, ip: IpAddr) -> bool {
    topology.endpoints.iter().any(|e| e.ip == ip && !e.ready)
}

/// Queries grouped by server address, in the order first seen.
fn per_server<'q>(queries: impl Iterator<Item = &'q QueryResult> + Clone) -> Vec<(IpAddr, Tally)> {
    let mut ips: Vec<IpAddr> = Vec::new();
    for q in queries.clone() {
        if !ips.contains(&q.server.ip()) {
            ips.push(q.server.ip());
        }
    }
    ips.into_iter()
        .map(|ip| {
            (
                ip,
                Tally::of(queries.clone().filter(|q| q.server.ip() == ip)),
            )
        })
        .collect()
}

/// The addresses that are "the cluster DNS": the kubelet's clusterDNS and the Service IP.
pub fn cluster_dns_ips(topology: &Topology) -> Vec<IpAddr> {
    let mut ips = topology.cluster_dns.ips.clone();
    if let Some(svc) = &topology.dns_service {
        if !ips.contains(&svc.cluster_ip) {
            ips.push(svc.cluster_ip);
        }
    }
    ips
}

/// A short label for one query, e.g. `UDP A kubernetes.default.svc.cluster.local. -> 10.96.0.10`.
pub fn describe_query(q: &QueryResult) -> String {
    let transport = match q.transport {
        Transport::Udp => "UDP",
        Transport::Tcp => "TCP",
    };
    let outcome = match q.outcome {
        QueryOutcome::Answered => {
            let rcode = q.rcode.clone().unwrap_or_else(|| "answered".into());
            if q.truncated {
                format!("{rcode}, truncated (TC)")
            } else {
                rcode
            }
        }
        QueryOutcome::TimedOut => "timed out".into(),
        QueryOutcome::Refused => "refused".into(),
        QueryOutcome::Unreachable => "unreachable".into(),
        QueryOutcome::Error => q.error.clone().unwrap_or_else(|| "error".into()),
    };
    format!(
        "{transport} {} {} -> {}: {outcome} in {:.0} ms (id {})",
        q.qtype, q.qname, q.server, q.latency_ms, q.id
    )
}
