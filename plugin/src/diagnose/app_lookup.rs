//! What the pod's applications experience when they look a name up: the pod's own resolver
//! path replayed over what the probe measured.
//!
//! The probe asks every search candidate of every name at every nameserver of the pod, over
//! UDP and TCP, A and AAAA. A resolver walks those in a fixed order: candidates by the
//! search list and ndots; for each candidate the nameservers in order (glibc: one after the
//! other, waiting `timeout` for each, `attempts` rounds; musl: all at once, taking the first
//! usable reply, and giving up the whole lookup after a failure); A and AAAA together, or
//! one after the other with `single-request`; TCP with `use-vc`. Walking the measurements
//! in that order gives the answer an application gets and the time it waits, without
//! waiting those timeouts out during the run.
//!
//! The result is then judged: the answer must be right where the API knows it (a Service's
//! ClusterIP), an address where it does not, and it must come within [`SLOW_MS`].

use std::collections::BTreeSet;
use std::net::IpAddr;

use dns_doctor_schema::{LibcKind, PodReport, QueryOutcome, QueryResult, ServerRole, Transport};
use serde::{Deserialize, Serialize};

use crate::dns_config::resolv_conf::{musl_search_candidates, ResolvConf};
use crate::topology::KnownService;

/// Longer than this, a lookup is slow: applications notice, and timeouts of their own
/// (HTTP clients, health checks) start to fire.
pub const SLOW_MS: f64 = 1000.0;

/// Whose resolver behaviour was replayed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResolverModel {
    Glibc,
    Musl,
    /// The libc was not seen (static binary, no shared process namespace): glibc's
    /// behaviour, which Go's and most other stub resolvers follow.
    GlibcLike,
}

/// How a replayed lookup ended, judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LookupVerdict {
    /// The right answer (or an address, where nothing more is known), within [`SLOW_MS`].
    Ok,
    /// The right answer, but after more than [`SLOW_MS`].
    Slow,
    /// The probe did not measure a step the resolver would take.
    Unmeasured,
    /// An answer that is not what the API says the name is.
    Wrong,
    /// No address: NXDOMAIN, no data, SERVFAIL, or no nameserver answered.
    Fails,
}

/// One step of the walk: a candidate asked at one nameserver.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LookupStep {
    pub qname: String,
    pub server: IpAddr,
    /// What came back, e.g. `NOERROR A 10.96.0.1`, `NXDOMAIN`, `timed out`.
    pub result: String,
    /// Time this step costs the application, milliseconds.
    pub cost_ms: f64,
}

/// One name as an application asks for it, replayed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AppLookup {
    /// The name as the application asks it (`kubernetes.default`).
    pub name: String,
    pub model: ResolverModel,
    pub verdict: LookupVerdict,
    /// The candidate that gave the answer, when one did.
    #[serde(default)]
    pub answered_qname: Option<String>,
    pub addresses: Vec<IpAddr>,
    /// The addresses the API says the name has, and from which object.
    #[serde(default)]
    pub expected: Option<Expected>,
    /// Wall time the application waits for the whole lookup, milliseconds.
    pub wall_ms: f64,
    /// Why it failed, in words, when it did.
    #[serde(default)]
    pub failure: Option<String>,
    pub steps: Vec<LookupStep>,
}

/// What the API says a name resolves to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Expected {
    /// `namespace/name` of the Service.
    pub service: String,
    pub qname: String,
    pub addresses: Vec<IpAddr>,
}

impl AppLookup {
    /// A one-line account: `kubernetes.default -> 10.96.0.1 in 3 ms (glibc)`.
    pub fn describe(&self) -> String {
        let model = match self.model {
            ResolverModel::Glibc => "glibc",
            ResolverModel::Musl => "musl",
            ResolverModel::GlibcLike => "glibc-like resolver",
        };
        let answer = if self.addresses.is_empty() {
            self.failure.clone().unwrap_or_else(|| "no address".into())
        } else {
            let a: Vec<String> = self.addresses.iter().map(IpAddr::to_string).collect();
            a.join(", ")
        };
        let mut s = format!(
            "{} -> {answer} in {:.0} ms ({model})",
            self.name, self.wall_ms
        );
        match (self.verdict, &self.expected) {
            (LookupVerdict::Wrong, Some(e)) => {
                let want: Vec<String> = e.addresses.iter().map(IpAddr::to_string).collect();
                s.push_str(&format!(
                    "; the API says {} is {} (Service {})",
                    e.qname,
                    want.join(", "),
                    e.service
                ));
            }
            (LookupVerdict::Slow, _) => s.push_str(&format!(", slower than {SLOW_MS:.0} ms")),
            (LookupVerdict::Unmeasured, _) => s.push_str(", not every step was measured"),
            _ => {}
        }
        s
    }
}

