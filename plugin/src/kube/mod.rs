//! The only code that talks to the Kubernetes API: discovery, preflight, ephemeral
//! containers, node pods, exec streams and cleanup.
//!
//! Object builders (`ephemeral::container_spec`, `node_pod::job_spec`) are pure and tested
//! without a cluster; the functions that send them are thin.

pub mod cleanup;
pub mod discover;
pub mod ephemeral;
pub mod exec;
pub mod execute;
pub mod node_pod;
pub mod preflight;

use std::path::PathBuf;
use std::time::Duration;

use ::kube::config::{KubeConfigOptions, Kubeconfig};
use ::kube::{Client, Config};
use thiserror::Error;

use crate::cli::KubeOptions;

/// Label put on everything dns-doctor creates, so `cleanup` can find it.
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
pub const MANAGED_BY_VALUE: &str = "dns-doctor";
/// Label carrying the run's unique id.
pub const RUN_LABEL: &str = "dns-doctor.io/run";

/// What went wrong talking to the cluster, with what the user can do about it.
#[derive(Debug, Error)]
pub enum KubeError {
    #[error("cannot load kubeconfig{}", path.as_ref().map(|p| format!(" {}", p.display())).unwrap_or_default())]
    Kubeconfig {
        path: Option<PathBuf>,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("cannot reach the cluster at {server}")]
    Unreachable {
        server: String,
        #[source]
        source: ::kube::Error,
    },
    #[error("forbidden: cannot {verb} {resource} in namespace {namespace:?}")]
    Forbidden {
        verb: String,
        /// resource or resource/subresource, e.g. pods/ephemeralcontainers.
        resource: String,
        api_group: String,
        namespace: String,
        message: String,
    },
    #[error("{kind} {name:?} not found in namespace {namespace:?}")]
    NotFound {
        kind: String,
        name: String,
        namespace: String,
    },
    #[error(
        "pod {namespace}/{name} is {phase}, not Running: DNS can only be examined in a running pod"
    )]
    PodNotRunning {
        namespace: String,
        name: String,
        phase: String,
    },
    #[error("{workload} in namespace {namespace:?} has no ready pod")]
    NoReadyPod { workload: String, namespace: String },
    #[error("the cluster does not serve pods/ephemeralcontainers (ephemeral containers are disabled or the API server is older than 1.23)")]
    EphemeralUnsupported,
    #[error("admission rejected the {what}: {message}")]
    AdmissionRejected { what: String, message: String },
    #[error("the debug image {image} cannot be pulled for {container}: {reason}: {message}")]
    ImagePull {
        image: String,
        container: String,
        reason: String,
        message: String,
    },
    #[error("the probe container {container} could not be created: {reason}: {message}")]
    ContainerNotCreated {
        container: String,
        reason: String,
        message: String,
    },
    #[error("{what} did not happen within {}s", timeout.as_secs())]
    Timeout { what: String, timeout: Duration },
    #[error("{what} failed")]
    Api {
        what: String,
        #[source]
        source: ::kube::Error,
    },
    #[error("{what}: {message}")]
    Other { what: String, message: String },
}

impl KubeError {
    /// The next step for the user, shown under the error.
    pub fn hint(&self) -> Option<String> {
        Some(match self {
            Self::Kubeconfig { .. } => "pass --kubeconfig FILE or set KUBECONFIG; `kubectl config view` shows what kubectl uses".into(),
            Self::Unreachable { .. } => "check that the cluster is up and that --context names the right one (`kubectl cluster-info`)".into(),
            Self::Forbidden { verb, resource, api_group, namespace, .. } => {
                let (res, sub) = resource.split_once('/').map_or((resource.as_str(), None), |(r, s)| (r, Some(s)));
                let full = sub.map_or(res.to_string(), |s| format!("{res}/{s}"));
                format!(
                    "ask for this RBAC rule (a Role in {ns}, or a ClusterRole), or run with fewer checks (--no-node-checks, --no-capture):\n  - apiGroups: [\"{api_group}\"]\n    resources: [\"{full}\"]\n    verbs: [\"{verb}\"]\n  {shipped}",
                    ns = if namespace.is_empty() { "the namespace" } else { namespace },
                    shipped = crate::access::permissions::where_shipped(verb, resource, namespace),
                )
            }
            Self::NotFound { kind, namespace, .. } => format!("check the name and the namespace (-n); `kubectl get {} -n {namespace}` lists them", kind.to_lowercase()),
            Self::PodNotRunning { .. } => "choose a running pod, or its workload (e.g. deploy/NAME) so a ready pod is picked".into(),
            Self::NoReadyPod { .. } => "wait for a pod to become ready, or name a running pod directly with pod/NAME".into(),
            Self::EphemeralUnsupported => "enable the EphemeralContainers feature (GA since Kubernetes 1.25), or run with --no-capture on a node pod only".into(),
            Self::AdmissionRejected { .. } => "an admission policy refused it before anything was added; label the namespace with a Pod Security level that allows NET_RAW/NET_ADMIN (baseline allows NET_RAW), or run with --no-capture".into(),
            Self::ImagePull { image, .. } => format!("make {image} pullable from the nodes (mirror it to your registry and pass --image)"),
            Self::ContainerNotCreated { container, .. } => format!("an ephemeral container can only join a running container: check that the pod of {container} runs (`kubectl describe pod`), e.g. that it is not crash-looping"),
            Self::Timeout { .. } => "raise --timeout, or look at the events of the pods named above".into(),
            Self::Api { .. } | Self::Other { .. } => return None,
        })
    }

