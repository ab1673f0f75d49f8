//! `pod` mode: what a resolver inside the target pod would experience, measured.

use crate::dns::QType;
use crate::libc_detect;
use crate::net::{self, QuerySpec};
use crate::resolv::{self, ResolvConf};
use crate::schema::{
    LibcDetection, ParallelTest, PodReport, QueryOutcome, QueryResult, RawFile, SearchExpansion,
    ServerRole, TcpConnect, Transport,
};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::Duration;

/// Everything the pod mode needs, validated by the CLI.
#[derive(Debug, Clone)]
pub struct PodConfig {
    pub resolv_conf: PathBuf,
    /// Query the resolv.conf nameservers (off with `--no-resolv-conf`).
    pub use_nameservers: bool,
    pub endpoints: Vec<SocketAddr>,
    /// Extra servers with the role they are tested as.
    pub servers: Vec<(SocketAddr, ServerRole)>,
    /// Names as an application would ask for them; expanded with the search list.
    pub names: Vec<String>,
    pub timeout: Duration,
    pub parallel_rounds: u32,
    pub parallel_wait: Duration,
    /// Name for the parallel rounds; default: the first name as it resolved.
    pub parallel_name: Option<String>,
    /// Threads sending queries at once.
    pub concurrency: usize,
    /// Where to look for the target container's processes (`/proc`).
    pub proc_root: PathBuf,
}

/// The report as filled so far; the watchdog prints a copy of it if the deadline comes first.
pub type SharedReport = Arc<Mutex<PodReport>>;

/// A report with nothing measured yet (libc `NotVisible` until detected), for the
/// watchdog to print if the deadline comes first.
pub fn empty_report(resolv_conf: &std::path::Path) -> PodReport {
    PodReport {
        resolv_conf: RawFile {
            path: resolv_conf.display().to_string(),
            content: None,
            error: None,
        },
        libc: LibcDetection {
            kind: crate::schema::LibcKind::NotVisible,
            pid: None,
            evidence: None,
        },
        tcp_connects: Vec::new(),
        queries: Vec::new(),
        search_expansion: Vec::new(),
        parallel: Vec::new(),
        netns_rules: Vec::new(),
    }
}

fn lock(report: &SharedReport) -> std::sync::MutexGuard<'_, PodReport> {
    report.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One unit of work for the query pool.
enum Job {
    Connect(SocketAddr, ServerRole),
    Query(QuerySpec),
}

/// Result of a job, with the job's index so the final order does not depend on timing.
enum Done {
    Connect(usize, TcpConnect),
    Query(usize, QueryResult),
}

/// The pod network namespace's rule dumps, keyed as the node snapshot keys them.
const NETNS_COMMANDS: [(&str, &[&str]); 2] = [
    ("iptables-legacy-save", &["iptables-legacy-save"]),
    ("iptables-nft-save", &["iptables-nft-save"]),
];
const NETNS_COMMAND_TIMEOUT: Duration = Duration::from_secs(3);

/// Runs the pod mode, filling `report` as results come in. Must run on the main thread
/// (it starts commands, see [`crate::child::spawn_tied`]).
pub fn run(config: &PodConfig, report: &SharedReport) {
    let (raw, conf) = read_resolv_conf(config);
    lock(report).resolv_conf = raw;
    lock(report).libc = libc_detect::detect(&config.proc_root, std::process::id());
    // The pod's own rules, before any query: they decide where the queries go first.
    for (key, argv) in NETNS_COMMANDS {
        let out = crate::node::command(key, argv, NETNS_COMMAND_TIMEOUT);
        lock(report).netns_rules.push(out);
    }

    let targets = targets(config, &conf);
    let expansions: Vec<(String, Vec<String>)> = config
        .names
        .iter()
        .map(|n| (n.clone(), resolv::search_candidates(n, &conf)))
        .collect();

    let mut jobs = Vec::new();
    for &(server, role) in &targets {
        jobs.push(Job::Connect(server, role));
    }
    // Each server's queries, first candidates of every name first; then taken round-robin
    // across servers, so the first wave in flight tells every path's fate at once.
    let per_server: Vec<Vec<Job>> = targets
        .iter()
        .map(|&(server, role)| {
            let depth = expansions.iter().map(|(_, c)| c.len()).max().unwrap_or(0);
            let mut q = Vec::new();
            for i in 0..depth {
                for (_, candidates) in &expansions {
                    let Some(qname) = candidates.get(i) else {
                        continue;
                    };
                    for transport in [Transport::Udp, Transport::Tcp] {
                        for qtype in [QType::A, QType::Aaaa] {
                            q.push(Job::Query(QuerySpec {
                                server,
                                role,
                                transport,
                                qname: qname.clone(),
                                qtype,
                                timeout: config.timeout,
                            }));
                        }
                    }
                }
            }
            q
        })
        .collect();
    jobs.extend(interleave(per_server));
    let finished = run_pool(jobs, config, report);

    let mut connects = Vec::new();
    let mut queries = Vec::new();
    for done in finished {
        match done {
            Done::Connect(i, c) => connects.push((i, c)),
            Done::Query(i, q) => queries.push((i, q)),
        }
    }
    connects.sort_by_key(|(i, _)| *i);
    queries.sort_by_key(|(i, _)| *i);
    let queries: Vec<QueryResult> = queries.into_iter().map(|(_, q)| q).collect();

    let expansion = search_expansion(&expansions, &targets, &queries);
    {
        let mut r = lock(report);
        r.tcp_connects = connects.into_iter().map(|(_, c)| c).collect();
        r.queries = queries.clone();
        r.search_expansion = expansion;
    }

    if config.parallel_rounds > 0 {
        run_parallel(config, &targets, &expansions, &queries, report);
    }
}