/// The measured reply to one query, as the resolver sees it.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Reply<'a> {
    /// NOERROR (with or without records).
    Data(&'a QueryResult),
    NxDomain(&'a QueryResult),
    /// SERVFAIL, REFUSED, FORMERR...: this server failed; glibc asks the next one.
    ServerFailure(&'a QueryResult),
    /// ICMP unreachable or RST: fails at once, no timeout waited.
    Rejected(&'a QueryResult),
    TimedOut,
    NotMeasured,
}

/// Replays every name the probe was asked to resolve (its search expansions) through the
/// pod's resolver, and judges each.
pub fn replay(
    report: &PodReport,
    conf: &ResolvConf,
    domain: &str,
    known: &[KnownService],
) -> Vec<AppLookup> {
    let model = match report.libc.kind {
        LibcKind::Glibc => ResolverModel::Glibc,
        LibcKind::Musl => ResolverModel::Musl,
        _ => ResolverModel::GlibcLike,
    };
    let nameservers: Vec<IpAddr> = conf
        .effective_nameservers()
        .iter()
        .map(|n| n.address)
        .collect();
    report
        .search_expansion
        .iter()
        .map(|e| {
            let candidates = match model {
                ResolverModel::Musl => musl_search_candidates(&e.name, conf.ndots, &conf.search),
                _ => conf.candidates(&e.name),
            };
            let mut lookup = match model {
                ResolverModel::Musl => walk_musl(&e.name, &candidates, &nameservers, conf, report),
                _ => walk_glibc(&e.name, &candidates, &nameservers, conf, report, model),
            };
            lookup.expected = expected_for(&candidates, domain, known);
            lookup.verdict = judge(&lookup);
            lookup
        })
        .collect()
}

fn judge(l: &AppLookup) -> LookupVerdict {
    if l.addresses.is_empty() {
        return if l.failure.as_deref() == Some(UNMEASURED) {
            LookupVerdict::Unmeasured
        } else {
            LookupVerdict::Fails
        };
    }
    if let Some(e) = &l.expected {
        let right = l.answered_qname.as_deref() == Some(e.qname.as_str())
            && same_family_set(&l.addresses, &e.addresses);
        if !right {
            return LookupVerdict::Wrong;
        }
    }
    if l.wall_ms > SLOW_MS {
        LookupVerdict::Slow
    } else {
        LookupVerdict::Ok
    }
}

/// The answer's addresses of each family equal the expected ones of that family (a
/// dual-stack Service has one ClusterIP per family; a lookup may ask only one).
fn same_family_set(got: &[IpAddr], want: &[IpAddr]) -> bool {
    let fam = |v: &[IpAddr], v4: bool| -> BTreeSet<IpAddr> {
        v.iter().copied().filter(|a| a.is_ipv4() == v4).collect()
    };
    [true, false].iter().all(|&v4| {
        let g = fam(got, v4);
        g.is_empty() || g == fam(want, v4)
    }) && !got.is_empty()
}

/// The Service a name means: the first candidate `svc.ns.svc.<domain>.` that names a
/// Service the API knows, with its ClusterIPs.
fn expected_for(candidates: &[String], domain: &str, known: &[KnownService]) -> Option<Expected> {
    let domain = domain.trim_end_matches('.');
    candidates.iter().find_map(|c| {
        known.iter().find_map(|s| {
            let fq = format!("{}.{}.svc.{domain}.", s.name, s.namespace);
            (c.eq_ignore_ascii_case(&fq) && !s.cluster_ips.is_empty()).then(|| Expected {
                service: format!("{}/{}", s.namespace, s.name),
                qname: fq,
                addresses: s.cluster_ips.clone(),
            })
        })
    })
}

const UNMEASURED: &str = "not every step the resolver takes was measured";

fn qtypes(conf: &ResolvConf) -> &'static [&'static str] {
    if conf.no_aaaa {
        &["A"]
    } else {
        &["A", "AAAA"]
    }
}

/// The probe's measurement of one query (the first, when it was asked more than once).
fn measured<'a>(
    report: &'a PodReport,
    server: IpAddr,
    qname: &str,
    qtype: &str,
    transport: Transport,
) -> Reply<'a> {
    let Some(q) = report.queries.iter().find(|q| {
        q.role == ServerRole::Nameserver
            && q.server.ip() == server
            && q.transport == transport
            && q.qtype == qtype
            && q.qname.eq_ignore_ascii_case(qname)
    }) else {
        // The probe stops sending on a path whose first queries all timed out (a dead
        // path): what it did not send would have timed out too.
        let mut on_path = report.queries.iter().filter(|q| {
            q.role == ServerRole::Nameserver && q.server.ip() == server && q.transport == transport
        });
        let first = on_path.next();
        return match first {
            Some(f)
                if f.outcome == QueryOutcome::TimedOut
                    && on_path.all(|q| q.outcome == QueryOutcome::TimedOut) =>
            {
                Reply::TimedOut
            }
            _ => Reply::NotMeasured,
        };
    };
    match q.outcome {
        QueryOutcome::Answered => match q.rcode.as_deref() {
            Some("NOERROR") => Reply::Data(q),
            Some("NXDOMAIN") => Reply::NxDomain(q),
            _ => Reply::ServerFailure(q),
        },
        QueryOutcome::TimedOut => Reply::TimedOut,
        QueryOutcome::Refused | QueryOutcome::Unreachable | QueryOutcome::Error => {
            Reply::Rejected(q)
        }
    }
}

