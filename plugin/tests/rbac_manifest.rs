//! deploy/rbac.yaml against the permissions the plugin uses (`kube::permissions`): the
//! shipped ServiceAccount is granted every one of them, and the roles grant nothing else.
//! The commented Group examples are checked the same way, as an admin would uncomment them.
//!
//! RBAC is evaluated here the way the API server's authorizer does for these objects: a
//! ClusterRoleBinding grants its ClusterRole's rules everywhere, a RoleBinding grants its
//! Role's or ClusterRole's rules in its own namespace only, and a namespace object counts as
//! inside itself.

use dns_doctor::access::permissions::{
    Binding, Permission, Scope, ShippedRole, DEFAULT_NODE_NAMESPACE, PERMISSIONS, SERVICE_ACCOUNT,
};
use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::api::rbac::v1::{
    ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding, RoleRef, Subject,
};
use serde::Deserialize;

const MANIFEST: &str = include_str!("../../deploy/rbac.yaml");

#[derive(Debug, Clone)]
struct RoleObj {
    kind: String,
    name: String,
    namespace: Option<String>,
    rules: Vec<PolicyRule>,
}

#[derive(Debug, Clone)]
struct BindingObj {
    kind: String,
    name: String,
    namespace: Option<String>,
    role_ref: RoleRef,
    subjects: Vec<Subject>,
}

#[derive(Debug, Default)]
struct Rbac {
    service_accounts: Vec<ServiceAccount>,
    roles: Vec<RoleObj>,
    bindings: Vec<BindingObj>,
}

fn parse(text: &str) -> Rbac {
    let mut rbac = Rbac::default();
    for doc in serde_norway::Deserializer::from_str(text) {
        let value = serde_json::Value::deserialize(doc).expect("each document is YAML");
        if value.is_null() {
            continue;
        }
        let kind = value["kind"].as_str().unwrap_or_default().to_string();
        match kind.as_str() {
            "ServiceAccount" => rbac
                .service_accounts
                .push(serde_json::from_value(value).unwrap()),
            "ClusterRole" => {
                let r: ClusterRole = serde_json::from_value(value).unwrap();
                assert!(r.aggregation_rule.is_none(), "{:?}", r.metadata.name);
                rbac.roles.push(RoleObj {
                    kind,
                    name: r.metadata.name.unwrap(),
                    namespace: r.metadata.namespace,
                    rules: r.rules.unwrap_or_default(),
                });
            }
            "Role" => {
                let r: Role = serde_json::from_value(value).unwrap();
                rbac.roles.push(RoleObj {
                    kind,
                    name: r.metadata.name.unwrap(),
                    namespace: r.metadata.namespace,
                    rules: r.rules.unwrap_or_default(),
                });
            }
            "ClusterRoleBinding" => {
                let b: ClusterRoleBinding = serde_json::from_value(value).unwrap();
                rbac.bindings.push(BindingObj {
                    kind,
                    name: b.metadata.name.unwrap(),
                    namespace: b.metadata.namespace,
                    role_ref: b.role_ref,
                    subjects: b.subjects.unwrap_or_default(),
                });
            }
            "RoleBinding" => {
                let b: RoleBinding = serde_json::from_value(value).unwrap();
                rbac.bindings.push(BindingObj {
                    kind,
                    name: b.metadata.name.unwrap(),
                    namespace: b.metadata.namespace,
                    role_ref: b.role_ref,
                    subjects: b.subjects.unwrap_or_default(),
                });
            }
            other => panic!("unexpected kind {other:?} in deploy/rbac.yaml"),
        }
    }
    rbac
}

/// The commented-out YAML of the file, as an admin would uncomment it: every run of
/// comment lines that starts with `# apiVersion:` and ends before an empty comment line or
/// a line that is not a comment.
fn commented_examples(text: &str) -> String {
    let mut out = String::new();
    let mut inside = false;
    for line in text.lines() {
        if line.starts_with("# apiVersion:") {
            if !out.is_empty() {
                out.push_str("---\n");
            }
            inside = true;
        }
        match line.strip_prefix('#') {
            Some(rest) if inside && !rest.trim().is_empty() => {
                out.push_str(rest.strip_prefix(' ').unwrap_or(rest));
                out.push('\n');
            }
            _ => inside = false,
        }
    }
    out
}

