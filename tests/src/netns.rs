//! A small cluster-shaped network built from network namespaces, torn down on drop.
//!
//! ```text
//!  client netns              node netns                         server netns
//!  eth0 10.123.1.2/30 ── to-cli 10.123.1.1/30                   
//!  resolv.conf:              to-srv 10.123.2.1/30 ──────────── eth0 10.123.2.2/30
//!   nameserver 10.96.0.10    nat PREROUTING → KUBE-SERVICES      dnsmasq :53 (local
//!                            → KUBE-SVC-… → KUBE-SEP-… → DNAT     records only, never
//!                            10.96.0.10:53 → 10.123.2.2:53        forwards)
//! ```
//!
//! Every address exists only inside these namespaces; 10.96.0.10 exists nowhere, it is only
//! a DNAT match in the node namespace, as a ClusterIP is (the service range is blackholed
//! there). The node namespace has no default route, so nothing can leave towards the host's
//! network. Namespace names carry the test
//! process's PID, so leftovers of a killed run are recognised and removed by the next one.

use crate::cmd::{self, Ran};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Once;
use std::thread;
use std::time::{Duration, Instant};

/// The client's (pod's) address.
pub const CLIENT_ADDR: &str = "10.123.1.2";
/// A global IPv6 address for the client, so that glibc's AI_ADDRCONFIG asks for AAAA
/// records as it does in a dual-stack pod. Nothing routes it anywhere.
pub const CLIENT_ADDR6: &str = "fd00:123:1::2";
/// The node's address towards the client: the client's gateway.
pub const NODE_CLIENT_SIDE: &str = "10.123.1.1";
/// The node's address towards the server: the server's gateway.
pub const NODE_SERVER_SIDE: &str = "10.123.2.1";
/// The DNS server's own address: what an EndpointSlice would list.
pub const SERVER_ADDR: &str = "10.123.2.2";
/// The service range: blackholed in the node namespace, as on the test cluster's host, so an
/// untranslated ClusterIP packet dies there silently (a real node would send it to its
/// default gateway, with the same result for the client: a timeout).
pub const SERVICE_RANGE: &str = "10.96.0.0/16";
/// The DNS Service's ClusterIP: only a DNAT match in the node namespace.
pub const CLUSTER_IP: &str = "10.96.0.10";
/// What dnsmasq answers for `kubernetes.default.svc.cluster.local`.
pub const KUBERNETES_A: &str = "10.96.0.1";
/// What dnsmasq answers for the AAAA of `kubernetes.default.svc.cluster.local`.
pub const KUBERNETES_AAAA: &str = "fd00:96::1";
/// The made-up external name and its address.
pub const EXTERNAL_NAME: &str = "external.test";
/// What dnsmasq answers for the external name.
pub const EXTERNAL_A: &str = "203.0.113.7";

/// The client's resolv.conf, as the kubelet writes it for a pod in `default`.
pub const RESOLV_CONF: &str = "search default.svc.cluster.local svc.cluster.local cluster.local\n\
                               nameserver 10.96.0.10\n\
                               options ndots:5\n";

const NAME_PREFIX: &str = "dd-";
const STEP: Duration = Duration::from_secs(10);

/// kube-proxy style chains for the kube-dns Service (iptables mode), one endpoint.
const KUBE_PROXY_RULES: &str = "*nat
:KUBE-SERVICES - [0:0]
:KUBE-SVC-TCOU7JCQXEZGVUNU - [0:0]
:KUBE-SVC-ERIFXISQEP7F7OF4 - [0:0]
:KUBE-SEP-DDUDPSRV0000001 - [0:0]
:KUBE-SEP-DDTCPSRV0000001 - [0:0]
-A PREROUTING -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES
-A KUBE-SERVICES -d 10.96.0.10/32 -p udp -m comment --comment \"kube-system/kube-dns:dns cluster IP\" -m udp --dport 53 -j KUBE-SVC-TCOU7JCQXEZGVUNU
-A KUBE-SERVICES -d 10.96.0.10/32 -p tcp -m comment --comment \"kube-system/kube-dns:dns-tcp cluster IP\" -m tcp --dport 53 -j KUBE-SVC-ERIFXISQEP7F7OF4
-A KUBE-SVC-TCOU7JCQXEZGVUNU -m comment --comment \"kube-system/kube-dns:dns -> 10.123.2.2:53\" -j KUBE-SEP-DDUDPSRV0000001
-A KUBE-SVC-ERIFXISQEP7F7OF4 -m comment --comment \"kube-system/kube-dns:dns-tcp -> 10.123.2.2:53\" -j KUBE-SEP-DDTCPSRV0000001
-A KUBE-SEP-DDUDPSRV0000001 -p udp -m comment --comment \"kube-system/kube-dns:dns\" -m udp -j DNAT --to-destination 10.123.2.2:53
-A KUBE-SEP-DDTCPSRV0000001 -p tcp -m comment --comment \"kube-system/kube-dns:dns-tcp\" -m tcp -j DNAT --to-destination 10.123.2.2:53
COMMIT
";

