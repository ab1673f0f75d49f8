//! Ephemeral debug containers: the pure spec builder, the dry-run, the injection, and the
//! wait until the container runs (or why it cannot).
//!
//! An ephemeral container can never be removed from a pod spec. So the container's main
//! process is a bounded `sleep` that exits on its own, everything run in it through exec
//! has its own deadline, and names are unique per run.

use std::time::Duration;

use k8s_openapi::api::core::v1::{
    Capabilities, ContainerStatus, EphemeralContainer, Pod, SeccompProfile, SecurityContext,
};
use kube::api::{Patch, PatchParams};
use kube::runtime::wait::await_condition;
use kube::{Api, Client};

use super::KubeError;
use crate::access::Privilege;
use crate::plan::script::PROBE_BIN;

/// The unprivileged user the restricted variant runs as.
const NOBODY: i64 = 65534;

/// Build the ephemeral container. Pure: the caller supplies the unique name.
pub fn container_spec(
    name: &str,
    run_id: &str,
    image: &str,
    target_container: &str,
    privilege: Privilege,
    lifetime: Duration,
) -> EphemeralContainer {
    let security_context = match privilege {
        Privilege::Capture => SecurityContext {
            run_as_user: Some(0),
            capabilities: Some(Capabilities {
                add: Some(vec!["NET_RAW".into(), "NET_ADMIN".into()]),
                drop: None,
            }),
            ..SecurityContext::default()
        },
        Privilege::ProbeOnly => SecurityContext {
            run_as_user: Some(0),
            ..SecurityContext::default()
        },
        Privilege::Restricted => SecurityContext {
            run_as_user: Some(NOBODY),
            run_as_group: Some(NOBODY),
            run_as_non_root: Some(true),
            allow_privilege_escalation: Some(false),
            capabilities: Some(Capabilities {
                add: None,
                drop: Some(vec!["ALL".into()]),
            }),
            seccomp_profile: Some(SeccompProfile {
                type_: "RuntimeDefault".into(),
                localhost_profile: None,
            }),
            ..SecurityContext::default()
        },
    };
    EphemeralContainer {
        name: name.to_string(),
        image: Some(image.to_string()),
        image_pull_policy: Some("IfNotPresent".into()),
        // The main process only holds the container open for exec, and ends by itself;
        // `stop --run` ends it early, and finds it by the run id.
        command: Some(hold_command(run_id, lifetime)),
        target_container_name: Some(target_container.to_string()),
        security_context: Some(security_context),
        stdin: Some(false),
        tty: Some(false),
        ..EphemeralContainer::default()
    }
}

/// The main process of every container dns-doctor starts: bounded, and findable by run id.
pub fn hold_command(run_id: &str, lifetime: Duration) -> Vec<String> {
    vec![
        PROBE_BIN.into(),
        "hold".into(),
        "--seconds".into(),
        lifetime.as_secs().max(1).to_string(),
        "--run".into(),
        run_id.to_string(),
    ]
}

fn patch_for(container: &EphemeralContainer) -> serde_json::Value {
    serde_json::json!({ "spec": { "ephemeralContainers": [container] } })
}

/// Ask admission whether this container would be accepted, without adding it.
/// Ok(None) accepted; Ok(Some(message)) rejected by admission (Pod Security, policies).
pub async fn dry_run(
    client: &Client,
    namespace: &str,
    pod: &str,
    container: &EphemeralContainer,
) -> Result<Option<String>, KubeError> {
    let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let pp = PatchParams {
        dry_run: true,
        ..PatchParams::default()
    };
    match api
        .patch_ephemeral_containers(pod, &pp, &Patch::Strategic(patch_for(container)))
        .await
    {
        Ok(_) => Ok(None),
        Err(kube::Error::Api(s)) if s.code == 403 && !s.message.contains("cannot patch") => {
            Ok(Some(s.message.clone()))
        }
        Err(kube::Error::Api(s)) if s.code == 422 || s.code == 400 => Ok(Some(s.message.clone())),
        Err(e) => Err(KubeError::from_api(
            format!("dry-run of ephemeral container in pod {namespace}/{pod}"),
            "patch",
            "pods/ephemeralcontainers",
            namespace,
            e,
        )),
    }
}

/// Add the container to the pod. From here on it stays in the pod spec.
pub async fn inject(
    client: &Client,
    namespace: &str,
    pod: &str,
    container: &EphemeralContainer,
) -> Result<(), KubeError> {
    let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    api.patch_ephemeral_containers(
        pod,
        &PatchParams::default(),
        &Patch::Strategic(patch_for(container)),
    )
    .await
    .map(|_| ())
    .map_err(|e| {
        KubeError::from_api(
            format!("add ephemeral container to pod {namespace}/{pod}"),
            "patch",
            "pods/ephemeralcontainers",
            namespace,
            e,
        )
    })
}

