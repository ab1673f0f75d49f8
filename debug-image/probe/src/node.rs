//! `node` mode: raw snapshots of a node's packet path (rules, counters, sysctls, kube-proxy's
//! own view). Nothing is parsed here; the plugin parses, so plugin and image versions may differ.

use crate::cgroup;
use crate::child;
use crate::schema::protocol::{conntrack_dns_key, ListingStage};
use crate::schema::{CommandOutput, HttpProbe, NodeSnapshot, RawFile};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// Name recorded in the snapshot; defaults to the host name.
    pub node_name: String,
    pub conntrack_window: Duration,
    /// Limit for each external command.
    pub command_timeout: Duration,
    /// Limit for each HTTP request to kube-proxy.
    pub http_timeout: Duration,
    /// DNS Service addresses (ClusterIP:port) whose UDP conntrack entries are listed.
    pub dns_services: Vec<SocketAddr>,
    /// Most bytes kept of each conntrack listing (a node can hold 100k+ entries).
    pub conntrack_list_max_bytes: usize,
    /// Pods (by UID) whose cgroup files are read at the start and at the end of the window.
    pub pod_uids: Vec<String>,
    /// Where the host's cgroup mount is looked for, in order.
    pub cgroup_roots: Vec<std::path::PathBuf>,
}

/// The snapshot as filled so far; the watchdog prints a copy of it at the deadline.
pub type SharedSnapshot = Arc<Mutex<NodeSnapshot>>;

/// A snapshot with nothing taken yet, for the watchdog to print if nothing else comes.
pub fn empty_snapshot(config: &NodeConfig) -> NodeSnapshot {
    NodeSnapshot {
        node: config.node_name.clone(),
        commands: Vec::new(),
        files: Vec::new(),
        http: Vec::new(),
        conntrack_window_ms: u64::try_from(config.conntrack_window.as_millis()).unwrap_or(u64::MAX),
        pod_cgroups: Vec::new(),
    }
}

/// Commands taken once, as (key, argv). Keys are what the plugin looks up.
const COMMANDS: [(&str, &[&str]); 10] = [
    ("iptables-legacy-save", &["iptables-legacy-save", "-c"]),
    ("iptables-nft-save", &["iptables-nft-save", "-c"]),
    ("ip6tables-legacy-save", &["ip6tables-legacy-save", "-c"]),
    ("ip6tables-nft-save", &["ip6tables-nft-save", "-c"]),
    ("nft-list-ruleset", &["nft", "list", "ruleset"]),
    ("ipvsadm", &["ipvsadm", "-Ln"]),
    ("ip-addr", &["ip", "-d", "addr"]),
    ("ip-route", &["ip", "route"]),
    ("ip6-route", &["ip", "-6", "route"]),
    ("ip-rule", &["ip", "rule"]),
];

const CONNTRACK_STATS: [&str; 2] = ["conntrack", "-S"];

/// `conntrack -L` of the UDP entries whose original destination is `service`: the flows
/// that clients opened towards the DNS ClusterIP, with the endpoint each was DNATed to.
fn conntrack_dns_argv(service: SocketAddr) -> Vec<String> {
    let mut argv = vec!["conntrack".to_owned(), "-L".to_owned()];
    if service.ip().is_ipv6() {
        argv.extend(["-f".to_owned(), "ipv6".to_owned()]);
    }
    argv.extend([
        "-p".to_owned(),
        "udp".to_owned(),
        "--orig-dst".to_owned(),
        service.ip().to_string(),
        "--orig-port-dst".to_owned(),
        service.port().to_string(),
    ]);
    argv
}

/// The line the probe adds to a listing's stderr when it cut the stdout; conntrack's own
/// count of the entries it printed stays on stderr too.
fn cut_note(kept_bytes: usize, dropped: child::Dropped) -> String {
    format!(
        "dns-doctor-probe: stdout cut to its first {kept_bytes} bytes: {} more lines ({} bytes) were read and not kept\n",
        dropped.lines, dropped.bytes
    )
}

fn conntrack_dns_listings(config: &NodeConfig, stage: ListingStage, snapshot: &SharedSnapshot) {
    for service in &config.dns_services {
        let argv = conntrack_dns_argv(*service);
        let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
        let output = command_capped(
            &conntrack_dns_key(stage, *service),
            &argv,
            config.command_timeout,
            config.conntrack_list_max_bytes,
        );
        lock(snapshot).commands.push(output);
    }
}

/// Kernel settings on the DNS packet path, read verbatim.
const FILES: [&str; 9] = [
    "/proc/sys/net/netfilter/nf_conntrack_count",
    "/proc/sys/net/netfilter/nf_conntrack_max",
    "/proc/sys/net/netfilter/nf_conntrack_udp_timeout",
    "/proc/sys/net/netfilter/nf_conntrack_udp_timeout_stream",
    "/proc/sys/net/ipv4/ip_forward",
    "/proc/sys/net/bridge/bridge-nf-call-iptables",
    "/proc/sys/net/bridge/bridge-nf-call-ip6tables",
    "/proc/sys/net/ipv4/conf/all/rp_filter",
    "/proc/sys/net/ipv4/conf/default/rp_filter",
];

