//! Command-line definitions, and their validation into a [`Command`].
//!
//! Nothing past this module sees unvalidated input: clap parses the raw flags into
//! [`Args`], and [`Args::validate`] turns them into the typed configuration the rest of the
//! program uses, or a [`UsageError`] that says what to type instead.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use thiserror::Error;

/// The debug image used when `--image` is not given.
pub const DEFAULT_IMAGE: &str = dns_doctor_schema::protocol::DEFAULT_IMAGE;
/// The cluster name resolved by default.
pub const DEFAULT_CLUSTER_NAME: &str = "kubernetes.default";
/// The external name resolved by default; override with `--external-name` or `--names`.
pub const DEFAULT_EXTERNAL_NAME: &str = "kubernetes.io";

const AFTER_HELP: &str = "\
Examples:
  kubectl dns-doctor pod/web-0 -n shop
  kubectl dns-doctor deploy/api -o json --output-dir ./dns-evidence
  kubectl dns-doctor analyze dns.pcap other.pcapng
  kubectl dns-doctor cleanup

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

    #[command(flatten)]
    pub kube: KubeArgs,

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
}

/// Flags shared by every subcommand that talks to a cluster.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct KubeArgs {
    /// Namespace of the target (default: the kubeconfig context's namespace).
    #[arg(short = 'n', long, value_name = "NAMESPACE", global = true)]
    pub namespace: Option<String>,

    /// Kubeconfig context to use.
    #[arg(long, value_name = "CONTEXT", global = true)]
    pub context: Option<String>,

    /// Path to the kubeconfig file (default: $KUBECONFIG, then ~/.kube/config).
    #[arg(long, value_name = "FILE", global = true)]
    pub kubeconfig: Option<PathBuf>,
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

/// Kinds of object a target may name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TargetKind {
    Pod,
    Deployment,
    StatefulSet,
    DaemonSet,
    Job,
}

impl TargetKind {
    fn parse(s: &str) -> Option<Self> {
        Some(match s.to_ascii_lowercase().as_str() {
            "pod" | "pods" | "po" => Self::Pod,
            "deployment" | "deployments" | "deploy" => Self::Deployment,
            "statefulset" | "statefulsets" | "sts" => Self::StatefulSet,
            "daemonset" | "daemonsets" | "ds" => Self::DaemonSet,
            "job" | "jobs" => Self::Job,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pod => "pod",
            Self::Deployment => "deployment",
            Self::StatefulSet => "statefulset",
            Self::DaemonSet => "daemonset",
            Self::Job => "job",
        }
    }
}

/// The object named on the command line.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TargetRef {
    pub kind: TargetKind,
    pub name: String,
}

impl std::fmt::Display for TargetRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.kind.as_str(), self.name)
    }
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

/// Where to find the cluster.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KubeOptions {
    pub namespace: Option<String>,
    pub context: Option<String>,
    pub kubeconfig: Option<PathBuf>,
}

impl From<KubeArgs> for KubeOptions {
    fn from(a: KubeArgs) -> Self {
        Self {
            namespace: a.namespace,
            context: a.context,
            kubeconfig: a.kubeconfig,
        }
    }
}

/// Validated configuration of a doctor run.
#[derive(Debug, Clone, PartialEq)]
pub struct DoctorConfig {
    pub target: TargetRef,
    pub kube: KubeOptions,
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
        kube: KubeOptions,
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
    #[error("unknown resource type {kind:?} in {given:?}; use pod, deployment (deploy), statefulset (sts), daemonset (ds) or job, e.g. pod/{name}")]
    UnknownKind {
        kind: String,
        name: String,
        given: String,
    },
    #[error("{given:?} has no name; write TYPE/NAME, e.g. pod/web-0")]
    EmptyName { given: String },
    #[error("{name:?} is not a valid DNS name to resolve")]
    BadName { name: String },
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
                    kube: self.kube.into(),
                },
                Some(SubCommand::Version { output }) => Command::Version { output },
                Some(SubCommand::Completions { shell }) => Command::Completions { shell },
                // clap enforces the target when no subcommand is given.
                None => unreachable!("clap requires a target or a subcommand"),
            });
        };
        let target = parse_target(&target)?;
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
            kube: self.kube.into(),
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

/// Parse `NAME` or `TYPE/NAME` the way kubectl does.
pub fn parse_target(given: &str) -> Result<TargetRef, UsageError> {
    let (kind, name) = match given.split_once('/') {
        None => (TargetKind::Pod, given),
        Some((kind, name)) => {
            let kind = TargetKind::parse(kind).ok_or_else(|| UsageError::UnknownKind {
                kind: kind.to_string(),
                name: name.to_string(),
                given: given.to_string(),
            })?;
            (kind, name)
        }
    };
    if name.is_empty() || name.contains('/') {
        return Err(UsageError::EmptyName {
            given: given.to_string(),
        });
    }
    Ok(TargetRef {
        kind,
        name: name.to_string(),
    })
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

/// Parse durations such as `90`, `90s`, `3m`, `1m30s`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let bad = || format!("{s:?} is not a duration; write e.g. 90s, 3m or 1m30s");
    if let Ok(secs) = s.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    let mut total = 0u64;
    let mut digits = String::new();
    for c in s.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let n: u64 = digits.parse().map_err(|_| bad())?;
        digits.clear();
        total += match c {
            'h' => n * 3600,
            'm' => n * 60,
            's' => n,
            _ => return Err(bad()),
        };
    }
    if !digits.is_empty() || s.is_empty() {
        return Err(bad());
    }
    Ok(Duration::from_secs(total))
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn workload_kinds_and_aliases() {
        for (given, kind) in [
            ("deploy/api", TargetKind::Deployment),
            ("deployment/api", TargetKind::Deployment),
            ("sts/api", TargetKind::StatefulSet),
            ("ds/api", TargetKind::DaemonSet),
            ("job/api", TargetKind::Job),
            ("pod/api", TargetKind::Pod),
        ] {
            assert_eq!(doctor(&[given]).target.kind, kind, "{given}");
        }
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
    fn durations() {
        assert_eq!(parse_duration("90").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("2h").unwrap(), Duration::from_secs(7200));
        assert!(parse_duration("5x").is_err());
        assert!(parse_duration("").is_err());
        assert!(parse_duration("m").is_err());
    }
}