/// Where an ephemeral container stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContainerState {
    Running,
    Terminated {
        reason: String,
        exit_code: i32,
    },
    /// Waiting with a reason that will not resolve by itself (ErrImagePull, ...).
    Stuck {
        reason: String,
        message: String,
    },
    Pending,
    /// The pod is gone or no longer has the container.
    Gone,
}

const STUCK_REASONS: [&str; 6] = [
    "ErrImagePull",
    "ErrImageNeverPull",
    "ImagePullBackOff",
    "InvalidImageName",
    "CreateContainerError",
    "CreateContainerConfigError",
];

/// Classify the status of the named ephemeral container. Pure.
pub fn container_state(pod: Option<&Pod>, name: &str) -> ContainerState {
    let Some(pod) = pod else {
        return ContainerState::Gone;
    };
    let status: Option<&ContainerStatus> = pod
        .status
        .as_ref()
        .and_then(|s| s.ephemeral_container_statuses.as_ref())
        .and_then(|l| l.iter().find(|c| c.name == name));
    status_state(status)
}

/// Classify one container's status, ephemeral or regular. Pure.
pub fn status_state(status: Option<&ContainerStatus>) -> ContainerState {
    let Some(state) = status.and_then(|s| s.state.as_ref()) else {
        return ContainerState::Pending;
    };
    if state.running.is_some() {
        return ContainerState::Running;
    }
    if let Some(t) = &state.terminated {
        return ContainerState::Terminated {
            reason: t.reason.clone().unwrap_or_default(),
            exit_code: t.exit_code,
        };
    }
    if let Some(w) = &state.waiting {
        let reason = w.reason.clone().unwrap_or_default();
        if STUCK_REASONS.contains(&reason.as_str()) {
            return ContainerState::Stuck {
                message: w.message.clone().unwrap_or_default(),
                reason,
            };
        }
    }
    ContainerState::Pending
}

/// Wait until the container runs. An image that cannot be pulled is reported as such,
/// naming the image, instead of waiting out the deadline.
pub async fn wait_running(
    client: &Client,
    namespace: &str,
    pod: &str,
    name: &str,
    image: &str,
    timeout: Duration,
) -> Result<(), KubeError> {
    let target = super::exec::ExecTarget {
        namespace: namespace.to_string(),
        pod: pod.to_string(),
        container: name.to_string(),
    };
    // Whichever comes first: an exec that works, or the status (which also tells why a
    // container does not start).
    tokio::select! {
        r = wait_status_running(client, namespace, pod, name, image, timeout) => r,
        () = super::exec::until_reachable(client, &target) => Ok(()),
    }
}

async fn wait_status_running(
    client: &Client,
    namespace: &str,
    pod: &str,
    name: &str,
    image: &str,
    timeout: Duration,
) -> Result<(), KubeError> {
    let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let cname = name.to_string();
    let cond =
        move |p: Option<&Pod>| !matches!(container_state(p, &cname), ContainerState::Pending);
    let waited = tokio::time::timeout(timeout, await_condition(api, pod, cond)).await;
    let pod_now = match waited {
        Err(_) => {
            return Err(KubeError::Timeout {
                what: format!("ephemeral container {name} in pod {namespace}/{pod} starting"),
                timeout,
            })
        }
        Ok(Err(e)) => {
            return Err(KubeError::Other {
                what: format!("watching pod {namespace}/{pod}"),
                message: e.to_string(),
            })
        }
        Ok(Ok(p)) => p,
    };
    match container_state(pod_now.as_ref(), name) {
        ContainerState::Running => Ok(()),
        ContainerState::Stuck { reason, message } => Err(KubeError::stuck(
            image,
            format!("{namespace}/{pod}/{name}"),
            reason,
            message,
        )),
        ContainerState::Terminated { reason, exit_code } => Err(KubeError::Other {
            what: format!("ephemeral container {name} in pod {namespace}/{pod}"),
            message: format!("exited before use ({reason}, exit code {exit_code})"),
        }),
        ContainerState::Gone => Err(KubeError::NotFound {
            kind: "Pod".into(),
            name: pod.to_string(),
            namespace: namespace.to_string(),
        }),
        ContainerState::Pending => unreachable!("the wait condition excludes Pending"),
    }
}

/// Whether the ephemeral container `name` has terminated (or its pod is gone) now, from one
/// read of the pod. False when it has not, or the pod cannot be read.
pub async fn has_ended(client: &Client, namespace: &str, pod: &str, name: &str) -> bool {
    let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    match api.get_opt(pod).await {
        Ok(p) => matches!(
            container_state(p.as_ref(), name),
            ContainerState::Terminated { .. } | ContainerState::Gone
        ),
        Err(_) => false,
    }
}

