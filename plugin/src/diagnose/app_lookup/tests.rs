//! The replay against scenarios whose application experience is known: what glibc and musl
//! return, and how long they take, for the test cluster's names.

use dns_doctor_schema::{LibcKind, QueryOutcome, ServerRole, Transport};

use crate::diagnose::app_lookups::{ID_FAILS, ID_NAMESERVER, ID_SLOW, ID_UNEXPLAINED, ID_WRONG};
use crate::diagnose::testkit::*;
use crate::diagnose::{CheckStatus, Diagnosis, Severity};
use crate::report::{Report, RunInfo, Verdict};

use super::*;

fn lookup<'d>(d: &'d Diagnosis, name: &str) -> &'d AppLookup {
    d.lookups
        .iter()
        .find(|l| l.name == name)
        .unwrap_or_else(|| panic!("no lookup of {name}: {:#?}", d.lookups))
}

fn verdict(s: &Scenario) -> (Verdict, Diagnosis) {
    let d = s.diagnose();
    let r = Report::new(&s.topology, &s.evidence, d.clone(), RunInfo::default());
    (r.verdict, d)
}

fn has(d: &Diagnosis, id: &str) -> bool {
    d.findings.iter().any(|f| f.id == id)
}

/// Puts `extra` in front of the pod's nameservers and lets the probe's queries to it end
/// with `outcome` (a silent server when TimedOut).
fn with_first_nameserver(s: &mut Scenario, extra: &str, outcome: QueryOutcome) {
    let conf = s.probe().resolv_conf.content.take().unwrap();
    s.probe().resolv_conf.content = Some(format!("nameserver {extra}\n{conf}"));
    let mut copies: Vec<_> = s
        .probe()
        .queries
        .iter()
        .filter(|q| is_cluster_dns(q))
        .cloned()
        .collect();
    for q in &mut copies {
        q.server = sock(extra);
        q.outcome = outcome;
        if outcome != QueryOutcome::Answered {
            q.rcode = None;
            q.answers.clear();
            q.latency_ms = 2000.0;
        }
    }
    s.probe().queries.extend(copies);
}

#[test]
fn healthy_names_resolve_right_and_fast_and_the_run_is_healthy() {
    let s = healthy();
    let (v, d) = verdict(&s);
    let k = lookup(&d, "kubernetes.default");
    assert_eq!(k.verdict, LookupVerdict::Ok, "{k:#?}");
    assert_eq!(k.addresses, vec![ip("10.96.0.1")]);
    assert_eq!(k.answered_qname.as_deref(), Some(CLUSTER_NAME));
    assert_eq!(k.expected.as_ref().unwrap().service, "default/kubernetes");
    // Two candidates walked (the first is NXDOMAIN), each well under a millisecond.
    assert_eq!(k.steps.len(), 2);
    assert!(k.wall_ms < 5.0, "{}", k.wall_ms);
    assert_eq!(lookup(&d, "external.test").verdict, LookupVerdict::Ok);
    assert_eq!(v, Verdict::Healthy);
}

#[test]
fn a_silent_first_nameserver_costs_glibc_the_timeout_on_every_candidate() {
    let mut s = healthy();
    with_first_nameserver(&mut s, "192.0.2.53", QueryOutcome::TimedOut);
    let (v, d) = verdict(&s);
    let k = lookup(&d, "kubernetes.default");
    // Candidate 1: 5 s for the silent server, then NXDOMAIN from the cluster DNS;
    // candidate 2: 5 s again, then the answer.
    assert_eq!(k.verdict, LookupVerdict::Slow, "{k:#?}");
    assert!((10_000.0..10_010.0).contains(&k.wall_ms), "{}", k.wall_ms);
    assert_eq!(k.addresses, vec![ip("10.96.0.1")]);
    assert!(
        has(&d, ID_NAMESERVER) && has(&d, ID_SLOW),
        "{:#?}",
        d.findings
    );
    let top = d.root_cause().unwrap();
    assert_eq!(top.id, ID_NAMESERVER);
    assert_eq!(top.severity, Severity::Error);
    assert!(top.summary.contains("192.0.2.53"), "{}", top.summary);
    assert_eq!(v, Verdict::ProblemsFound);
}

#[test]
fn musl_asks_every_nameserver_at_once_so_a_silent_one_costs_no_time() {
    let mut s = healthy();
    s.probe().libc.kind = LibcKind::Musl;
    with_first_nameserver(&mut s, "192.0.2.53", QueryOutcome::TimedOut);
    let (v, d) = verdict(&s);
    let k = lookup(&d, "kubernetes.default");
    assert_eq!(k.model, ResolverModel::Musl);
    assert_eq!(k.verdict, LookupVerdict::Ok, "{k:#?}");
    assert!(k.wall_ms < 5.0);
    // Still not healthy: every nameserver the pod lists must answer.
    let ns = d.findings.iter().find(|f| f.id == ID_NAMESERVER).unwrap();
    assert_eq!(ns.severity, Severity::Warning);
    assert_eq!(v, Verdict::ProblemsFound);
}

