//! The only code that talks to the Kubernetes API: discovery, preflight, ephemeral
//! containers, node pods, exec streams and cleanup.
//!
//! Object builders (`ephemeral::container_spec`, `node_pod::job_spec`) are pure and tested
//! without a cluster; the functions that send them are thin.

pub mod cleanup;
pub mod config;
pub mod discover;
pub mod ephemeral;
pub mod exec;
pub mod execute;
pub mod names;
pub mod node_pod;
pub mod preflight;

use std::time::Duration;

use ::kube::client::ClientBuilder;
use ::kube::config::KubeConfigOptions;
use ::kube::{Client, Config};
use thiserror::Error;

/// Label put on everything dns-doctor creates, so `cleanup` can find it.
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
pub const MANAGED_BY_VALUE: &str = "dns-doctor";
/// Label carrying the run's unique id.
pub const RUN_LABEL: &str = "dns-doctor.io/run";

/// What went wrong talking to the cluster, with what the user can do about it.
#[derive(Debug, Error)]
pub enum KubeError {
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    #[error("cannot reach the cluster at {server}")]
    Unreachable {
        server: String,
        #[source]
        source: ::kube::Error,
    },
    #[error("the API server at {server} did not accept the credentials of {source_of}: {message}")]
    Unauthorized {
        server: String,
        source_of: String,
        message: String,
    },
    #[error("{user} may not impersonate: {message}")]
    ImpersonationForbidden { user: String, message: String },
    #[error("{what}: the API server did not answer within {}", humanize(*timeout))]
    RequestTimeout { what: String, timeout: Duration },
    #[error("forbidden: {}cannot {verb} {resource} in namespace {namespace:?}", refused_user(message).map(|u| format!("User {u:?} ")).unwrap_or_default())]
    Forbidden {
        verb: String,
        /// resource or resource/subresource, e.g. pods/ephemeralcontainers.
        resource: String,
        api_group: String,
        namespace: String,
        /// The API server's message; it names who was refused (the impersonated user with
        /// --as).
        message: String,
    },
    #[error("pod {namespace}/{pod} has no container {container:?}{}; its containers: {}", match kind {
        ContainerKind::Init => " it could run in (an init container has finished before the app starts)",
        ContainerKind::Ephemeral => " to examine (an ephemeral container is not part of the app)",
        ContainerKind::Missing => "",
    }, containers.join(", "))]
    ContainerNotFound {
        namespace: String,
        pod: String,
        container: String,
        kind: ContainerKind,
        containers: Vec<String>,
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
            Self::Config(e) => e.hint(),
            Self::Unreachable { .. } => "check that the cluster is up and that --context (or --server) names the right one (`kubectl cluster-info`); behind a proxy, set HTTPS_PROXY or the kubeconfig's proxy-url".into(),
            Self::Unauthorized { .. } => "log in again (refresh the token or run the credential plugin), or pass working credentials with --token or --client-certificate/--client-key".into(),
            Self::ImpersonationForbidden { .. } => "your own identity needs the RBAC verb impersonate on users (and groups, serviceaccounts, uids for --as-group, service accounts, --as-uid); or run without --as".into(),
            Self::RequestTimeout { .. } => "raise --request-timeout (it bounds each API request up to its answer; 0 means no limit), or check the network path to the API server".into(),
            Self::ContainerNotFound { pod, containers, .. } => format!(
                "pass one of them with -c, e.g. -c {}; `kubectl get pod {pod} -o jsonpath='{{.spec.containers[*].name}}'` lists them",
                containers.first().map_or("NAME", String::as_str)
            ),
            Self::Forbidden { verb, resource, api_group, namespace, message } => {
                let user = refused_user(message);
                let (res, sub) = resource.split_once('/').map_or((resource.as_str(), None), |(r, s)| (r, Some(s)));
                let full = sub.map_or(res.to_string(), |s| format!("{res}/{s}"));
                format!(
                    "ask for this RBAC rule{for_whom} (a Role in {ns}, or a ClusterRole), or run with fewer checks (--no-node-checks, --no-capture):\n  - apiGroups: [\"{api_group}\"]\n    resources: [\"{full}\"]\n    verbs: [\"{verb}\"]\n  {shipped}{acting}",
                    ns = if namespace.is_empty() { "the namespace" } else { namespace },
                    for_whom = user.as_ref().map(|u| format!(" for {u}")).unwrap_or_default(),
                    shipped = crate::access::permissions::where_shipped(verb, resource, namespace),
                    acting = if user.is_some() { "\n  With --as, the rule must be granted to the impersonated user, not to you." } else { "" },
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
                401 => {
                    return Self::Unauthorized {
                        server: what,
                        source_of: "this run".into(),
                        message: status.message.clone(),
                    }
                }
                403 if is_impersonation_refusal(&status.message) => {
                    return Self::ImpersonationForbidden {
                        user: refused_user(&status.message).unwrap_or_else(|| "you".into()),
                        message: status.message.clone(),
                    }
                }
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
        if let Some(timeout) = request_timeout_of(&err) {
            return Self::RequestTimeout { what, timeout };
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

/// Which kind of name `-c` gave that is not a container of the pod.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContainerKind {
    Missing,
    Init,
    Ephemeral,
}

/// The user an API 403 message names: `... User "system:serviceaccount:a:b" cannot ...`.
pub fn refused_user(message: &str) -> Option<String> {
    let rest = &message[message.find("User \"")? + 6..];
    Some(rest[..rest.find('"')?].to_string())
}

/// A 403 for the impersonation itself, not for what the impersonated user did.
fn is_impersonation_refusal(message: &str) -> bool {
    message.contains("cannot impersonate resource")
}

/// The bound of --request-timeout, when that is what ended the request.
fn request_timeout_of(err: &::kube::Error) -> Option<Duration> {
    match err {
        ::kube::Error::Service(e) => e.downcast_ref::<RequestTimedOut>().map(|t| t.0),
        _ => None,
    }
}

/// Seconds, or milliseconds below one second.
fn humanize(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        format!("{}ms", d.as_millis())
    } else if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}

/// A request that got no answer within --request-timeout.
#[derive(Debug, Error)]
#[error("no answer within --request-timeout {}", humanize(self.0))]
pub struct RequestTimedOut(pub Duration);

/// A connected client and what the run needs to know about the connection.
pub struct Connection {
    pub client: Client,
    /// The namespace to use without -n: the context's, the service account's, or "default".
    pub namespace: String,
    pub server: String,
    pub source: config::Source,
    /// The credentials come from an exec plugin that may prompt on the terminal.
    pub credentials_may_prompt: bool,
}

/// Build a client from the connection settings, the kubeconfig files and the environment
/// (see [`config`]), and check that the API server answers and accepts it.
pub async fn connect(opts: &config::ConnectionSettings) -> Result<Connection, KubeError> {
    let env = config::Environment::from_process();
    let loaded = config::read_kubeconfigs(&config::kubeconfig_files(opts, &env))?;
    for missing in &loaded.missing {
        tracing::debug!(path = %missing.display(), "kubeconfig listed but missing: skipped");
    }
    let resolved = config::decide(&loaded, opts, &env)?;
    let source = resolved.source.clone();
    let credentials_may_prompt = config::credentials_may_prompt(resolved.user());
    let kubeconfig_proxy = resolved.cluster().and_then(|c| c.proxy_url.clone());
    let context_namespace = resolved.namespace().map(str::to_string);
    let mut kube_config =
        Config::from_custom_kubeconfig(resolved.kubeconfig, &KubeConfigOptions::default())
            .await
            .map_err(|e| config::ConfigError::Build {
                source_of: source.clone(),
                source: Box::new(e),
            })?;
    kube_config.proxy_url = config::proxy_for(
        &kube_config.cluster_url,
        kubeconfig_proxy.as_deref(),
        &env.proxy,
    )?;
    let namespace = opts
        .namespace
        .clone()
        .or(context_namespace)
        .unwrap_or_else(|| "default".into());
    let server = kube_config.cluster_url.to_string();
    tracing::debug!(%server, %source, proxy = ?kube_config.proxy_url, "connecting");
    // An exec credential plugin runs here, before any progress display is drawn.
    let client =
        build_client(kube_config, opts.request_timeout).map_err(|e| KubeError::Unreachable {
            server: server.clone(),
            source: e,
        })?;
    // One cheap call up front, so an unreachable cluster or refused credentials are
    // reported as such and early.
    if let Err(e) = client.apiserver_version().await {
        return Err(
            match KubeError::from_api(server.clone(), "get", "version", "", e) {
                KubeError::Unauthorized { message, .. } => KubeError::Unauthorized {
                    server,
                    source_of: source.to_string(),
                    message,
                },
                KubeError::Api { source, .. } => KubeError::Unreachable { server, source },
                other => other,
            },
        );
    }
    Ok(Connection {
        client,
        namespace,
        server,
        source,
        credentials_may_prompt,
    })
}

/// The kube-rs client, with --request-timeout as a bound on each request up to its
/// response headers: the bodies of streams (exec, logs) it starts are not cut by it.
fn build_client(
    config: Config,
    request_timeout: Option<Duration>,
) -> Result<Client, ::kube::Error> {
    let builder = ClientBuilder::try_from(config)?;
    Ok(match request_timeout {
        None => builder.build(),
        Some(t) => builder.with_layer(&RequestTimeoutLayer(t)).build(),
    })
}

/// `tower::timeout` with an error that says which flag set the bound.
#[derive(Clone, Copy)]
struct RequestTimeoutLayer(Duration);

impl<S> tower::Layer<S> for RequestTimeoutLayer {
    type Service = RequestTimeout<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequestTimeout {
            inner: tower::timeout::Timeout::new(inner, self.0),
            limit: self.0,
        }
    }
}

#[derive(Clone)]
struct RequestTimeout<S> {
    inner: tower::timeout::Timeout<S>,
    limit: Duration,
}

impl<S, R> tower::Service<R> for RequestTimeout<S>
where
    S: tower::Service<R>,
    S::Error: Into<tower::BoxError>,
    S::Future: Send + 'static,
    S::Response: 'static,
{
    type Response = S::Response;
    type Error = tower::BoxError;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<S::Response, tower::BoxError>> + Send>,
    >;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: R) -> Self::Future {
        let limit = self.limit;
        let fut = self.inner.call(req);
        Box::pin(async move {
            fut.await.map_err(|e| {
                if e.is::<tower::timeout::error::Elapsed>() {
                    Box::new(RequestTimedOut(limit)) as tower::BoxError
                } else {
                    e
                }
            })
        })
    }
}

