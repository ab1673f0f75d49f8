//! Rule: the DNS containers ran out of their CPU quota (the CPU limit, as CFS bandwidth) in a
//! large share of the enforcement periods during the run. A throttled DNS server answers
//! nothing until the next period begins (up to 100 ms by default): answers come late,
//! retries pile up, readiness probes time out.
//!
//! The counters are the difference between the node probe's two reads of the DNS pods'
//! cgroups, so they cover the run, not the pod's whole life (startup bursts included).

use std::net::IpAddr;

use dns_doctor_schema::QueryOutcome;

use crate::node::cgroup::Level;
use crate::node::cgroup_cpu::{pod_throttling, Throttling};
use crate::topology::DnsPodInfo;

use super::app_lookup::LookupVerdict;
use super::app_lookups::judged;
use super::dns_pod_resources::{cgroup_reads, resources_line};
use super::finding::{EvidenceRef, Finding, Severity};
use super::observed::answered_ok;
use super::Context;

pub const ID: &str = "dns-pods-cpu-throttled";

/// Share of the periods with CPU demand in which the quota ran out, from which a DNS pod
/// counts as throttled: the threshold of the CPUThrottlingHigh alert that kube-prometheus
/// ships (25 %). Below it, throttling is occasional; a latency-bound server throttled in a
/// quarter of its periods delays a good share of its answers by tens of milliseconds.
pub const THROTTLED_SHARE: f64 = 0.25;

/// Periods with demand needed before a share means anything: 10 periods are one second of
/// demand at the default 100 ms period.
pub const MIN_PERIODS: u64 = 10;

/// An answer from the cluster DNS slower than this, for names it serves itself (the cluster
/// domain, answered from memory in well under 10 ms when it has the CPU), is slow.
pub const SLOW_ANSWER_MS: f64 = 50.0;

/// A DNS pod throttled during the run.
struct Throttled<'a> {
    pod: &'a DnsPodInfo,
    node: &'a str,
    main: Throttling,
    /// The other level (pod or container), for the evidence.
    other: Option<Throttling>,
}

/// How the probe's queries to the cluster DNS and its pods went, for names the DNS pods
/// answer themselves: latencies of the answers (sorted) and how many got none.
fn cluster_answers(cx: &Context<'_>) -> Option<(Vec<f64>, usize)> {
    let o = cx.observed.as_ref()?;
    let pods: Vec<IpAddr> = cx.topology.dns_pods.iter().filter_map(|p| p.ip).collect();
    let mut latencies = Vec::new();
    let mut unanswered = 0;
    for q in o
        .to_cluster_dns()
        .chain(o.to_endpoints().filter(|q| pods.contains(&q.server.ip())))
        .filter(|q| o.is_cluster_name(&q.qname))
    {
        if answered_ok(q) {
            latencies.push(q.latency_ms);
        } else if q.outcome == QueryOutcome::TimedOut {
            unanswered += 1;
        }
    }
    latencies.sort_by(f64::total_cmp);
    Some((latencies, unanswered))
}

/// The `pct` percentile of sorted values.
fn percentile(sorted: &[f64], pct: usize) -> Option<f64> {
    let last = sorted.len().checked_sub(1)?;
    sorted.get(last * pct / 100).copied()
}