/// Interfaces whose rp_filter is read when they exist (the CNI bridge and the uplink).
const RP_FILTER_INTERFACES: [&str; 2] = ["cni0", "eth0"];

/// kube-proxy's metrics and health endpoints on the node's loopback.
const KUBE_PROXY_URLS: [(&str, u16, &str); 2] = [
    ("kube-proxy-mode", 10249, "/proxyMode"),
    ("kube-proxy-healthz", 10256, "/healthz"),
];

fn lock(snapshot: &SharedSnapshot) -> std::sync::MutexGuard<'_, NodeSnapshot> {
    snapshot.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Runs the node mode, filling `snapshot` as it goes. Must run on the main thread (see
/// [`child::spawn_tied`]). The conntrack window lasts `config.conntrack_window` or until
/// `window_end` receives (the plugin ends it once the pod probe is done), whichever is first.
pub fn run(config: &NodeConfig, snapshot: &SharedSnapshot, window_end: &Receiver<()>) {
    let conntrack_before = command(
        "conntrack-stats-before",
        &CONNTRACK_STATS,
        config.command_timeout,
    );
    lock(snapshot).commands.push(conntrack_before);
    let window_start = std::time::Instant::now();
    conntrack_dns_listings(config, ListingStage::Before, snapshot);
    let cgroups_before = cgroup::read_pods(&config.cgroup_roots, &config.pod_uids, "before", 0);
    lock(snapshot).pod_cgroups.extend(cgroups_before);

    // The window is filled with the other snapshots instead of sleeping idle.
    for (key, argv) in COMMANDS {
        let output = command(key, argv, config.command_timeout);
        lock(snapshot).commands.push(output);
    }
    let mut files: Vec<String> = FILES.iter().map(|f| (*f).to_owned()).collect();
    for iface in RP_FILTER_INTERFACES {
        let path = format!("/proc/sys/net/ipv4/conf/{iface}/rp_filter");
        if Path::new(&path).exists() {
            files.push(path);
        }
    }
    lock(snapshot).files = files.iter().map(|p| read_file(p)).collect();
    for (key, port, path) in KUBE_PROXY_URLS {
        let probe = http_get(
            key,
            SocketAddr::from(([127, 0, 0, 1], port)),
            path,
            config.http_timeout,
        );
        lock(snapshot).http.push(probe);
    }

    if let Some(rest) = config.conntrack_window.checked_sub(window_start.elapsed()) {
        // Timeout, a message or a dropped sender all end the window.
        let _ = window_end.recv_timeout(rest);
    }
    let actual_window = window_start.elapsed();
    let cgroups_after = cgroup::read_pods(
        &config.cgroup_roots,
        &config.pod_uids,
        "after",
        u64::try_from(actual_window.as_millis()).unwrap_or(u64::MAX),
    );
    lock(snapshot).pod_cgroups.extend(cgroups_after);
    let conntrack_after = command(
        "conntrack-stats-after",
        &CONNTRACK_STATS,
        config.command_timeout,
    );
    conntrack_dns_listings(config, ListingStage::After, snapshot);
    let mut s = lock(snapshot);
    s.commands.push(conntrack_after);
    s.conntrack_window_ms = u64::try_from(actual_window.as_millis()).unwrap_or(u64::MAX);
}

/// Runs one command with a deadline and records its output verbatim under `key`.
pub(crate) fn command(key: &str, argv: &[&str], timeout: Duration) -> CommandOutput {
    let argv: Vec<String> = argv.iter().map(|a| (*a).to_owned()).collect();
    let ran = child::run_bounded(&argv, timeout);
    record(key, argv, ran, timeout)
}

/// [`command`] keeping at most `max_stdout` bytes of stdout (whole lines); when it cuts,
/// stderr says so after what the command itself wrote there.
fn command_capped(key: &str, argv: &[&str], timeout: Duration, max_stdout: usize) -> CommandOutput {
    let argv: Vec<String> = argv.iter().map(|a| (*a).to_owned()).collect();
    let ran = child::run_bounded_capped(&argv, timeout, max_stdout);
    record(key, argv, ran, timeout)
}

fn record(
    key: &str,
    argv: Vec<String>,
    ran: std::io::Result<child::Finished>,
    timeout: Duration,
) -> CommandOutput {
    match ran {
        Ok(done) => CommandOutput {
            key: key.to_owned(),
            argv,
            exit_code: done.status.and_then(|s| s.code()),
            stderr: if done.stdout_dropped.bytes > 0 {
                done.stderr + &cut_note(done.stdout.len(), done.stdout_dropped)
            } else {
                done.stderr
            },
            stdout: done.stdout,
            duration_ms: u64::try_from(done.elapsed.as_millis()).unwrap_or(u64::MAX),
            error: done
                .status
                .is_none()
                .then(|| format!("killed after {} ms", timeout.as_millis())),
        },
        Err(e) => CommandOutput {
            key: key.to_owned(),
            argv,
            exit_code: None,
            stdout: String::new(),
            stderr: String::new(),
            duration_ms: 0,
            error: Some(e.to_string()),
        },
    }
}

fn read_file(path: &str) -> RawFile {
    match std::fs::read_to_string(path) {
        Ok(content) => RawFile {
            path: path.to_owned(),
            content: Some(content),
            error: None,
        },
        Err(e) => RawFile {
            path: path.to_owned(),
            content: None,
            error: Some(e.to_string()),
        },
    }
}

/// A plain HTTP/1.0 GET: kube-proxy's endpoints are tiny and unauthenticated on loopback.
fn http_get(key: &str, addr: SocketAddr, path: &str, timeout: Duration) -> HttpProbe {
    let url = format!("http://{addr}{path}");
    let mut probe = HttpProbe {
        key: key.to_owned(),
        url,
        status: None,
        body: None,
        error: None,
    };
    let exchange = || -> std::io::Result<Vec<u8>> {
        let mut stream = TcpStream::connect_timeout(&addr, timeout)?;
        stream.set_read_timeout(Some(timeout))?;
        stream.set_write_timeout(Some(timeout))?;
        // One write: a request split over several segments confuses minimal servers.
        let request = format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes())?;
        let mut reply = Vec::new();
        // kube-proxy's answers are a few bytes; cap in case something else listens there.
        stream.take(64 * 1024).read_to_end(&mut reply)?;
        Ok(reply)
    };
    match exchange() {
        Ok(reply) => match parse_http_response(&reply) {
            Some((status, body)) => {
                probe.status = Some(status);
                probe.body = Some(body);
            }
            None => probe.error = Some("malformed HTTP response".to_owned()),
        },
        Err(e) => probe.error = Some(e.to_string()),
    }
    probe
}

