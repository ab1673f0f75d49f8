//! Rule: a DNS container was killed for using more memory than its limit (OOMKilled), as its
//! last termination says, even when it is ready again. While it restarts the pod answers
//! nothing, and its cache is gone; a limit hit once is hit again under the same load.
//!
//! Pods that are not ready because of it also get `dns-pods-crashloop`, which names the
//! same cause; this finding adds the memory evidence: the limit from the pod spec, and what
//! the container uses now, its peak and the OOM kills the node's cgroup counted.

use crate::node::cgroup_memory::{mib, pod_memory};
use crate::topology::DnsPodInfo;

use super::dns_pod_resources::{ago, cgroup_reads, resources_line};
use super::finding::{EvidenceRef, Finding, Severity};
use super::Context;

pub const ID: &str = "dns-pods-oom-killed";

/// An OOM kill this recent is a warning, an older one information. Kubernetes keeps only a
/// container's last termination, so an OOM kill stays visible until the next restart; one
/// within a day most likely comes back with the same daily load.
pub const RECENT_SECS: u64 = 24 * 3600;

fn oom_killed(p: &DnsPodInfo) -> bool {
    p.last_termination
        .as_ref()
        .is_some_and(|t| t.reason == "OOMKilled")
}

fn secs_ago(p: &DnsPodInfo) -> Option<u64> {
    p.last_termination.as_ref()?.finished_secs_ago
}

pub fn rule(cx: &Context<'_>) -> Option<Finding> {
    let pods = &cx.topology.dns_pods;
    let killed: Vec<&DnsPodInfo> = pods.iter().filter(|p| oom_killed(p)).collect();
    if killed.is_empty() {
        return None;
    }
    // Unknown time: counted as recent, the safe side.
    let recent = killed
        .iter()
        .any(|p| secs_ago(p).is_none_or(|s| s <= RECENT_SECS));
    let none_ready = !pods.iter().any(|p| p.ready);
    let severity = if none_ready {
        Severity::Error
    } else if recent {
        Severity::Warning
    } else {
        Severity::Info
    };

    let mut evidence = Vec::new();
    let mut limits: Vec<String> = Vec::new();
    for p in &killed {
        let t = p.last_termination.as_ref()?;
        let mut when = String::new();
        if let Some(at) = &t.finished_at {
            when.push_str(&format!(" at {at}"));
        }
        if let Some(s) = t.finished_secs_ago {
            when.push_str(&format!(" ({} ago)", ago(s)));
        }
        evidence.push(EvidenceRef::new(
            "api",
            format!(
                "{}/{}: container {} last ended OOMKilled (exit code {}){when}; {} restarts; {}",
                p.namespace,
                p.name,
                p.container,
                t.exit_code,
                p.restarts,
                if p.ready { "ready again" } else { "not ready" }
            ),
        ));
        evidence.push(EvidenceRef::new("api", resources_line(p)));
        let limit = p.resources.memory_limit.clone();
        if let Some(l) = &limit {
            if !limits.contains(l) {
                limits.push(l.clone());
            }
        }
        let Some((node, reads)) = cgroup_reads(cx, p) else {
            continue;
        };
        let Some(m) = pod_memory(reads, &p.uid, p.container_id.as_deref()) else {
            continue;
        };
        let source = format!("node:{node}/cgroup");
        if let Some(c) = m.container {
            evidence.push(EvidenceRef::new(
                source.clone(),
                format!("{} container {} now: {}", p.name, p.container, c.describe()),
            ));
        }
        if let Some(kills) = m.pod.and_then(|s| s.oom_kills).filter(|k| *k > 0) {
            evidence.push(EvidenceRef::new(
                source.clone(),
                format!(
                    "{}: {kills} OOM kills counted in the pod's memory cgroup since it was created",
                    p.name
                ),
            ));
        }
        if let Some(peak) = m.pod.and_then(|s| s.peak_bytes) {
            evidence.push(EvidenceRef::new(
                source,
                format!("{}: pod memory peak {}", p.name, mib(peak)),
            ));
        }
    }

    let without_limit = killed.iter().any(|p| p.resources.memory_limit.is_none());
    let limit_text = if limits.is_empty() {
        "no memory limit set".to_string()
    } else {
        format!("memory limit {}", limits.join(", "))
    };
    let last = killed.iter().filter_map(|p| secs_ago(p)).min();
    let mut summary = format!(
        "{} of {} DNS pods had their DNS container OOMKilled ({limit_text})",
        killed.len(),
        pods.len()
    );
    if let Some(s) = last {
        summary.push_str(&format!(", the last {} ago", ago(s)));
    }
    if !none_ready && killed.iter().all(|p| p.ready) {
        summary.push_str("; ready again, but the limit is hit under this load");
    }

    let mut remediation = Vec::new();
    let example = killed[0];
    if without_limit {
        remediation.push("The container has no memory limit: the node ran out of memory and the kernel's OOM killer chose it. Give the DNS pods a memory request that covers their use, keep their system-cluster-critical priority, and find what exhausts the node's memory.".to_string());
    } else {
        remediation.push(format!(
            "Raise the memory limit of container {c} (now {limit}), e.g. `kubectl -n {ns} set resources deployment <DNS Deployment, coredns in kubeadm clusters> -c {c} --limits=memory=<2x the peak>`; kubeadm's default is 170Mi.",
            c = example.container,
            ns = example.namespace,
            limit = example.resources.memory_limit.as_deref().unwrap_or("unset"),
        ));
    }
    let corefile = cx.topology.corefile.as_deref().unwrap_or_default();
    let mut growers = vec![
        "the cache plugin (its capacity, 9984 entries per type by default, fills with a flood of unique names)".to_string(),
        "the number of Services and Endpoints the kubernetes plugin keeps".to_string(),
    ];
    if corefile.contains("pods verified") {
        growers.push("`pods verified` in the Corefile (every pod is kept)".into());
    }
    if corefile.contains("autopath") {
        growers.push("`autopath` in the Corefile (it watches every pod)".into());
    }
    remediation.push(format!(
        "CoreDNS's memory grows with {}: lower what you can if the limit cannot grow.",
        growers.join(", ")
    ));
    remediation.push("Look for the load behind the peak: clients that flood unique names (search-path amplification, random subdomains) and the `log` plugin on a busy server; CoreDNS's metrics (coredns_cache_entries, process_resident_memory_bytes) show the growth.".to_string());

    Some(Finding {
        id: ID.into(),
        severity,
        summary,
        evidence,
        remediation,
        loss_point: None,
    })
}