pub fn rule(cx: &Context<'_>) -> Option<Finding> {
    let pods = &cx.topology.dns_pods;
    let throttled: Vec<Throttled<'_>> = pods
        .iter()
        .filter_map(|p| {
            let (node, reads) = cgroup_reads(cx, p)?;
            let t = pod_throttling(reads, &p.uid, p.container_id.as_deref())?;
            // The DNS container's own quota: it runs out when the DNS server itself wants
            // more CPU than its limit. The pod's quota (the sum of its containers' limits)
            // also carries the other containers of the pod, this run's ephemeral probe
            // among them, so it is judged only when the container's cannot be read, and
            // shown beside it otherwise.
            let main = t.main()?.clone();
            let other = t.container.is_some().then_some(t.pod).flatten();
            let judged = main.periods >= MIN_PERIODS && main.share() >= THROTTLED_SHARE;
            judged.then_some(Throttled {
                pod: p,
                node,
                main,
                other,
            })
        })
        .collect();
    if throttled.is_empty() {
        return None;
    }

    // What the pod's lookups went through.
    let bad_lookups: Vec<&str> = judged(cx)
        .filter(|l| matches!(l.verdict, LookupVerdict::Slow | LookupVerdict::Fails))
        .map(|l| l.name.as_str())
        .collect();
    let answers = cluster_answers(cx);
    let p90 = answers.as_ref().and_then(|(l, _)| percentile(l, 90));
    let median = answers.as_ref().and_then(|(l, _)| percentile(l, 50));
    let unanswered = answers.as_ref().map_or(0, |(_, u)| *u);
    let slow_answers = p90.is_some_and(|p| p >= SLOW_ANSWER_MS);
    let hurt = !bad_lookups.is_empty() || slow_answers || unanswered > 0;

    let mut evidence = Vec::new();
    for t in &throttled {
        for level in std::iter::once(&t.main).chain(t.other.as_ref()) {
            let whose = match level.level {
                Level::Pod => "pod (all its containers)".to_string(),
                Level::Container(_) => format!("container {}", t.pod.container),
            };
            let mut detail = format!(
                "{}/{} {whose}: {}",
                t.pod.namespace,
                t.pod.name,
                level.describe()
            );
            if let Some(q) = level.quota {
                detail.push_str(&format!("; CFS quota {}", q.describe()));
            }
            evidence.push(EvidenceRef::new(format!("node:{}/cgroup", t.node), detail));
        }
        evidence.push(EvidenceRef::new("api", resources_line(t.pod)));
    }
    if let (Some((latencies, _)), Some(m), Some(p)) = (&answers, median, p90) {
        evidence.push(EvidenceRef::new(
            "probe",
            format!(
                "answers of the cluster DNS and its pods for cluster names: median {m:.0} ms, 90th percentile {p:.0} ms over {} answers, {unanswered} queries unanswered",
                latencies.len()
            ),
        ));
    }
    if !bad_lookups.is_empty() {
        evidence.push(EvidenceRef::new(
            "check:app-lookups",
            format!("slow or failing lookups: {}", bad_lookups.join(", ")),
        ));
    }

    let limits: Vec<String> = {
        let mut v: Vec<String> = Vec::new();
        for t in &throttled {
            let l = t.pod.resources.cpu_limit.clone().map_or_else(
                || "no CPU limit in the spec".to_string(),
                |l| format!("CPU limit {l}"),
            );
            if !v.contains(&l) {
                v.push(l);
            }
        }
        v
    };
    let worst = throttled
        .iter()
        .map(|t| t.main.share())
        .fold(0.0_f64, f64::max);
    let consequence = if hurt { "; lookups wait for it" } else { "" };
    let summary = format!(
        "{} of {} DNS pods are CPU-throttled ({}): their DNS container ran out of CPU quota in up to {:.0} % of its scheduling periods during the run{consequence}",
        throttled.len(),
        pods.len(),
        limits.join(", "),
        worst * 100.0
    );
    let example = throttled[0].pod;
    let remediation = vec![
        format!(
            "Raise or remove the CPU limit of container {c} (now {l}): e.g. `kubectl -n {ns} set resources deployment <DNS Deployment, coredns in kubeadm clusters> -c {c} --limits=cpu=<more>`. kubeadm's CoreDNS has a CPU request (100m) and no CPU limit, so it uses spare CPU instead of waiting for the next period.",
            c = example.container,
            ns = example.namespace,
            l = example.resources.cpu_limit.as_deref().unwrap_or("set on the node only"),
        ),
        "Spread the load: more DNS replicas (or the cluster-proportional-autoscaler), and NodeLocal DNSCache, which answers most queries on each node before they reach CoreDNS.".to_string(),
        "Find what drives the query rate: search-path amplification (with ndots:5 an external name costs up to 10 queries), clients that do not cache, a flood of unique names.".to_string(),
    ];
    Some(Finding {
        id: ID.into(),
        severity: if hurt {
            Severity::Error
        } else {
            Severity::Warning
        },
        summary,
        evidence,
        remediation,
        loss_point: None,
        node_pair: None,
    })
}

#[cfg(test)]
mod tests {
    use dns_doctor_schema::{PodCgroupRead, RawFile};

    use super::*;
    use crate::diagnose::testkit::{container_id, healthy, Scenario};