static COUNTER: AtomicU32 = AtomicU32::new(0);
static STALE: Once = Once::new();

/// The three namespaces, their links and rules, and the DNS server. Dropping it stops the
/// server and deletes everything, also when a test panics.
pub struct Topology {
    pub client: String,
    pub node: String,
    pub server: String,
    dns: Option<Child>,
    /// Per-topology scratch space: the DNS server's log, captures.
    dir: tempfile::TempDir,
    /// /etc/netns/<client>: `ip netns exec` bind-mounts its files over /etc.
    etc_dir: PathBuf,
}

impl Topology {
    /// Builds the network, starts dnsmasq and waits until it listens.
    pub fn new() -> Self {
        cmd::require_environment();
        STALE.call_once(remove_stale);
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let base = format!("{NAME_PREFIX}{}-{n}", std::process::id());
        let mut topology = Topology {
            client: format!("{base}-cli"),
            node: format!("{base}-node"),
            server: format!("{base}-srv"),
            dns: None,
            dir: tempfile::Builder::new()
                .prefix("dns-doctor-netns-")
                .tempdir()
                .expect("temporary directory"),
            etc_dir: PathBuf::from(format!("/etc/netns/{base}-cli")),
        };
        topology.build();
        topology.start_dns();
        topology
    }

    fn build(&self) {
        let (cli, node, srv) = (&self.client, &self.node, &self.server);
        // `ip -batch` cannot switch namespaces per line: one batch per namespace.
        let batches = [
            (
                None,
                format!("netns add {cli}\nnetns add {node}\nnetns add {srv}\n"),
            ),
            (
                Some(node),
                format!(
                    "link set lo up\n\
                     link add to-cli type veth peer name eth0 netns {cli}\n\
                     link add to-srv type veth peer name eth0 netns {srv}\n\
                     addr add {NODE_CLIENT_SIDE}/30 dev to-cli\n\
                     addr add {NODE_SERVER_SIDE}/30 dev to-srv\n\
                     link set to-cli up\nlink set to-srv up\n\
                     route add blackhole {SERVICE_RANGE}\n"
                ),
            ),
            (
                Some(cli),
                format!(
                    "link set lo up\naddr add {CLIENT_ADDR}/30 dev eth0\n\
                     addr add {CLIENT_ADDR6}/64 dev eth0 nodad\nlink set eth0 up\n\
                     route add default via {NODE_CLIENT_SIDE}\n"
                ),
            ),
            (
                Some(srv),
                format!(
                    "link set lo up\naddr add {SERVER_ADDR}/30 dev eth0\nlink set eth0 up\n\
                     route add default via {NODE_SERVER_SIDE}\n"
                ),
            ),
        ];
        for (ns, batch) in &batches {
            let mut argv = vec!["ip"];
            if let Some(ns) = ns {
                argv.extend(["-n", ns.as_str()]);
            }
            argv.extend(["-batch", "-"]);
            cmd::run_input(&argv, Some(batch), STEP).ok("building the namespaces");
        }
        self.exec(node, &["sysctl", "-qw", "net.ipv4.ip_forward=1"])
            .ok("enabling forwarding");
        // The kernels of the node and the server answer "net unreachable" and "port
        // unreachable" with ICMP, rate-limited per peer by default (a burst of 6, then one
        // per second), which would turn most of a burst of probe queries into timeouts. The
        // tests want each query's own answer. (Real nodes do limit: the plugin must expect a
        // mix of refused and timed-out queries to a closed port.)
        for ns in [node, srv] {
            self.exec(
                ns,
                &[
                    "sysctl",
                    "-qw",
                    "net.ipv4.icmp_ratelimit=0",
                    "net.ipv4.icmp_msgs_per_sec=100000",
                    "net.ipv4.icmp_msgs_burst=100000",
                ],
            )
            .ok("lifting the ICMP rate limits");
        }
        cmd::run_input(
            &["ip", "netns", "exec", node, "iptables-restore", "--noflush"],
            Some(KUBE_PROXY_RULES),
            STEP,
        )
        .ok("installing the kube-proxy style rules");
        fs::create_dir_all(&self.etc_dir).expect("create /etc/netns/<client>");
        fs::write(self.etc_dir.join("resolv.conf"), RESOLV_CONF)
            .expect("write the client's resolv.conf");
    }

