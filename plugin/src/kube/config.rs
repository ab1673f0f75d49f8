//! From kubectl's connection flags, the kubeconfig files and the environment to the one
//! kubeconfig entry a run uses, decided the way client-go (and so kubectl) decides:
//!
//! - `--kubeconfig FILE` must exist; otherwise every file listed in `$KUBECONFIG` is read
//!   and merged (the first to set a value wins), skipping the ones that do not exist, and
//!   without `$KUBECONFIG`, `~/.kube/config`;
//! - when that names no context and no `--server` is given, a process running in a pod
//!   uses the pod's service account (in-cluster configuration), so a Job can run the doctor;
//! - `--context`, `--cluster`, `--user` choose the entries; `--server`,
//!   `--certificate-authority`, `--insecure-skip-tls-verify`, `--tls-server-name`,
//!   `--token`, `--client-certificate`/`--client-key` and `--as`/`--as-group`/`--as-uid`
//!   override what they name;
//! - a kubeconfig's `proxy-url` is used as given; otherwise `HTTPS_PROXY` (`HTTP_PROXY` for
//!   an http server), unless `NO_PROXY` matches the server or the server is a loopback
//!   address, as Go's HTTP client does.
//!
//! Everything here is pure apart from [`Environment::from_process`] and
//! [`read_kubeconfigs`], so each decision is unit-tested on kubeconfig contents.

use std::ffi::OsString;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use kube::config::Kubeconfig;
use kube::config::{
    AuthInfo, Cluster, Context, ExecInteractiveMode, KubeconfigError, NamedAuthInfo, NamedCluster,
    NamedContext,
};
use thiserror::Error;

/// Where the pod's service account is mounted (the in-cluster configuration).
pub const SERVICE_ACCOUNT_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
/// The name of the one context a resolved kubeconfig holds when nothing named it.
const COMMAND_LINE: &str = "command-line";

/// Where to find the cluster and who to be there: what kubectl's connection flags ask for.
/// A field left at None (or false) leaves the choice to the kubeconfig, or without one to
/// the in-cluster configuration. Values are used as given: refusing empty ones and
/// contradictions (a CA file with `insecure_skip_tls_verify`, a certificate without its key)
/// is the caller's job.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConnectionSettings {
    /// The namespace to work in; None: the context's, else the service account's, else
    /// `default`.
    pub namespace: Option<String>,
    /// The kubeconfig context to use instead of the current one; it must exist.
    pub context: Option<String>,
    /// The kubeconfig cluster to use instead of the context's; it must exist unless
    /// `server` is given.
    pub cluster: Option<String>,
    /// The kubeconfig user to use instead of the context's; it must exist.
    pub user: Option<String>,
    /// The one kubeconfig file to read (it must exist), instead of the files of
    /// `$KUBECONFIG` or `~/.kube/config`.
    pub kubeconfig: Option<PathBuf>,
    /// Whom to act as.
    pub impersonate: Option<Impersonation>,
    /// Bound on each API request up to its response headers; None: no limit.
    pub request_timeout: Option<Duration>,
    /// Bearer token; replaces the user's credentials, credential plugin included.
    pub token: Option<Secret>,
    /// The API server, an absolute http(s) URL; replaces the cluster's (and drops its
    /// `tls-server-name`).
    pub server: Option<String>,
    /// CA file for the API server's certificate; replaces the cluster's trust settings.
    pub certificate_authority: Option<PathBuf>,
    /// Do not verify the API server's certificate; replaces the cluster's trust settings.
    pub insecure_skip_tls_verify: bool,
    /// Client certificate file; used only together with `client_key`, and then replaces
    /// the user's credentials, credential plugin included.
    pub client_certificate: Option<PathBuf>,
    /// Client key file, the pair of `client_certificate`.
    pub client_key: Option<PathBuf>,
    /// Name to check the API server's certificate against.
    pub tls_server_name: Option<String>,
}

/// Whom to act as: kubectl's `--as`, `--as-group`, `--as-uid`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Impersonation {
    pub user: String,
    pub groups: Vec<String>,
    pub uid: Option<String>,
}

/// A credential; never printed, not even in debug logs.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// What of the process environment decides the configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Environment {
    /// `$KUBECONFIG` as given.
    pub kubeconfig: Option<OsString>,
    /// `$HOME`, for `~/.kube/config`.
    pub home: Option<PathBuf>,
    /// Set when running in a pod with a service account token.
    pub in_cluster: Option<InCluster>,
    pub proxy: ProxyEnv,
}

/// The in-cluster configuration's inputs: `KUBERNETES_SERVICE_HOST`/`_PORT` and the
/// service account's namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InCluster {
    pub host: String,
    pub port: String,
    pub namespace: String,
}

/// `HTTPS_PROXY`, `HTTP_PROXY`, `NO_PROXY` (upper case first, then lower case).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProxyEnv {
    pub https_proxy: Option<String>,
    pub http_proxy: Option<String>,
    pub no_proxy: Option<String>,
}

impl Environment {
    /// Read the environment of this process (and whether a service account is mounted).
    pub fn from_process() -> Self {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let either = |upper: &str, lower: &str| var(upper).or_else(|| var(lower));
        let sa = Path::new(SERVICE_ACCOUNT_DIR);
        let in_cluster = match (
            var("KUBERNETES_SERVICE_HOST"),
            var("KUBERNETES_SERVICE_PORT"),
        ) {
            (Some(host), Some(port)) if sa.join("token").is_file() => Some(InCluster {
                host,
                port,
                // client-go's default when the file cannot be read.
                namespace: std::fs::read_to_string(sa.join("namespace"))
                    .ok()
                    .map(|n| n.trim().to_string())
                    .filter(|n| !n.is_empty())
                    .unwrap_or_else(|| "default".into()),
            }),
            _ => None,
        };
        Self {
            kubeconfig: std::env::var_os("KUBECONFIG"),
            // client-go's home directory: HOME, else (Windows) USERPROFILE.
            home: std::env::var_os("HOME")
                .filter(|h| !h.is_empty())
                .or_else(|| std::env::var_os("USERPROFILE"))
                .map(PathBuf::from),
            in_cluster,
            proxy: ProxyEnv {
                https_proxy: either("HTTPS_PROXY", "https_proxy"),
                http_proxy: either("HTTP_PROXY", "http_proxy"),
                no_proxy: either("NO_PROXY", "no_proxy"),
            },
        }
    }
}

