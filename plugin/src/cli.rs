//! Command-line definitions, and their validation into a [`Command`].
//!
//! Nothing past this module sees unvalidated input: clap parses the raw flags into
//! [`Args`], and [`Args::validate`] turns them into the typed configuration the rest of the
//! program uses, or a [`UsageError`] that says what to type instead.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use thiserror::Error;

use crate::kube::config::{ConnectionSettings, Impersonation, Secret};
use crate::target::{self, TargetError, TargetRef};

/// The debug image used when `--image` is not given.
pub const DEFAULT_IMAGE: &str = dns_doctor_schema::protocol::DEFAULT_IMAGE;
/// The cluster name resolved by default.
pub const DEFAULT_CLUSTER_NAME: &str = "kubernetes.default";
/// The external name resolved by default; override with `--external-name` or `--names`.
pub const DEFAULT_EXTERNAL_NAME: &str = "kubernetes.io";

const AFTER_HELP: &str = "\
Examples:
  kubectl dns-doctor pod/web-0 -n shop
  kubectl dns-doctor deploy/api -c app -o json --output-dir ./dns-evidence
  kubectl dns-doctor pod/web-0 --context prod --as system:serviceaccount:ops:doctor
  kubectl dns-doctor analyze dns.pcap other.pcapng
  kubectl dns-doctor cleanup

Shell completion: `kubectl dns-doctor <TAB>` with kubectl_complete-dns_doctor (shipped with
the plugin) on PATH.

Exit codes: 0 healthy, 1 problems found, 2 could not run, 130 interrupted.";

/// Raw command line, as clap parses it.
#[derive(Debug, Parser)]
#[command(
    name = "kubectl-dns_doctor",
    bin_name = "kubectl dns-doctor",
    version,
    about = "Find out why DNS fails for a pod, say what to do, and hand over the packets that prove it",
    after_help = AFTER_HELP,
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true
)]
pub struct Args {
    #[command(subcommand)]
    pub command: Option<SubCommand>,

    /// The pod to examine: NAME or TYPE/NAME, TYPE one of pod, deployment (deploy),
    /// statefulset (sts), daemonset (ds), job. For a workload a ready pod is chosen.
    #[arg(value_name = "[TYPE/]NAME", required = true)]
    pub target: Option<String>,

    /// Container whose network, resolver and libc are examined (default: the pod's
    /// kubectl.kubernetes.io/default-container annotation, then its first container).
    #[arg(short = 'c', long, value_name = "CONTAINER")]
    pub container: Option<String>,

    /// Report format on stdout.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,

    /// Names to resolve, comma separated (replaces the defaults: kubernetes.default and one
    /// external name).
    #[arg(long, value_delimiter = ',', value_name = "NAME,...")]
    pub names: Vec<String>,

    /// The external name resolved besides the cluster names.
    #[arg(long, value_name = "NAME", default_value = DEFAULT_EXTERNAL_NAME, env = "DNS_DOCTOR_EXTERNAL_NAME")]
    pub external_name: String,

    /// How long every capture point records, in seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 10)]
    pub capture_seconds: u64,

    /// Directory for the evidence bundle (pcaps, node snapshots, objects, report).
    #[arg(long, value_name = "DIR")]
    pub output_dir: Option<PathBuf>,

    /// Debug image for the injected containers and node pods.
    #[arg(long, value_name = "IMAGE", default_value = DEFAULT_IMAGE, env = "DNS_DOCTOR_IMAGE")]
    pub image: String,

    /// Do not capture packets (probes and checks only).
    #[arg(long)]
    pub no_capture: bool,

    /// Do not start privileged node pods (no rule dumps, no conntrack counters, no node captures).
    #[arg(long)]
    pub no_node_checks: bool,

    /// Upper bound for the whole run, cleanup included (e.g. 90s, 3m).
    #[arg(long, value_name = "DURATION", default_value = "120s", value_parser = parse_duration)]
    pub timeout: Duration,

    /// Rounds of the parallel A+AAAA test (the conntrack race check).
    #[arg(long, value_name = "N", default_value_t = 20)]
    pub parallel_rounds: u32,

