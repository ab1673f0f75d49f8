//! Command line: clap definitions, their validation into mode configurations, and the run
//! that ties a mode to its watchdog. Nothing past this file sees unvalidated input.

use crate::capture::{self, CaptureConfig, CaptureProgress, Output};
use crate::child;
use crate::lifecycle;
use crate::node::{self, NodeConfig};
use crate::output::{self, RunClock, Sink};
use crate::pod::{self, PodConfig};
use crate::schema::{ProbeResult, ServerRole, SCHEMA_VERSION};
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// Exit code when the probe measured (whatever it found).
pub const EXIT_MEASURED: i32 = 0;
/// Exit code when the probe could not run (bad arguments, tcpdump missing, ...).
pub const EXIT_CANNOT_RUN: i32 = 2;

/// The probe's command line: one subcommand per mode.
#[derive(Debug, Parser)]
#[command(
    name = "dns-doctor-probe",
    version,
    about = "Collects DNS evidence in a pod or on a node; prints one JSON document on stdout"
)]
pub struct Cli {
    #[command(subcommand)]
    pub mode: Mode,
    /// Tag of the dns-doctor run this process belongs to; `stop --run` finds it by it.
    #[arg(long, global = true, value_name = "ID")]
    pub run: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum Mode {
    /// Measure DNS as the target pod sees it (run as an ephemeral container in the pod).
    Pod(PodArgs),
    /// Snapshot the node's packet path (run in a hostNetwork, hostPID, privileged pod).
    Node(NodeArgs),
    /// Capture DNS packets with tcpdump, bounded in time and size.
    Capture(CaptureArgs),
    /// Print the probe version, the schema version and the default image as JSON.
    Version,
    /// Keep the container open for exec; exit after --seconds or on SIGTERM.
    Hold(HoldArgs),
    /// End this run's probe processes (those started with the same --run) early.
    Stop(StopArgs),
    /// Print the PIDs of a pod's processes on this node, found by pod UID, as JSON.
    FindPod(FindPodArgs),
}

#[derive(Debug, Args)]
pub struct HoldArgs {
    /// How long to stay.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub seconds: u64,
}

#[derive(Debug, Args)]
pub struct StopArgs {
    /// Only processes of this mode (e.g. capture); default: every mode, hold included.
    #[arg(long, value_name = "MODE")]
    pub only: Option<String>,
    /// How long to wait for them to exit.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(0..=60))]
    pub wait_secs: u64,
    /// Where processes are looked up (tests point it elsewhere).
    #[arg(long, hide = true, default_value = "/proc")]
    pub proc_root: PathBuf,
}

#[derive(Debug, Args)]
pub struct FindPodArgs {
    /// The pod's metadata.uid.
    #[arg(long)]
    pub uid: String,
    /// Where processes are looked up (tests point it elsewhere).
    #[arg(long, hide = true, default_value = "/proc")]
    pub proc_root: PathBuf,
}

#[derive(Debug, Args)]
pub struct PodArgs {
    /// A DNS endpoint (a DNS pod's address) to test directly, IP or IP:PORT. Repeatable.
    #[arg(long = "endpoint", value_name = "ADDR", value_parser = parse_server)]
    pub endpoints: Vec<SocketAddr>,
    /// An extra server to test, IP or IP:PORT (tested with --role). Repeatable.
    #[arg(long = "server", value_name = "ADDR", value_parser = parse_server)]
    pub servers: Vec<SocketAddr>,
    /// What the --server addresses are.
    #[arg(long, value_enum, default_value_t = RoleArg::Explicit)]
    pub role: RoleArg,
    /// A name to resolve as an application would (search list applied). Repeatable.
    #[arg(
        long = "name",
        value_name = "NAME",
        default_value = "kubernetes.default"
    )]
    pub names: Vec<String>,
    /// Do not query the nameservers of resolv.conf (its search list and ndots still apply).
    #[arg(long)]
    pub no_resolv_conf: bool,
    /// Rounds of the parallel A+AAAA test per server (0 disables it).
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(0..=1000))]
    pub parallel_rounds: u32,
    /// How long each parallel round waits for its two replies.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=30_000))]
    pub parallel_wait_ms: u64,
    /// Name asked in the parallel rounds (default: the first --name as it resolved).
    #[arg(long, value_name = "NAME")]
    pub parallel_name: Option<String>,
    /// Time limit of each single query and TCP connect.
    #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u64).range(1..=60_000))]
    pub timeout_ms: u64,
    /// Queries in flight at once.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u64).range(1..=256))]
    pub concurrency: u64,
    /// Hard limit of the whole run; the partial result is printed when it passes.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub deadline_secs: u64,
    /// The resolv.conf to read (tests point it elsewhere).
    #[arg(long, hide = true, default_value = "/etc/resolv.conf")]
    pub resolv_conf: PathBuf,
    /// Where processes are looked up for libc detection (tests point it elsewhere).
    #[arg(long, hide = true, default_value = "/proc")]
    pub proc_root: PathBuf,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum RoleArg {
    Upstream,
    Explicit,
}