/// Which kubeconfig files to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KubeconfigFiles {
    /// `--kubeconfig`: must exist.
    Explicit(PathBuf),
    /// The files of `$KUBECONFIG`, or `~/.kube/config`: the missing ones are skipped.
    Search(Vec<PathBuf>),
}

/// The files to read, in precedence order.
pub fn kubeconfig_files(opts: &ConnectionSettings, env: &Environment) -> KubeconfigFiles {
    if let Some(path) = &opts.kubeconfig {
        return KubeconfigFiles::Explicit(path.clone());
    }
    let mut paths: Vec<PathBuf> = Vec::new();
    match &env.kubeconfig {
        Some(list) if !list.is_empty() => {
            for p in std::env::split_paths(list) {
                if !p.as_os_str().is_empty() && !paths.contains(&p) {
                    paths.push(p);
                }
            }
        }
        _ => paths.extend(env.home.as_ref().map(|h| h.join(".kube").join("config"))),
    }
    KubeconfigFiles::Search(paths)
}

/// The kubeconfig files that were read, and the listed ones that do not exist.
#[derive(Debug, Clone, Default)]
pub struct Loaded {
    pub files: Vec<(PathBuf, Kubeconfig)>,
    pub missing: Vec<PathBuf>,
}

/// Read the files. A missing file of a search list is skipped (as client-go does); a missing
/// `--kubeconfig`, an unreadable or malformed file is an error.
pub fn read_kubeconfigs(which: &KubeconfigFiles) -> Result<Loaded, ConfigError> {
    let (paths, required) = match which {
        KubeconfigFiles::Explicit(p) => (std::slice::from_ref(p), true),
        KubeconfigFiles::Search(ps) => (ps.as_slice(), false),
    };
    let mut loaded = Loaded::default();
    for path in paths {
        match Kubeconfig::read_from(path) {
            Ok(kc) => loaded.files.push((path.clone(), kc)),
            Err(KubeconfigError::ReadConfig(e, _)) if e.kind() == std::io::ErrorKind::NotFound => {
                if required {
                    return Err(ConfigError::ExplicitMissing { path: path.clone() });
                }
                loaded.missing.push(path.clone());
            }
            Err(source) => {
                return Err(ConfigError::Read {
                    path: path.clone(),
                    source: Box::new(source),
                })
            }
        }
    }
    Ok(loaded)
}

/// The kubeconfig a run would read, merged: its contexts, clusters and users are what
/// `--context`, `--cluster` and `--user` complete to.
pub fn merged_kubeconfig(
    opts: &ConnectionSettings,
    env: &Environment,
) -> Result<Kubeconfig, ConfigError> {
    merge(&read_kubeconfigs(&kubeconfig_files(opts, env))?)
}

/// Where the connection settings came from, for messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A kubeconfig context (None: only the command line named the server).
    Kubeconfig {
        context: Option<String>,
        files: Vec<PathBuf>,
    },
    /// The pod's service account.
    InCluster,
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::InCluster => f.write_str("the pod's service account (in-cluster configuration)"),
            Self::Kubeconfig { context, files } => {
                match context {
                    Some(c) => write!(f, "context {c:?}")?,
                    None => f.write_str("the command line")?,
                }
                if !files.is_empty() {
                    let list: Vec<String> = files.iter().map(|p| p.display().to_string()).collect();
                    write!(f, " of {}", list.join(", "))?;
                }
                Ok(())
            }
        }
    }
}

/// The one kubeconfig entry a run uses: a kubeconfig holding a single context, cluster and
/// user with every command-line override applied, ready for kube's loader.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub kubeconfig: Kubeconfig,
    pub source: Source,
}

impl Resolved {
    /// The cluster entry the run connects to.
    pub fn cluster(&self) -> Option<&Cluster> {
        self.kubeconfig
            .clusters
            .first()
            .and_then(|c| c.cluster.as_ref())
    }

    /// The user entry the run authenticates as.
    pub fn user(&self) -> Option<&AuthInfo> {
        self.kubeconfig
            .auth_infos
            .first()
            .and_then(|u| u.auth_info.as_ref())
    }

    /// The context's namespace, the default for `-n`.
    pub fn namespace(&self) -> Option<&str> {
        self.kubeconfig
            .contexts
            .first()
            .and_then(|c| c.context.as_ref())
            .and_then(|c| c.namespace.as_deref())
    }
}

/// Decide the configuration from what was read, the flags and the environment.
pub fn decide(
    loaded: &Loaded,
    opts: &ConnectionSettings,
    env: &Environment,
) -> Result<Resolved, ConfigError> {
    let merged = merge(loaded)?;
    let names_an_entry =
        opts.context.is_some() || opts.cluster.is_some() || merged.current_context.is_some();
    if !names_an_entry && opts.server.is_none() {
        // Nothing to go on in the kubeconfig: client-go falls back to the pod's service
        // account when there is one.
        return match &env.in_cluster {
            Some(ic) => Ok(Resolved {
                kubeconfig: resolve(&in_cluster_kubeconfig(ic), opts)?,
                source: Source::InCluster,
            }),
            None => Err(ConfigError::NoConfiguration {
                searched: loaded.missing.clone(),
                read: loaded.files.iter().map(|(p, _)| p.clone()).collect(),
            }),
        };
    }
    let kubeconfig = resolve(&merged, opts)?;
    let context = opts
        .context
        .clone()
        .or_else(|| merged.current_context.clone());
    Ok(Resolved {
        kubeconfig,
        source: Source::Kubeconfig {
            context,
            files: loaded.files.iter().map(|(p, _)| p.clone()).collect(),
        },
    })
}