    /// Namespace for the node-debug pods (privileged; needs a Pod Security level of privileged).
    #[arg(long, value_name = "NAMESPACE", default_value = "kube-system")]
    pub node_namespace: String,

    #[command(flatten)]
    pub verbosity: VerbosityArgs,

    // Last: its help heading applies to the flags that follow it.
    #[command(flatten)]
    pub kube: KubeArgs,
}

/// kubectl's connection flags (its genericclioptions) that kube-rs can honour, shared by
/// every subcommand that talks to a cluster.
#[derive(Debug, Clone, Default, clap::Args)]
#[command(next_help_heading = "Cluster connection (as kubectl)")]
pub struct KubeArgs {
    /// Namespace of the target (default: the kubeconfig context's namespace, or the pod's own
    /// namespace when running in a pod).
    #[arg(short = 'n', long, value_name = "NAMESPACE", global = true)]
    pub namespace: Option<String>,

    /// Kubeconfig context to use.
    #[arg(long, value_name = "CONTEXT", global = true)]
    pub context: Option<String>,

    /// Kubeconfig cluster to use (instead of the context's).
    #[arg(long, value_name = "CLUSTER", global = true)]
    pub cluster: Option<String>,

    /// Kubeconfig user to use (instead of the context's).
    #[arg(long, value_name = "USER", global = true)]
    pub user: Option<String>,

    /// Path to the kubeconfig file (default: the files in $KUBECONFIG, then ~/.kube/config;
    /// without any, the pod's service account when running in a pod).
    #[arg(long, value_name = "FILE", global = true)]
    pub kubeconfig: Option<PathBuf>,

    /// User to impersonate: a user name or system:serviceaccount:NAMESPACE:NAME.
    #[arg(long = "as", value_name = "USER", global = true)]
    pub impersonate: Option<String>,

    /// Group to impersonate (repeat for several); needs --as.
    #[arg(long = "as-group", value_name = "GROUP", global = true)]
    pub impersonate_groups: Vec<String>,

    /// UID to impersonate; needs --as.
    #[arg(long = "as-uid", value_name = "UID", global = true)]
    pub impersonate_uid: Option<String>,

    /// How long one API request may take until its response starts (e.g. 10s, 1m; 0: no
    /// limit). Streams from the probes are not cut by it.
    #[arg(long, value_name = "DURATION", default_value = "0", global = true, value_parser = parse_duration)]
    pub request_timeout: Duration,

    /// Bearer token for authentication to the API server.
    #[arg(long, value_name = "TOKEN", global = true)]
    pub token: Option<String>,

    /// Address and port of the API server (e.g. https://10.0.0.1:6443).
    #[arg(short = 's', long, value_name = "URL", global = true)]
    pub server: Option<String>,

    /// Path to a CA certificate file for the API server's certificate.
    #[arg(long, value_name = "FILE", global = true)]
    pub certificate_authority: Option<PathBuf>,

    /// Do not check the API server's certificate (insecure).
    #[arg(long, global = true)]
    pub insecure_skip_tls_verify: bool,

    /// Path to a client certificate file for TLS; needs --client-key.
    #[arg(long, value_name = "FILE", global = true)]
    pub client_certificate: Option<PathBuf>,

    /// Path to a client key file for TLS; needs --client-certificate.
    #[arg(long, value_name = "FILE", global = true)]
    pub client_key: Option<PathBuf>,

    /// Server name to check the API server's certificate against (default: the server's
    /// host name).
    #[arg(long, value_name = "NAME", global = true)]
    pub tls_server_name: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, clap::Args)]
pub struct VerbosityArgs {
    /// More logging on stderr (-v debug, -vv trace). RUST_LOG overrides.
    #[arg(short = 'v', long = "verbose", action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,

    /// No progress display and no logging below errors.
    #[arg(short = 'q', long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
}

