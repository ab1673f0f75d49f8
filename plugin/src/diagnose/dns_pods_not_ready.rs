//! Rule: the DNS pods exist but are not ready or keep restarting, with the reason from their
//! status and logs (a forwarding loop the `loop` plugin detected, OOM, a bad Corefile, the
//! kubernetes plugin refused or cut off by the API server...).

use crate::dns_config::coredns_log::{ApiPermission, LogClass};
use crate::topology::{DnsPodInfo, LogLine, Topology};

use super::finding::{EvidenceRef, Finding, Severity};
use super::Context;

pub const ID_CRASHLOOP: &str = "dns-pods-crashloop";
pub const ID_NOT_READY: &str = "dns-pods-not-ready";

/// DNS pods that are not ready and not on their way out (a pod whose endpoint is
/// terminating is being replaced, not failing).
pub fn failing_pods(topology: &Topology) -> impl Iterator<Item = &DnsPodInfo> + '_ {
    topology
        .dns_pods
        .iter()
        .filter(move |p| !p.ready && !topology.dns_pod_terminating(p))
}

/// The kubelet's longest restart back-off: a container that crashed within it and is up
/// again may be between two crashes.
const MAX_BACKOFF_SECS: u64 = 300;

/// A pod that looks ready but is one turn of a crash loop: it restarted, its last run
/// ended in a failure (an OOM kill is `dns-pods-oom-killed`'s) within the kubelet's longest
/// back-off. Readiness between two crashes serves nothing for long.
fn ready_between_crashes(p: &DnsPodInfo) -> bool {
    p.ready
        && p.restarts > 0
        && p.last_termination.as_ref().is_some_and(|t| {
            t.exit_code != 0
                && t.reason != "OOMKilled"
                && t.finished_secs_ago.is_some_and(|s| s <= MAX_BACKOFF_SECS)
        })
}

fn crashlooping(p: &DnsPodInfo) -> bool {
    p.waiting_reason.as_deref() == Some("CrashLoopBackOff")
        || (p.restarts > 0 && p.last_termination.is_some())
}

fn describe(p: &DnsPodInfo) -> String {
    let mut s = format!(
        "{}/{}: phase {}, not ready, {} restarts",
        p.namespace, p.name, p.phase, p.restarts
    );
    if let Some(w) = &p.waiting_reason {
        s.push_str(&format!(", waiting: {w}"));
    }
    if let Some(t) = &p.last_termination {
        s.push_str(&format!(", last exit: {} (code {})", t.reason, t.exit_code));
        if let Some(m) = t.message.as_deref().filter(|m| !m.is_empty()) {
            s.push_str(&format!(": {}", m.lines().next().unwrap_or_default()));
        }
    }
    s
}

