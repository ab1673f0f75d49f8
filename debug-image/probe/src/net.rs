//! The network measurements of the pod mode: TCP connects, single DNS queries over UDP and
//! TCP, and the parallel A+AAAA rounds. Each call is bounded by the timeout it is given and
//! reports failures as outcomes, never as errors: a failure is what is being measured.

use crate::dns::{self, QType};
use crate::schema::{
    ConnectOutcome, ParallelStats, QueryOutcome, QueryResult, ServerRole, TcpConnect, Transport,
};
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::thread;
use std::time::{Duration, Instant};

/// Large enough for any UDP response to a query without EDNS, and for most with it.
const UDP_BUFFER: usize = 4096;

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Classifies a socket error the way the plugin reasons about loss: an RST or ICMP port
/// unreachable means something answered "nobody here"; a timeout means packets vanished.
fn classify(error: &io::Error) -> QueryOutcome {
    match error.kind() {
        io::ErrorKind::ConnectionRefused | io::ErrorKind::ConnectionReset => QueryOutcome::Refused,
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => QueryOutcome::TimedOut,
        io::ErrorKind::HostUnreachable | io::ErrorKind::NetworkUnreachable => {
            QueryOutcome::Unreachable
        }
        _ => QueryOutcome::Error,
    }
}

fn unspecified_for(server: SocketAddr) -> SocketAddr {
    if server.is_ipv4() {
        SocketAddr::from(([0, 0, 0, 0], 0))
    } else {
        SocketAddr::from(([0u16; 8], 0))
    }
}

/// A telnet-style TCP connect to `target`.
pub fn tcp_connect(target: SocketAddr, role: ServerRole, timeout: Duration) -> TcpConnect {
    let start = Instant::now();
    let result = TcpStream::connect_timeout(&target, timeout);
    let latency_ms = millis(start.elapsed());
    let (outcome, error) = match result {
        Ok(_) => (ConnectOutcome::Connected, None),
        Err(e) => {
            let outcome = match classify(&e) {
                QueryOutcome::Refused => ConnectOutcome::Refused,
                QueryOutcome::TimedOut => ConnectOutcome::TimedOut,
                QueryOutcome::Unreachable => ConnectOutcome::Unreachable,
                QueryOutcome::Answered | QueryOutcome::Error => ConnectOutcome::Error,
            };
            (outcome, Some(e.to_string()))
        }
    };
    TcpConnect {
        target,
        role,
        outcome,
        latency_ms,
        error,
    }
}

/// One query to send.
#[derive(Debug, Clone)]
pub struct QuerySpec {
    pub server: SocketAddr,
    pub role: ServerRole,
    pub transport: Transport,
    /// Fully qualified, with the trailing dot.
    pub qname: String,
    pub qtype: QType,
    pub timeout: Duration,
}

/// Sends one query and waits for its response, at most `spec.timeout` in total.
pub fn query(spec: &QuerySpec) -> QueryResult {
    let id: u16 = rand::random();
    let mut result = QueryResult {
        server: spec.server,
        role: spec.role,
        transport: spec.transport,
        qname: spec.qname.clone(),
        qtype: spec.qtype.as_str().to_owned(),
        id,
        source_port: None,
        outcome: QueryOutcome::Error,
        rcode: None,
        answers: Vec::new(),
        truncated: false,
        latency_ms: 0.0,
        error: None,
    };
    let bytes = match dns::build_query(id, &spec.qname, spec.qtype) {
        Ok(bytes) => bytes,
        Err(e) => {
            result.error = Some(e.to_string());
            return result;
        }
    };
    let start = Instant::now();
    let deadline = start + spec.timeout;
    let exchanged = match spec.transport {
        Transport::Udp => exchange_udp(spec.server, &bytes, id, deadline, &mut result.source_port),
        Transport::Tcp => exchange_tcp(spec.server, &bytes, deadline, &mut result.source_port),
    };
    result.latency_ms = millis(start.elapsed());
    match exchanged.and_then(|reply| {
        dns::parse_response(&reply).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
    }) {
        Ok(response) => {
            result.outcome = QueryOutcome::Answered;
            result.rcode = Some(response.rcode);
            result.answers = response.answers;
            result.truncated = response.truncated;
        }
        Err(e) => {
            result.outcome = classify(&e);
            result.error = Some(e.to_string());
        }
    }
    result
}