#[derive(Debug, Subcommand)]
pub enum SubCommand {
    /// Analyse packet captures taken anywhere (tcpdump, ksniff, Retina, Wireshark).
    Analyze {
        /// pcap or pcapng files.
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
        /// Report format.
        #[arg(short = 'o', long = "output", value_enum, default_value_t = OutputFormat::Text)]
        output: OutputFormat,
    },
    /// Delete the node pods and Jobs dns-doctor left behind (by label): in all namespaces
    /// when allowed, else in kube-system; with -n, in that namespace only.
    Cleanup,
    /// Print the plugin version, the probe schema version and the default debug image.
    Version {
        #[arg(short = 'o', long = "output", value_enum, default_value_t = OutputFormat::Text)]
        output: OutputFormat,
    },
    /// Print a shell completion script.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Text,
    Json,
    Yaml,
}

/// How much to say on stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verbosity {
    Quiet,
    Normal,
    Verbose,
    Trace,
}

impl From<VerbosityArgs> for Verbosity {
    fn from(v: VerbosityArgs) -> Self {
        match (v.quiet, v.verbose) {
            (true, _) => Self::Quiet,
            (false, 0) => Self::Normal,
            (false, 1) => Self::Verbose,
            (false, _) => Self::Trace,
        }
    }
}

impl KubeArgs {
    /// Check the connection flags the way kubectl (client-go) does. Empty values count as
    /// not given, as in kubectl.
    pub fn validate(self) -> Result<ConnectionSettings, UsageError> {
        let given = |v: Option<String>| v.filter(|s| !s.is_empty());
        let path = |v: Option<PathBuf>| v.filter(|p| !p.as_os_str().is_empty());
        let groups: Vec<String> = self
            .impersonate_groups
            .into_iter()
            .filter(|g| !g.is_empty())
            .collect();
        let uid = given(self.impersonate_uid);
        let impersonate = match given(self.impersonate) {
            Some(user) => Some(Impersonation { user, groups, uid }),
            None if !groups.is_empty() || uid.is_some() => {
                return Err(UsageError::ImpersonationWithoutUser)
            }
            None => None,
        };
        let certificate_authority = path(self.certificate_authority);
        if self.insecure_skip_tls_verify && certificate_authority.is_some() {
            return Err(UsageError::InsecureWithCertificateAuthority);
        }
        let client_certificate = path(self.client_certificate);
        let client_key = path(self.client_key);
        if client_certificate.is_some() != client_key.is_some() {
            return Err(UsageError::ClientCertificateWithoutKey);
        }
        let server = given(self.server).map(|s| server_url(&s)).transpose()?;
        Ok(ConnectionSettings {
            namespace: given(self.namespace),
            context: given(self.context),
            cluster: given(self.cluster),
            user: given(self.user),
            kubeconfig: path(self.kubeconfig),
            impersonate,
            request_timeout: (!self.request_timeout.is_zero()).then_some(self.request_timeout),
            token: given(self.token).map(Secret::new),
            server,
            certificate_authority,
            insecure_skip_tls_verify: self.insecure_skip_tls_verify,
            client_certificate,
            client_key,
            tls_server_name: given(self.tls_server_name),
        })
    }
}

/// `--server` as an absolute URL; `host:port` alone means https, as in kubectl.
fn server_url(given: &str) -> Result<String, UsageError> {
    let url = if given.contains("://") {
        given.to_string()
    } else {
        format!("https://{given}")
    };
    let bad = || UsageError::ServerUrl {
        given: given.to_string(),
    };
    let uri: http::Uri = url.parse().map_err(|_| bad())?;
    match (uri.scheme_str(), uri.host()) {
        (Some("https" | "http"), Some(host)) if !host.is_empty() => Ok(url),
        _ => Err(bad()),
    }
}

/// Validated configuration of a doctor run.
#[derive(Debug, Clone, PartialEq)]
pub struct DoctorConfig {
    pub target: TargetRef,
    /// The container asked for with -c; None picks the default one.
    pub container: Option<String>,
    pub kube: ConnectionSettings,
    pub output: OutputFormat,
    /// Names to resolve, in order; each marked as expected inside or outside the cluster.
    pub names: Vec<String>,
    pub capture_seconds: u64,
    pub output_dir: Option<PathBuf>,
    pub image: String,
    pub capture: bool,
    pub node_checks: bool,
    pub timeout: Duration,
    pub parallel_rounds: u32,
    pub node_namespace: String,
    pub verbosity: Verbosity,
}