fn read_resolv_conf(config: &PodConfig) -> (RawFile, ResolvConf) {
    let path = config.resolv_conf.display().to_string();
    match std::fs::read_to_string(&config.resolv_conf) {
        Ok(text) => {
            let conf = resolv::parse(&text);
            (
                RawFile {
                    path,
                    content: Some(text),
                    error: None,
                },
                conf,
            )
        }
        Err(e) => (
            RawFile {
                path,
                content: None,
                error: Some(e.to_string()),
            },
            ResolvConf::default(),
        ),
    }
}

/// The servers to test, in report order, each address once (its first role wins):
/// nameservers, endpoints, then explicit servers.
fn targets(config: &PodConfig, conf: &ResolvConf) -> Vec<(SocketAddr, ServerRole)> {
    let mut out: Vec<(SocketAddr, ServerRole)> = Vec::new();
    let nameservers = conf
        .nameservers
        .iter()
        .filter(|_| config.use_nameservers)
        .map(|ip| (SocketAddr::new(*ip, 53), ServerRole::Nameserver));
    let endpoints = config.endpoints.iter().map(|a| (*a, ServerRole::Endpoint));
    for target in nameservers
        .chain(endpoints)
        .chain(config.servers.iter().copied())
    {
        if !out.iter().any(|(addr, _)| *addr == target.0) {
            out.push(target);
        }
    }
    out
}

/// Takes the lists' items round-robin: the first of each, then the second of each, ...
fn interleave<T>(lists: Vec<Vec<T>>) -> Vec<T> {
    let mut iters: Vec<std::vec::IntoIter<T>> = lists.into_iter().map(Vec::into_iter).collect();
    let mut out = Vec::new();
    loop {
        let before = out.len();
        for it in &mut iters {
            out.extend(it.next());
        }
        if out.len() == before {
            return out;
        }
    }
}

/// A path (server and transport) counts as dead once this many of its queries timed out
/// and none got any reply: its remaining queries are not sent, since each would only wait
/// out its timeout. The diagnosis works on proportions, which the first ones already give.
pub const DEAD_AFTER_TIMEOUTS: u32 = 2;

/// What the pool has seen of each path so far.
#[derive(Default)]
struct PathFate {
    replies: u32,
    timeouts: u32,
}

impl PathFate {
    fn dead(&self) -> bool {
        self.replies == 0 && self.timeouts >= DEAD_AFTER_TIMEOUTS
    }
}

type Fates = Mutex<std::collections::HashMap<(SocketAddr, Transport), PathFate>>;