fn remaining(deadline: Instant) -> io::Result<Duration> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "no response before the timeout",
        ))
    } else {
        Ok(left)
    }
}

/// A connected UDP socket, so that ICMP errors for it are reported on receive.
fn connected_udp(server: SocketAddr) -> io::Result<UdpSocket> {
    let socket = UdpSocket::bind(unspecified_for(server))?;
    socket.connect(server)?;
    Ok(socket)
}

/// Receives until a datagram with message ID `id` arrives or the deadline passes; replies to
/// other IDs (late answers to earlier queries) are skipped.
fn receive_id(socket: &UdpSocket, id: u16, deadline: Instant) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; UDP_BUFFER];
    loop {
        socket.set_read_timeout(Some(remaining(deadline)?))?;
        let n = socket.recv(&mut buf)?;
        if dns::message_id(&buf[..n]) == Some(id) {
            buf.truncate(n);
            return Ok(buf);
        }
    }
}

fn exchange_udp(
    server: SocketAddr,
    query: &[u8],
    id: u16,
    deadline: Instant,
    source_port: &mut Option<u16>,
) -> io::Result<Vec<u8>> {
    let socket = connected_udp(server)?;
    *source_port = Some(socket.local_addr()?.port());
    socket.send(query)?;
    receive_id(&socket, id, deadline).map_err(|e| match e.kind() {
        io::ErrorKind::WouldBlock => {
            io::Error::new(io::ErrorKind::TimedOut, "no response before the timeout")
        }
        _ => e,
    })
}

fn exchange_tcp(
    server: SocketAddr,
    query: &[u8],
    deadline: Instant,
    source_port: &mut Option<u16>,
) -> io::Result<Vec<u8>> {
    let mut stream = TcpStream::connect_timeout(&server, remaining(deadline)?)?;
    *source_port = Some(stream.local_addr()?.port());
    let length = u16::try_from(query.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "query too long"))?;
    let mut framed = length.to_be_bytes().to_vec();
    framed.extend_from_slice(query);
    stream.set_write_timeout(Some(remaining(deadline)?))?;
    stream.write_all(&framed)?;
    let mut read_exact = |buf: &mut [u8]| -> io::Result<()> {
        stream.set_read_timeout(Some(remaining(deadline)?))?;
        stream.read_exact(buf).map_err(|e| match e.kind() {
            io::ErrorKind::WouldBlock => {
                io::Error::new(io::ErrorKind::TimedOut, "no response before the timeout")
            }
            io::ErrorKind::UnexpectedEof => io::Error::new(
                io::ErrorKind::ConnectionReset,
                "server closed the connection",
            ),
            _ => e,
        })
    };
    let mut length = [0u8; 2];
    read_exact(&mut length)?;
    let mut reply = vec![0u8; usize::from(u16::from_be_bytes(length))];
    read_exact(&mut reply)?;
    Ok(reply)
}

/// What happened to one round's two replies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Round {
    a: bool,
    aaaa: bool,
    elapsed: Duration,
}

/// Parallel rounds stop after this many in a row lost both replies.
pub const DEAD_AFTER_ROUNDS: u32 = 3;

/// Parallel rounds stop once this many lost a reply: the stalls are shown.
pub const ENOUGH_LOST_ROUNDS: u32 = 5;