#[derive(Debug, Args)]
pub struct NodeArgs {
    /// Node name recorded in the snapshot (default: this host's name).
    #[arg(long)]
    pub node_name: Option<String>,
    /// Longest time between the two `conntrack -S` snapshots; SIGTERM or SIGINT (e.g.
    /// `stop --only node`) ends the window early, and the snapshot is completed and printed.
    #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u64).range(0..=60_000))]
    pub conntrack_window_ms: u64,
    /// Limit for each command run.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=600))]
    pub command_timeout_secs: u64,
    /// Hard limit of the whole run; the partial result is printed when it passes.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub deadline_secs: u64,
    /// A DNS Service address, IP or IP:PORT (port 53 when omitted), whose UDP conntrack
    /// entries are listed before and after the window. Repeatable.
    #[arg(long = "dns-service", value_name = "ADDR", value_parser = parse_server)]
    pub dns_services: Vec<SocketAddr>,
    /// Most bytes kept of each conntrack listing; the rest is read and counted, not kept.
    #[arg(long, default_value_t = 2 * 1024 * 1024, value_parser = clap::value_parser!(u64).range(1024..=256 * 1024 * 1024))]
    pub conntrack_list_max_bytes: u64,
    /// A pod (metadata.uid) on this node whose cgroup CPU and memory files are read at the
    /// start and at the end of the window. Repeatable.
    #[arg(long = "pod-uid", value_name = "UID")]
    pub pod_uids: Vec<String>,
    /// Where the host's cgroup mount is looked for, in order (default: through PID 1, the
    /// kubelet or the container runtime, then this pod's own mount; tests point it elsewhere).
    #[arg(long = "cgroup-root", hide = true)]
    pub cgroup_roots: Vec<PathBuf>,
}

#[derive(Debug, Args)]
pub struct CaptureArgs {
    /// Interface to capture on (`any` writes LINUX_SLL2).
    #[arg(long, short = 'i', default_value = "any")]
    pub interface: String,
    /// tcpdump filter expression.
    #[arg(long, default_value = "port 53")]
    pub filter: String,
    /// Capture inside this process's network namespace (nsenter -t PID -n).
    #[arg(long, value_name = "PID")]
    pub netns_pid: Option<u32>,
    /// Where the pcap goes: a file path, or `-` for stdout (the summary then goes to stderr).
    #[arg(long, short = 'w', default_value = "-")]
    pub output: String,
    /// How long to capture.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub seconds: u64,
    /// Stop once the pcap would grow past this many bytes (it is cut between packets).
    #[arg(long, default_value_t = 64 * 1024 * 1024, value_parser = clap::value_parser!(u64).range(24..))]
    pub max_bytes: u64,
    /// Bytes kept of each packet (tcpdump -s). DNS messages over UDP rarely exceed 4096.
    #[arg(long, default_value_t = 16384, value_parser = clap::value_parser!(u32).range(128..=262_144))]
    pub snaplen: u32,
    /// Kernel capture ring size in KiB (tcpdump -B): room for bursts at the snaplen.
    #[arg(long, default_value_t = 8192, value_parser = clap::value_parser!(u32).range(256..=262_144))]
    pub buffer_kib: u32,
    /// Stop when stdin reaches end of file (an exec stream closing).
    #[arg(long)]
    pub stop_on_stdin_close: bool,
    /// Hard limit of the whole run (default: --seconds + 10).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=7200))]
    pub deadline_secs: Option<u64>,
}

/// IP or IP:PORT (IPv6 with a port in brackets); port 53 when omitted.
fn parse_server(text: &str) -> Result<SocketAddr, String> {
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok(addr);
    }
    text.parse::<IpAddr>()
        .map(|ip| SocketAddr::new(ip, 53))
        .map_err(|_| format!("{text:?} is not an IP address or IP:PORT"))
}

