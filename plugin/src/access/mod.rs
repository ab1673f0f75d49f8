//! What the cluster lets a run do, as data: the permissions a run needs, the API server's
//! answers, and the ephemeral container admission accepts. The kube layer asks
//! (`kube::preflight`); the plan decides from the answers. Pure.

pub mod permissions;

use serde::Serialize;

use permissions::{Scope, PERMISSIONS};

/// One permission the plan may need.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AccessCheck {
    pub verb: String,
    /// resource or resource/subresource.
    pub resource: String,
    /// None for cluster-scoped checks.
    pub namespace: Option<String>,
    /// What the plan does with it, shown when it is missing.
    pub purpose: String,
}

impl AccessCheck {
    pub fn new(verb: &str, resource: &str, namespace: Option<&str>, purpose: &str) -> Self {
        Self {
            verb: verb.into(),
            resource: resource.into(),
            namespace: namespace.map(str::to_string),
            purpose: purpose.into(),
        }
    }
}

/// The answer to one [`AccessCheck`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AccessAnswer {
    pub check: AccessCheck,
    pub allowed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The permissions preflight asks about before a run changes anything (those marked
/// `preflight` in [`PERMISSIONS`]), in the run's namespaces. Pure.
pub fn required_checks(
    target_ns: &str,
    dns_ns: Option<&str>,
    node_ns: &str,
    node_checks: bool,
) -> Vec<AccessCheck> {
    PERMISSIONS
        .iter()
        .filter(|p| p.preflight)
        .filter_map(|p| {
            let ns = match p.scope {
                Scope::Target => target_ns,
                Scope::Dns => dns_ns?,
                Scope::Node if node_checks => node_ns,
                Scope::Node | Scope::Cluster | Scope::KubeSystem => return None,
            };
            Some(AccessCheck::new(p.verb, p.resource, Some(ns), p.purpose))
        })
        .collect()
}

/// How much privilege an ephemeral container asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Privilege {
    /// Root with NET_RAW and NET_ADMIN: probes and tcpdump in the pod.
    Capture,
    /// Root, no added capabilities: probes only (what Pod Security "baseline" admits).
    ProbeOnly,
    /// Non-root, all capabilities dropped, RuntimeDefault seccomp: "restricted".
    Restricted,
}

impl Privilege {
    /// Every level, most capable first: the order preflight tries them in.
    pub const ALL: [Privilege; 3] = [Self::Capture, Self::ProbeOnly, Self::Restricted];

    pub fn can_capture(self) -> bool {
        self == Self::Capture
    }
}

/// The most capable ephemeral container admission accepts, learnt by dry-run, with the
/// rejections of the more capable ones.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EphemeralChoice {
    pub privilege: Option<Privilege>,
    pub rejections: Vec<(Privilege, String)>,
}

/// Whether `verb` on `resource` in namespace `ns` was allowed.
pub fn allowed(answers: &[AccessAnswer], verb: &str, resource: &str, ns: &str) -> bool {
    answers.iter().any(|a| {
        a.allowed
            && a.check.verb == verb
            && a.check.resource == resource
            && a.check.namespace.as_deref() == Some(ns)
    })
}

/// Each refused permission, said with what it was needed for.
pub fn refusals(answers: &[AccessAnswer]) -> Vec<String> {
    answers
        .iter()
        .filter(|a| !a.allowed)
        .map(|a| {
            format!(
                "not allowed to {} {}{} (needed to {})",
                a.check.verb,
                a.check.resource,
                a.check
                    .namespace
                    .as_deref()
                    .map(|n| format!(" in {n}"))
                    .unwrap_or_default(),
                a.check.purpose
            )
        })
        .collect()
}
