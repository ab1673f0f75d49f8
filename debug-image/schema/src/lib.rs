//! The probe's JSON output: the contract between the debug image and the plugin.
//!
//! The probe is dumb and the plugin is smart: these types carry measurements and raw text,
//! never judgements. A newer plugin must read an older probe's output, so fields are only
//! ever added (with `#[serde(default)]`), and a change that breaks readers bumps
//! [`SCHEMA_VERSION`]. The lines the probe prints on stderr for the plugin are in
//! [`protocol`].
//!
//! This crate is the only part of the probe the plugin links, and the plugin builds for
//! Linux, macOS and Windows: it holds plain data and constants, no system calls and no libc.
//! The probe re-exports it as `dns_doctor_probe::schema`.

pub mod protocol;

use serde::{Deserialize, Serialize};
use std::net::SocketAddr;

/// Version of this schema. Readers accept any document whose version they know.
pub const SCHEMA_VERSION: u32 = 1;

/// One document printed by one probe run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProbeOutput {
    pub schema_version: u32,
    /// Version of the probe binary that wrote this document.
    pub probe_version: String,
    /// Wall clock at start, milliseconds since the Unix epoch.
    pub started_unix_ms: u64,
    pub duration_ms: u64,
    /// True when the mode's hard deadline cut the run short; results are then partial.
    #[serde(default)]
    pub deadline_hit: bool,
    #[serde(flatten)]
    pub result: ProbeResult,
}

/// What a mode measured, tagged by mode name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "snake_case")]
pub enum ProbeResult {
    Pod(PodReport),
    Node(NodeSnapshot),
    Capture(CaptureSummary),
}

/// A file read verbatim, or why it could not be read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RawFile {
    pub path: String,
    #[serde(default)]
    pub content: Option<String>,
    #[serde(default)]
    pub error: Option<String>,
}

/// Why a server address is being tested.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ServerRole {
    /// A nameserver line of the pod's resolv.conf (normally the DNS Service's ClusterIP).
    Nameserver,
    /// A DNS endpoint (a DNS pod's own address), tested directly, bypassing the Service.
    Endpoint,
    /// An upstream resolver (a Corefile `forward` target), tested from a DNS pod's network.
    Upstream,
    /// An address given explicitly on the command line.
    Explicit,
}

/// The libc the target container's resolver uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LibcKind {
    Glibc,
    Musl,
    /// The main executable is static (an ELF without an interpreter): it resolves names with
    /// its own runtime (Go's resolver, a libc linked in), not with any libc in the image, so
    /// libc-specific resolv.conf advice may not apply.
    Static,
    /// The container's filesystem was visible but no libc was recognised: the executable
    /// could not be read and no libc file was found (distroless...), or its interpreter is
    /// neither glibc's nor musl's.
    Unknown,
    /// The target container's filesystem was not visible (no shared PID namespace).
    NotVisible,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LibcDetection {
    pub kind: LibcKind,
    /// PID (in the probe's PID namespace) whose root was inspected.
    #[serde(default)]
    pub pid: Option<u32>,
    /// The file that decided it, e.g. `/proc/7/root/lib/ld-musl-x86_64.so.1`.
    #[serde(default)]
    pub evidence: Option<String>,
}

/// Outcome of a telnet-style TCP connect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConnectOutcome {
    Connected,
    /// RST received: the host is reachable but nothing listens (or a REJECT rule answered).
    Refused,
    /// No answer before the deadline: packets dropped somewhere.
    TimedOut,
    /// ICMP unreachable, or no route.
    Unreachable,
    Error,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TcpConnect {
    pub target: SocketAddr,
    pub role: ServerRole,
    pub outcome: ConnectOutcome,
    pub latency_ms: f64,
    #[serde(default)]
    pub error: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Transport {
    Udp,
    Tcp,
}

/// How one DNS query ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QueryOutcome {
    /// A response arrived (any rcode; see `rcode`).
    Answered,
    TimedOut,
    /// ICMP port unreachable (UDP) or RST (TCP).
    Refused,
    Unreachable,
    Error,
}

/// One DNS query sent by the probe, and what came back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueryResult {
    pub server: SocketAddr,
    pub role: ServerRole,
    pub transport: Transport,
    /// The fully qualified name asked, with its trailing dot.
    pub qname: String,
    /// "A", "AAAA", ...
    pub qtype: String,
    /// DNS message ID, so the plugin can find this query in captures.
    pub id: u16,
    /// Local port the query left from.
    #[serde(default)]
    pub source_port: Option<u16>,
    pub outcome: QueryOutcome,
    /// "NOERROR", "NXDOMAIN", "SERVFAIL", ... when answered.
    #[serde(default)]
    pub rcode: Option<String>,
    /// Answer records in presentation form, e.g. "A 10.96.0.1".
    #[serde(default)]
    pub answers: Vec<String>,
    /// The TC bit was set in the response.
    #[serde(default)]
    pub truncated: bool,
    /// Milliseconds from send to response (or to giving up).
    pub latency_ms: f64,
    #[serde(default)]
    pub error: Option<String>,
}

/// What a resolver would send for one lookup under the pod's search list and ndots.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SearchExpansion {
    /// The name as an application would ask for it.
    pub name: String,
    /// Names tried in order, each fully qualified.
    pub candidates: Vec<String>,
    /// Index in `candidates` of the first name that resolved (NOERROR with answers), if any.
    #[serde(default)]
    pub first_answer_index: Option<usize>,
    /// Queries one lookup costs (A and AAAA for every candidate tried up to the first answer).
    pub queries_per_lookup: u32,
}