/// Parses the command line, runs the mode and returns the process exit code.
pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() {
                EXIT_CANNOT_RUN
            } else {
                EXIT_MEASURED
            };
            let _ = e.print();
            return code;
        }
    };
    match cli.mode {
        Mode::Hold(args) => match lifecycle::hold(args.seconds) {
            Ok(()) => EXIT_MEASURED,
            Err(e) => {
                output::log(&format!("dns-doctor-probe: hold: {e}"));
                EXIT_CANNOT_RUN
            }
        },
        Mode::Stop(args) => {
            let Some(run) = cli.run else {
                output::log("dns-doctor-probe: stop needs --run ID");
                return EXIT_CANNOT_RUN;
            };
            let stopped = lifecycle::stop(
                &args.proc_root,
                &run,
                args.only.as_deref(),
                Duration::from_secs(args.wait_secs),
            );
            output::emit_value(&serde_json::json!({ "run": run, "signalled": stopped }));
            EXIT_MEASURED
        }
        Mode::FindPod(args) => {
            let pids = lifecycle::find_pod(&args.proc_root, &args.uid);
            output::emit_value(&serde_json::json!({ "uid": args.uid, "pids": pids }));
            EXIT_MEASURED
        }
        Mode::Pod(args) => run_pod(args),
        Mode::Node(args) => run_node(args),
        Mode::Capture(args) => run_capture(args),
        Mode::Version => {
            let version = serde_json::json!({
                "probe_version": env!("CARGO_PKG_VERSION"),
                "schema_version": SCHEMA_VERSION,
                "default_image": crate::DEFAULT_IMAGE,
            });
            output::emit_value(&version);
            EXIT_MEASURED
        }
    }
}

fn run_pod(args: PodArgs) -> i32 {
    let clock = RunClock::start();
    let role = match args.role {
        RoleArg::Upstream => ServerRole::Upstream,
        RoleArg::Explicit => ServerRole::Explicit,
    };
    let config = PodConfig {
        resolv_conf: args.resolv_conf,
        use_nameservers: !args.no_resolv_conf,
        endpoints: args.endpoints,
        servers: args.servers.into_iter().map(|s| (s, role)).collect(),
        names: args.names,
        timeout: Duration::from_millis(args.timeout_ms),
        parallel_rounds: args.parallel_rounds,
        parallel_wait: Duration::from_millis(args.parallel_wait_ms),
        parallel_name: args.parallel_name,
        concurrency: usize::try_from(args.concurrency).unwrap_or(1),
        proc_root: args.proc_root,
    };
    let report: pod::SharedReport = Arc::new(Mutex::new(pod::empty_report(&config.resolv_conf)));
    let partial = Arc::clone(&report);
    output::start_watchdog(
        Duration::from_secs(args.deadline_secs),
        clock,
        Sink::Stdout,
        Box::new(move || {
            ProbeResult::Pod(
                partial
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .clone(),
            )
        }),
        Box::new(child::kill_current),
    );
    pod::run(&config, &report);
    let result = report
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    output::emit(
        &clock.document(ProbeResult::Pod(result), false),
        Sink::Stdout,
    );
    EXIT_MEASURED
}

fn run_node(args: NodeArgs) -> i32 {
    let clock = RunClock::start();
    // SIGTERM/SIGINT end the conntrack window; blocked before any thread starts so that the
    // waiting thread below receives them. Without that, the window just runs its length.
    let (window_end, window_ended) = std::sync::mpsc::channel::<()>();
    // Held until the end when no thread waits for the signal: a dropped sender would end
    // the window at once.
    let _unsignalled = match child::block_termination_signals() {
        Ok(()) => {
            std::thread::spawn(move || {
                if child::wait_termination_signal().is_ok() {
                    let _ = window_end.send(());
                }
            });
            None
        }
        Err(e) => {
            output::log(&format!(
                "cannot block SIGTERM ({e}); the conntrack window cannot be ended early"
            ));
            Some(window_end)
        }
    };
    let node_name = args.node_name.unwrap_or_else(|| {
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_owned())
            .unwrap_or_default()
    });
    let config = NodeConfig {
        node_name,
        conntrack_window: Duration::from_millis(args.conntrack_window_ms),
        command_timeout: Duration::from_secs(args.command_timeout_secs),
        http_timeout: Duration::from_secs(2),
        dns_services: args.dns_services,
        conntrack_list_max_bytes: usize::try_from(args.conntrack_list_max_bytes)
            .unwrap_or(usize::MAX),
        pod_uids: args.pod_uids,
        cgroup_roots: if args.cgroup_roots.is_empty() {
            crate::cgroup::host_cgroup_roots(std::path::Path::new("/proc"))
        } else {
            args.cgroup_roots
        },
    };
    let snapshot: node::SharedSnapshot = Arc::new(Mutex::new(node::empty_snapshot(&config)));
    let partial = Arc::clone(&snapshot);
    output::start_watchdog(
        Duration::from_secs(args.deadline_secs),
        clock,
        Sink::Stdout,
        Box::new(move || {
            ProbeResult::Node(
                partial
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .clone(),
            )
        }),
        Box::new(child::kill_current),
    );
    node::run(&config, &snapshot, &window_ended);
    let result = snapshot
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    output::emit(
        &clock.document(ProbeResult::Node(result), false),
        Sink::Stdout,
    );
    EXIT_MEASURED
}

