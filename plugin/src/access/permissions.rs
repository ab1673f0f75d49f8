//! Every Kubernetes API permission the plugin uses: the verb, the resource, where, in which
//! phase, what for, and which role of `deploy/rbac.yaml` grants it.
//!
//! This table is the one source for preflight's access checks (`kube::preflight`), for
//! the role a 403 hint names, and for the test (`plugin/tests/rbac_manifest.rs`) that the
//! shipped roles grant every permission here and nothing else.

use serde::Serialize;

/// The step of a run (or the subcommand) that uses a permission.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// API reads: the target, the cluster DNS, its pods, kube-proxy, NetworkPolicies.
    Discover,
    /// Access reviews and dry-runs before anything is changed.
    Preflight,
    /// Probe containers in the target and DNS pods, and exec into them.
    Probe,
    /// Node pods (Jobs) and exec into them.
    NodeChecks,
    /// `kubectl dns-doctor cleanup`.
    Cleanup,
}

/// Where a permission is needed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// A cluster-scoped resource, or a list across all namespaces.
    Cluster,
    /// The namespace of the pod being examined (any namespace).
    Target,
    /// The namespace of the cluster DNS Service and its pods (kube-system in most clusters).
    Dns,
    /// kube-system itself, whatever the DNS namespace: kube-proxy, the `kube-dns` Service.
    KubeSystem,
    /// The node namespace (`--node-namespace`, default kube-system).
    Node,
}

/// The roles `deploy/rbac.yaml` defines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ShippedRole {
    /// Reads that are cluster-wide by nature.
    Discovery,
    /// What a run does in the target pod's namespace.
    Target,
    /// The cluster DNS and kube-proxy, in kube-system.
    Dns,
    /// Node pods in the node namespace, and `cleanup`.
    NodeChecks,
    /// `nodes/proxy` for the kubelet's configz; bound to nobody by default.
    KubeletConfigz,
}

/// How `deploy/rbac.yaml` binds a role to its ServiceAccount.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Binding {
    /// A ClusterRoleBinding: every namespace.
    ClusterWide,
    /// A RoleBinding in this namespace.
    InNamespace(&'static str),
    /// Not bound: an opt-in role, with its binding shown in a comment.
    Unbound,
}

/// The node namespace `deploy/rbac.yaml` grants node checks in (the `--node-namespace`
/// default).
pub const DEFAULT_NODE_NAMESPACE: &str = "kube-system";
/// The ServiceAccount `deploy/rbac.yaml` creates for in-cluster runs: (namespace, name).
pub const SERVICE_ACCOUNT: (&str, &str) = ("kube-system", "dns-doctor");

impl ShippedRole {
    pub const ALL: [Self; 5] = [
        Self::Discovery,
        Self::Target,
        Self::Dns,
        Self::NodeChecks,
        Self::KubeletConfigz,
    ];

    /// `metadata.name` in deploy/rbac.yaml.
    pub fn name(self) -> &'static str {
        match self {
            Self::Discovery => "dns-doctor-discovery",
            Self::Target => "dns-doctor-target",
            Self::Dns => "dns-doctor-dns",
            Self::NodeChecks => "dns-doctor-node-checks",
            Self::KubeletConfigz => "dns-doctor-kubelet-configz",
        }
    }

    /// `Role` (namespaced, in [`Self::namespace`]) or `ClusterRole`.
    pub fn kind(self) -> &'static str {
        match self.namespace() {
            Some(_) => "Role",
            None => "ClusterRole",
        }
    }

    /// The namespace of a Role; None for a ClusterRole.
    pub fn namespace(self) -> Option<&'static str> {
        match self {
            Self::Dns => Some("kube-system"),
            Self::NodeChecks => Some(DEFAULT_NODE_NAMESPACE),
            Self::Discovery | Self::Target | Self::KubeletConfigz => None,
        }
    }

    pub fn binding(self) -> Binding {
        match self {
            Self::Discovery | Self::Target => Binding::ClusterWide,
            Self::Dns => Binding::InNamespace("kube-system"),
            Self::NodeChecks => Binding::InNamespace(DEFAULT_NODE_NAMESPACE),
            Self::KubeletConfigz => Binding::Unbound,
        }
    }

    /// "ClusterRole dns-doctor-target" or "Role dns-doctor-dns in kube-system".
    pub fn describe(self) -> String {
        match self.namespace() {
            Some(ns) => format!("Role {} in {ns}", self.name()),
            None => format!("ClusterRole {}", self.name()),
        }
    }
}