#[test]
fn a_servfail_from_one_nameserver_moves_glibc_to_the_next() {
    let mut s = healthy();
    with_first_nameserver(&mut s, "192.0.2.53", QueryOutcome::Answered);
    for q in s
        .probe()
        .queries
        .iter_mut()
        .filter(|q| q.server == sock("192.0.2.53"))
    {
        q.rcode = Some("SERVFAIL".into());
        q.answers.clear();
    }
    let d = s.diagnose();
    let k = lookup(&d, "kubernetes.default");
    assert_eq!(k.verdict, LookupVerdict::Ok, "{k:#?}");
    assert_eq!(k.addresses, vec![ip("10.96.0.1")]);
}

#[test]
fn a_name_that_does_not_exist_is_a_failed_lookup_not_an_answer() {
    let mut s = healthy();
    // `--names kubernetes.default,nonexistent.invalid`: every candidate NXDOMAIN.
    let name = "nonexistent.invalid";
    let conf = s.probe().resolv_conf.content.clone().unwrap();
    let candidates = crate::dns_config::resolv_conf::parse_resolv_conf(&conf).candidates(name);
    let mut id = 5000;
    for qname in &candidates {
        for transport in [Transport::Udp, Transport::Tcp] {
            for qtype in ["A", "AAAA"] {
                s.probe().queries.push(query(
                    CLUSTER_IP,
                    ServerRole::Nameserver,
                    transport,
                    qname,
                    qtype,
                    id,
                ));
                id += 1;
            }
        }
    }
    s.probe().search_expansion.push(SearchExpansion {
        name: name.into(),
        candidates: candidates.clone(),
        first_answer_index: None,
        queries_per_lookup: 2 * candidates.len() as u32,
    });
    let (v, d) = verdict(&s);
    let l = lookup(&d, name);
    assert_eq!(l.verdict, LookupVerdict::Fails);
    assert_eq!(l.failure.as_deref(), Some("NXDOMAIN"));
    assert_eq!(l.steps.len(), candidates.len());
    assert_eq!(d.root_cause().unwrap().id, ID_FAILS);
    assert!(d.root_cause().unwrap().summary.contains(name));
    assert_eq!(v, Verdict::ProblemsFound);
}

use dns_doctor_schema::SearchExpansion;

#[test]
fn an_answer_other_than_the_services_clusterip_is_wrong() {
    let mut s = healthy();
    for q in s
        .probe()
        .queries
        .iter_mut()
        .filter(|q| q.qname == CLUSTER_NAME && q.qtype == "A")
    {
        q.answers = vec!["A 10.96.7.7".into()];
    }
    let (v, d) = verdict(&s);
    let k = lookup(&d, "kubernetes.default");
    assert_eq!(k.verdict, LookupVerdict::Wrong);
    assert!(k.describe().contains("the API says"), "{}", k.describe());
    assert_eq!(d.root_cause().unwrap().id, ID_WRONG);
    assert_eq!(check_status(&d, "app-lookups"), CheckStatus::Fail);
    assert_eq!(v, Verdict::ProblemsFound);
}

fn check_status(d: &Diagnosis, id: &str) -> CheckStatus {
    d.checklist.iter().find(|c| c.id == id).unwrap().status
}

#[test]
fn a_lost_aaaa_reply_makes_glibc_wait_the_timeout() {
    let mut s = healthy();
    s.set_queries(
        |q| is_cluster_dns(q) && q.qtype == "AAAA" && q.transport == Transport::Udp,
        QueryOutcome::TimedOut,
        None,
    );
    let d = s.diagnose();
    let k = lookup(&d, "kubernetes.default");
    assert_eq!(k.verdict, LookupVerdict::Slow, "{k:#?}");
    assert_eq!(k.addresses, vec![ip("10.96.0.1")]);
    assert!(k.wall_ms >= 5000.0);
}

#[test]
fn single_request_sends_a_and_aaaa_one_after_the_other() {
    let mut s = healthy();
    let conf = s.probe().resolv_conf.content.take().unwrap();
    s.probe().resolv_conf.content = Some(format!("{conf}options single-request\n"));
    for q in s.probe().queries.iter_mut() {
        q.latency_ms = 300.0;
    }
    let d = s.diagnose();
    // Two candidates × (A then AAAA) × 300 ms.
    let k = lookup(&d, "kubernetes.default");
    assert!((k.wall_ms - 1200.0).abs() < 1.0, "{}", k.wall_ms);
    assert_eq!(k.verdict, LookupVerdict::Slow);
}

#[test]
fn use_vc_replays_the_tcp_measurements() {
    let mut s = healthy();
    let conf = s.probe().resolv_conf.content.take().unwrap();
    s.probe().resolv_conf.content = Some(format!("{conf}options use-vc\n"));
    s.set_queries(
        |q| is_cluster_dns(q) && q.transport == Transport::Udp,
        QueryOutcome::TimedOut,
        None,
    );
    let d = s.diagnose();
    assert_eq!(lookup(&d, "kubernetes.default").verdict, LookupVerdict::Ok);
}