pub fn rule(cx: &Context<'_>) -> Option<Finding> {
    let failing: Vec<&DnsPodInfo> = failing_pods(cx.topology).collect();
    if failing.is_empty() {
        return None;
    }
    // Pods on their way out still count as ready until they stop, but serve nothing new:
    // when every pod that stays fails, DNS is down.
    let total = cx
        .topology
        .dns_pods
        .iter()
        .filter(|p| !cx.topology.dns_pod_terminating(p))
        .count();
    let crash = failing.iter().any(|p| crashlooping(p));
    let logged = |class: LogClass| {
        failing
            .iter()
            .flat_map(|p| p.log_lines.iter())
            .any(|l| l.kind == class)
    };
    let looped = logged(LogClass::ForwardingLoop);
    let config_error = logged(LogClass::ConfigError);
    // What the API server's authorizer says the DNS pods' service account may not read:
    // CoreDNS itself often logs only "Failed to watch", without the reason.
    let denied = denied_access(cx.topology);
    let mut refused: Vec<ApiPermission> =
        refused_permissions(&failing).into_iter().cloned().collect();
    for d in &denied {
        if !refused
            .iter()
            .any(|r| r.verb == d.verb && r.resource == d.resource)
        {
            refused.push(d.clone());
        }
    }
    let api_forbidden = logged(LogClass::KubernetesApiForbidden) || !denied.is_empty();
    let api_unreachable = logged(LogClass::KubernetesApiUnreachable);
    let oom = failing.iter().any(|p| {
        p.last_termination
            .as_ref()
            .is_some_and(|t| t.reason == "OOMKilled")
    });
    let mut evidence: Vec<EvidenceRef> = failing
        .iter()
        .map(|p| EvidenceRef::new("api", describe(p)))
        .collect();
    for p in &failing {
        for l in most_telling(&p.log_lines) {
            let which = if l.previous {
                "previous container"
            } else {
                "current container"
            };
            evidence.push(EvidenceRef::new(
                format!("logs:{}", p.name),
                format!("[{}] ({which}) {}", l.kind, l.line),
            ));
        }
    }
    for d in cx.topology.dns_api_access.iter().filter(|a| !a.allowed) {
        evidence.push(EvidenceRef::new(
            "api:subjectaccessreview",
            format!("{} may not {} {}", d.user, d.verb, d.resource),
        ));
    }
    let forward = super::corefile_view::root_forward(cx.topology);
    if let Some(f) = &forward {
        evidence.push(EvidenceRef::new(
            "api:corefile",
            format!(
                "server block at line {} forwards . to {}",
                f.line,
                f.describe()
            ),
        ));
    }
    let cause = if looped {
        "the CoreDNS loop plugin detected a forwarding loop".to_string()
    } else if oom {
        "the DNS container is killed for exceeding its memory limit (OOMKilled)".to_string()
    } else if config_error {
        "CoreDNS rejects its Corefile".to_string()
    } else if api_forbidden && !refused.is_empty() {
        let names: Vec<String> = refused
            .iter()
            .map(|p| format!("{} {}", p.verb, p.resource))
            .collect();
        format!(
            "the API server forbids CoreDNS's kubernetes plugin to {} (RBAC), so it never syncs",
            names.join(", ")
        )
    } else if api_forbidden {
        "the API server forbids CoreDNS's kubernetes plugin to read the objects it serves (RBAC), so it never syncs".to_string()
    } else if api_unreachable {
        "CoreDNS's kubernetes plugin cannot reach the API server, so it never syncs".to_string()
    } else if crash {
        "the DNS container keeps exiting".to_string()
    } else {
        "their readiness probe fails".to_string()
    };
    let mut remediation = Vec::new();
    if looped && forward.as_ref().is_some_and(|f| f.uses_resolv_conf()) {
        remediation.push(
            "The Corefile forwards to /etc/resolv.conf, which on this node leads back to CoreDNS: replace it with the real upstream's address (`forward . <upstream IP>`).".to_string(),
        );
    }
    if looped {
        remediation.push(
            "Make the Corefile's `forward` point at a real upstream resolver (an IP address), not at a resolver that sends the queries back to CoreDNS: `forward . /etc/resolv.conf` loops when the node's resolv.conf names a local stub (127.0.0.53, systemd-resolved) or the cluster DNS itself.".to_string(),
        );
        remediation.push(
            "Alternatively point the kubelet's resolvConf at a file listing the real upstream (e.g. /run/systemd/resolve/resolv.conf), then restart the DNS pods.".to_string(),
        );
    } else if oom {
        remediation.push("Raise the DNS container's memory limit, and look for the query flood that fills its cache (search-path amplification, a misbehaving client).".to_string());
    } else if config_error {
        remediation.push("Fix the Corefile (ConfigMap coredns) at the line and directive the log names; CoreDNS neither starts nor reloads with a Corefile it cannot parse.".to_string());
    } else if api_forbidden {
        remediation.extend(refused.iter().map(grant));
        if refused.is_empty() {
            remediation.push("Grant the DNS pods' service account list and watch on what the log line says is forbidden, in the ClusterRole bound to it (system:coredns in kubeadm clusters); CoreDNS needs endpointslices.discovery.k8s.io, services and namespaces.".to_string());
        }
    } else if api_unreachable {
        remediation.push("Make the API server reachable from the DNS pods: check the `kubernetes` Service in namespace default and its endpoints, kube-proxy's rules for it on the DNS pods' nodes, and NetworkPolicies or firewalls blocking egress to the API server's port (443 or 6443).".to_string());
    } else {
        remediation.push("Read the DNS pods' logs (`kubectl logs --previous`) and events; fix the Corefile error or the failing upstream they name.".to_string());
    }
    remediation.push(
        "After the fix, delete the failing DNS pods so they restart without back-off.".to_string(),
    );

    // With the failing pods crash-looping, pods that are ready between two crashes of their
    // own count as down too: seen on the test cluster, one CoreDNS pod of a looping pair
    // was up for the moment the doctor looked.
    let between_crashes = if crash {
        cx.topology
            .dns_pods
            .iter()
            .filter(|p| !cx.topology.dns_pod_terminating(p) && ready_between_crashes(p))
            .count()
    } else {
        0
    };
    let all_down = failing.len() + between_crashes == total;
    let (id, severity) = match (crash, all_down) {
        (true, true) => (ID_CRASHLOOP, Severity::Error),
        (true, false) => (ID_CRASHLOOP, Severity::Warning),
        (false, true) => (ID_NOT_READY, Severity::Error),
        (false, false) => (ID_NOT_READY, Severity::Warning),
    };
    let what = if crash {
        "restarting (crash loop)"
    } else {
        "not ready"
    };
    Some(Finding {
        id: id.into(),
        severity,
        summary: format!("{} of {total} DNS pods are {what}: {cause}", failing.len()),
        evidence,
        remediation,
        loss_point: None,
        node_pair: None,
    })
}