    /// cpu.stat of a CoreDNS container with a `10m` limit, read on this machine (cgroup
    /// v1) at the start and at the end of a doctor run while the `coredns-cpu-throttled`
    /// fault's load ran (119 of 124 periods throttled).
    const STAT_BEFORE: &str =
        "nr_periods 202\nnr_throttled 63\nthrottled_time 2023323134\nnr_bursts 0\nburst_time 0\n";
    const STAT_AFTER: &str =
        "nr_periods 326\nnr_throttled 182\nthrottled_time 10568389553\nnr_bursts 0\nburst_time 0\n";

    fn reads(p: &DnsPodInfo, before: &str, after: &str) -> Vec<PodCgroupRead> {
        let cid = container_id(&p.name);
        let pod = format!("/sys/fs/cgroup/cpu/kubepods/burstable/pod{}", p.uid);
        let acct = format!("/sys/fs/cgroup/cpuacct/kubepods/burstable/pod{}", p.uid);
        let file = |path: String, content: &str| RawFile {
            path,
            content: Some(content.into()),
            error: None,
        };
        let read = |when: &str, at_ms, stat: &str, usage: &str| PodCgroupRead {
            uid: p.uid.clone(),
            when: when.into(),
            at_ms,
            files: vec![
                file(
                    format!("{pod}/cpu.stat"),
                    "nr_periods 0\nnr_throttled 0\nthrottled_time 0\n",
                ),
                file(format!("{pod}/cpu.cfs_quota_us"), "1000\n"),
                file(format!("{pod}/cpu.cfs_period_us"), "100000\n"),
                file(format!("{pod}/{cid}/cpu.stat"), stat),
                file(format!("{pod}/{cid}/cpu.cfs_quota_us"), "1000\n"),
                file(format!("{pod}/{cid}/cpu.cfs_period_us"), "100000\n"),
                file(format!("{acct}/{cid}/cpuacct.usage"), usage),
            ],
            error: None,
        };
        vec![
            read("before", 0, before, "160765635\n"),
            read("after", 12_400, after, "283411443\n"),
        ]
    }

    /// Both CoreDNS pods with a 10m CPU limit, throttled as measured.
    fn throttled() -> Scenario {
        let mut s = healthy();
        let mut all = Vec::new();
        for p in &mut s.topology.dns_pods {
            p.resources.cpu_limit = Some("10m".into());
            p.resources.cpu_request = Some("10m".into());
            all.extend(reads(p, STAT_BEFORE, STAT_AFTER));
        }
        s.evidence.nodes[0].snapshot.pod_cgroups = all;
        s
    }

    /// The probe's answers from the cluster DNS and its pods took `ms`.
    fn answers_take(s: &mut Scenario, ms: f64) {
        for q in &mut s.probe().queries {
            q.latency_ms = ms;
        }
    }

    #[test]
    fn throttled_while_lookups_answer_fast_is_a_warning() {
        let d = throttled().diagnose();
        let top = d.root_cause().expect("never healthy while throttled");
        assert_eq!(top.id, ID);
        assert_eq!(top.severity, Severity::Warning);
        assert!(top.summary.contains("2 of 2 DNS pods"), "{}", top.summary);
        assert!(top.summary.contains("CPU limit 10m"), "{}", top.summary);
        assert!(top.summary.contains("96 %"), "{}", top.summary);
        let text: Vec<&str> = top.evidence.iter().map(|e| e.detail.as_str()).collect();
        let text = text.join("\n");
        assert!(
            text.contains("119 of 124 CFS periods throttled (96 %)"),
            "{text}"
        );
        assert!(
            text.contains("CFS quota 1000 us per 100000 us (0.010 CPU)"),
            "{text}"
        );
        assert!(
            text.contains("requests cpu 10m, memory 70Mi; limits cpu 10m, memory 170Mi"),
            "{text}"
        );
        assert!(top
            .evidence
            .iter()
            .any(|e| e.source == "node:node-1/cgroup"));
        assert!(top.remediation[0].contains("(now 10m)"));
    }

    #[test]
    fn throttled_with_slow_answers_is_the_error_that_names_the_cause() {
        let mut s = throttled();
        answers_take(&mut s, 160.0);
        let d = s.diagnose();
        let top = d.root_cause().unwrap();
        assert_eq!(top.id, ID);
        assert_eq!(top.severity, Severity::Error);
        assert!(
            top.summary.ends_with("lookups wait for it"),
            "{}",
            top.summary
        );
        assert!(top
            .evidence
            .iter()
            .any(|e| e.detail.contains("90th percentile 160 ms")));
    }