/// What the user asked for, validated.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    Doctor(Box<DoctorConfig>),
    Analyze {
        files: Vec<PathBuf>,
        output: OutputFormat,
    },
    Cleanup {
        kube: Box<ConnectionSettings>,
    },
    Version {
        output: OutputFormat,
    },
    Completions {
        shell: clap_complete::Shell,
    },
}

/// A command line that parsed but makes no sense.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum UsageError {
    #[error(transparent)]
    Target(#[from] TargetError),
    #[error("{name:?} is not a valid DNS name to resolve")]
    BadName { name: String },
    #[error("{name:?} is not a container name: container names are lowercase letters, digits and '-', at most 63 characters")]
    BadContainerName { name: String },
    #[error("--as-group and --as-uid need --as: say which user to impersonate")]
    ImpersonationWithoutUser,
    #[error("--insecure-skip-tls-verify and --certificate-authority contradict each other: give one of them")]
    InsecureWithCertificateAuthority,
    #[error("--client-certificate and --client-key go together: give both")]
    ClientCertificateWithoutKey,
    #[error("--server {given:?} is not an API server URL; write e.g. https://10.0.0.1:6443")]
    ServerUrl { given: String },
    #[error("--capture-seconds must be between 1 and 600, got {0}")]
    CaptureSeconds(u64),
    #[error("--parallel-rounds must be between 1 and 1000, got {0}")]
    ParallelRounds(u32),
    #[error(
        "--timeout {timeout}s leaves no room for a {capture}s capture; use --timeout of at least {need}s or a shorter --capture-seconds"
    )]
    TimeoutTooShort {
        timeout: u64,
        capture: u64,
        need: u64,
    },
}

/// Fixed costs of a run besides the capture window (injection, probes, cleanup), seconds.
const RUN_OVERHEAD_SECS: u64 = 30;

impl Args {
    /// Check the flags and build the typed configuration.
    pub fn validate(self) -> Result<Command, UsageError> {
        let Some(target) = self.target else {
            return Ok(match self.command {
                Some(SubCommand::Analyze { files, output }) => Command::Analyze { files, output },
                Some(SubCommand::Cleanup) => Command::Cleanup {
                    kube: Box::new(self.kube.validate()?),
                },
                Some(SubCommand::Version { output }) => Command::Version { output },
                Some(SubCommand::Completions { shell }) => Command::Completions { shell },
                // clap enforces the target when no subcommand is given.
                None => unreachable!("clap requires a target or a subcommand"),
            });
        };
        let target = target::parse(&target)?;
        let kube = self.kube.validate()?;
        let container = self.container.filter(|c| !c.is_empty());
        if let Some(name) = &container {
            if !is_dns_label(name) {
                return Err(UsageError::BadContainerName { name: name.clone() });
            }
        }
        let names = if self.names.is_empty() {
            vec![DEFAULT_CLUSTER_NAME.to_string(), self.external_name.clone()]
        } else {
            self.names
        };
        for name in &names {
            validate_name(name)?;
        }
        if !(1..=600).contains(&self.capture_seconds) {
            return Err(UsageError::CaptureSeconds(self.capture_seconds));
        }
        if !(1..=1000).contains(&self.parallel_rounds) {
            return Err(UsageError::ParallelRounds(self.parallel_rounds));
        }
        let capture_need = if self.no_capture {
            0
        } else {
            self.capture_seconds
        };
        let need = capture_need + RUN_OVERHEAD_SECS;
        if self.timeout.as_secs() < need {
            return Err(UsageError::TimeoutTooShort {
                timeout: self.timeout.as_secs(),
                capture: capture_need,
                need,
            });
        }
        Ok(Command::Doctor(Box::new(DoctorConfig {
            target,
            container,
            kube,
            output: self.output,
            names,
            capture_seconds: self.capture_seconds,
            output_dir: self.output_dir,
            image: self.image,
            capture: !self.no_capture,
            node_checks: !self.no_node_checks,
            timeout: self.timeout,
            parallel_rounds: self.parallel_rounds,
            node_namespace: self.node_namespace,
            verbosity: self.verbosity.into(),
        })))
    }
}

/// An RFC 1123 label, what Kubernetes requires of a container name.
fn is_dns_label(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-')
}

