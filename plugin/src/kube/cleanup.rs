//! Cleanup: stop what a run started, delete its node Jobs, and `kubectl dns-doctor cleanup`
//! for anything an earlier run left (found by label): in every namespace when the caller
//! may list there, else in the node namespace, which is all deploy/rbac.yaml grants.

use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{DeleteParams, ListParams, PropagationPolicy};
use kube::{Api, Client};
use serde::Serialize;

use super::exec::{self, ExecTarget};
use super::{KubeError, MANAGED_BY_LABEL, MANAGED_BY_VALUE, RUN_LABEL};
use crate::access::permissions::DEFAULT_NODE_NAMESPACE;
use crate::plan::script::PROBE_BIN;

fn delete_params() -> DeleteParams {
    DeleteParams {
        propagation_policy: Some(PropagationPolicy::Background),
        grace_period_seconds: Some(0),
        ..DeleteParams::default()
    }
}

/// End every probe process of this run in a container (its `hold` main process included),
/// so the container terminates now instead of at its deadline.
pub async fn stop_run_in(
    client: &Client,
    target: &ExecTarget,
    run_id: &str,
    timeout: Duration,
) -> Result<(), KubeError> {
    let argv = vec![
        PROBE_BIN.to_string(),
        "stop".into(),
        "--run".into(),
        run_id.to_string(),
    ];
    exec::run(client, target, &argv, timeout).await.map(|_| ())
}

/// Delete the node Jobs of one run (their pods go with them).
pub async fn delete_run_jobs(
    client: &Client,
    namespace: &str,
    run_id: &str,
) -> Result<usize, KubeError> {
    let api: Api<Job> = Api::namespaced(client.clone(), namespace);
    let lp = ListParams::default().labels(&format!(
        "{MANAGED_BY_LABEL}={MANAGED_BY_VALUE},{RUN_LABEL}={run_id}"
    ));
    let jobs = api
        .list(&lp)
        .await
        .map_err(|e| KubeError::from_api("list node Jobs", "list", "jobs", namespace, e))?;
    let mut n = 0;
    for job in jobs.items {
        let Some(name) = job.metadata.name else {
            continue;
        };
        match api.delete(&name, &delete_params()).await {
            Ok(_) => n += 1,
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => {
                return Err(KubeError::from_api(
                    format!("delete Job {name}"),
                    "delete",
                    "jobs",
                    namespace,
                    e,
                ))
            }
        }
    }
    Ok(n)
}

/// Where `kubectl dns-doctor cleanup` looks for leftovers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CleanupScope {
    /// Every namespace; only `fallback` (the node namespace) when listing across namespaces
    /// is forbidden, as it is under deploy/rbac.yaml.
    AllNamespaces { fallback: String },
    /// This namespace only.
    Namespace(String),
}

impl CleanupScope {
    /// `-n NAMESPACE` given: that namespace; else every namespace, falling back to the
    /// default node namespace.
    pub fn from_flag(namespace: Option<&str>) -> Self {
        match namespace {
            Some(ns) => Self::Namespace(ns.to_string()),
            None => Self::AllNamespaces {
                fallback: DEFAULT_NODE_NAMESPACE.to_string(),
            },
        }
    }
}

/// What `cleanup` removed, and where it looked.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CleanupReport {
    /// `namespace/name` of each Job deleted.
    pub jobs_deleted: Vec<String>,
    /// `namespace/name` of each pod deleted whose Job was already gone.
    pub pods_deleted: Vec<String>,
    /// The namespace searched; None for all namespaces.
    pub namespace: Option<String>,
    /// Set when all namespaces were asked for but only `namespace` could be listed.
    pub fell_back: bool,
}

impl CleanupReport {
    /// The text `cleanup` prints on stdout. Pure.
    pub fn render_text(&self) -> String {
        let mut text = match (&self.namespace, self.fell_back) {
            (None, _) => "searched all namespaces\n".to_string(),
            (Some(ns), false) => format!("searched namespace {ns}\n"),
            (Some(ns), true) => format!(
                "searched namespace {ns} only: Jobs and pods cannot be listed in all namespaces with these permissions; -n NAMESPACE searches a node namespace given to --node-namespace\n"
            ),
        };
        for j in &self.jobs_deleted {
            text.push_str(&format!("deleted job {j}\n"));
        }
        for p in &self.pods_deleted {
            text.push_str(&format!("deleted pod {p}\n"));
        }
        if self.jobs_deleted.is_empty() && self.pods_deleted.is_empty() {
            text.push_str("nothing to clean up\n");
        }
        text
    }
}