    #[test]
    fn throttled_with_timeouts_outranks_the_timeouts_themselves() {
        let mut s = throttled();
        // Every fourth query to the cluster DNS got no answer.
        let mut n = 0;
        for q in &mut s.probe().queries {
            if q.server.ip() == crate::diagnose::testkit::ip(crate::diagnose::testkit::CLUSTER_IP) {
                n += 1;
                if n % 4 == 0 {
                    q.outcome = QueryOutcome::TimedOut;
                    q.rcode = None;
                    q.answers.clear();
                    q.latency_ms = 2000.0;
                }
            }
        }
        let d = s.diagnose();
        let top = d.root_cause().unwrap();
        assert_eq!(
            top.id,
            ID,
            "{:?}",
            d.findings.iter().map(|f| &f.id).collect::<Vec<_>>()
        );
        assert_eq!(top.severity, Severity::Error);
    }

    #[test]
    fn occasional_throttling_or_too_few_periods_is_no_finding() {
        let mut s = healthy();
        let p = s.topology.dns_pods[0].clone();
        // 19 of 137 periods (14 %): measured with only the doctor's own queries.
        s.evidence.nodes[0].snapshot.pod_cgroups = reads(
            &p,
            "nr_periods 61\nnr_throttled 44\nthrottled_time 2007098964\n",
            "nr_periods 198\nnr_throttled 63\nthrottled_time 2511835775\n",
        );
        assert!(s.diagnose().findings.iter().all(|f| f.id != ID));
        // 5 of 6 periods: too little demand to judge.
        s.evidence.nodes[0].snapshot.pod_cgroups = reads(
            &p,
            "nr_periods 0\nnr_throttled 0\nthrottled_time 0\n",
            "nr_periods 6\nnr_throttled 5\nthrottled_time 400000000\n",
        );
        assert!(s.diagnose().findings.iter().all(|f| f.id != ID));
    }

    /// The pod's quota ran out (the DNS container shares it with the others in the pod,
    /// this run's ephemeral probe included) while the container's own counters show
    /// little: not the DNS server's own demand, no finding; the pod level is judged only
    /// when the container's directory is not known.
    #[test]
    fn the_pod_level_is_judged_only_without_the_container() {
        let mut s = healthy();
        let p = s.topology.dns_pods[0].clone();
        let mut r = reads(
            &p,
            "nr_periods 198\nnr_throttled 63\nthrottled_time 2511835775\n",
            "nr_periods 220\nnr_throttled 64\nthrottled_time 2521835775\n",
        );
        r[0].files[0].content =
            Some("nr_periods 100\nnr_throttled 10\nthrottled_time 100\n".into());
        r[1].files[0].content =
            Some("nr_periods 150\nnr_throttled 50\nthrottled_time 900000\n".into());
        s.evidence.nodes[0].snapshot.pod_cgroups = r;
        assert!(s.diagnose().findings.iter().all(|f| f.id != ID));
        s.topology.dns_pods[0].container_id = None;
        let d = s.diagnose();
        let f = d
            .findings
            .iter()
            .find(|f| f.id == ID)
            .expect("pod level throttled");
        assert!(f.summary.contains("80 %"), "{}", f.summary);
        assert!(
            f.evidence[0]
                .detail
                .contains("pod (all its containers): 40 of 50"),
            "{:?}",
            f.evidence
        );
    }

    #[test]
    fn without_a_limit_nothing_is_throttled() {
        let mut s = healthy();
        let p = s.topology.dns_pods[0].clone();
        let unlimited =
            "nr_periods 0\nnr_throttled 0\nthrottled_time 0\nnr_bursts 0\nburst_time 0\n";
        s.evidence.nodes[0].snapshot.pod_cgroups = reads(&p, unlimited, unlimited);
        let d = s.diagnose();
        assert!(!d.has_problems(), "{:?}", d.findings);
    }

    #[test]
    fn percentiles_of_sorted_latencies() {
        let v = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 200.0];
        assert_eq!(percentile(&v, 50), Some(6.0));
        assert_eq!(percentile(&v, 90), Some(10.0));
        assert_eq!(percentile(&[], 90), None);
    }
}