/// A subject as the authorizer sees it: a user name and its groups.
struct Who {
    user: String,
    groups: Vec<String>,
}

fn service_account() -> Who {
    let (ns, name) = SERVICE_ACCOUNT;
    Who {
        user: format!("system:serviceaccount:{ns}:{name}"),
        groups: vec![
            "system:serviceaccounts".into(),
            format!("system:serviceaccounts:{ns}"),
            "system:authenticated".into(),
        ],
    }
}

fn group_member(group: &str) -> Who {
    Who {
        user: "someone".into(),
        groups: vec![group.into(), "system:authenticated".into()],
    }
}

fn subject_matches(s: &Subject, who: &Who) -> bool {
    match s.kind.as_str() {
        "ServiceAccount" => {
            who.user
                == format!(
                    "system:serviceaccount:{}:{}",
                    s.namespace.as_deref().unwrap_or_default(),
                    s.name
                )
        }
        "User" => who.user == s.name,
        "Group" => who.groups.contains(&s.name),
        other => panic!("unknown subject kind {other}"),
    }
}

fn rule_grants(rule: &PolicyRule, verb: &str, group: &str, resource: &str) -> bool {
    let has = |list: &Option<Vec<String>>, x: &str| list.iter().flatten().any(|v| v == x);
    rule.verbs.iter().any(|v| v == verb)
        && has(&rule.api_groups, group)
        && has(&rule.resources, resource)
        && rule.resource_names.as_ref().is_none_or(Vec::is_empty)
}

impl Rbac {
    fn role(&self, kind: &str, name: &str, namespace: Option<&str>) -> Option<&RoleObj> {
        self.roles
            .iter()
            .find(|r| r.kind == kind && r.name == name && r.namespace.as_deref() == namespace)
    }

    fn merge(mut self, other: Rbac) -> Rbac {
        self.service_accounts.extend(other.service_accounts);
        self.roles.extend(other.roles);
        self.bindings.extend(other.bindings);
        self
    }

    /// Whether `who` may `verb` `resource` in `namespace` (None: cluster-wide).
    fn allows(
        &self,
        who: &Who,
        verb: &str,
        group: &str,
        resource: &str,
        namespace: Option<&str>,
    ) -> bool {
        self.bindings.iter().any(|b| {
            if !b.subjects.iter().any(|s| subject_matches(s, who)) {
                return false;
            }
            let role = match (b.kind.as_str(), b.namespace.as_deref()) {
                ("ClusterRoleBinding", _) => self.role("ClusterRole", &b.role_ref.name, None),
                ("RoleBinding", Some(bns)) if namespace == Some(bns) => {
                    match b.role_ref.kind.as_str() {
                        "ClusterRole" => self.role("ClusterRole", &b.role_ref.name, None),
                        _ => self.role("Role", &b.role_ref.name, Some(bns)),
                    }
                }
                _ => None,
            };
            role.is_some_and(|r| {
                r.rules
                    .iter()
                    .any(|rule| rule_grants(rule, verb, group, resource))
            })
        })
    }

    fn allows_perm(&self, who: &Who, perm: &Permission, target_ns: &str) -> bool {
        let ns = match perm.scope {
            Scope::Cluster => None,
            Scope::Target => Some(target_ns),
            Scope::Dns | Scope::KubeSystem => Some("kube-system"),
            Scope::Node => Some(DEFAULT_NODE_NAMESPACE),
        };
        self.allows(who, perm.verb, perm.group, perm.resource, ns)
    }
}

fn shipped() -> Rbac {
    parse(MANIFEST)
}

fn bound_permissions() -> impl Iterator<Item = &'static Permission> {
    PERMISSIONS
        .iter()
        .filter(|p| p.role.binding() != Binding::Unbound)
}

