//! Step 2, preflight: ask before touching anything. SelfSubjectAccessReviews for each verb
//! the plan needs, the namespace's Pod Security level, and server-side dry-runs of the
//! ephemeral container, so an admission rejection is learnt before anything permanent.

use std::time::Duration;

use super::{api_group_of, ephemeral, KubeError};
use crate::access::{AccessAnswer, AccessCheck, EphemeralChoice, Privilege};
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
};
use k8s_openapi::api::core::v1::Namespace;
use kube::api::PostParams;
use kube::{Api, Client};

/// Ask the API server about each permission.
pub async fn check_access(
    client: &Client,
    checks: &[AccessCheck],
) -> Result<Vec<AccessAnswer>, KubeError> {
    let api: Api<SelfSubjectAccessReview> = Api::all(client.clone());
    let mut answers = Vec::with_capacity(checks.len());
    for check in checks {
        let (resource, subresource) = match check.resource.split_once('/') {
            Some((r, s)) => (r.to_string(), Some(s.to_string())),
            None => (check.resource.clone(), None),
        };
        let review = SelfSubjectAccessReview {
            spec: SelfSubjectAccessReviewSpec {
                resource_attributes: Some(ResourceAttributes {
                    verb: Some(check.verb.clone()),
                    group: Some(api_group_of(&check.resource).to_string()),
                    resource: Some(resource),
                    subresource,
                    namespace: check.namespace.clone(),
                    ..ResourceAttributes::default()
                }),
                ..SelfSubjectAccessReviewSpec::default()
            },
            ..SelfSubjectAccessReview::default()
        };
        let result = api
            .create(&PostParams::default(), &review)
            .await
            .map_err(|e| {
                KubeError::from_api(
                    "ask for access (SelfSubjectAccessReview)",
                    "create",
                    "selfsubjectaccessreviews",
                    "",
                    e,
                )
            })?;
        let status = result.status.unwrap_or_default();
        answers.push(AccessAnswer {
            check: check.clone(),
            allowed: status.allowed,
            reason: status.reason.filter(|r| !r.is_empty()),
        });
    }
    Ok(answers)
}

/// The namespace's enforced Pod Security level (privileged when unlabelled). None when the
/// namespace cannot be read.
pub async fn pod_security_level(client: &Client, namespace: &str) -> Option<String> {
    let api: Api<Namespace> = Api::all(client.clone());
    let ns = api.get_opt(namespace).await.ok()??;
    Some(
        ns.metadata
            .labels
            .and_then(|l| l.get("pod-security.kubernetes.io/enforce").cloned())
            .unwrap_or_else(|| "privileged".into()),
    )
}

/// Dry-run each privilege level, most capable first, and keep the first accepted.
pub async fn choose_ephemeral(
    client: &Client,
    namespace: &str,
    pod: &str,
    target_container: &str,
    image: &str,
    want_capture: bool,
) -> Result<EphemeralChoice, KubeError> {
    let mut rejections = Vec::new();
    for privilege in Privilege::ALL {
        if privilege.can_capture() && !want_capture {
            continue;
        }
        let spec = ephemeral::container_spec(
            "dns-doctor-dryrun",
            "dryrun",
            image,
            target_container,
            privilege,
            Duration::from_secs(1),
        );
        match ephemeral::dry_run(client, namespace, pod, &spec).await? {
            None => {
                return Ok(EphemeralChoice {
                    privilege: Some(privilege),
                    rejections,
                })
            }
            Some(msg) => rejections.push((privilege, msg)),
        }
    }
    Ok(EphemeralChoice {
        privilege: None,
        rejections,
    })
}

#[cfg(test)]
mod tests {
    use crate::access::required_checks;

    #[test]
    fn node_checks_add_job_and_exec_permissions() {
        let without = required_checks("app", Some("kube-system"), "kube-system", false);
        assert!(without.iter().all(|c| c.resource != "jobs"));
        let with = required_checks("app", Some("kube-system"), "node-debug", true);
        let node: Vec<(&str, &str)> = with
            .iter()
            .filter(|c| c.namespace.as_deref() == Some("node-debug"))
            .map(|c| (c.verb.as_str(), c.resource.as_str()))
            .collect();
        assert_eq!(
            node,
            [
                ("create", "jobs"),
                ("delete", "jobs"),
                ("list", "pods"),
                ("create", "pods/exec")
            ]
        );
    }

    #[test]
    fn probe_permissions_are_asked_where_the_probes_go() {
        let checks = required_checks("app", Some("dns"), "kube-system", false);
        let asked: Vec<(&str, &str, &str)> = checks
            .iter()
            .map(|c| {
                (
                    c.verb.as_str(),
                    c.resource.as_str(),
                    c.namespace.as_deref().unwrap_or_default(),
                )
            })
            .collect();
        assert_eq!(
            asked,
            [
                ("patch", "pods/ephemeralcontainers", "app"),
                ("create", "pods/exec", "app"),
                ("patch", "pods/ephemeralcontainers", "dns"),
                ("create", "pods/exec", "dns"),
            ]
        );
        // Without a DNS Service there are no DNS pods to probe.
        assert_eq!(required_checks("app", None, "kube-system", false).len(), 2);
    }
}