    /// Why a container waits for good (`Stuck`): its image cannot be pulled, or the runtime
    /// cannot create it (e.g. the container it joins is not running).
    pub fn stuck(image: &str, container: String, reason: String, message: String) -> Self {
        if reason.starts_with("CreateContainer") {
            Self::ContainerNotCreated {
                container,
                reason,
                message,
            }
        } else {
            Self::ImagePull {
                image: image.to_string(),
                container,
                reason,
                message,
            }
        }
    }

    /// Classify an API error for an action, so 403 and 404 get their own advice.
    pub fn from_api(
        what: impl Into<String>,
        verb: &str,
        resource: &str,
        namespace: &str,
        err: ::kube::Error,
    ) -> Self {
        let what = what.into();
        if let ::kube::Error::Api(status) = &err {
            match status.code {
                403 => {
                    return Self::Forbidden {
                        verb: verb.to_string(),
                        resource: resource.to_string(),
                        api_group: api_group_of(resource).to_string(),
                        namespace: namespace.to_string(),
                        message: status.message.clone(),
                    }
                }
                404 if resource == "pods/ephemeralcontainers"
                    && status
                        .message
                        .contains("the server could not find the requested resource") =>
                {
                    return Self::EphemeralUnsupported
                }
                _ => {}
            }
        }
        if is_connect_error(&err) {
            return Self::Unreachable {
                server: what,
                source: err,
            };
        }
        Self::Api { what, source: err }
    }
}

pub use crate::access::permissions::api_group_of;

fn is_connect_error(err: &::kube::Error) -> bool {
    matches!(
        err,
        ::kube::Error::HyperError(_) | ::kube::Error::Service(_)
    )
}

/// Build a client from kubeconfig, honouring --kubeconfig, KUBECONFIG and --context.
/// Returns the client and the namespace to use by default.
pub async fn connect(opts: &KubeOptions) -> Result<(Client, String), KubeError> {
    let options = KubeConfigOptions {
        context: opts.context.clone(),
        cluster: None,
        user: None,
    };
    let loaded = match &opts.kubeconfig {
        Some(path) => {
            let kubeconfig = Kubeconfig::read_from(path).map_err(|e| KubeError::Kubeconfig {
                path: Some(path.clone()),
                source: Box::new(e),
            })?;
            Config::from_custom_kubeconfig(kubeconfig, &options).await
        }
        None => Config::from_kubeconfig(&options).await,
    };
    let config = match loaded {
        Ok(config) => config,
        // No kubeconfig at all, inside a pod: its ServiceAccount, as kubectl does.
        Err(_) if in_pod_without_kubeconfig(opts) => {
            Config::incluster().map_err(|e| KubeError::Kubeconfig {
                path: None,
                source: Box::new(e),
            })?
        }
        Err(e) => {
            return Err(KubeError::Kubeconfig {
                path: opts
                    .kubeconfig
                    .clone()
                    .or_else(|| std::env::var_os("KUBECONFIG").map(PathBuf::from)),
                source: Box::new(e),
            })
        }
    };
    let namespace = opts
        .namespace
        .clone()
        .unwrap_or_else(|| config.default_namespace.clone());
    let server = config.cluster_url.to_string();
    let client = Client::try_from(config).map_err(|e| KubeError::Unreachable {
        server: server.clone(),
        source: e,
    })?;
    // One cheap call up front, so an unreachable cluster is reported as such and early.
    client
        .apiserver_version()
        .await
        .map_err(|e| KubeError::Unreachable { server, source: e })?;
    Ok((client, namespace))
}

/// Running in a pod (the API server's address is in the environment) with no kubeconfig
/// named or found, so the pod's ServiceAccount token is the identity to use.
fn in_pod_without_kubeconfig(opts: &KubeOptions) -> bool {
    let default_file = std::env::var_os("HOME")
        .map(|home| PathBuf::from(home).join(".kube/config"))
        .is_some_and(|p| p.exists());
    opts.kubeconfig.is_none()
        && opts.context.is_none()
        && std::env::var_os("KUBECONFIG").is_none()
        && !default_file
        && std::env::var_os("KUBERNETES_SERVICE_HOST").is_some()
}

/// A short random suffix for object names, unique per run.
pub fn run_id(rng: &mut impl rand::Rng) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    (0..6)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}