#[test]
fn the_service_account_is_granted_every_permission_a_run_and_cleanup_use() {
    let rbac = shipped();
    let sa = service_account();
    for perm in bound_permissions() {
        for target_ns in ["shop", "kube-system"] {
            assert!(
                rbac.allows_perm(&sa, perm, target_ns),
                "deploy/rbac.yaml does not grant {perm:?} (target namespace {target_ns})"
            );
        }
    }
    let (ns, name) = SERVICE_ACCOUNT;
    assert!(
        rbac.service_accounts.iter().any(|s| {
            s.metadata.name.as_deref() == Some(name) && s.metadata.namespace.as_deref() == Some(ns)
        }),
        "the file creates the ServiceAccount it binds"
    );
}

#[test]
fn every_rule_is_a_listed_permission_of_that_role() {
    let rbac = shipped();
    for role in &rbac.roles {
        let shipped = ShippedRole::ALL
            .into_iter()
            .find(|r| r.name() == role.name)
            .unwrap_or_else(|| panic!("{} is not a role the plugin knows", role.name));
        assert_eq!(role.kind, shipped.kind(), "{}", role.name);
        assert_eq!(
            role.namespace.as_deref(),
            shipped.namespace(),
            "{}",
            role.name
        );
        for rule in &role.rules {
            assert!(rule.non_resource_urls.is_none(), "{}: {rule:?}", role.name);
            assert!(rule.resource_names.is_none(), "{}: {rule:?}", role.name);
            let groups = rule.api_groups.clone().unwrap_or_default();
            let resources = rule.resources.clone().unwrap_or_default();
            for word in groups.iter().chain(&resources).chain(&rule.verbs) {
                assert!(!word.contains('*'), "{}: wildcard in {rule:?}", role.name);
            }
            for resource in &resources {
                assert!(!resource.starts_with("secrets"), "{}: {rule:?}", role.name);
                assert!(
                    resource != "nodes/proxy" || shipped == ShippedRole::KubeletConfigz,
                    "nodes/proxy outside the optional role, in {}",
                    role.name
                );
                for group in &groups {
                    for verb in &rule.verbs {
                        assert!(
                            PERMISSIONS.iter().any(|p| p.role == shipped
                                && p.verb == verb
                                && p.group == group
                                && p.resource == resource),
                            "{} grants {verb} {resource} (group {group:?}), which the plugin does not use there",
                            role.name
                        );
                    }
                }
            }
        }
    }
    for r in ShippedRole::ALL {
        assert!(
            rbac.role(r.kind(), r.name(), r.namespace()).is_some(),
            "{} is missing from the file",
            r.describe()
        );
    }
}

#[test]
fn every_permission_is_in_the_role_the_table_names() {
    let rbac = shipped();
    for perm in PERMISSIONS {
        let role = rbac
            .role(perm.role.kind(), perm.role.name(), perm.role.namespace())
            .unwrap();
        assert!(
            role.rules
                .iter()
                .any(|r| rule_grants(r, perm.verb, perm.group, perm.resource)),
            "{} lacks {perm:?}",
            perm.role.describe()
        );
    }
}

#[test]
fn bindings_bind_the_service_account_as_the_table_says() {
    let rbac = shipped();
    let (sa_ns, sa_name) = SERVICE_ACCOUNT;
    for b in &rbac.bindings {
        assert_eq!(
            b.role_ref.api_group, "rbac.authorization.k8s.io",
            "{}",
            b.name
        );
        assert_eq!(b.subjects.len(), 1, "{}", b.name);
        let s = &b.subjects[0];
        assert_eq!(
            (s.kind.as_str(), s.name.as_str(), s.namespace.as_deref()),
            ("ServiceAccount", sa_name, Some(sa_ns)),
            "{}",
            b.name
        );
        assert_eq!(
            b.namespace.is_some(),
            b.kind == "RoleBinding",
            "{} states its namespace",
            b.name
        );
    }
    for r in ShippedRole::ALL {
        let bound: Vec<(&str, Option<&str>)> = rbac
            .bindings
            .iter()
            .filter(|b| b.role_ref.name == r.name() && b.role_ref.kind == r.kind())
            .map(|b| (b.kind.as_str(), b.namespace.as_deref()))
            .collect();
        let expected = match r.binding() {
            Binding::ClusterWide => vec![("ClusterRoleBinding", None)],
            Binding::InNamespace(ns) => vec![("RoleBinding", Some(ns))],
            Binding::Unbound => vec![],
        };
        assert_eq!(bound, expected, "{}", r.describe());
    }
}

