//! Node-debug pods, run as Jobs so they disappear even if the plugin is killed:
//! `activeDeadlineSeconds` ends them, `ttlSecondsAfterFinished` deletes them.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{
    Container, Pod, PodSpec, PodTemplateSpec, SecurityContext, Toleration,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{ListParams, PostParams};
use kube::runtime::wait::await_condition;
use kube::{Api, Client};

use super::ephemeral::ContainerState;
use super::{KubeError, MANAGED_BY_LABEL, MANAGED_BY_VALUE, RUN_LABEL};

/// Name of the container inside every node pod.
pub const CONTAINER: &str = "probe";
/// How long a finished node Job stays before Kubernetes deletes it.
pub const TTL_AFTER_FINISHED_SECS: i32 = 30;

/// Build the Job for one node. Pure.
pub fn job_spec(
    name: &str,
    namespace: &str,
    run_id: &str,
    node: &str,
    image: &str,
    lifetime: Duration,
) -> Job {
    let labels: BTreeMap<String, String> = [
        (MANAGED_BY_LABEL.to_string(), MANAGED_BY_VALUE.to_string()),
        (RUN_LABEL.to_string(), run_id.to_string()),
        (
            "app.kubernetes.io/name".to_string(),
            "dns-doctor-node".to_string(),
        ),
    ]
    .into();
    let secs = i64::try_from(lifetime.as_secs().max(1)).unwrap_or(i64::MAX);
    Job {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            namespace: Some(namespace.to_string()),
            labels: Some(labels.clone()),
            ..ObjectMeta::default()
        },
        spec: Some(JobSpec {
            backoff_limit: Some(0),
            // The deadline outlives the sleep a little, so a stuck pod is still ended.
            active_deadline_seconds: Some(secs + 30),
            ttl_seconds_after_finished: Some(TTL_AFTER_FINISHED_SECS),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels),
                    ..ObjectMeta::default()
                }),
                spec: Some(PodSpec {
                    node_name: Some(node.to_string()),
                    host_network: Some(true),
                    host_pid: Some(true),
                    dns_policy: Some("ClusterFirstWithHostNet".into()),
                    restart_policy: Some("Never".into()),
                    termination_grace_period_seconds: Some(2),
                    automount_service_account_token: Some(false),
                    enable_service_links: Some(false),
                    priority_class_name: None,
                    tolerations: Some(vec![Toleration {
                        operator: Some("Exists".into()),
                        ..Toleration::default()
                    }]),
                    containers: vec![Container {
                        name: CONTAINER.into(),
                        image: Some(image.to_string()),
                        image_pull_policy: Some("IfNotPresent".into()),
                        command: Some(super::ephemeral::hold_command(run_id, lifetime)),
                        security_context: Some(SecurityContext {
                            privileged: Some(true),
                            ..SecurityContext::default()
                        }),
                        ..Container::default()
                    }],
                    ..PodSpec::default()
                }),
            },
            ..JobSpec::default()
        }),
        status: None,
    }
}

/// Create the Job; returns once the API accepted it.
pub async fn create(client: &Client, job: &Job) -> Result<(), KubeError> {
    let ns = job.metadata.namespace.clone().unwrap_or_default();
    let api: Api<Job> = Api::namespaced(client.clone(), &ns);
    api.create(&PostParams::default(), job)
        .await
        .map(|_| ())
        .map_err(|e| {
            KubeError::from_api(
                format!(
                    "create node Job {}",
                    job.metadata.name.clone().unwrap_or_default()
                ),
                "create",
                "jobs",
                &ns,
                e,
            )
        })
}

/// Classify the node pod's container: the same states as an ephemeral container.
pub fn pod_state(pod: Option<&Pod>) -> ContainerState {
    let Some(pod) = pod else {
        return ContainerState::Pending;
    };
    let status = pod.status.as_ref();
    if status.and_then(|s| s.phase.as_deref()) == Some("Failed") {
        return ContainerState::Terminated {
            reason: status
                .and_then(|s| s.reason.clone())
                .unwrap_or_else(|| "Failed".into()),
            exit_code: -1,
        };
    }
    let cs = status
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|l| l.iter().find(|c| c.name == CONTAINER));
    super::ephemeral::status_state(cs)
}