/// A pod's log lines most telling first (a refusal before the "still waiting" it causes),
/// at most three.
fn most_telling(lines: &[LogLine]) -> Vec<&LogLine> {
    let mut sorted: Vec<&LogLine> = lines.iter().collect();
    sorted.sort_by_key(|l| l.kind);
    sorted.truncate(3);
    sorted
}

/// The distinct permissions the API server refused the failing pods, in log order.
fn refused_permissions<'a>(failing: &[&'a DnsPodInfo]) -> Vec<&'a ApiPermission> {
    let mut out: Vec<&ApiPermission> = Vec::new();
    for p in failing
        .iter()
        .flat_map(|p| p.log_lines.iter())
        .filter_map(|l| l.forbidden.as_ref())
    {
        if !out
            .iter()
            .any(|q| q.verb == p.verb && q.resource == p.resource)
        {
            out.push(p);
        }
    }
    out
}

/// Permissions the API server denies the DNS pods' service account among those CoreDNS's
/// kubernetes plugin needs; pods only count when the Corefile asks for `pods verified`.
fn denied_access(t: &Topology) -> Vec<ApiPermission> {
    let verified = t
        .corefile
        .as_deref()
        .is_some_and(|c| c.contains("pods verified"));
    t.dns_api_access
        .iter()
        .filter(|a| !a.allowed && (a.resource != "pods" || verified))
        .map(|a| ApiPermission {
            verb: a.verb.clone(),
            resource: a.resource.clone(),
            user: Some(a.user.clone()),
        })
        .collect()
}

/// The RBAC fix for one refused permission, with the rule to add.
fn grant(p: &ApiPermission) -> String {
    let (group, resource) = p.group_and_resource();
    let who = p
        .user
        .as_deref()
        .map_or("the DNS pods' service account".to_string(), |u| {
            format!("`{u}`")
        });
    // The plugin's informers list and then watch every resource: granting only the verb
    // that was refused first fails again on the other.
    format!(
        "Grant {who} {} on {}: add the rule `{{apiGroups: [\"{group}\"], resources: [\"{resource}\"], verbs: [\"list\", \"watch\"]}}` to the ClusterRole bound to it (system:coredns in kubeadm clusters).",
        p.verb, p.resource
    )
}

#[cfg(test)]
mod tests {
    use dns_doctor_schema::QueryOutcome;