/// A short random suffix for object names, unique per run.
pub fn run_id(rng: &mut impl rand::Rng) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    (0..6)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api_error(code: u16, message: &str) -> ::kube::Error {
        ::kube::Error::Api(Box::new(
            serde_json::from_value(serde_json::json!({
                "status": "Failure",
                "code": code,
                "message": message,
                "reason": "Forbidden",
            }))
            .unwrap(),
        ))
    }

    #[test]
    fn a_403_names_the_refused_user_and_the_rule() {
        // The API server's wording, as the test cluster answers `--as` of a service account.
        let err = KubeError::from_api(
            "get Pod x",
            "get",
            "pods",
            "dns-clients",
            api_error(
                403,
                r#"pods "x" is forbidden: User "system:serviceaccount:ops:nobody" cannot get resource "pods" in API group "" in the namespace "dns-clients""#,
            ),
        );
        assert_eq!(
            err.to_string(),
            r#"forbidden: User "system:serviceaccount:ops:nobody" cannot get pods in namespace "dns-clients""#
        );
        let hint = err.hint().unwrap();
        assert!(
            hint.contains("for system:serviceaccount:ops:nobody")
                && hint.contains("resources: [\"pods\"]")
                && hint.contains("verbs: [\"get\"]"),
            "{hint}"
        );
    }

    #[test]
    fn a_refused_impersonation_is_not_a_missing_rule_for_the_target() {
        let err = KubeError::from_api(
            "https://127.0.0.1:6443/",
            "get",
            "version",
            "",
            api_error(
                403,
                r#"users "someone" is forbidden: User "system:serviceaccount:ops:nobody" cannot impersonate resource "users" in API group "" at the cluster scope"#,
            ),
        );
        assert!(
            matches!(&err, KubeError::ImpersonationForbidden { user, .. } if user == "system:serviceaccount:ops:nobody"),
            "{err:?}"
        );
        assert!(
            err.hint().unwrap().contains("impersonate"),
            "{:?}",
            err.hint()
        );
    }

    #[test]
    fn a_401_is_about_credentials() {
        let err = KubeError::from_api("x", "get", "version", "", api_error(401, "Unauthorized"));
        assert!(matches!(err, KubeError::Unauthorized { .. }), "{err:?}");
        assert!(err.hint().unwrap().contains("--token"));
    }

    #[test]
    fn the_request_timeout_is_recognised_through_kube() {
        let err = ::kube::Error::Service(Box::new(RequestTimedOut(Duration::from_millis(1500))));
        let err = KubeError::from_api("list pods", "list", "pods", "x", err);
        assert_eq!(
            err.to_string(),
            "list pods: the API server did not answer within 1.5s"
        );
        assert!(err.hint().unwrap().contains("--request-timeout"));
    }
}