/// One permission the plugin uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Permission {
    pub phase: Phase,
    pub verb: &'static str,
    /// The API group ("" for the core group).
    pub group: &'static str,
    /// resource or resource/subresource.
    pub resource: &'static str,
    pub scope: Scope,
    /// The role of deploy/rbac.yaml with this rule.
    pub role: ShippedRole,
    /// Asked with a SelfSubjectAccessReview before the run changes anything.
    pub preflight: bool,
    /// What the plugin does with it; shown when it is missing.
    pub purpose: &'static str,
}

const fn p(
    phase: Phase,
    verb: &'static str,
    group: &'static str,
    resource: &'static str,
    scope: Scope,
    role: ShippedRole,
    purpose: &'static str,
) -> Permission {
    Permission {
        phase,
        verb,
        group,
        resource,
        scope,
        role,
        preflight: false,
        purpose,
    }
}

const fn checked(perm: Permission) -> Permission {
    Permission {
        preflight: true,
        ..perm
    }
}

use Phase::{Cleanup, Discover, NodeChecks, Preflight, Probe};
use Scope::{Cluster, Dns, KubeSystem, Node, Target};
use ShippedRole as R;

/// Every permission, by phase. A permission missing at run time is a gap in the report or a
/// less capable plan, except reading the target pod itself (and, for `cleanup`, its own
/// namespace).
///
/// Not listed, on purpose: what `cleanup` tries before its fallback (Jobs and pods across
/// all namespaces, which a cluster admin has), and what discovery falls back to when a
/// listed permission is missing (reading `default/kubernetes` when Services cannot be
/// listed). The shipped roles grant neither.
#[rustfmt::skip]
pub const PERMISSIONS: &[Permission] = &[
    // Discover: the target.
    p(Discover, "get", "", "pods", Target, R::Target, "read the pod to examine"),
    p(Discover, "list", "", "pods", Target, R::Target, "find a ready pod of a workload named TYPE/NAME"),
    p(Discover, "get", "apps", "deployments", Target, R::Target, "read a Deployment named as the target, for its pod selector"),
    p(Discover, "get", "apps", "statefulsets", Target, R::Target, "read a StatefulSet named as the target, for its pod selector"),
    p(Discover, "get", "apps", "daemonsets", Target, R::Target, "read a DaemonSet named as the target, for its pod selector"),
    p(Discover, "get", "batch", "jobs", Target, R::Target, "read a Job named as the target, for its pod selector"),
    p(Discover, "get", "", "namespaces", Target, R::Target, "read the labels NetworkPolicy namespace selectors match, and the Pod Security level"),
    p(Discover, "list", "networking.k8s.io", "networkpolicies", Target, R::Target, "find NetworkPolicies that block DNS from the pod"),
    // Discover: the cluster DNS.
    p(Discover, "get", "", "nodes/proxy", Cluster, R::KubeletConfigz, "read the kubelet's clusterDNS and clusterDomain (configz); without it the kube-system/kube-dns Service's address and cluster.local are assumed"),
    p(Discover, "get", "", "services", KubeSystem, R::Dns, "read kube-system/kube-dns when the kubelet's configz cannot be read"),
    p(Discover, "list", "", "services", Cluster, R::Discovery, "find the Service that owns the cluster DNS address, in any namespace, and the names whose answers are known"),
    p(Discover, "list", "discovery.k8s.io", "endpointslices", Dns, R::Dns, "read the DNS Service's endpoints"),
    p(Discover, "list", "", "pods", Dns, R::Dns, "find the DNS pods by the Service's selector"),
    p(Discover, "get", "", "pods", Dns, R::Dns, "read DNS pods named by the endpoints, and the Corefile volume"),
    p(Discover, "get", "", "pods/log", Dns, R::Dns, "scan the DNS pods' logs for a forwarding loop, upstream timeouts, refused API access"),
    p(Discover, "get", "", "configmaps", Dns, R::Dns, "read the Corefile"),
    p(Discover, "get", "", "namespaces", Dns, R::Dns, "read the DNS namespace's labels NetworkPolicy namespace selectors match"),
    p(Discover, "list", "networking.k8s.io", "networkpolicies", Dns, R::Dns, "find NetworkPolicies that block DNS to the DNS pods"),
    p(Discover, "create", "authorization.k8s.io", "subjectaccessreviews", Cluster, R::Discovery, "ask whether the DNS pods' ServiceAccount may list and watch what CoreDNS needs"),
    p(Discover, "list", "", "pods", KubeSystem, R::Dns, "find the kube-proxy pods"),
    p(Discover, "get", "apps", "daemonsets", KubeSystem, R::Dns, "read the kube-proxy DaemonSet"),
    p(Discover, "get", "", "configmaps", KubeSystem, R::Dns, "read kube-proxy's mode"),
    p(Discover, "list", "apps", "daemonsets", Cluster, R::Discovery, "find NodeLocal DNSCache, in any namespace"),
    // Preflight.
    p(Preflight, "create", "authorization.k8s.io", "selfsubjectaccessreviews", Cluster, R::Discovery, "ask which of these permissions the caller has, before changing anything"),
    p(Preflight, "patch", "", "pods/ephemeralcontainers", Target, R::Target, "dry-run the probe container in the target pod, to learn what admission accepts"),
    p(Preflight, "patch", "", "pods/ephemeralcontainers", Dns, R::Dns, "dry-run the probe container in a DNS pod, to learn what admission accepts"),
    // Probe: the target pod.
    checked(p(Probe, "patch", "", "pods/ephemeralcontainers", Target, R::Target, "add the probe container to the target pod")),
    checked(p(Probe, "create", "", "pods/exec", Target, R::Target, "run the probe in the target pod")),
    p(Probe, "get", "", "pods/exec", Target, R::Target, "run the probe in the target pod (exec over WebSocket is a GET)"),
    p(Probe, "watch", "", "pods", Target, R::Target, "wait for the probe container to start and to exit"),
    // Probe: the DNS pods.
    checked(p(Probe, "patch", "", "pods/ephemeralcontainers", Dns, R::Dns, "add probe containers to the DNS pods")),
    checked(p(Probe, "create", "", "pods/exec", Dns, R::Dns, "query the upstream from the DNS pods")),
    p(Probe, "get", "", "pods/exec", Dns, R::Dns, "query the upstream from the DNS pods (exec over WebSocket is a GET)"),
    p(Probe, "watch", "", "pods", Dns, R::Dns, "wait for the DNS pods' probe containers to start and to exit"),
    // Node checks.
    checked(p(NodeChecks, "create", "batch", "jobs", Node, R::NodeChecks, "start node-debug pods")),
    checked(p(NodeChecks, "delete", "batch", "jobs", Node, R::NodeChecks, "remove node-debug pods")),
    checked(p(NodeChecks, "list", "", "pods", Node, R::NodeChecks, "find the node-debug pods")),
    checked(p(NodeChecks, "create", "", "pods/exec", Node, R::NodeChecks, "read rules and counters on the nodes")),
    p(NodeChecks, "get", "", "pods/exec", Node, R::NodeChecks, "read rules and counters on the nodes (exec over WebSocket is a GET)"),
    p(NodeChecks, "list", "batch", "jobs", Node, R::NodeChecks, "find this run's node Jobs to delete them"),
    p(NodeChecks, "watch", "", "pods", Node, R::NodeChecks, "wait for the node pods to run"),
    p(NodeChecks, "get", "", "pods", Node, R::NodeChecks, "say why a node pod was not scheduled"),
    // Cleanup.
    p(Cleanup, "list", "batch", "jobs", Node, R::NodeChecks, "find node Jobs an interrupted run left"),
    p(Cleanup, "delete", "batch", "jobs", Node, R::NodeChecks, "delete node Jobs an interrupted run left"),
    p(Cleanup, "list", "", "pods", Node, R::NodeChecks, "find node pods whose Job is gone"),
    p(Cleanup, "delete", "", "pods", Node, R::NodeChecks, "delete node pods whose Job is gone"),
];