#[test]
fn nodes_proxy_is_opt_in_through_the_commented_binding() {
    let rbac = shipped();
    let sa = service_account();
    let configz = PERMISSIONS
        .iter()
        .find(|p| p.resource == "nodes/proxy")
        .unwrap();
    assert_eq!(configz.role, ShippedRole::KubeletConfigz);
    assert!(!rbac.allows_perm(&sa, configz, "shop"));
    let with_examples = shipped().merge(parse(&commented_examples(MANIFEST)));
    assert!(with_examples.allows_perm(&sa, configz, "shop"));
}

#[test]
fn the_group_examples_grant_what_they_say() {
    let examples = parse(&commented_examples(MANIFEST));
    assert!(examples.roles.is_empty() && examples.service_accounts.is_empty());
    for b in &examples.bindings {
        let r = ShippedRole::ALL
            .into_iter()
            .find(|r| r.name() == b.role_ref.name)
            .unwrap_or_else(|| panic!("{} binds an unknown role", b.name));
        assert_eq!(b.role_ref.kind, r.kind(), "{}", b.name);
        assert_eq!(b.namespace.is_some(), b.kind == "RoleBinding", "{}", b.name);
    }
    let rbac = shipped().merge(examples);

    // sre: everything the ServiceAccount has, in every namespace.
    let sre = group_member("sre");
    for perm in bound_permissions() {
        for target_ns in ["shop", "payments"] {
            assert!(
                rbac.allows_perm(&sre, perm, target_ns),
                "sre lacks {perm:?}"
            );
        }
    }

    // shop-devs: runs on pods in `shop`, without node checks.
    let devs = group_member("shop-devs");
    for perm in bound_permissions() {
        // The node namespace is kube-system, where the DNS role also lists and reads pods
        // and execs; Jobs and deleting pods are the node role's alone.
        let also_dns = PERMISSIONS.iter().any(|d| {
            d.role == ShippedRole::Dns
                && (d.verb, d.group, d.resource) == (perm.verb, perm.group, perm.resource)
        });
        let expect = perm.role != ShippedRole::NodeChecks || also_dns;
        assert_eq!(
            rbac.allows_perm(&devs, perm, "shop"),
            expect,
            "shop-devs and {perm:?} in shop"
        );
        if perm.scope == Scope::Target {
            assert!(
                !rbac.allows_perm(&devs, perm, "payments"),
                "shop-devs may {perm:?} outside shop"
            );
        }
    }
    for (verb, group, resource) in [
        ("create", "batch", "jobs"),
        ("delete", "batch", "jobs"),
        ("delete", "", "pods"),
    ] {
        assert!(!rbac.allows(&devs, verb, group, resource, Some(DEFAULT_NODE_NAMESPACE)));
    }
}

#[test]
fn the_evaluator_denies_what_is_not_granted() {
    // Guards the checks above against an evaluator that allows everything.
    let rbac = shipped();
    let sa = service_account();
    assert!(!rbac.allows(&sa, "get", "", "secrets", Some("kube-system")));
    assert!(!rbac.allows(&sa, "create", "batch", "jobs", Some("shop")));
    assert!(!rbac.allows(&sa, "list", "batch", "jobs", None));
    assert!(!rbac.allows(&sa, "delete", "", "pods", Some("shop")));
    assert!(!rbac.allows(&group_member("nobody"), "get", "", "pods", Some("shop")));
    assert!(rbac.allows(&sa, "get", "", "pods", Some("shop")));
}