/// Wait for the Job's pod to run and return its name. A pod that never schedules, or whose
/// image cannot be pulled, is reported by name.
pub async fn wait_running(
    client: &Client,
    namespace: &str,
    job_name: &str,
    node: &str,
    image: &str,
    timeout: Duration,
) -> Result<String, KubeError> {
    let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let deadline = tokio::time::Instant::now() + timeout;
    let lp = ListParams::default().labels(&format!("job-name={job_name}"));
    // The pod's name is not known until the Job controller creates it.
    let pod_name = loop {
        let list = api.list(&lp).await.map_err(|e| {
            KubeError::from_api(
                format!("list pods of Job {job_name}"),
                "list",
                "pods",
                namespace,
                e,
            )
        })?;
        if let Some(p) = list.items.into_iter().find_map(|p| p.metadata.name) {
            break p;
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(KubeError::Timeout {
                what: format!(
                    "the node pod of Job {namespace}/{job_name} being created on node {node}"
                ),
                timeout,
            });
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
    let target = super::exec::ExecTarget {
        namespace: namespace.to_string(),
        pod: pod_name.clone(),
        container: CONTAINER.to_string(),
    };
    // An exec that works proves it runs, up to a second before its status says so.
    let reachable = super::exec::until_reachable(client, &target);
    let cond = |p: Option<&Pod>| !matches!(pod_state(p), ContainerState::Pending);
    let status_wait =
        tokio::time::timeout(remaining, await_condition(api.clone(), &pod_name, cond));
    let waited = tokio::select! {
        w = status_wait => w,
        () = reachable => return Ok(pod_name),
    };
    let pod = match waited {
        Err(_) => {
            let why = api
                .get_opt(&pod_name)
                .await
                .ok()
                .flatten()
                .and_then(|p| unscheduled_reason(&p))
                .unwrap_or_else(|| "still pending".into());
            return Err(KubeError::Timeout {
                what: format!("node pod {namespace}/{pod_name} running on node {node} ({why})"),
                timeout,
            });
        }
        Ok(Err(e)) => {
            return Err(KubeError::Other {
                what: format!("watching node pod {namespace}/{pod_name}"),
                message: e.to_string(),
            })
        }
        Ok(Ok(p)) => p,
    };
    match pod_state(pod.as_ref()) {
        ContainerState::Running => Ok(pod_name),
        ContainerState::Stuck { reason, message } => Err(KubeError::stuck(
            image,
            format!("{namespace}/{pod_name}"),
            reason,
            message,
        )),
        other => Err(KubeError::Other {
            what: format!("node pod {namespace}/{pod_name}"),
            message: format!("did not start: {other:?}"),
        }),
    }
}

/// Why the scheduler (or kubelet) has not started the pod, from its conditions.
fn unscheduled_reason(pod: &Pod) -> Option<String> {
    pod.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "PodScheduled" && c.status == "False")
        .map(|c| {
            format!(
                "{}: {}",
                c.reason.clone().unwrap_or_default(),
                c.message.clone().unwrap_or_default()
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_is_pinned_bounded_and_labelled() {
        let job = job_spec(
            "dns-doctor-node-x",
            "kube-system",
            "abc123",
            "worker-1",
            "img:1",
            Duration::from_secs(100),
        );
        let labels = job.metadata.labels.clone().unwrap();
        assert_eq!(labels[MANAGED_BY_LABEL], MANAGED_BY_VALUE);
        assert_eq!(labels[RUN_LABEL], "abc123");
        let spec = job.spec.unwrap();
        assert_eq!(spec.active_deadline_seconds, Some(130));
        assert_eq!(
            spec.ttl_seconds_after_finished,
            Some(TTL_AFTER_FINISHED_SECS)
        );
        assert_eq!(spec.backoff_limit, Some(0));
        let pod = spec.template.spec.unwrap();
        assert_eq!(pod.node_name.as_deref(), Some("worker-1"));
        assert_eq!(pod.host_network, Some(true));
        assert_eq!(pod.host_pid, Some(true));
        assert_eq!(
            pod.tolerations.unwrap()[0].operator.as_deref(),
            Some("Exists")
        );
        let c = &pod.containers[0];
        assert_eq!(c.security_context.as_ref().unwrap().privileged, Some(true));
        assert_eq!(
            c.command.as_ref().unwrap()[1..],
            ["hold", "--seconds", "100", "--run", "abc123"]
        );
    }
}