/// Runs the jobs on `config.concurrency` threads; TCP connects land in the shared report
/// as they finish so a deadline still shows them. Queries on a path proven dead (see
/// [`DEAD_AFTER_TIMEOUTS`]) are skipped.
fn run_pool(jobs: Vec<Job>, config: &PodConfig, report: &SharedReport) -> Vec<Done> {
    let queue: Mutex<VecDeque<(usize, Job)>> = Mutex::new(jobs.into_iter().enumerate().collect());
    let results: Mutex<Vec<Done>> = Mutex::new(Vec::new());
    let fates: Fates = Mutex::default();
    thread::scope(|scope| {
        for _ in 0..config.concurrency.max(1) {
            scope.spawn(|| loop {
                let next = queue
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .pop_front();
                let Some((index, job)) = next else { break };
                let done = match job {
                    Job::Connect(server, role) => {
                        let c = net::tcp_connect(server, role, config.timeout);
                        lock(report).tcp_connects.push(c.clone());
                        Done::Connect(index, c)
                    }
                    Job::Query(spec) => {
                        let path = (spec.server, spec.transport);
                        let dead = fates
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .get(&path)
                            .is_some_and(PathFate::dead);
                        if dead {
                            continue;
                        }
                        let q = net::query(&spec);
                        {
                            let mut f = fates.lock().unwrap_or_else(PoisonError::into_inner);
                            let fate = f.entry(path).or_default();
                            match q.outcome {
                                QueryOutcome::TimedOut => fate.timeouts += 1,
                                QueryOutcome::Answered => fate.replies += 1,
                                _ => {}
                            }
                        }
                        lock(report).queries.push(q.clone());
                        Done::Query(index, q)
                    }
                };
                results
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(done);
            });
        }
    });
    results.into_inner().unwrap_or_else(PoisonError::into_inner)
}

fn resolved(q: &QueryResult) -> bool {
    q.outcome == QueryOutcome::Answered
        && q.rcode.as_deref() == Some("NOERROR")
        && !q.answers.is_empty()
}

/// For each name: the candidates, and where a resolver using the first server would have
/// stopped (the first candidate with an A or AAAA answer over UDP; glibc moves on after
/// NXDOMAIN and after an empty NOERROR).
fn search_expansion(
    expansions: &[(String, Vec<String>)],
    targets: &[(SocketAddr, ServerRole)],
    queries: &[QueryResult],
) -> Vec<SearchExpansion> {
    let first = targets.first().map(|t| t.0);
    expansions
        .iter()
        .map(|(name, candidates)| {
            let first_answer_index = candidates.iter().position(|c| {
                queries.iter().any(|q| {
                    Some(q.server) == first
                        && q.transport == Transport::Udp
                        && &q.qname == c
                        && resolved(q)
                })
            });
            let tried = first_answer_index.map_or(candidates.len(), |i| i + 1);
            SearchExpansion {
                name: name.clone(),
                candidates: candidates.clone(),
                first_answer_index,
                queries_per_lookup: u32::try_from(tried * 2).unwrap_or(u32::MAX),
            }
        })
        .collect()
}

/// The name each server's parallel rounds ask: the explicit one, else the first candidate of
/// the first name that this server resolved, else that name's first candidate.
fn parallel_qname(
    config: &PodConfig,
    server: SocketAddr,
    expansions: &[(String, Vec<String>)],
    queries: &[QueryResult],
) -> Option<String> {
    if let Some(name) = &config.parallel_name {
        return Some(if name.ends_with('.') {
            name.clone()
        } else {
            format!("{name}.")
        });
    }
    let (_, candidates) = expansions.first()?;
    candidates
        .iter()
        .find(|c| {
            queries
                .iter()
                .any(|q| q.server == server && &q.qname == *c && resolved(q))
        })
        .or(candidates.first())
        .cloned()
}