/// Lists the objects labelled as dns-doctor's where `scope` says; the namespace listed
/// when not all of them, and whether that was a fallback after a 403.
async fn list_labelled<K>(
    client: &Client,
    scope: &CleanupScope,
    resource: &str,
) -> Result<(Vec<K>, Option<String>, bool), KubeError>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
    K::DynamicType: Default,
{
    let lp = ListParams::default().labels(&format!("{MANAGED_BY_LABEL}={MANAGED_BY_VALUE}"));
    let in_namespace = |ns: &str| {
        let api: Api<K> = Api::namespaced(client.clone(), ns);
        let ns = ns.to_string();
        let lp = lp.clone();
        async move {
            api.list(&lp).await.map(|l| l.items).map_err(|e| {
                KubeError::from_api(
                    format!("list dns-doctor {resource} in {ns}"),
                    "list",
                    resource,
                    &ns,
                    e,
                )
            })
        }
    };
    match scope {
        CleanupScope::Namespace(ns) => Ok((in_namespace(ns).await?, Some(ns.clone()), false)),
        CleanupScope::AllNamespaces { fallback } => {
            let api: Api<K> = Api::all(client.clone());
            match api.list(&lp).await {
                Ok(list) => Ok((list.items, None, false)),
                Err(kube::Error::Api(s)) if s.code == 403 => {
                    tracing::debug!(resource, %fallback, "listing in all namespaces is forbidden");
                    Ok((in_namespace(fallback).await?, Some(fallback.clone()), true))
                }
                Err(e) => Err(KubeError::from_api(
                    format!("list dns-doctor {resource} in all namespaces"),
                    "list",
                    resource,
                    "",
                    e,
                )),
            }
        }
    }
}

/// Delete every Job labelled as dns-doctor's where `scope` says, and every such pod whose
/// Job is gone (their Job takes the others with it).
pub async fn cleanup(client: &Client, scope: &CleanupScope) -> Result<CleanupReport, KubeError> {
    let mut report = CleanupReport::default();
    let (jobs, ns, fell_back) = list_labelled::<Job>(client, scope, "jobs").await?;
    report.namespace = ns;
    report.fell_back = fell_back;
    let mut deleted_uids = Vec::new();
    for job in jobs {
        let (Some(ns), Some(name)) = (job.metadata.namespace, job.metadata.name) else {
            continue;
        };
        let api: Api<Job> = Api::namespaced(client.clone(), &ns);
        match api.delete(&name, &delete_params()).await {
            Ok(_) => {
                report.jobs_deleted.push(format!("{ns}/{name}"));
                deleted_uids.extend(job.metadata.uid);
            }
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => {
                return Err(KubeError::from_api(
                    format!("delete Job {ns}/{name}"),
                    "delete",
                    "jobs",
                    &ns,
                    e,
                ))
            }
        }
    }
    let (pods, _, pods_fell_back) = list_labelled::<Pod>(client, scope, "pods").await?;
    if pods_fell_back && report.namespace.is_none() {
        report.namespace = match scope {
            CleanupScope::AllNamespaces { fallback } => Some(fallback.clone()),
            CleanupScope::Namespace(ns) => Some(ns.clone()),
        };
        report.fell_back = true;
    }
    for pod in pods {
        let owned_by_deleted_job = pod
            .metadata
            .owner_references
            .iter()
            .flatten()
            .any(|o| o.kind == "Job" && deleted_uids.contains(&o.uid));
        if owned_by_deleted_job || pod.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let (Some(ns), Some(name)) = (pod.metadata.namespace, pod.metadata.name) else {
            continue;
        };
        let api: Api<Pod> = Api::namespaced(client.clone(), &ns);
        match api.delete(&name, &delete_params()).await {
            Ok(_) => report.pods_deleted.push(format!("{ns}/{name}")),
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => {
                return Err(KubeError::from_api(
                    format!("delete pod {ns}/{name}"),
                    "delete",
                    "pods",
                    &ns,
                    e,
                ))
            }
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_a_namespace_cleanup_searches_everywhere_then_the_node_namespace() {
        assert_eq!(
            CleanupScope::from_flag(None),
            CleanupScope::AllNamespaces {
                fallback: "kube-system".into()
            }
        );
        assert_eq!(
            CleanupScope::from_flag(Some("dns-debug")),
            CleanupScope::Namespace("dns-debug".into())
        );
    }

    #[test]
    fn the_text_says_where_it_looked_and_what_it_deleted() {
        let report = CleanupReport {
            jobs_deleted: vec!["kube-system/dns-doctor-abc-0".into()],
            pods_deleted: vec![],
            namespace: Some("kube-system".into()),
            fell_back: true,
        };
        let text = report.render_text();
        assert!(
            text.starts_with("searched namespace kube-system only: "),
            "{text}"
        );
        assert!(
            text.ends_with("deleted job kube-system/dns-doctor-abc-0\n"),
            "{text}"
        );
        let nothing = CleanupReport::default().render_text();
        assert_eq!(nothing, "searched all namespaces\nnothing to clean up\n");
    }
}