/// Merge the files in order: the first file to set a value or name an entry wins.
pub fn merge(loaded: &Loaded) -> Result<Kubeconfig, ConfigError> {
    loaded
        .files
        .iter()
        .try_fold(Kubeconfig::default(), |acc, (path, kc)| {
            acc.merge(kc.clone()).map_err(|source| ConfigError::Read {
                path: path.clone(),
                source: Box::new(source),
            })
        })
}

/// The in-cluster configuration as a kubeconfig, so the command line overrides it the same
/// way: the API server from the environment, the mounted CA and token (re-read as kube-rs
/// does for a token file), the service account's namespace.
pub fn in_cluster_kubeconfig(ic: &InCluster) -> Kubeconfig {
    let host = match ic.host.parse::<IpAddr>() {
        Ok(IpAddr::V6(ip)) => format!("[{ip}]"),
        _ => ic.host.clone(),
    };
    let sa = Path::new(SERVICE_ACCOUNT_DIR);
    let cluster = Cluster {
        server: Some(format!("https://{host}:{}", ic.port)),
        certificate_authority: Some(sa.join("ca.crt").display().to_string()),
        ..Cluster::default()
    };
    let user = AuthInfo {
        token_file: Some(sa.join("token").display().to_string()),
        ..AuthInfo::default()
    };
    single_entry(
        "in-cluster",
        cluster,
        "in-cluster",
        user,
        Some(ic.namespace.clone()),
    )
}

/// Pick the context, cluster and user, and apply the command line to them.
pub fn resolve(kc: &Kubeconfig, opts: &ConnectionSettings) -> Result<Kubeconfig, ConfigError> {
    let context_name = opts
        .context
        .clone()
        .or_else(|| kc.current_context.clone())
        .filter(|c| !c.is_empty());
    let context = match &context_name {
        Some(name) => kc
            .contexts
            .iter()
            .find(|c| &c.name == name)
            .map(|c| c.context.clone().unwrap_or_default())
            .ok_or_else(|| ConfigError::ContextNotFound {
                name: name.clone(),
                available: kc.contexts.iter().map(|c| c.name.clone()).collect(),
            })?,
        None => Context::default(),
    };

    let cluster_name = opts
        .cluster
        .clone()
        .or_else(|| Some(context.cluster.clone()).filter(|c| !c.is_empty()));
    let mut cluster = match &cluster_name {
        Some(name) => match kc.clusters.iter().find(|c| &c.name == name) {
            Some(c) => c.cluster.clone().unwrap_or_default(),
            // client-go lets --server stand in for a cluster entry that does not exist.
            None if opts.server.is_some() => Cluster::default(),
            None => {
                return Err(ConfigError::ClusterNotFound {
                    name: name.clone(),
                    available: kc.clusters.iter().map(|c| c.name.clone()).collect(),
                })
            }
        },
        None => Cluster::default(),
    };
    if let Some(server) = &opts.server {
        cluster.server = Some(server.clone());
        // A kubeconfig's tls-server-name belongs to its own server, not to this one.
        cluster.tls_server_name = None;
    }
    if let Some(name) = &opts.tls_server_name {
        cluster.tls_server_name = Some(name.clone());
    }
    if opts.insecure_skip_tls_verify || opts.certificate_authority.is_some() {
        // Either one replaces the kubeconfig's trust settings (client-go does the same, so
        // the two never contradict each other).
        cluster.insecure_skip_tls_verify = Some(opts.insecure_skip_tls_verify);
        cluster.certificate_authority = opts
            .certificate_authority
            .as_ref()
            .map(|p| p.display().to_string());
        cluster.certificate_authority_data = None;
    }
    if cluster.server.as_deref().is_none_or(str::is_empty) {
        return Err(ConfigError::NoServer {
            cluster: cluster_name.clone(),
            context: context_name.clone(),
        });
    }

    let user_name = opts
        .user
        .clone()
        .or_else(|| context.user.clone().filter(|u| !u.is_empty()));
    let mut user = match &user_name {
        Some(name) => match kc.auth_infos.iter().find(|u| &u.name == name) {
            Some(u) => u.auth_info.clone().unwrap_or_default(),
            None if opts.user.is_some() => {
                return Err(ConfigError::UserNotFound {
                    name: name.clone(),
                    available: kc.auth_infos.iter().map(|u| u.name.clone()).collect(),
                })
            }
            // client-go tolerates a context naming a user that is not there.
            None => AuthInfo::default(),
        },
        None => AuthInfo::default(),
    };
    if let Some(token) = &opts.token {
        user.token = Some(secrecy::SecretString::from(token.expose().to_string()));
        user.token_file = None;
        user.username = None;
        user.password = None;
    }
    if let (Some(cert), Some(key)) = (&opts.client_certificate, &opts.client_key) {
        user.client_certificate = Some(cert.display().to_string());
        user.client_certificate_data = None;
        user.client_key = Some(key.display().to_string());
        user.client_key_data = None;
    }
    if opts.token.is_some() || opts.client_certificate.is_some() {
        // Credentials on the command line are meant to be used: client-go then skips the
        // kubeconfig's credential plugin, and so do we.
        user.exec = None;
        user.auth_provider = None;
    }
    if let Some(imp) = &opts.impersonate {
        user.impersonate = Some(imp.user.clone());
        user.impersonate_groups = (!imp.groups.is_empty()).then(|| imp.groups.clone());
        user.impersonate_uid = imp.uid.clone();
    }

    Ok(single_entry(
        cluster_name.as_deref().unwrap_or(COMMAND_LINE),
        cluster,
        user_name.as_deref().unwrap_or(COMMAND_LINE),
        user,
        context.namespace.clone(),
    ))
}

fn single_entry(
    cluster_name: &str,
    cluster: Cluster,
    user_name: &str,
    user: AuthInfo,
    namespace: Option<String>,
) -> Kubeconfig {
    Kubeconfig {
        clusters: vec![NamedCluster {
            name: cluster_name.to_string(),
            cluster: Some(cluster),
            ..NamedCluster::default()
        }],
        auth_infos: vec![NamedAuthInfo {
            name: user_name.to_string(),
            auth_info: Some(user),
            ..NamedAuthInfo::default()
        }],
        contexts: vec![NamedContext {
            name: COMMAND_LINE.to_string(),
            context: Some(Context {
                cluster: cluster_name.to_string(),
                user: Some(user_name.to_string()),
                namespace,
                ..Context::default()
            }),
            ..NamedContext::default()
        }],
        current_context: Some(COMMAND_LINE.to_string()),
        ..Kubeconfig::default()
    }
}