/// The shipped roles with a rule for `verb` on `resource`, for a 403's hint.
pub fn roles_granting(verb: &str, resource: &str) -> Vec<ShippedRole> {
    let mut roles = Vec::new();
    for perm in PERMISSIONS {
        if perm.verb == verb && perm.resource == resource && !roles.contains(&perm.role) {
            roles.push(perm.role);
        }
    }
    roles
}

/// Where deploy/rbac.yaml has the rule for `verb` on `resource` in `namespace` ("" for
/// cluster-wide), as a sentence: the ClusterRoles and the Roles of that namespace with it,
/// else the Roles of other namespaces to copy.
pub fn where_shipped(verb: &str, resource: &str, namespace: &str) -> String {
    let roles = roles_granting(verb, resource);
    let fitting: Vec<String> = roles
        .iter()
        .filter(|r| namespace.is_empty() || r.namespace().is_none_or(|ns| ns == namespace))
        .map(|r| r.describe())
        .collect();
    if !fitting.is_empty() {
        return format!("deploy/rbac.yaml has it in {}.", fitting.join(" and "));
    }
    match roles.first() {
        Some(r) => format!(
            "deploy/rbac.yaml has it in {}: copy that Role into {namespace} and bind it there.",
            r.describe()
        ),
        None => "deploy/rbac.yaml holds the roles the plugin needs.".to_string(),
    }
}