fn run_capture(args: CaptureArgs) -> i32 {
    let clock = RunClock::start();
    if let Err(e) = child::block_termination_signals() {
        output::log(&format!(
            "dns-doctor-probe: cannot set up signal handling: {e}"
        ));
        return EXIT_CANNOT_RUN;
    }
    let (output_target, sink) = if args.output == "-" {
        (Output::Stdout, Sink::StderrLine)
    } else {
        (Output::File(PathBuf::from(&args.output)), Sink::Stdout)
    };
    let config = CaptureConfig {
        interface: args.interface,
        filter: args.filter,
        netns_pid: args.netns_pid,
        output: output_target,
        duration: Duration::from_secs(args.seconds),
        max_bytes: args.max_bytes,
        snaplen: args.snaplen,
        buffer_kib: args.buffer_kib,
        stop_on_stdin_close: args.stop_on_stdin_close,
    };
    let progress = Arc::new(CaptureProgress::default());
    output::start_watchdog(
        Duration::from_secs(args.deadline_secs.unwrap_or(args.seconds + 10)),
        clock,
        sink,
        capture::deadline_snapshot(config.clone(), Arc::clone(&progress)),
        Box::new(child::kill_current),
    );
    match capture::run(&config, &progress) {
        Ok(summary) => {
            output::emit(&clock.document(ProbeResult::Capture(summary), false), sink);
            EXIT_MEASURED
        }
        Err(e) => {
            output::log(&format!("dns-doctor-probe: {}", error_chain(&e)));
            EXIT_CANNOT_RUN
        }
    }
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn server_addresses_take_an_optional_port() {
        assert_eq!(
            parse_server("10.96.0.10"),
            Ok("10.96.0.10:53".parse().unwrap())
        );
        assert_eq!(
            parse_server("10.0.0.1:5353"),
            Ok("10.0.0.1:5353".parse().unwrap())
        );
        assert_eq!(
            parse_server("fd00::10"),
            Ok("[fd00::10]:53".parse().unwrap())
        );
        assert_eq!(
            parse_server("[fd00::10]:54"),
            Ok("[fd00::10]:54".parse().unwrap())
        );
        assert!(parse_server("dns.example").is_err());
    }

    #[test]
    fn pod_flags_parse_into_repeatable_lists() {
        let cli = Cli::try_parse_from([
            "p",
            "pod",
            "--endpoint",
            "10.244.0.2",
            "--endpoint",
            "10.244.0.3:53",
            "--server",
            "192.0.2.53",
            "--role",
            "upstream",
            "--name",
            "a.test",
            "--name",
            "b",
            "--no-resolv-conf",
        ])
        .unwrap();
        let Mode::Pod(args) = cli.mode else {
            panic!("not pod mode")
        };
        assert_eq!(args.endpoints.len(), 2);
        assert_eq!(args.names, vec!["a.test", "b"]);
        assert!(matches!(args.role, RoleArg::Upstream));
        assert!(args.no_resolv_conf);
        assert_eq!(args.parallel_rounds, 20);
    }

    #[test]
    fn out_of_range_values_are_rejected() {
        assert!(Cli::try_parse_from(["p", "pod", "--timeout-ms", "0"]).is_err());
        assert!(Cli::try_parse_from(["p", "capture", "--max-bytes", "10"]).is_err());
        assert!(Cli::try_parse_from(["p", "pod", "--endpoint", "nope"]).is_err());
    }
}