fn validate_name(name: &str) -> Result<(), UsageError> {
    let trimmed = name.strip_suffix('.').unwrap_or(name);
    let ok = !trimmed.is_empty()
        && trimmed.len() <= 253
        && trimmed.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
    if ok {
        Ok(())
    } else {
        Err(UsageError::BadName {
            name: name.to_string(),
        })
    }
}

/// Parse durations such as `90` (seconds), `90s`, `3m`, `1m30s`, `500ms`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let bad = || format!("{s:?} is not a duration; write e.g. 90s, 3m, 1m30s or 500ms");
    if let Ok(secs) = s.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    if s.is_empty() {
        return Err(bad());
    }
    let mut total = Duration::ZERO;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        let unit = rest[digits..]
            .bytes()
            .take_while(u8::is_ascii_alphabetic)
            .count();
        let n: u64 = rest[..digits].parse().map_err(|_| bad())?;
        total += match &rest[digits..digits + unit] {
            "h" => Duration::from_secs(n * 3600),
            "m" => Duration::from_secs(n * 60),
            "s" => Duration::from_secs(n),
            "ms" => Duration::from_millis(n),
            _ => return Err(bad()),
        };
        rest = &rest[digits + unit..];
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::target::TargetKind;

    fn parse(args: &[&str]) -> Result<Command, String> {
        let mut full = vec!["kubectl-dns_doctor"];
        full.extend_from_slice(args);
        Args::try_parse_from(full)
            .map_err(|e| e.to_string())?
            .validate()
            .map_err(|e| e.to_string())
    }

    fn doctor(args: &[&str]) -> DoctorConfig {
        match parse(args).unwrap() {
            Command::Doctor(c) => *c,
            other => panic!("expected a doctor run, got {other:?}"),
        }
    }

    #[test]
    fn bare_name_is_a_pod_with_default_names() {
        let c = doctor(&["web-0"]);
        assert_eq!(c.target.kind, TargetKind::Pod);
        assert_eq!(c.target.name, "web-0");
        assert_eq!(c.names, vec!["kubernetes.default", DEFAULT_EXTERNAL_NAME]);
        assert_eq!(c.image, DEFAULT_IMAGE);
        assert!(c.capture && c.node_checks);
    }

    #[test]
    fn a_workload_target_is_parsed_as_kubectl_names_objects() {
        assert_eq!(
            doctor(&["deploy/api"]).target,
            TargetRef {
                kind: TargetKind::Deployment,
                name: "api".into()
            }
        );
    }

    #[test]
    fn unknown_kind_names_the_choices() {
        let err = parse(&["svc/kube-dns"]).unwrap_err();
        assert!(err.contains("unknown resource type \"svc\""), "{err}");
        assert!(err.contains("deployment (deploy)"), "{err}");
    }

    #[test]
    fn external_name_override_and_names_list() {
        let c = doctor(&["p", "--external-name", "external.test"]);
        assert_eq!(c.names, vec!["kubernetes.default", "external.test"]);
        let c = doctor(&["p", "--names", "a.b,c.d."]);
        assert_eq!(c.names, vec!["a.b", "c.d."]);
        assert!(parse(&["p", "--names", "bad name"]).is_err());
    }

    #[test]
    fn timeout_must_cover_the_capture() {
        let err = parse(&["p", "--timeout", "20s", "--capture-seconds", "10"]).unwrap_err();
        assert!(err.contains("at least 40s"), "{err}");
        let c = doctor(&["p", "--timeout", "30s", "--no-capture"]);
        assert!(!c.capture);
    }

    #[test]
    fn subcommands_parse() {
        assert!(matches!(
            parse(&["analyze", "a.pcap", "-o", "json"]).unwrap(),
            Command::Analyze {
                output: OutputFormat::Json,
                ..
            }
        ));
        assert!(matches!(
            parse(&["cleanup", "--context", "x"]).unwrap(),
            Command::Cleanup { kube } if kube.context.as_deref() == Some("x")
        ));
        assert!(parse(&["analyze"]).is_err());
        assert!(parse(&[]).is_err());
    }

    #[test]
    fn connection_flags_become_connection_settings() {
        let c = doctor(&[
            "p",
            "--context",
            "prod",
            "--cluster",
            "c1",
            "--user",
            "u1",
            "--as",
            "system:serviceaccount:ops:doctor",
            "--as-group",
            "a",
            "--as-group",
            "b",
            "--request-timeout",
            "1500ms",
            "--token",
            "s3cret",
            "-s",
            "10.0.0.1:6443",
            "--certificate-authority",
            "/pki/ca.crt",
            "--client-certificate",
            "/pki/me.crt",
            "--client-key",
            "/pki/me.key",
            "--tls-server-name",
            "api",
        ]);
        let k = &c.kube;
        assert_eq!(k.context.as_deref(), Some("prod"));
        assert_eq!(k.cluster.as_deref(), Some("c1"));
        assert_eq!(k.user.as_deref(), Some("u1"));
        assert_eq!(
            k.impersonate,
            Some(Impersonation {
                user: "system:serviceaccount:ops:doctor".into(),
                groups: vec!["a".into(), "b".into()],
                uid: None
            })
        );
        assert_eq!(k.request_timeout, Some(Duration::from_millis(1500)));
        assert_eq!(k.token.as_ref().map(Secret::expose), Some("s3cret"));
        // host:port means https, as in kubectl.
        assert_eq!(k.server.as_deref(), Some("https://10.0.0.1:6443"));
        assert_eq!(k.tls_server_name.as_deref(), Some("api"));
        // The token never shows in debug output (logs print configurations).
        assert!(!format!("{c:?}").contains("s3cret"));
        // 0, the default, means no limit; empty values count as not given.
        let c = doctor(&["p", "--request-timeout", "0", "--token", "", "--as", ""]);
        assert_eq!(c.kube.request_timeout, None);
        assert_eq!(c.kube.token, None);
        assert_eq!(c.kube.impersonate, None);
        // Global: the cleanup subcommand takes them too.
        assert!(matches!(
            parse(&["cleanup", "--as", "x", "--insecure-skip-tls-verify"]).unwrap(),
            Command::Cleanup { kube } if kube.insecure_skip_tls_verify && kube.impersonate.is_some()
        ));
    }

    #[test]
    fn contradicting_connection_flags_are_refused_as_kubectl_does() {
        for (args, says) in [
            (
                &["p", "--as-group", "g"][..],
                "--as-group and --as-uid need --as",
            ),
            (&["p", "--as-uid", "1"][..], "need --as"),
            (
                &[
                    "p",
                    "--insecure-skip-tls-verify",
                    "--certificate-authority",
                    "ca",
                ][..],
                "contradict",
            ),
            (&["p", "--client-certificate", "c"][..], "give both"),
            (&["p", "--client-key", "k"][..], "give both"),
            (&["p", "--server", "ftp://x"][..], "not an API server URL"),
            (&["p", "--server", "https://"][..], "not an API server URL"),
            (&["p", "--request-timeout", "soon"][..], "not a duration"),
        ] {
            let err = parse(args).unwrap_err();
            assert!(err.contains(says), "{args:?}: {err}");
        }
    }

    #[test]
    fn container_flag() {
        assert_eq!(
            doctor(&["p", "-c", "app"]).container.as_deref(),
            Some("app")
        );
        assert_eq!(
            doctor(&["p", "--container", "istio-proxy"])
                .container
                .as_deref(),
            Some("istio-proxy")
        );
        assert_eq!(doctor(&["p"]).container, None);
        for bad in ["App", "x-", "a_b", &"a".repeat(64)] {
            let err = parse(&["p", "-c", bad]).unwrap_err();
            assert!(err.contains("is not a container name"), "{bad}: {err}");
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(
            parse_duration("1m2s300ms").unwrap(),
            Duration::from_millis(62_300)
        );
        assert!(parse_duration("5").is_ok());
        assert!(parse_duration("1.5s").is_err());
        assert_eq!(parse_duration("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("2h").unwrap(), Duration::from_secs(7200));
        assert!(parse_duration("5x").is_err());
        assert!(parse_duration("").is_err());
        assert!(parse_duration("m").is_err());
    }
}