/// Status code and body of an HTTP/1.x response.
fn parse_http_response(reply: &[u8]) -> Option<(u16, String)> {
    let text = String::from_utf8_lossy(reply);
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status_line = head.lines().next()?;
    let mut parts = status_line.split_whitespace();
    if !parts.next()?.starts_with("HTTP/") {
        return None;
    }
    let status = parts.next()?.parse().ok()?;
    Some((status, body.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn conntrack_listings_are_filtered_to_the_dns_service_and_keyed_by_it() {
        let v4: SocketAddr = "10.96.0.10:53".parse().unwrap();
        assert_eq!(
            conntrack_dns_argv(v4),
            [
                "conntrack",
                "-L",
                "-p",
                "udp",
                "--orig-dst",
                "10.96.0.10",
                "--orig-port-dst",
                "53"
            ]
        );
        assert_eq!(
            conntrack_dns_key(ListingStage::After, v4),
            "conntrack-dns-after@10.96.0.10:53"
        );
        let v6: SocketAddr = "[fd00:96::a]:53".parse().unwrap();
        assert_eq!(conntrack_dns_argv(v6)[2..4], ["-f", "ipv6"]);
        assert_eq!(
            conntrack_dns_key(ListingStage::Before, v6),
            "conntrack-dns-before@[fd00:96::a]:53"
        );
    }

    #[test]
    fn parses_status_and_body() {
        assert_eq!(
            parse_http_response(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\niptables"),
            Some((200, "iptables".to_owned()))
        );
        assert_eq!(parse_http_response(b"garbage"), None);
        assert_eq!(parse_http_response(b"SSH-2.0\r\n\r\n"), None);
    }

    #[test]
    fn http_get_talks_to_a_real_listener_on_loopback() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            let (mut conn, _) = listener.accept().unwrap();
            let mut request = Vec::new();
            let mut chunk = [0u8; 512];
            while !request.ends_with(b"\r\n\r\n") {
                let n = conn.read(&mut chunk).unwrap();
                assert!(n > 0, "connection closed mid-request");
                request.extend_from_slice(&chunk[..n]);
            }
            conn.write_all(b"HTTP/1.1 503 Service Unavailable\r\n\r\n{\"lastUpdated\":\"x\"}")
                .unwrap();
            String::from_utf8_lossy(&request).into_owned()
        });
        let probe = http_get("k", addr, "/healthz", Duration::from_secs(2));
        assert!(server
            .join()
            .unwrap()
            .starts_with("GET /healthz HTTP/1.0\r\n"));
        assert_eq!(probe.status, Some(503));
        assert_eq!(probe.body.as_deref(), Some("{\"lastUpdated\":\"x\"}"));
    }

    #[test]
    fn a_closed_port_is_recorded_as_an_error() {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let probe = http_get(
            "k",
            SocketAddr::from(([127, 0, 0, 1], port)),
            "/",
            Duration::from_secs(1),
        );
        assert!(probe.status.is_none());
        assert!(probe.error.is_some());
    }
}