fn addresses_of(q: &QueryResult) -> Vec<IpAddr> {
    q.answers
        .iter()
        .filter_map(|a| {
            let mut w = a.split_whitespace();
            match (w.next(), w.next()) {
                (Some("A" | "AAAA"), Some(ip)) => ip.parse().ok(),
                _ => None,
            }
        })
        .collect()
}

fn label(r: &Reply<'_>) -> String {
    match r {
        Reply::Data(q) if addresses_of(q).is_empty() => "NOERROR, no address".into(),
        Reply::Data(q) => format!("NOERROR {}", q.answers.join(" ")),
        Reply::NxDomain(_) => "NXDOMAIN".into(),
        Reply::ServerFailure(q) => q.rcode.clone().unwrap_or_else(|| "failure".into()),
        Reply::Rejected(q) => match q.outcome {
            QueryOutcome::Refused => "refused".into(),
            QueryOutcome::Unreachable => "unreachable".into(),
            _ => q.error.clone().unwrap_or_else(|| "error".into()),
        },
        Reply::TimedOut => "timed out".into(),
        Reply::NotMeasured => "not measured".into(),
    }
}

/// What one candidate at one server gives, for all asked types at once.
struct Asked<'a> {
    replies: Vec<Reply<'a>>,
    cost_ms: f64,
}

impl Asked<'_> {
    /// Every address in the replies that carry data.
    fn addresses(&self) -> Vec<IpAddr> {
        self.replies
            .iter()
            .filter_map(|r| match r {
                Reply::Data(q) => Some(addresses_of(q)),
                _ => None,
            })
            .flatten()
            .collect()
    }

    /// NXDOMAIN for some type, or (NOERROR) no data for every type: why no address came.
    fn negative_reason(&self) -> String {
        if self.replies.iter().any(|r| matches!(r, Reply::NxDomain(_))) {
            "NXDOMAIN".into()
        } else {
            "no address (NOERROR without records)".into()
        }
    }
}

/// A and AAAA to one server: in parallel (the cost is the slower reply, or the timeout if
/// one never comes) or, with `single-request`, one after the other.
fn ask<'a>(
    report: &'a PodReport,
    server: IpAddr,
    qname: &str,
    conf: &ResolvConf,
    timeout_ms: f64,
    transport: Transport,
) -> Asked<'a> {
    let replies: Vec<Reply<'a>> = qtypes(conf)
        .iter()
        .map(|t| measured(report, server, qname, t, transport))
        .collect();
    let costs = replies.iter().map(|r| match r {
        Reply::Data(q) | Reply::NxDomain(q) | Reply::ServerFailure(q) | Reply::Rejected(q) => {
            q.latency_ms.min(timeout_ms)
        }
        Reply::TimedOut => timeout_ms,
        Reply::NotMeasured => 0.0,
    });
    let cost_ms = if conf.single_request {
        costs.sum()
    } else {
        costs.fold(0.0, f64::max)
    };
    Asked { replies, cost_ms }
}

fn new_lookup(name: &str, model: ResolverModel) -> AppLookup {
    AppLookup {
        name: name.to_string(),
        model,
        verdict: LookupVerdict::Fails,
        answered_qname: None,
        addresses: Vec::new(),
        expected: None,
        wall_ms: 0.0,
        failure: None,
        steps: Vec::new(),
    }
}

fn record(l: &mut AppLookup, qname: &str, server: IpAddr, a: &Asked<'_>) {
    let result: Vec<String> = qtypes_labels(a);
    l.wall_ms += a.cost_ms;
    l.steps.push(LookupStep {
        qname: qname.to_string(),
        server,
        result: result.join("; "),
        cost_ms: a.cost_ms,
    });
}

fn qtypes_labels(a: &Asked<'_>) -> Vec<String> {
    let types = ["A", "AAAA"];
    a.replies
        .iter()
        .zip(types)
        .map(|(r, t)| format!("{t}: {}", label(r)))
        .collect()
}