/// Whether the credentials come from an exec plugin that may ask the user something on the
/// terminal (its `interactiveMode` is not `Never`): nothing may draw over its prompt.
pub fn credentials_may_prompt(user: Option<&AuthInfo>) -> bool {
    user.and_then(|u| u.exec.as_ref())
        .is_some_and(|e| e.interactive_mode != Some(ExecInteractiveMode::Never))
}

/// The proxy to reach `server` through: the kubeconfig's `proxy-url` when set; otherwise the
/// environment's proxy for the server's scheme, unless the server is a loopback address or
/// `NO_PROXY` names it (Go's rules, which kubectl follows).
pub fn proxy_for(
    server: &http::Uri,
    kubeconfig_proxy: Option<&str>,
    env: &ProxyEnv,
) -> Result<Option<http::Uri>, ConfigError> {
    let parse = |url: &str, from: &'static str| {
        // Go takes a proxy without a scheme as http://.
        let full = if url.contains("://") {
            url.to_string()
        } else {
            format!("http://{url}")
        };
        full.parse::<http::Uri>()
            .ok()
            .filter(|u| u.host().is_some())
            .ok_or_else(|| ConfigError::Proxy {
                url: url.to_string(),
                from,
            })
    };
    if let Some(url) = kubeconfig_proxy.filter(|u| !u.is_empty()) {
        return parse(url, "the kubeconfig's proxy-url").map(Some);
    }
    let (from, url) = match server.scheme_str() {
        Some("http") => ("HTTP_PROXY", env.http_proxy.as_deref()),
        _ => ("HTTPS_PROXY", env.https_proxy.as_deref()),
    };
    let Some(url) = url.filter(|u| !u.is_empty()) else {
        return Ok(None);
    };
    let host = server
        .host()
        .unwrap_or_default()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_ascii_lowercase();
    let port = server.port_u16().unwrap_or(match server.scheme_str() {
        Some("http") => 80,
        _ => 443,
    });
    let loopback = host == "localhost"
        || host.ends_with(".localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
    if loopback || no_proxy_matches(env.no_proxy.as_deref().unwrap_or(""), &host, port) {
        return Ok(None);
    }
    parse(url, from).map(Some)
}

/// Go's `NO_PROXY` matching: `*`; an IP or CIDR; a domain, which also matches its
/// subdomains (`.example.com` and `*.example.com` only the subdomains); any of them with a
/// `:port` to match that port only.
fn no_proxy_matches(no_proxy: &str, host: &str, port: u16) -> bool {
    let ip = host.parse::<IpAddr>().ok();
    no_proxy
        .split(',')
        .map(|e| e.trim().to_ascii_lowercase())
        .filter(|e| !e.is_empty())
        .any(|entry| {
            if entry == "*" {
                return true;
            }
            if let Ok(net) = entry.parse::<ipnet::IpNet>() {
                return ip.is_some_and(|ip| net.contains(&ip));
            }
            let (name, want_port) = split_port(&entry);
            if want_port.is_some_and(|p| p != port) {
                return false;
            }
            let name = name.trim_start_matches('[').trim_end_matches(']');
            if let Ok(entry_ip) = name.parse::<IpAddr>() {
                return ip == Some(entry_ip);
            }
            if ip.is_some() {
                return false;
            }
            match name.strip_prefix("*.").or_else(|| name.strip_prefix('.')) {
                Some(suffix) => host.ends_with(&format!(".{suffix}")),
                None => host == name || host.ends_with(&format!(".{name}")),
            }
        })
}

/// `host:port` → (host, Some(port)); a bare IPv6 address keeps its colons.
fn split_port(entry: &str) -> (&str, Option<u16>) {
    if let Some(rest) = entry.strip_prefix('[') {
        if let Some((h, p)) = rest.split_once("]:") {
            return (h, p.parse().ok());
        }
        return (entry, None);
    }
    match entry.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') => match p.parse() {
            Ok(port) => (h, Some(port)),
            Err(_) => (entry, None),
        },
        _ => (entry, None),
    }
}

/// Why no configuration could be made.
#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("kubeconfig {} (--kubeconfig) does not exist", path.display())]
    ExplicitMissing { path: PathBuf },
    #[error("cannot load kubeconfig {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: Box<KubeconfigError>,
    },
    #[error(
        "no kubeconfig found{} and not running in a pod",
        describe_searched(searched, read)
    )]
    NoConfiguration {
        searched: Vec<PathBuf>,
        read: Vec<PathBuf>,
    },
    #[error("context {name:?} is not in the kubeconfig{}", known(available))]
    ContextNotFound {
        name: String,
        available: Vec<String>,
    },
    #[error("cluster {name:?} is not in the kubeconfig{}", known(available))]
    ClusterNotFound {
        name: String,
        available: Vec<String>,
    },
    #[error("user {name:?} is not in the kubeconfig{}", known(available))]
    UserNotFound {
        name: String,
        available: Vec<String>,
    },
    #[error("{} has no API server address", match (cluster, context) {
        (Some(c), _) => format!("cluster {c:?}"),
        (None, Some(ctx)) => format!("context {ctx:?}"),
        (None, None) => "the configuration".to_string(),
    })]
    NoServer {
        cluster: Option<String>,
        context: Option<String>,
    },
    #[error("{url:?} from {from} is not a proxy URL")]
    Proxy { url: String, from: &'static str },
    #[error("cannot use the configuration of {source_of}")]
    Build {
        source_of: Source,
        #[source]
        source: Box<KubeconfigError>,
    },
}