/// The API group of a resource the plugin uses ("" for the core group and for resources
/// it does not use).
pub fn api_group_of(resource: &str) -> &'static str {
    let base = resource.split('/').next().unwrap_or_default();
    PERMISSIONS
        .iter()
        .find(|p| p.resource.split('/').next() == Some(base))
        .map_or("", |p| p.group)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_resource_has_one_api_group() {
        for perm in PERMISSIONS {
            assert_eq!(perm.group, api_group_of(perm.resource), "{perm:?}");
        }
        assert_eq!(api_group_of("jobs"), "batch");
        assert_eq!(api_group_of("pods/exec"), "");
        assert_eq!(
            api_group_of("selfsubjectaccessreviews"),
            "authorization.k8s.io"
        );
    }

    #[test]
    fn node_pod_permissions_are_in_the_node_role_only() {
        for perm in PERMISSIONS {
            assert_eq!(
                perm.scope == Scope::Node,
                perm.role == ShippedRole::NodeChecks,
                "{perm:?}"
            );
        }
    }

    #[test]
    fn a_forbidden_job_delete_names_the_node_role() {
        assert_eq!(
            roles_granting("delete", "jobs"),
            vec![ShippedRole::NodeChecks]
        );
        assert_eq!(
            roles_granting("patch", "pods/ephemeralcontainers"),
            vec![ShippedRole::Target, ShippedRole::Dns]
        );
        assert!(roles_granting("delete", "secrets").is_empty());
        assert_eq!(
            where_shipped("patch", "pods/ephemeralcontainers", "shop"),
            "deploy/rbac.yaml has it in ClusterRole dns-doctor-target."
        );
        assert_eq!(
            where_shipped("delete", "jobs", "kube-system"),
            "deploy/rbac.yaml has it in Role dns-doctor-node-checks in kube-system."
        );
        assert_eq!(
            where_shipped("create", "jobs", "dns-debug"),
            "deploy/rbac.yaml has it in Role dns-doctor-node-checks in kube-system: copy that Role into dns-debug and bind it there."
        );
    }
}