/// Waits until the ephemeral container `name` has terminated (or its pod is gone), at most
/// `timeout`. False when it still runs then, or the pod cannot be watched.
pub async fn wait_terminated(
    client: &Client,
    namespace: &str,
    pod: &str,
    name: &str,
    timeout: Duration,
) -> bool {
    let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let cname = name.to_string();
    let ended = move |p: Option<&Pod>| {
        matches!(
            container_state(p, &cname),
            ContainerState::Terminated { .. } | ContainerState::Gone
        )
    };
    matches!(
        tokio::time::timeout(timeout, await_condition(api, pod, ended)).await,
        Ok(Ok(_))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capture_container_asks_for_raw_and_admin_only() {
        let c = container_spec(
            "dns-doctor-ab12",
            "ab12",
            "img:1",
            "app",
            Privilege::Capture,
            Duration::from_secs(90),
        );
        let cmd = c.command.unwrap();
        assert_eq!(cmd[1..], ["hold", "--seconds", "90", "--run", "ab12"]);
        assert_eq!(c.target_container_name.as_deref(), Some("app"));
        let caps = c.security_context.unwrap().capabilities.unwrap();
        assert_eq!(caps.add.unwrap(), vec!["NET_RAW", "NET_ADMIN"]);
    }

    #[test]
    fn restricted_container_meets_pod_security_restricted() {
        let c = container_spec(
            "n",
            "r",
            "img",
            "app",
            Privilege::Restricted,
            Duration::from_secs(1),
        );
        let sc = c.security_context.unwrap();
        assert_eq!(sc.run_as_non_root, Some(true));
        assert_eq!(sc.allow_privilege_escalation, Some(false));
        assert_eq!(sc.capabilities.unwrap().drop.unwrap(), vec!["ALL"]);
        assert_eq!(sc.seccomp_profile.unwrap().type_, "RuntimeDefault");
    }

    fn pod_with(state: serde_json::Value) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p"},
            "status": {"ephemeralContainerStatuses": [
                {"name": "dbg", "image": "i", "imageID": "", "ready": false, "restartCount": 0, "state": state}
            ]}
        }))
        .unwrap()
    }

    #[test]
    fn a_container_that_cannot_join_an_exited_one_is_not_an_image_problem() {
        // The kubelet's status for a probe container added to a crash-looping CoreDNS pod
        // between two restarts (test cluster, fault coredns-crashloop).
        let e = KubeError::stuck(
            "img:1",
            "kube-system/coredns-5dc7bbb96c-x5kgh/dns-doctor-zjfxxp".into(),
            "CreateContainerError".into(),
            "failed to generate container \"20ff616ea0e0\" spec: invalid target container: container \"cfbcf64ebaf5\" is not running - in state CONTAINER_EXITED".into(),
        );
        assert!(matches!(e, KubeError::ContainerNotCreated { .. }), "{e:?}");
        assert!(e.to_string().starts_with("the probe container kube-system/coredns-5dc7bbb96c-x5kgh/dns-doctor-zjfxxp could not be created: CreateContainerError"));
        assert!(e.hint().is_some_and(|h| h.contains("crash-looping")));
        let pull = KubeError::stuck(
            "img:1",
            "c".into(),
            "ErrImagePull".into(),
            "not found".into(),
        );
        assert!(matches!(pull, KubeError::ImagePull { .. }));
    }

    #[test]
    fn states_are_classified() {
        let running = pod_with(serde_json::json!({"running": {}}));
        assert_eq!(
            container_state(Some(&running), "dbg"),
            ContainerState::Running
        );
        assert_eq!(
            container_state(Some(&running), "other"),
            ContainerState::Pending
        );
        let pull = pod_with(
            serde_json::json!({"waiting": {"reason": "ErrImagePull", "message": "not found"}}),
        );
        assert!(
            matches!(container_state(Some(&pull), "dbg"), ContainerState::Stuck { reason, .. } if reason == "ErrImagePull")
        );
        let creating = pod_with(serde_json::json!({"waiting": {"reason": "ContainerCreating"}}));
        assert_eq!(
            container_state(Some(&creating), "dbg"),
            ContainerState::Pending
        );
        let done =
            pod_with(serde_json::json!({"terminated": {"exitCode": 0, "reason": "Completed"}}));
        assert!(matches!(
            container_state(Some(&done), "dbg"),
            ContainerState::Terminated { exit_code: 0, .. }
        ));
        assert_eq!(container_state(None, "dbg"), ContainerState::Gone);
    }
}