#[cfg(test)]
mod tests {
    use dns_doctor_schema::{PodCgroupRead, RawFile};

    use super::*;
    use crate::diagnose::testkit::{container_id, healthy, Scenario};
    use crate::diagnose::{dns_pods_not_ready, Severity};
    use crate::topology::Termination;

    /// coredns-a was OOMKilled `secs_ago` seconds ago under a 20Mi limit (the test
    /// cluster's `coredns-oom` fault) and restarted twice.
    fn oom_killed(secs_ago: u64, ready: bool) -> Scenario {
        let mut s = healthy();
        let p = &mut s.topology.dns_pods[0];
        p.restarts = 2;
        p.ready = ready;
        p.resources.memory_limit = Some("20Mi".into());
        p.resources.memory_request = Some("20Mi".into());
        p.last_termination = Some(Termination {
            reason: "OOMKilled".into(),
            exit_code: 137,
            message: None,
            finished_at: Some("2026-11-30T20:28:42Z".into()),
            finished_secs_ago: Some(secs_ago),
        });
        s
    }

    /// The node probe's memory read of coredns-a: paths and values as on this machine's
    /// cgroup v1 after the `coredns-oom` fault (values of the 20Mi run).
    fn with_memory_read(s: &mut Scenario) {
        let p = &s.topology.dns_pods[0];
        let cid = container_id(&p.name);
        let pod = format!("/sys/fs/cgroup/memory/kubepods/burstable/pod{}", p.uid);
        let file = |path: String, content: &str| RawFile {
            path,
            content: Some(content.into()),
            error: None,
        };
        s.evidence.nodes[0].snapshot.pod_cgroups = vec![PodCgroupRead {
            uid: p.uid.clone(),
            when: "after".into(),
            at_ms: 9000,
            files: vec![
                file(format!("{pod}/memory.usage_in_bytes"), "12341248\n"),
                file(format!("{pod}/memory.limit_in_bytes"), "20971520\n"),
                file(format!("{pod}/memory.max_usage_in_bytes"), "20971520\n"),
                file(
                    format!("{pod}/memory.oom_control"),
                    "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n",
                ),
                file(format!("{pod}/{cid}/memory.usage_in_bytes"), "11370496\n"),
                file(format!("{pod}/{cid}/memory.limit_in_bytes"), "20971520\n"),
                file(
                    format!("{pod}/{cid}/memory.max_usage_in_bytes"),
                    "11370496\n",
                ),
            ],
            error: None,
        }];
    }