/// One thread per server, and within it the same-socket and separate-socket rounds at once,
/// so the total stays near one server's rounds × wait.
fn run_parallel(
    config: &PodConfig,
    targets: &[(SocketAddr, ServerRole)],
    expansions: &[(String, Vec<String>)],
    queries: &[QueryResult],
    report: &SharedReport,
) {
    thread::scope(|scope| {
        for &(server, role) in targets {
            // A server that answered none of the UDP queries has nothing to race: every
            // round would only wait out its timeout.
            let answers_udp = queries.iter().any(|q| {
                q.server == server
                    && q.transport == Transport::Udp
                    && q.outcome == QueryOutcome::Answered
            });
            if !answers_udp {
                continue;
            }
            let Some(qname) = parallel_qname(config, server, expansions, queries) else {
                continue;
            };
            scope.spawn(move || {
                let (same_socket, separate_sockets) = thread::scope(|inner| {
                    let same = inner.spawn(|| {
                        net::parallel_rounds(
                            server,
                            &qname,
                            config.parallel_rounds,
                            config.parallel_wait,
                            true,
                        )
                    });
                    let separate = net::parallel_rounds(
                        server,
                        &qname,
                        config.parallel_rounds,
                        config.parallel_wait,
                        false,
                    );
                    (same.join(), separate)
                });
                let Ok(same_socket) = same_socket else { return };
                let test = ParallelTest {
                    server,
                    role,
                    qname,
                    wait_ms: u64::try_from(config.parallel_wait.as_millis()).unwrap_or(u64::MAX),
                    same_socket,
                    separate_sockets,
                };
                let mut r = lock(report);
                r.parallel.push(test);
                // Keep the target order regardless of which server finished first.
                r.parallel.sort_by_key(|t| {
                    targets
                        .iter()
                        .position(|x| (x.0, x.1) == (t.server, t.role))
                });
            });
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answered(server: &str, qname: &str, rcode: &str, answers: &[&str]) -> QueryResult {
        QueryResult {
            server: server.parse().unwrap(),
            role: ServerRole::Nameserver,
            transport: Transport::Udp,
            qname: qname.to_owned(),
            qtype: "A".to_owned(),
            id: 1,
            source_port: None,
            outcome: QueryOutcome::Answered,
            rcode: Some(rcode.to_owned()),
            answers: answers.iter().map(|a| (*a).to_owned()).collect(),
            truncated: false,
            latency_ms: 1.0,
            error: None,
        }
    }

    #[test]
    fn expansion_stops_at_the_first_candidate_with_an_answer() {
        let conf = resolv::parse(
            "search default.svc.cluster.local svc.cluster.local cluster.local\noptions ndots:5\n",
        );
        let name = "kubernetes.default".to_owned();
        let expansions = vec![(name.clone(), resolv::search_candidates(&name, &conf))];
        let targets = vec![("10.96.0.10:53".parse().unwrap(), ServerRole::Nameserver)];
        let queries = vec![
            answered(
                "10.96.0.10:53",
                "kubernetes.default.default.svc.cluster.local.",
                "NXDOMAIN",
                &[],
            ),
            answered(
                "10.96.0.10:53",
                "kubernetes.default.svc.cluster.local.",
                "NOERROR",
                &["A 10.96.0.1"],
            ),
        ];
        let found = search_expansion(&expansions, &targets, &queries);
        assert_eq!(found[0].first_answer_index, Some(1));
        assert_eq!(found[0].queries_per_lookup, 4);
        assert_eq!(found[0].candidates.len(), 4);
    }

    #[test]
    fn a_name_that_never_resolves_costs_every_candidate() {
        let conf = resolv::parse("search a.test b.test\noptions ndots:5\n");
        let expansions = vec![("x".to_owned(), resolv::search_candidates("x", &conf))];
        let targets = vec![("10.0.0.1:53".parse().unwrap(), ServerRole::Nameserver)];
        let queries = vec![answered("10.0.0.1:53", "x.a.test.", "NOERROR", &[])];
        let found = search_expansion(&expansions, &targets, &queries);
        assert_eq!(found[0].first_answer_index, None);
        assert_eq!(found[0].queries_per_lookup, 6);
    }

    #[test]
    fn targets_are_deduplicated_and_nameservers_can_be_skipped() {
        let conf = resolv::parse("nameserver 10.96.0.10\n");
        let mut config = PodConfig {
            resolv_conf: PathBuf::from("/etc/resolv.conf"),
            use_nameservers: true,
            endpoints: vec![
                "10.244.0.5:53".parse().unwrap(),
                "10.244.0.5:53".parse().unwrap(),
            ],
            servers: vec![("192.0.2.1:53".parse().unwrap(), ServerRole::Upstream)],
            names: vec![],
            timeout: Duration::from_secs(1),
            parallel_rounds: 0,
            parallel_wait: Duration::from_secs(1),
            parallel_name: None,
            concurrency: 1,
            proc_root: PathBuf::from("/proc"),
        };
        let roles: Vec<ServerRole> = targets(&config, &conf).into_iter().map(|t| t.1).collect();
        assert_eq!(
            roles,
            vec![
                ServerRole::Nameserver,
                ServerRole::Endpoint,
                ServerRole::Upstream
            ]
        );
        config.use_nameservers = false;
        assert_eq!(targets(&config, &conf).len(), 2);
        // The cluster DNS address given explicitly is tested once, as the nameserver it is.
        config.use_nameservers = true;
        config.servers = vec![("10.96.0.10:53".parse().unwrap(), ServerRole::Explicit)];
        let roles: Vec<ServerRole> = targets(&config, &conf).into_iter().map(|t| t.1).collect();
        assert_eq!(roles, vec![ServerRole::Nameserver, ServerRole::Endpoint]);
    }
}