/// Runs `rounds` parallel A+AAAA lookups of `qname` against `server`: each round from fresh
/// socket(s), as a resolver does per lookup, so each round creates new conntrack entries
/// (the insert race only happens on a connection's first packets). With `same_socket` both
/// queries leave back to back from one socket (glibc and musl default); otherwise from two
/// sockets (single-request-reopen).
pub fn parallel_rounds(
    server: SocketAddr,
    qname: &str,
    rounds: u32,
    wait: Duration,
    same_socket: bool,
) -> ParallelStats {
    let mut stats = ParallelStats {
        rounds: 0,
        both_answered: 0,
        a_missing: 0,
        aaaa_missing: 0,
        both_missing: 0,
        round_ms: Vec::new(),
    };
    for n in 0..rounds {
        // Rounds measure partial loss (one of two replies); a path that lost both replies
        // of every round so far is dead, and waiting out more rounds adds nothing.
        if n >= DEAD_AFTER_ROUNDS && stats.both_missing == n {
            break;
        }
        // Enough rounds lost a reply to show the stalls; more would only wait out more.
        if stats.a_missing + stats.aaaa_missing + stats.both_missing >= ENOUGH_LOST_ROUNDS {
            break;
        }
        let round = if same_socket {
            round_same_socket(server, qname, wait)
        } else {
            round_separate_sockets(server, qname, wait)
        };
        stats.rounds += 1;
        match (round.a, round.aaaa) {
            (true, true) => stats.both_answered += 1,
            (false, true) => stats.a_missing += 1,
            (true, false) => stats.aaaa_missing += 1,
            (false, false) => stats.both_missing += 1,
        }
        stats.round_ms.push(millis(round.elapsed));
    }
    stats
}

/// A message ID and the encoded query carrying it.
type Encoded = (u16, Vec<u8>);

/// The A and AAAA queries of one round, with distinct random message IDs.
fn round_queries(qname: &str) -> Option<(Encoded, Encoded)> {
    let id_a: u16 = rand::random();
    let id_aaaa = id_a.wrapping_add(1);
    let a = dns::build_query(id_a, qname, QType::A).ok()?;
    let aaaa = dns::build_query(id_aaaa, qname, QType::Aaaa).ok()?;
    Some(((id_a, a), (id_aaaa, aaaa)))
}

fn round_same_socket(server: SocketAddr, qname: &str, wait: Duration) -> Round {
    let start = Instant::now();
    let deadline = start + wait;
    let mut round = Round {
        a: false,
        aaaa: false,
        elapsed: wait,
    };
    let Some(((id_a, a), (id_aaaa, aaaa))) = round_queries(qname) else {
        return round;
    };
    let Ok(socket) = connected_udp(server) else {
        return round;
    };
    if socket.send(&a).is_err() || socket.send(&aaaa).is_err() {
        return round;
    }
    let mut buf = vec![0u8; UDP_BUFFER];
    while !(round.a && round.aaaa) {
        let Ok(left) = remaining(deadline) else { break };
        if socket.set_read_timeout(Some(left)).is_err() {
            break;
        }
        match socket.recv(&mut buf) {
            Ok(n) => match dns::message_id(&buf[..n]) {
                Some(id) if id == id_a => round.a = true,
                Some(id) if id == id_aaaa => round.aaaa = true,
                _ => {}
            },
            // An ICMP error is reported once; keep waiting for the other reply.
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {}
            Err(_) => break,
        }
    }
    if round.a && round.aaaa {
        round.elapsed = start.elapsed();
    }
    round
}

fn round_separate_sockets(server: SocketAddr, qname: &str, wait: Duration) -> Round {
    let start = Instant::now();
    let deadline = start + wait;
    let mut round = Round {
        a: false,
        aaaa: false,
        elapsed: wait,
    };
    let Some(((id_a, a), (id_aaaa, aaaa))) = round_queries(qname) else {
        return round;
    };
    let (Ok(socket_a), Ok(socket_aaaa)) = (connected_udp(server), connected_udp(server)) else {
        return round;
    };
    let sent_a = socket_a.send(&a).is_ok();
    let sent_aaaa = socket_aaaa.send(&aaaa).is_ok();
    let got_at = |socket: &UdpSocket, id: u16, sent: bool| -> Option<Instant> {
        if !sent {
            return None;
        }
        loop {
            match receive_id(socket, id, deadline) {
                Ok(_) => return Some(Instant::now()),
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {}
                Err(_) => return None,
            }
        }
    };
    let (at_a, at_aaaa) = thread::scope(|scope| {
        let a = scope.spawn(|| got_at(&socket_a, id_a, sent_a));
        let aaaa = got_at(&socket_aaaa, id_aaaa, sent_aaaa);
        (a.join().unwrap_or(None), aaaa)
    });
    round.a = at_a.is_some();
    round.aaaa = at_aaaa.is_some();
    if let (Some(x), Some(y)) = (at_a, at_aaaa) {
        round.elapsed = x.max(y).duration_since(start);
    }
    round
}