/// glibc (`res_search`): for each candidate, `attempts` rounds over the nameservers in
/// order (rotated by `rotate`, which only moves the start), `timeout` per server. A reply
/// with addresses ends the lookup (after the timeout, when the other type's reply is lost); NXDOMAIN or no data for every type moves to the next
/// candidate; SERVFAIL moves to the next server and, when all fail that way, to the next
/// candidate; when no server answers at all, the search stops there.
fn walk_glibc(
    name: &str,
    candidates: &[String],
    nameservers: &[IpAddr],
    conf: &ResolvConf,
    report: &PodReport,
    model: ResolverModel,
) -> AppLookup {
    let mut l = new_lookup(name, model);
    let timeout_ms = f64::from(conf.timeout_secs.max(1)) * 1000.0;
    let transport = if conf.use_vc {
        Transport::Tcp
    } else {
        Transport::Udp
    };
    let mut last_failure = "no nameserver in resolv.conf".to_string();
    for qname in candidates {
        let mut settled = false;
        let mut servfail = false;
        'attempts: for _ in 0..conf.attempts.max(1) {
            for &server in nameservers {
                let a = ask(report, server, qname, conf, timeout_ms, transport);
                record(&mut l, qname, server, &a);
                if a.replies.contains(&Reply::NotMeasured) {
                    l.failure = Some(UNMEASURED.into());
                    return l;
                }
                let addrs = a.addresses();
                if !addrs.is_empty() {
                    l.addresses = addrs;
                    l.answered_qname = Some(qname.clone());
                    l.failure = None;
                    return l;
                }
                // glibc returns what arrived once the timeout passes: a reply to one type
                // with the other lost counts as that reply alone.
                let arrived = a
                    .replies
                    .iter()
                    .any(|r| matches!(r, Reply::NxDomain(_) | Reply::Data(_)));
                let negative = a.replies.iter().all(|r| {
                    matches!(r, Reply::NxDomain(_) | Reply::Data(_))
                        || (arrived && *r == Reply::TimedOut)
                });
                if negative {
                    last_failure = a.negative_reason();
                    settled = true;
                    break 'attempts;
                }
                if a.replies
                    .iter()
                    .any(|r| matches!(r, Reply::ServerFailure(_)))
                {
                    servfail = true;
                    last_failure = "SERVFAIL from every nameserver".into();
                } else {
                    last_failure = format!("no nameserver answered ({})", label(&a.replies[0]));
                }
            }
        }
        if !settled && !servfail {
            // Timeouts or rejections from every server: glibc gives up the search here.
            l.failure = Some(last_failure);
            return l;
        }
    }
    l.failure = Some(last_failure);
    l
}

/// musl: each candidate goes to every nameserver at once; the first usable reply (not
/// SERVFAIL/REFUSED) counts, so a dead nameserver costs nothing while another answers.
/// When none answers within `timeout`, the lookup fails there (musl does not go on down
/// the search list after a failure). NXDOMAIN or no data moves to the next candidate.
fn walk_musl(
    name: &str,
    candidates: &[String],
    nameservers: &[IpAddr],
    conf: &ResolvConf,
    report: &PodReport,
) -> AppLookup {
    let mut l = new_lookup(name, ResolverModel::Musl);
    let timeout_ms = f64::from(conf.timeout_secs.max(1)) * 1000.0;
    let mut last_failure = "no nameserver in resolv.conf".to_string();
    for qname in candidates {
        // Per server what it gives; the fastest usable one wins.
        let mut best: Option<(IpAddr, Asked<'_>)> = None;
        let mut any_measured_gap = false;
        for &server in nameservers {
            let a = ask(report, server, qname, conf, timeout_ms, Transport::Udp);
            if a.replies.contains(&Reply::NotMeasured) {
                any_measured_gap = true;
                continue;
            }
            let usable = a
                .replies
                .iter()
                .all(|r| matches!(r, Reply::Data(_) | Reply::NxDomain(_)));
            if usable && best.as_ref().is_none_or(|(_, b)| a.cost_ms < b.cost_ms) {
                best = Some((server, a));
            }
        }
        let Some((server, a)) = best else {
            if any_measured_gap {
                l.failure = Some(UNMEASURED.into());
            } else {
                l.wall_ms += timeout_ms;
                for &server in nameservers {
                    let a = ask(report, server, qname, conf, timeout_ms, Transport::Udp);
                    l.steps.push(LookupStep {
                        qname: qname.clone(),
                        server,
                        result: qtypes_labels(&a).join("; "),
                        cost_ms: timeout_ms,
                    });
                }
                l.failure = Some(format!(
                    "no nameserver gave a usable reply within {timeout_ms:.0} ms"
                ));
            }
            return l;
        };
        record(&mut l, qname, server, &a);
        let addrs = a.addresses();
        if !addrs.is_empty() {
            l.addresses = addrs;
            l.answered_qname = Some(qname.clone());
            return l;
        }
        last_failure = a.negative_reason();
    }
    l.failure = Some(last_failure);
    l
}

#[cfg(test)]
mod tests;