    use super::super::testkit::*;
    use super::*;
    use crate::topology::Termination;

    /// Seen in the accuracy run: of two looping CoreDNS pods, one was up for the moment
    /// the doctor looked. Both are down for the clients; a pod OOM-killed once and up
    /// again, or one that crashed long ago, is not.
    #[test]
    fn a_pod_up_between_two_crashes_does_not_make_the_crash_loop_partial() {
        let crashed = |secs_ago: u64, reason: &str| Termination {
            reason: reason.into(),
            exit_code: if reason == "OOMKilled" { 137 } else { 1 },
            message: None,
            finished_secs_ago: Some(secs_ago),
            ..Termination::default()
        };
        let looping = |up_for: u64, reason: &str| {
            let mut s = healthy();
            let [a, b] = &mut s.topology.dns_pods[..] else {
                panic!("two DNS pods")
            };
            a.ready = false;
            a.restarts = 3;
            a.waiting_reason = Some("CrashLoopBackOff".into());
            a.last_termination = Some(crashed(8, "Error"));
            b.ready = true;
            b.restarts = 3;
            b.last_termination = Some(crashed(up_for, reason));
            s.topology.endpoints[0].ready = false;
            s.set_queries(is_cluster_dns, QueryOutcome::TimedOut, None);
            s.diagnose()
        };
        let d = looping(20, "Error");
        let f = &d.findings[0];
        assert_eq!(f.id, ID_CRASHLOOP, "{:#?}", d.findings);
        assert_eq!(f.severity, Severity::Error);
        for (up_for, reason) in [(20, "OOMKilled"), (3600, "Error")] {
            let d = looping(up_for, reason);
            let f = d
                .findings
                .iter()
                .find(|f| f.id == ID_CRASHLOOP)
                .expect("the other pod still loops");
            assert_eq!(f.severity, Severity::Warning, "{up_for} s, {reason}");
        }
    }

    /// The test cluster's CoreDNS right after its crash loop began: the two pods of the
    /// previous set still terminating (ready, their endpoints terminating), the two new ones
    /// crashing.
    #[test]
    fn pods_on_their_way_out_do_not_keep_a_crash_loop_from_being_the_cause() {
        let mut s = healthy();
        let mut old = s.topology.dns_pods.clone();
        for (p, name) in old.iter_mut().zip(["coredns-old-a", "coredns-old-b"]) {
            p.name = name.into();
        }
        for p in &mut s.topology.dns_pods {
            p.ready = false;
            p.restarts = 1;
            p.last_termination = Some(Termination {
                reason: "Error".into(),
                exit_code: 1,
                message: None,
                ..Termination::default()
            });
        }
        for e in &mut s.topology.endpoints {
            e.ready = false;
        }
        // The first is still in the EndpointSlice (terminating), the second already left
        // it and is known only by its deletion.
        old[1].ready = false;
        old[1].deleting = true;
        for (p, ip) in old.iter().take(1).zip(["10.244.0.8"]) {
            let mut e = s.topology.endpoints[0].clone();
            e.ip = ip.parse().unwrap();
            e.pod = Some(format!("kube-system/{}", p.name));
            e.ready = false;
            e.terminating = true;
            s.topology.endpoints.push(e);
        }
        s.topology.dns_pods.extend(old);
        s.set_queries(is_cluster_dns, QueryOutcome::Refused, None);
        let d = s.diagnose();
        let f = &d.findings[0];
        assert_eq!(f.id, ID_CRASHLOOP, "{:#?}", d.findings);
        assert_eq!(f.severity, Severity::Error);
        assert!(
            f.summary.starts_with("2 of 2 DNS pods are restarting"),
            "{}",
            f.summary
        );
        let step = d.checklist.iter().find(|c| c.id == "dns-pods").unwrap();
        assert_eq!(step.status, crate::diagnose::CheckStatus::Fail);
        assert!(
            step.detail
                .starts_with("0/2 ready, 2 restarts (2 more terminating, not counted)"),
            "{}",
            step.detail
        );
    }
}