    /// Starts dnsmasq in the server namespace with local records only: `--no-resolv` and no
    /// upstream `--server`, and `--server=/#/` makes every other name NXDOMAIN instead of a
    /// forward.
    pub fn start_dns(&mut self) {
        assert!(self.dns.is_none(), "the DNS server is already running");
        let log = fs::File::options()
            .create(true)
            .append(true)
            .open(self.dir.path().join("dnsmasq.log"))
            .expect("dnsmasq log file");
        let child = Command::new("ip")
            .args(["netns", "exec", &self.server, "dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null"])
            .args(["--no-resolv", "--no-hosts", "--no-poll", "--pid-file=", "--user=root", "--group=root"])
            .arg(format!("--listen-address={SERVER_ADDR}"))
            .args(["--bind-interfaces", "--server=/#/", "--log-queries", "--log-facility=-"])
            .arg(format!("--host-record=kubernetes.default.svc.cluster.local,{KUBERNETES_A},{KUBERNETES_AAAA}"))
            .arg(format!("--address=/{EXTERNAL_NAME}/{EXTERNAL_A}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start dnsmasq");
        self.dns = Some(child);
        let end = Instant::now() + STEP;
        loop {
            let udp = self
                .exec(&self.server, &["ss", "-Hlun", "sport = :53"])
                .stdout;
            let tcp = self
                .exec(&self.server, &["ss", "-Hltn", "sport = :53"])
                .stdout;
            if udp.contains(SERVER_ADDR) && tcp.contains(SERVER_ADDR) {
                return;
            }
            if let Some(Ok(Some(status))) = self.dns.as_mut().map(Child::try_wait) {
                panic!("dnsmasq exited with {status}; log:\n{}", self.dns_log());
            }
            assert!(
                Instant::now() < end,
                "dnsmasq not listening after {STEP:?}; log:\n{}",
                self.dns_log()
            );
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops the DNS server: its ports close, so the server's kernel answers UDP with ICMP
    /// port unreachable and TCP with RST.
    pub fn stop_dns(&mut self) {
        if let Some(mut child) = self.dns.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// What dnsmasq logged (every query, with --log-queries).
    pub fn dns_log(&self) -> String {
        fs::read_to_string(self.dir.path().join("dnsmasq.log")).unwrap_or_default()
    }

    /// Runs `argv` inside namespace `ns`, bounded by 10 s.
    pub fn exec(&self, ns: &str, argv: &[&str]) -> Ran {
        self.exec_for(ns, argv, STEP)
    }

    /// Runs `argv` inside namespace `ns`, bounded by `limit`.
    pub fn exec_for(&self, ns: &str, argv: &[&str], limit: Duration) -> Ran {
        let mut full = vec!["ip", "netns", "exec", ns];
        full.extend_from_slice(argv);
        cmd::run(&full, limit)
    }

    /// Runs iptables with `args` in namespace `ns`; the test fails if iptables does.
    pub fn iptables(&self, ns: &str, args: &[&str]) {
        let mut argv = vec!["iptables", "-w", "5"];
        argv.extend_from_slice(args);
        self.exec(ns, &argv)
            .ok(&format!("iptables {args:?} in {ns}"));
    }

    /// Removes the Service's translation, as when kube-proxy's rules are flushed: the
    /// ClusterIP then leads nowhere while the endpoint itself still answers.
    pub fn remove_dnat(&self) {
        self.iptables(&self.node, &["-t", "nat", "-F", "KUBE-SERVICES"]);
    }

    /// Scratch directory that lives as long as the topology.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Default for Topology {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        self.stop_dns();
        for ns in [&self.client, &self.node, &self.server] {
            delete_namespace(ns);
        }
        let _ = fs::remove_dir_all(&self.etc_dir);
    }
}

/// Kills whatever still runs in `ns` and deletes it (its veths go with it).
fn delete_namespace(ns: &str) {
    let pids = cmd::run(&["ip", "netns", "pids", ns], STEP).stdout;
    for pid in pids.split_whitespace() {
        let _ = cmd::run(&["kill", "-KILL", pid], STEP);
    }
    let _ = cmd::run(&["ip", "netns", "del", ns], STEP);
}

/// Removes namespaces (and /etc/netns entries) left by test processes that no longer exist.
fn remove_stale() {
    let Ok(entries) = fs::read_dir("/run/netns") else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix(NAME_PREFIX)
            .and_then(|r| r.split('-').next())
        else {
            continue;
        };
        if pid.parse::<u32>().is_ok() && !Path::new("/proc").join(pid).exists() {
            delete_namespace(&name);
            let _ = fs::remove_dir_all(Path::new("/etc/netns").join(&name));
        }
    }
}