/// Counts over N rounds of a parallel A+AAAA lookup.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ParallelStats {
    pub rounds: u32,
    pub both_answered: u32,
    /// Rounds where the A reply never came but the AAAA reply did.
    pub a_missing: u32,
    /// Rounds where the AAAA reply never came but the A reply did.
    pub aaaa_missing: u32,
    pub both_missing: u32,
    /// Per-round time until both replies (or the wait limit), milliseconds.
    #[serde(default)]
    pub round_ms: Vec<f64>,
}

/// The conntrack insert race test against one server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ParallelTest {
    pub server: SocketAddr,
    pub role: ServerRole,
    pub qname: String,
    /// How long each round waited for its replies, milliseconds.
    pub wait_ms: u64,
    /// A and AAAA sent back to back from one UDP socket (glibc and musl default).
    pub same_socket: ParallelStats,
    /// A and AAAA from separate sockets (what single-request-reopen changes to).
    pub separate_sockets: ParallelStats,
}

/// Output of `dns-doctor-probe pod`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PodReport {
    /// `/etc/resolv.conf` as the pod sees it, verbatim.
    pub resolv_conf: RawFile,
    pub libc: LibcDetection,
    pub tcp_connects: Vec<TcpConnect>,
    pub queries: Vec<QueryResult>,
    pub search_expansion: Vec<SearchExpansion>,
    pub parallel: Vec<ParallelTest>,
    /// The firewall rules of the pod's own network namespace (`iptables-legacy-save`,
    /// `iptables-nft-save`), read from inside it: a sidecar's DNS redirect or a rule that
    /// drops DNS before it leaves the pod. Commands that may not run (no NET_ADMIN) are
    /// recorded with their error.
    #[serde(default)]
    pub netns_rules: Vec<CommandOutput>,
}

/// Output of a command run by the node probe, verbatim.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandOutput {
    /// Stable key the plugin looks up, e.g. "iptables-legacy-save", "conntrack-stats-before".
    pub key: String,
    pub argv: Vec<String>,
    /// None when the command could not be started (see `error`) or was killed.
    #[serde(default)]
    pub exit_code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub duration_ms: u64,
    #[serde(default)]
    pub error: Option<String>,
}

/// A small HTTP GET on localhost (kube-proxy's /proxyMode and /healthz).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpProbe {
    pub key: String,
    pub url: String,
    #[serde(default)]
    pub status: Option<u16>,
    #[serde(default)]
    pub body: Option<String>,
    #[serde(default)]
    pub error: Option<String>,
}

/// Output of `dns-doctor-probe node`: raw text only, parsed by the plugin.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeSnapshot {
    /// Node name as given by the plugin (or the host name).
    pub node: String,
    pub commands: Vec<CommandOutput>,
    /// Files such as /proc/sys/net/netfilter/nf_conntrack_count and sysctls, keyed by path.
    pub files: Vec<RawFile>,
    pub http: Vec<HttpProbe>,
    /// Time between the two conntrack -S snapshots, milliseconds.
    pub conntrack_window_ms: u64,
    /// Cgroup files of the pods named with `--pod-uid`, read at the start and at the end
    /// of the window.
    #[serde(default)]
    pub pod_cgroups: Vec<PodCgroupRead>,
}

/// One pod's cgroup files (CPU bandwidth and usage, memory), read once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodCgroupRead {
    /// The pod's metadata.uid.
    pub uid: String,
    /// "before" (start of the window) or "after" (its end).
    pub when: String,
    /// When it was read, milliseconds after the window started.
    pub at_ms: u64,
    /// Each file with its full path: the pod's directory and its containers' below it.
    pub files: Vec<RawFile>,
    /// Why nothing could be read (no cgroup tree, no directory of this pod).
    #[serde(default)]
    pub error: Option<String>,
}

/// Why a capture stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CaptureStop {
    Deadline,
    Signal,
    ByteLimit,
    /// tcpdump exited by itself (an error: see `stderr`).
    Exited,
}

/// Output of `dns-doctor-probe capture`, printed after the pcap is complete.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaptureSummary {
    pub interface: String,
    pub filter: String,
    /// PID whose network namespace was entered, if any.
    #[serde(default)]
    pub netns_pid: Option<u32>,
    /// Where the pcap went: a path, or "-" for stdout.
    pub output: String,
    pub bytes_written: u64,
    pub stopped_by: CaptureStop,
    #[serde(default)]
    pub tcpdump_exit_code: Option<i32>,
    /// tcpdump's stderr (its "N packets captured / dropped by kernel" lines).
    pub stderr: String,
}

/// The mnemonic of a DNS response code (RFC 1035, RFC 6895), as `QueryResult::rcode` spells
/// it; None for codes without one.
pub fn rcode_name(code: u16) -> Option<&'static str> {
    Some(match code {
        0 => "NOERROR",
        1 => "FORMERR",
        2 => "SERVFAIL",
        3 => "NXDOMAIN",
        4 => "NOTIMP",
        5 => "REFUSED",
        6 => "YXDOMAIN",
        7 => "YXRRSET",
        8 => "NXRRSET",
        9 => "NOTAUTH",
        10 => "NOTZONE",
        16 => "BADVERS",
        _ => return None,
    })
}
