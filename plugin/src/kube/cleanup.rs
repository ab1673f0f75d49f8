//! Cleanup: stop what a run started, delete its node Jobs, and `kubectl dns-doctor cleanup`
//! for anything an earlier run left (found by label).

use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{DeleteParams, ListParams, PropagationPolicy};
use kube::{Api, Client};
use serde::Serialize;

use super::exec::{self, ExecTarget};
use super::{KubeError, MANAGED_BY_LABEL, MANAGED_BY_VALUE, RUN_LABEL};
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

/// What `cleanup` removed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CleanupReport {
    pub jobs_deleted: Vec<String>,
    pub pods_deleted: Vec<String>,
}

/// Delete every Job and pod labelled as dns-doctor's, in all namespaces.
pub async fn cleanup_all(client: &Client) -> Result<CleanupReport, KubeError> {
    let lp = ListParams::default().labels(&format!("{MANAGED_BY_LABEL}={MANAGED_BY_VALUE}"));
    let mut report = CleanupReport::default();
    let jobs: Api<Job> = Api::all(client.clone());
    let list = jobs
        .list(&lp)
        .await
        .map_err(|e| KubeError::from_api("list dns-doctor Jobs", "list", "jobs", "", e))?;
    for job in list.items {
        let (Some(ns), Some(name)) = (job.metadata.namespace, job.metadata.name) else {
            continue;
        };
        let api: Api<Job> = Api::namespaced(client.clone(), &ns);
        match api.delete(&name, &delete_params()).await {
            Ok(_) => report.jobs_deleted.push(format!("{ns}/{name}")),
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
    let pods: Api<Pod> = Api::all(client.clone());
    let list = pods
        .list(&lp)
        .await
        .map_err(|e| KubeError::from_api("list dns-doctor pods", "list", "pods", "", e))?;
    for pod in list.items {
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