fn describe_searched(searched: &[PathBuf], read: &[PathBuf]) -> String {
    if searched.is_empty() && read.is_empty() {
        return String::new();
    }
    let list = |ps: &[PathBuf]| {
        ps.iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut out = String::from(" (");
    if !searched.is_empty() {
        out.push_str(&format!("missing: {}", list(searched)));
    }
    if !read.is_empty() {
        if !searched.is_empty() {
            out.push_str("; ");
        }
        out.push_str(&format!("no context in: {}", list(read)));
    }
    out.push(')');
    out
}

fn known(names: &[String]) -> String {
    if names.is_empty() {
        " (it has none)".to_string()
    } else {
        format!(" (it has: {})", names.join(", "))
    }
}

impl ConfigError {
    /// The next step for the user.
    pub fn hint(&self) -> String {
        match self {
            Self::ExplicitMissing { .. } | Self::Read { .. } => {
                "pass --kubeconfig FILE or set KUBECONFIG to a readable kubeconfig; `kubectl config view` shows what kubectl uses".into()
            }
            Self::NoConfiguration { .. } => "pass --kubeconfig FILE, set KUBECONFIG, or give --server with --token (or --client-certificate and --client-key); in a pod, mount a service account token".into(),
            Self::ContextNotFound { .. } => "choose one of the contexts listed with --context; `kubectl config get-contexts` shows them".into(),
            Self::ClusterNotFound { .. } => "choose one of the clusters listed with --cluster, or give the address with --server".into(),
            Self::UserNotFound { .. } => "choose one of the users listed with --user, or pass credentials with --token".into(),
            Self::NoServer { .. } => "give the API server with --server URL, or fix the cluster's server: entry in the kubeconfig".into(),
            Self::Proxy { .. } => "write the proxy as http://HOST:PORT, https://HOST:PORT or socks5://HOST:PORT".into(),
            Self::Build { .. } => "check the files the kubeconfig (or --certificate-authority, --client-certificate, --client-key) points to: they must exist and hold PEM data".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    /// Two clusters, two users (one an exec plugin), three contexts: a kubeconfig as
    /// `kubectl config view` shows a typical one.
    const MAIN: &str = r#"
apiVersion: v1
kind: Config
current-context: prod
clusters:
- name: prod
  cluster:
    server: https://prod.example.com:6443
    certificate-authority-data: Zm9v
    tls-server-name: api.prod.internal
- name: staging
  cluster:
    server: https://10.1.2.3:6443
    insecure-skip-tls-verify: true
    proxy-url: socks5://127.0.0.1:1080
users:
- name: alice
  user:
    tokenFile: /home/alice/token
- name: sso
  user:
    exec:
      apiVersion: client.authentication.k8s.io/v1
      command: kubelogin
      args: ["get-token"]
contexts:
- name: prod
  context: {cluster: prod, user: sso, namespace: shop}
- name: staging
  context: {cluster: staging, user: alice}
- name: broken
  context: {cluster: gone, user: alice}
"#;

    /// A second file: its current-context and its `prod` cluster lose to the first file's.
    const EXTRA: &str = r#"
apiVersion: v1
kind: Config
current-context: dev
clusters:
- name: prod
  cluster: {server: https://shadowed.example.com}
- name: dev
  cluster: {server: https://dev.example.com}
users:
- name: bob
  user: {token: bobs-token}
contexts:
- name: dev
  context: {cluster: dev, user: bob, namespace: dev-ns}
"#;

    fn kc(yaml: &str) -> Kubeconfig {
        Kubeconfig::from_yaml(yaml).unwrap()
    }

    fn loaded(files: &[&str]) -> Loaded {
        Loaded {
            files: files
                .iter()
                .enumerate()
                .map(|(i, y)| (PathBuf::from(format!("/cfg/{i}")), kc(y)))
                .collect(),
            missing: Vec::new(),
        }
    }

    fn cluster(r: &Resolved) -> &Cluster {
        r.cluster().unwrap()
    }

    fn user(r: &Resolved) -> &AuthInfo {
        r.user().unwrap()
    }

    fn no_env() -> Environment {
        Environment::default()
    }

    fn in_pod() -> Environment {
        Environment {
            in_cluster: Some(InCluster {
                host: "10.96.0.1".into(),
                port: "443".into(),
                namespace: "runbooks".into(),
            }),
            ..Environment::default()
        }
    }

    #[test]
    fn kubeconfig_files_follow_kubeconfig_then_home() {
        let env = Environment {
            kubeconfig: Some("/a::/b:/a".into()),
            home: Some("/home/u".into()),
            ..Environment::default()
        };
        assert_eq!(
            kubeconfig_files(&ConnectionSettings::default(), &env),
            KubeconfigFiles::Search(vec!["/a".into(), "/b".into()])
        );
        let explicit = ConnectionSettings {
            kubeconfig: Some("/x".into()),
            ..ConnectionSettings::default()
        };
        assert_eq!(
            kubeconfig_files(&explicit, &env),
            KubeconfigFiles::Explicit("/x".into())
        );
        for unset in [None, Some(OsString::new())] {
            let env = Environment {
                kubeconfig: unset,
                home: Some("/home/u".into()),
                ..Environment::default()
            };
            assert_eq!(
                kubeconfig_files(&ConnectionSettings::default(), &env),
                KubeconfigFiles::Search(vec!["/home/u/.kube/config".into()])
            );
        }
    }

    #[test]
    fn a_missing_file_in_kubeconfig_is_skipped_and_the_rest_merged() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing");
        let main = dir.path().join("main");
        let extra = dir.path().join("extra");
        std::fs::write(&main, MAIN).unwrap();
        std::fs::write(&extra, EXTRA).unwrap();
        let env = Environment {
            kubeconfig: Some(std::env::join_paths([&missing, &main, &extra]).unwrap()),
            ..Environment::default()
        };
        let files = kubeconfig_files(&ConnectionSettings::default(), &env);
        let loaded = read_kubeconfigs(&files).unwrap();
        assert_eq!(loaded.missing, vec![missing.clone()]);
        assert_eq!(loaded.files.len(), 2);

        // The first file's current-context and its `prod` cluster win.
        let r = decide(&loaded, &ConnectionSettings::default(), &env).unwrap();
        assert_eq!(
            cluster(&r).server.as_deref(),
            Some("https://prod.example.com:6443")
        );
        assert_eq!(r.namespace(), Some("shop"));
        assert_eq!(
            r.source,
            Source::Kubeconfig {
                context: Some("prod".into()),
                files: vec![main.clone(), extra.clone()]
            }
        );
        // The second file's entries are there to choose.
        let dev = ConnectionSettings {
            context: Some("dev".into()),
            ..ConnectionSettings::default()
        };
        let r = decide(&loaded, &dev, &env).unwrap();
        assert_eq!(
            cluster(&r).server.as_deref(),
            Some("https://dev.example.com")
        );
        assert_eq!(
            user(&r)
                .token
                .as_ref()
                .map(|t| t.expose_secret().to_string()),
            Some("bobs-token".to_string())
        );
        assert_eq!(r.namespace(), Some("dev-ns"));
    }

    #[test]
    fn an_explicit_kubeconfig_must_exist() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nope");
        let err = read_kubeconfigs(&KubeconfigFiles::Explicit(path.clone())).unwrap_err();
        assert!(matches!(&err, ConfigError::ExplicitMissing { path: p } if *p == path));
        assert!(err.to_string().contains("does not exist"), "{err}");
    }

    #[test]
    fn a_malformed_kubeconfig_is_an_error_not_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let bad = dir.path().join("bad");
        std::fs::write(&bad, "clusters: [: not yaml").unwrap();
        let err = read_kubeconfigs(&KubeconfigFiles::Search(vec![bad.clone()])).unwrap_err();
        assert!(matches!(err, ConfigError::Read { path, .. } if path == bad));
    }

    #[test]
    fn without_a_kubeconfig_a_pod_uses_its_service_account() {
        let nothing = Loaded {
            files: Vec::new(),
            missing: vec!["/root/.kube/config".into()],
        };
        let r = decide(&nothing, &ConnectionSettings::default(), &in_pod()).unwrap();
        assert_eq!(r.source, Source::InCluster);
        assert_eq!(cluster(&r).server.as_deref(), Some("https://10.96.0.1:443"));
        assert_eq!(
            cluster(&r).certificate_authority.as_deref(),
            Some("/var/run/secrets/kubernetes.io/serviceaccount/ca.crt")
        );
        assert_eq!(
            user(&r).token_file.as_deref(),
            Some("/var/run/secrets/kubernetes.io/serviceaccount/token")
        );
        assert_eq!(r.namespace(), Some("runbooks"));

        // The command line still applies in a pod.
        let as_other = ConnectionSettings {
            impersonate: Some(Impersonation {
                user: "system:serviceaccount:ops:doctor".into(),
                groups: Vec::new(),
                uid: None,
            }),
            ..ConnectionSettings::default()
        };
        let r = decide(&nothing, &as_other, &in_pod()).unwrap();
        assert_eq!(r.source, Source::InCluster);
        assert_eq!(
            user(&r).impersonate.as_deref(),
            Some("system:serviceaccount:ops:doctor")
        );

        // Outside a pod, nothing is an error that lists where it looked.
        let err = decide(&nothing, &ConnectionSettings::default(), &no_env()).unwrap_err();
        assert!(
            err.to_string().contains("missing: /root/.kube/config"),
            "{err}"
        );
        assert!(err.hint().contains("--server"), "{}", err.hint());
    }

    #[test]
    fn a_kubeconfig_with_a_context_wins_over_the_service_account() {
        let r = decide(&loaded(&[MAIN]), &ConnectionSettings::default(), &in_pod()).unwrap();
        assert!(matches!(r.source, Source::Kubeconfig { .. }));
        // A kubeconfig without any context does not: client-go takes it as empty.
        let no_context = "apiVersion: v1\nkind: Config\nclusters: []\n";
        let r = decide(
            &loaded(&[no_context]),
            &ConnectionSettings::default(),
            &in_pod(),
        )
        .unwrap();
        assert_eq!(r.source, Source::InCluster);
        // Naming a context that is not there fails even in a pod.
        let ctx = ConnectionSettings {
            context: Some("prod".into()),
            ..ConnectionSettings::default()
        };
        assert!(matches!(
            decide(&loaded(&[no_context]), &ctx, &in_pod()),
            Err(ConfigError::ContextNotFound { .. })
        ));
    }

    #[test]
    fn server_and_credentials_on_the_command_line_need_no_kubeconfig() {
        let opts = ConnectionSettings {
            server: Some("https://127.0.0.1:6443".into()),
            certificate_authority: Some("/pki/ca.crt".into()),
            token: Some(Secret::new("t0k3n")),
            namespace: Some("ignored-here".into()),
            ..ConnectionSettings::default()
        };
        let r = decide(&Loaded::default(), &opts, &in_pod()).unwrap();
        assert_eq!(
            r.source,
            Source::Kubeconfig {
                context: None,
                files: Vec::new()
            }
        );
        assert_eq!(
            cluster(&r).server.as_deref(),
            Some("https://127.0.0.1:6443")
        );
        assert_eq!(
            cluster(&r).certificate_authority.as_deref(),
            Some("/pki/ca.crt")
        );
        assert_eq!(
            user(&r)
                .token
                .as_ref()
                .map(|t| t.expose_secret().to_string()),
            Some("t0k3n".to_string())
        );
        // -n is applied by the caller; the resolved context has no namespace of its own.
        assert_eq!(r.namespace(), None);
    }

    #[test]
    fn context_cluster_and_user_flags_choose_the_entries() {
        let l = loaded(&[MAIN]);
        let opts = ConnectionSettings {
            context: Some("staging".into()),
            ..ConnectionSettings::default()
        };
        let r = decide(&l, &opts, &no_env()).unwrap();
        assert_eq!(cluster(&r).server.as_deref(), Some("https://10.1.2.3:6443"));
        assert_eq!(user(&r).token_file.as_deref(), Some("/home/alice/token"));
        assert_eq!(r.namespace(), None);

        let opts = ConnectionSettings {
            cluster: Some("staging".into()),
            user: Some("alice".into()),
            ..ConnectionSettings::default()
        };
        let r = decide(&l, &opts, &no_env()).unwrap();
        assert_eq!(cluster(&r).server.as_deref(), Some("https://10.1.2.3:6443"));
        assert_eq!(user(&r).token_file.as_deref(), Some("/home/alice/token"));
        // The current context's namespace stays.
        assert_eq!(r.namespace(), Some("shop"));
    }

    #[test]
    fn names_that_are_not_there_list_the_ones_that_are() {
        let l = loaded(&[MAIN]);
        let with = |f: fn(&mut ConnectionSettings)| {
            let mut o = ConnectionSettings::default();
            f(&mut o);
            decide(&l, &o, &no_env()).unwrap_err().to_string()
        };
        let e = with(|o| o.context = Some("qa".into()));
        assert!(
            e.contains("context \"qa\"") && e.contains("prod, staging, broken"),
            "{e}"
        );
        let e = with(|o| o.cluster = Some("qa".into()));
        assert!(
            e.contains("cluster \"qa\"") && e.contains("prod, staging"),
            "{e}"
        );
        let e = with(|o| o.user = Some("carol".into()));
        assert!(
            e.contains("user \"carol\"") && e.contains("alice, sso"),
            "{e}"
        );
        // A context pointing at a cluster that is not there, unless --server replaces it.
        let e = with(|o| o.context = Some("broken".into()));
        assert!(e.contains("cluster \"gone\""), "{e}");
        let mut o = ConnectionSettings {
            context: Some("broken".into()),
            server: Some("https://replacement:6443".into()),
            ..ConnectionSettings::default()
        };
        assert!(decide(&l, &o, &no_env()).is_ok());
        o.server = None;
        o.cluster = Some("prod".into());
        assert!(decide(&l, &o, &no_env()).is_ok());
    }

    #[test]
    fn server_and_trust_overrides_replace_the_kubeconfigs() {
        let l = loaded(&[MAIN]);
        let opts = ConnectionSettings {
            server: Some("https://10.0.0.9:6443".into()),
            ..ConnectionSettings::default()
        };
        let r = decide(&l, &opts, &no_env()).unwrap();
        let c = cluster(&r);
        assert_eq!(c.server.as_deref(), Some("https://10.0.0.9:6443"));
        // The kubeconfig's tls-server-name was for its own server.
        assert_eq!(c.tls_server_name, None);
        assert_eq!(c.certificate_authority_data.as_deref(), Some("Zm9v"));

        let opts = ConnectionSettings {
            certificate_authority: Some("/pki/ca.crt".into()),
            tls_server_name: Some("api.example".into()),
            ..ConnectionSettings::default()
        };
        let r = decide(&l, &opts, &no_env()).unwrap();
        let c = cluster(&r);
        assert_eq!(c.certificate_authority.as_deref(), Some("/pki/ca.crt"));
        assert_eq!(c.certificate_authority_data, None);
        assert_eq!(c.insecure_skip_tls_verify, Some(false));
        assert_eq!(c.tls_server_name.as_deref(), Some("api.example"));

        let opts = ConnectionSettings {
            insecure_skip_tls_verify: true,
            ..ConnectionSettings::default()
        };
        let r = decide(&l, &opts, &no_env()).unwrap();
        let c = cluster(&r);
        assert_eq!(c.insecure_skip_tls_verify, Some(true));
        assert_eq!(c.certificate_authority_data, None);
        assert_eq!(c.certificate_authority, None);
    }

    #[test]
    fn credentials_on_the_command_line_replace_the_credential_plugin() {
        let l = loaded(&[MAIN]);
        let plain = decide(&l, &ConnectionSettings::default(), &no_env()).unwrap();
        assert!(user(&plain).exec.is_some());
        assert!(credentials_may_prompt(plain.user()));

        let opts = ConnectionSettings {
            token: Some(Secret::new("abc")),
            ..ConnectionSettings::default()
        };
        let r = decide(&l, &opts, &no_env()).unwrap();
        assert!(user(&r).exec.is_none());
        assert!(!credentials_may_prompt(r.user()));

        let opts = ConnectionSettings {
            client_certificate: Some("/pki/me.crt".into()),
            client_key: Some("/pki/me.key".into()),
            ..ConnectionSettings::default()
        };
        let r = decide(&l, &opts, &no_env()).unwrap();
        let u = user(&r);
        assert!(u.exec.is_none());
        assert_eq!(u.client_certificate.as_deref(), Some("/pki/me.crt"));
        assert_eq!(u.client_key.as_deref(), Some("/pki/me.key"));

        // --token replaces a token file.
        let opts = ConnectionSettings {
            context: Some("staging".into()),
            token: Some(Secret::new("abc")),
            ..ConnectionSettings::default()
        };
        let r = decide(&l, &opts, &no_env()).unwrap();
        assert_eq!(user(&r).token_file, None);
    }

    #[test]
    fn a_plugin_that_never_prompts_keeps_the_spinner() {
        let never = kc(r#"
users:
- name: ci
  user:
    exec: {apiVersion: client.authentication.k8s.io/v1, command: aws, interactiveMode: Never}
"#);
        assert!(!credentials_may_prompt(
            never.auth_infos[0].auth_info.as_ref()
        ));
        let always = kc(r#"
users:
- name: me
  user:
    exec: {apiVersion: client.authentication.k8s.io/v1, command: kubelogin, interactiveMode: Always}
"#);
        assert!(credentials_may_prompt(
            always.auth_infos[0].auth_info.as_ref()
        ));
        assert!(!credentials_may_prompt(None));
    }

    #[test]
    fn impersonation_flags_replace_the_kubeconfigs() {
        let with_as = r#"
current-context: c
clusters: [{name: k, cluster: {server: "https://k:6443"}}]
users: [{name: u, user: {token: t, as: someone, as-groups: [old]}}]
contexts: [{name: c, context: {cluster: k, user: u}}]
"#;
        let opts = ConnectionSettings {
            impersonate: Some(Impersonation {
                user: "jane".into(),
                groups: vec!["devs".into(), "ops".into()],
                uid: Some("42".into()),
            }),
            ..ConnectionSettings::default()
        };
        let r = decide(&loaded(&[with_as]), &opts, &no_env()).unwrap();
        let u = user(&r);
        assert_eq!(u.impersonate.as_deref(), Some("jane"));
        assert_eq!(
            u.impersonate_groups,
            Some(vec!["devs".to_string(), "ops".to_string()])
        );
        assert_eq!(u.impersonate_uid.as_deref(), Some("42"));
        let r = decide(
            &loaded(&[with_as]),
            &ConnectionSettings::default(),
            &no_env(),
        )
        .unwrap();
        assert_eq!(user(&r).impersonate.as_deref(), Some("someone"));
    }

    #[tokio::test]
    async fn the_resolved_entry_becomes_the_kube_config() {
        let opts = ConnectionSettings {
            context: Some("staging".into()),
            // alice's token file does not exist here.
            token: Some(Secret::new("t")),
            impersonate: Some(Impersonation {
                user: "system:serviceaccount:ops:doctor".into(),
                groups: vec!["system:serviceaccounts".into()],
                uid: None,
            }),
            ..ConnectionSettings::default()
        };
        let r = decide(&loaded(&[MAIN]), &opts, &no_env()).unwrap();
        let proxy = r.cluster().and_then(|c| c.proxy_url.clone());
        let config = kube::Config::from_custom_kubeconfig(
            r.kubeconfig,
            &kube::config::KubeConfigOptions::default(),
        )
        .await
        .unwrap();
        assert_eq!(config.cluster_url.to_string(), "https://10.1.2.3:6443/");
        assert!(config.accept_invalid_certs);
        assert_eq!(
            config.auth_info.impersonate.as_deref(),
            Some("system:serviceaccount:ops:doctor")
        );
        assert_eq!(config.default_namespace, "default");
        // The staging cluster's socks5 proxy is honoured: kube's proxy support is compiled in.
        assert_eq!(proxy.as_deref(), Some("socks5://127.0.0.1:1080"));
        let mut config = config;
        config.proxy_url =
            proxy_for(&config.cluster_url, proxy.as_deref(), &ProxyEnv::default()).unwrap();
        if let Err(e) = kube::Client::try_from(config) {
            panic!("a socks5 proxy-url builds no client: {e}");
        }
    }

    #[tokio::test]
    async fn an_http_proxy_builds_a_client() {
        let mut config = kube::Config::new("https://10.1.2.3:6443".parse().unwrap());
        config.proxy_url = Some("http://proxy.corp:3128".parse().unwrap());
        if let Err(e) = kube::Client::try_from(config) {
            panic!("an http proxy builds no client: {e}");
        }
    }

    fn env_proxy(https: &str, no_proxy: &str) -> ProxyEnv {
        ProxyEnv {
            https_proxy: Some(https.into()),
            http_proxy: Some("http://plain-proxy:3128".into()),
            no_proxy: Some(no_proxy.into()).filter(|n: &String| !n.is_empty()),
        }
    }

    fn proxied(server: &str, kubeconfig: Option<&str>, env: &ProxyEnv) -> Option<String> {
        proxy_for(&server.parse().unwrap(), kubeconfig, env)
            .unwrap()
            .map(|u| u.to_string())
    }

    #[test]
    fn the_kubeconfigs_proxy_url_wins_and_ignores_no_proxy() {
        let env = env_proxy("http://corp:3128", "*");
        assert_eq!(
            proxied("https://127.0.0.1:6443", Some("socks5://jump:1080"), &env).as_deref(),
            Some("socks5://jump:1080/")
        );
    }

    #[test]
    fn https_proxy_applies_except_loopback_and_no_proxy() {
        let env = env_proxy("corp:3128", "");
        assert_eq!(
            proxied("https://api.example.com", None, &env).as_deref(),
            Some("http://corp:3128/")
        );
        assert_eq!(
            proxied("http://api.example.com", None, &env).as_deref(),
            Some("http://plain-proxy:3128/")
        );
        for loopback in [
            "https://127.0.0.1:6443",
            "https://localhost:6443",
            "https://[::1]:6443",
        ] {
            assert_eq!(proxied(loopback, None, &env), None, "{loopback}");
        }
        assert_eq!(
            proxied("https://api.example.com", None, &ProxyEnv::default()),
            None
        );
    }

    #[test]
    fn no_proxy_matches_as_go_does() {
        let cases = [
            ("example.com", "https://api.example.com", true),
            ("example.com", "https://example.com", true),
            (".example.com", "https://example.com", false),
            (".example.com", "https://api.example.com", true),
            ("*.example.com", "https://api.example.com", true),
            ("ample.com", "https://api.example.com", false),
            ("10.0.0.0/8", "https://10.1.2.3:6443", true),
            ("10.1.2.3", "https://10.1.2.3:6443", true),
            ("10.1.2.4", "https://10.1.2.3:6443", false),
            ("api.example.com:6443", "https://api.example.com:6443", true),
            ("api.example.com:443", "https://api.example.com:6443", false),
            ("api.example.com:443", "https://api.example.com", true),
            ("*", "https://anything", true),
            ("other.org, Example.COM", "https://api.example.com", true),
            ("[fd00::1]", "https://[fd00::1]:6443", true),
            ("fd00::/8", "https://[fd00::1]:6443", true),
        ];
        for (no_proxy, server, bypass) in cases {
            let env = env_proxy("http://corp:3128", no_proxy);
            assert_eq!(
                proxied(server, None, &env).is_none(),
                bypass,
                "NO_PROXY={no_proxy} server={server}"
            );
        }
    }

    #[test]
    fn a_malformed_proxy_says_where_it_came_from() {
        let env = env_proxy("http://", "");
        let err = proxy_for(&"https://api.example.com".parse().unwrap(), None, &env).unwrap_err();
        assert!(err.to_string().contains("HTTPS_PROXY"), "{err}");
    }

    #[test]
    fn an_ipv6_service_host_is_bracketed() {
        let ic = InCluster {
            host: "fd00::1".into(),
            port: "443".into(),
            namespace: "x".into(),
        };
        let kc = in_cluster_kubeconfig(&ic);
        assert_eq!(
            kc.clusters[0].cluster.as_ref().unwrap().server.as_deref(),
            Some("https://[fd00::1]:443")
        );
    }
}