    #[test]
    fn rules_that_lag_the_killed_pods_readiness_do_not_outrank_the_oom_kill() {
        // Seen on the test cluster: the node snapshot was taken a moment after the killed
        // pod turned not ready and before kube-proxy's next sync, so its rules still named
        // the pod's endpoint, which the EndpointSlice lists as not ready.
        let mut s = oom_killed(3, false);
        s.topology.endpoints[0].ready = false;
        s.topology.endpoints[0].serving = false;
        let d = s.diagnose();
        let top = d
            .root_cause()
            .expect("never healthy after a recent OOM kill");
        assert_eq!(top.id, ID, "{:?}", d.findings);
        let lag = d
            .findings
            .iter()
            .find(|f| f.id == crate::diagnose::kube_proxy_stale_rules::ID)
            .expect("the lagging rules are still reported");
        assert_eq!(lag.severity, Severity::Warning);
        assert!(lag.summary.contains("next sync"), "{}", lag.summary);
        let text: Vec<String> = lag.evidence.iter().map(|e| e.detail.clone()).collect();
        assert!(
            text.join("\n")
                .contains("endpoints the EndpointSlices list as not ready: 10.244.0.2"),
            "{text:?}"
        );
    }

    #[test]
    fn a_recent_oom_kill_of_a_ready_pod_is_the_top_warning_with_memory_evidence() {
        let mut s = oom_killed(40, true);
        with_memory_read(&mut s);
        let d = s.diagnose();
        let top = d
            .root_cause()
            .expect("never healthy after a recent OOM kill");
        assert_eq!(top.id, ID);
        assert_eq!(top.severity, Severity::Warning);
        assert!(top.summary.contains("1 of 2 DNS pods"), "{}", top.summary);
        assert!(top.summary.contains("memory limit 20Mi"), "{}", top.summary);
        assert!(top.summary.contains("40 s ago"), "{}", top.summary);
        let text: Vec<String> = top.evidence.iter().map(|e| e.detail.clone()).collect();
        let text = text.join("\n");
        assert!(
            text.contains("OOMKilled (exit code 137) at 2026-11-30T20:28:42Z"),
            "{text}"
        );
        assert!(text.contains("limits memory 20Mi"), "{text}");
        assert!(text.contains("10.8 MiB used of a 20.0 MiB limit"), "{text}");
        assert!(text.contains("2 OOM kills counted"), "{text}");
        assert!(
            top.remediation[0].contains("Raise the memory limit of container coredns (now 20Mi)")
        );
        // Nothing else claims a problem: the pods answer.
        assert_eq!(
            d.findings
                .iter()
                .filter(|f| f.severity >= Severity::Warning)
                .count(),
            1
        );
    }

    #[test]
    fn without_the_node_read_the_api_alone_still_names_it() {
        let d = oom_killed(40, true).diagnose();
        assert_eq!(d.root_cause().map(|f| f.id.as_str()), Some(ID));
    }

    #[test]
    fn an_oom_kill_days_ago_is_information_and_the_run_healthy() {
        let d = oom_killed(3 * 86_400, true).diagnose();
        let f = d.findings.iter().find(|f| f.id == ID).unwrap();
        assert_eq!(f.severity, Severity::Info);
        assert!(f.summary.contains("3 d ago"));
        assert!(!d.has_problems());
    }

    #[test]
    fn every_pod_crash_looping_on_oom_is_an_error_next_to_the_crashloop() {
        let mut s = oom_killed(5, false);
        let t = s.topology.dns_pods[0].last_termination.clone();
        for p in &mut s.topology.dns_pods {
            p.ready = false;
            p.waiting_reason = Some("CrashLoopBackOff".into());
            p.last_termination = t.clone();
        }
        for e in &mut s.topology.endpoints {
            e.ready = false;
        }
        let d = s.diagnose();
        let f = d.findings.iter().find(|f| f.id == ID).unwrap();
        assert_eq!(f.severity, Severity::Error);
        assert!(f.summary.contains("2 of 2"));
        // Either way the top finding names the OOM kill.
        let top = d.root_cause().unwrap();
        assert!(
            top.id == ID
                || (top.id == dns_pods_not_ready::ID_CRASHLOOP
                    && top.summary.contains("OOMKilled")),
            "{top:?}"
        );
    }

    #[test]
    fn no_memory_limit_points_at_the_node() {
        let mut s = oom_killed(40, true);
        s.topology.dns_pods[0].resources.memory_limit = None;
        let d = s.diagnose();
        let f = d.root_cause().unwrap();
        assert!(f.summary.contains("no memory limit set"), "{}", f.summary);
        assert!(f.remediation[0].contains("the node ran out of memory"));
    }

    #[test]
    fn other_terminations_are_not_oom() {
        let mut s = healthy();
        s.topology.dns_pods[0].restarts = 1;
        s.topology.dns_pods[0].last_termination = Some(Termination {
            reason: "Completed".into(),
            exit_code: 0,
            ..Termination::default()
        });
        assert!(s.diagnose().findings.iter().all(|f| f.id != ID));
    }
}
