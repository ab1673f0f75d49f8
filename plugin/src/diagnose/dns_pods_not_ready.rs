//! Rule: the DNS pods exist but are not ready or keep restarting, with the reason from their
//! status and logs (a forwarding loop the `loop` plugin detected, OOM, a bad Corefile...).

use crate::topology::{DnsPodInfo, Topology};

use super::finding::{EvidenceRef, Finding, Severity};
use super::Context;

pub const ID_CRASHLOOP: &str = "dns-pods-crashloop";
pub const ID_NOT_READY: &str = "dns-pods-not-ready";

/// DNS pods that are not ready and not on their way out (a pod whose endpoint is
/// terminating is being replaced, not failing).
pub fn failing_pods(topology: &Topology) -> impl Iterator<Item = &DnsPodInfo> + '_ {
    topology.dns_pods.iter().filter(move |p| {
        let full = format!("{}/{}", p.namespace, p.name);
        let terminating = topology
            .endpoints
            .iter()
            .any(|e| e.terminating && e.pod.as_deref() == Some(full.as_str()));
        !p.ready && !terminating
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
    let total = cx.topology.dns_pods.len();
    let crash = failing.iter().any(|p| crashlooping(p));
    let looped = failing
        .iter()
        .flat_map(|p| p.log_lines.iter())
        .any(|l| l.kind == "forwarding-loop");
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
        for l in p.log_lines.iter().take(3) {
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
        "the CoreDNS loop plugin detected a forwarding loop"
    } else if oom {
        "the DNS container is killed for exceeding its memory limit (OOMKilled)"
    } else if crash {
        "the DNS container keeps exiting"
    } else {
        "their readiness probe fails"
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
    } else {
        remediation.push("Read the DNS pods' logs (`kubectl logs --previous`) and events; fix the Corefile error or the failing upstream they name.".to_string());
    }
    remediation.push(
        "After the fix, delete the failing DNS pods so they restart without back-off.".to_string(),
    );

    let all_down = failing.len() == total;
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
    })
}