#[test]
fn musl_gives_up_the_search_at_the_first_timeout() {
    let mut s = healthy();
    s.probe().libc.kind = LibcKind::Musl;
    s.set_queries(
        |q| is_cluster_dns(q) && q.qname.starts_with("kubernetes.default.default."),
        QueryOutcome::TimedOut,
        None,
    );
    let d = s.diagnose();
    let k = lookup(&d, "kubernetes.default");
    assert_eq!(k.verdict, LookupVerdict::Fails, "{k:#?}");
    assert!(k.failure.as_deref().unwrap().contains("no nameserver"));
    assert!((k.wall_ms - 5000.0).abs() < 1.0);
}

#[test]
fn a_step_that_did_not_pass_never_reads_as_healthy() {
    let mut s = healthy();
    // Endpoints answer only partly: a WARN step that no rule turns into a cause.
    let mut n = 0;
    for q in s
        .probe()
        .queries
        .iter_mut()
        .filter(|q| q.role == ServerRole::Endpoint && q.server == sock(EP_A))
    {
        n += 1;
        if n % 8 == 0 {
            q.outcome = QueryOutcome::TimedOut;
            q.rcode = None;
            q.answers.clear();
        }
    }
    let (v, d) = verdict(&s);
    assert_eq!(check_status(&d, "endpoints-direct"), CheckStatus::Warn);
    assert!(
        d.findings.iter().any(|f| f.severity >= Severity::Warning),
        "{:#?}",
        d.findings
    );
    assert_ne!(v, Verdict::Healthy);
    if d.root_cause().unwrap().id == ID_UNEXPLAINED {
        assert!(d.root_cause().unwrap().summary.contains("endpoint"));
    }
}

#[test]
fn a_dns_server_pod_that_does_not_ask_itself_is_by_design_not_a_problem() {
    // `kubectl dns-doctor deploy/coredns -n kube-system`: dnsPolicy Default, the node's
    // resolv.conf names the upstream, which knows no cluster names.
    let mut s = healthy();
    s.topology.target.namespace = "kube-system".into();
    s.topology.target.name = "coredns-a".into();
    s.topology.target.dns_policy = "Default".into();
    s.probe().resolv_conf.content = Some(format!("nameserver {UPSTREAM}\n"));
    let mut id = 7000;
    let mut via_upstream = Vec::new();
    for name in ["kubernetes.default.", EXTERNAL_NAME] {
        for transport in [Transport::Udp, Transport::Tcp] {
            for qtype in ["A", "AAAA"] {
                let mut q = query(UPSTREAM, ServerRole::Nameserver, transport, name, qtype, id);
                id += 1;
                if name != EXTERNAL_NAME {
                    q.rcode = Some("NXDOMAIN".into());
                }
                via_upstream.push(q);
            }
        }
    }
    // The cluster DNS address is still tested besides (as an explicit server).
    for q in s.probe().queries.iter_mut().filter(|q| is_cluster_dns(q)) {
        q.role = ServerRole::Explicit;
    }
    s.probe().queries.extend(via_upstream);
    for e in s.probe().search_expansion.iter_mut() {
        e.candidates = vec![format!("{}.", e.name)];
    }
    let (v, d) = verdict(&s);
    let policy = d
        .findings
        .iter()
        .find(|f| f.id == crate::diagnose::pod_dns_policy::ID)
        .expect("the policy is reported");
    assert_eq!(policy.severity, Severity::Info);
    assert!(policy.summary.contains("by design"), "{}", policy.summary);
    assert_eq!(lookup(&d, "external.test").verdict, LookupVerdict::Ok);
    assert_eq!(check_status(&d, "app-lookups"), CheckStatus::Pass);
    assert_eq!(v, Verdict::Healthy, "{:#?}", d.findings);

    // The same pod whose upstream is dead is a problem: external names fail.
    s.set_queries(
        |q| q.server == sock(UPSTREAM) && q.role == ServerRole::Nameserver,
        QueryOutcome::TimedOut,
        None,
    );
    let (v, _) = verdict(&s);
    assert_eq!(v, Verdict::ProblemsFound);
}

#[test]
fn queries_the_probe_skipped_on_a_dead_path_count_as_timed_out() {
    // The probe gives up a path after its first queries time out; the replay must still
    // see a lookup that fails, not one it cannot judge.
    let mut s = healthy();
    s.set_queries(is_cluster_dns, QueryOutcome::TimedOut, None);
    s.probe()
        .queries
        .retain(|q| !is_cluster_dns(q) || q.qname.starts_with("kubernetes.default.default."));
    let d = s.diagnose();
    for name in ["kubernetes.default", "external.test"] {
        let l = lookup(&d, name);
        assert_eq!(l.verdict, LookupVerdict::Fails, "{l:#?}");
    }
}
