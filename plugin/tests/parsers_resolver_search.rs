//! The search-list expansion of `glibc_search_candidates` and `musl_search_candidates`
//! checked against the real resolvers: glibc's `getent ahosts NAME`, and a getaddrinfo()
//! program built with musl-gcc (Debian's musl-tools, installed here when missing), each run
//! in a private mount namespace (`unshare -m`) whose /etc/resolv.conf is a file this test
//! writes, pointing at a loopback address where this test answers every query with NXDOMAIN
//! and records the names asked, in order. Nothing is sent beyond 127.0.0.0/8. Needs root
//! (port 53, mount namespace), as the test suite runs.

use std::collections::HashSet;
use std::net::UdpSocket;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dns_doctor::dns_config::resolv_conf::{musl_search_candidates, parse_resolv_conf};

/// The question name of a DNS query, with a trailing dot.
fn qname(packet: &[u8]) -> Option<String> {
    let mut i = 12;
    let mut name = String::new();
    loop {
        let len = usize::from(*packet.get(i)?);
        if len == 0 {
            break;
        }
        let label = packet.get(i + 1..i + 1 + len)?;
        name.push_str(&String::from_utf8_lossy(label));
        name.push('.');
        i += 1 + len;
    }
    Some(if name.is_empty() { ".".into() } else { name })
}

/// Serves NXDOMAIN on `addr:53` until `stop`, appending each query name to `seen`.
fn serve(sock: UdpSocket, seen: Arc<Mutex<Vec<String>>>, stop: Arc<AtomicBool>) {
    let mut buf = [0u8; 512];
    while !stop.load(Ordering::Relaxed) {
        let Ok((n, from)) = sock.recv_from(&mut buf) else {
            continue;
        };
        if n < 12 {
            continue;
        }
        if let Some(q) = qname(&buf[..n]) {
            seen.lock().unwrap().push(q);
        }
        let mut reply = buf[..n].to_vec();
        reply[2] |= 0x80; // QR
        reply[3] = (reply[3] & 0x70) | 0x80 | 3; // RA, NXDOMAIN
        let _ = sock.send_to(&reply, from);
    }
}

/// Runs `program name` (a resolver front end) against `resolv_conf` and returns the distinct
/// names queried, in first-seen order.
fn queries(program: &str, listen: &str, resolv_conf: &str, name: &str) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("resolv.conf");
    std::fs::write(&path, resolv_conf).unwrap();
    let sock = UdpSocket::bind((listen, 53))
        .unwrap_or_else(|e| panic!("bind {listen}:53 (root needed): {e}"));
    sock.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let server = {
        let (seen, stop) = (seen.clone(), stop.clone());
        std::thread::spawn(move || serve(sock, seen, stop))
    };
    let started = Instant::now();
    let status = Command::new("timeout")
        .args(["20", "unshare", "-m", "sh", "-c"])
        .arg("mount --bind \"$1\" /etc/resolv.conf && exec $2 \"$3\"")
        .args(["sh", path.to_str().unwrap(), program, name])
        .output()
        .expect("run unshare/getent");
    stop.store(true, Ordering::Relaxed);
    server.join().unwrap();
    // Both front ends exit 2 when the name does not resolve (NXDOMAIN everywhere).
    assert_eq!(status.status.code(), Some(2), "{program}: {status:?}");
    assert!(started.elapsed() < Duration::from_secs(15));
    let mut order = Vec::new();
    let mut dedup = HashSet::new();
    for q in seen.lock().unwrap().iter() {
        if dedup.insert(q.clone()) {
            order.push(q.clone());
        }
    }
    order
}

const FILES: [&str; 2] = [
    "search default.svc.cluster.local svc.cluster.local cluster.local\nnameserver 127.53.0.1\noptions ndots:5 timeout:1 attempts:1\n",
    "search corp.test\ndomain lab.test\nnameserver 127.53.0.1\noptions ndots:1 timeout:1 attempts:1\n",
];
const NAMES: [&str; 4] = ["external.test", "a.b.c.d.e.f", "web", "absolute.test."];

#[test]
fn glibc_tries_exactly_the_candidates_we_compute() {
    // A loopback address of our own (127.53.0.1 for glibc, 127.53.0.2 for musl) so neither
    // test nor any other resolver on 127.0.0.1:53 interferes.
    let mut checked = 0;
    for file in FILES {
        let rc = parse_resolv_conf(file);
        for name in NAMES {
            let real = queries("getent ahosts", "127.53.0.1", file, name);
            assert_eq!(real, rc.candidates(name), "name {name} with\n{file}");
            checked += 1;
        }
    }
    assert_eq!(checked, 8);
}

const MUSL_LOOKUP: &str = r#"
#include <netdb.h>
#include <string.h>
int main(int argc, char **argv) {
    struct addrinfo hints, *res;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_DGRAM;
    return getaddrinfo(argv[1], 0, &hints, &res) == 0 ? 0 : 2;
}
"#;

/// Builds a static getaddrinfo() program against musl, installing musl-tools if needed.
fn musl_lookup_binary(dir: &std::path::Path) -> std::path::PathBuf {
    if Command::new("musl-gcc").arg("--version").output().is_err() {
        let ok = Command::new("timeout")
            .args(["600", "apt-get", "install", "-y", "-q", "musl-tools"])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .expect("apt-get");
        assert!(ok.success(), "apt-get install musl-tools failed");
    }
    let src = dir.join("lookup.c");
    let bin = dir.join("musl-lookup");
    std::fs::write(&src, MUSL_LOOKUP).unwrap();
    let out = Command::new("musl-gcc")
        .args(["-static", "-O1", "-o"])
        .arg(&bin)
        .arg(&src)
        .output()
        .expect("musl-gcc");
    assert!(out.status.success(), "musl-gcc: {out:?}");
    bin
}

#[test]
fn musl_tries_exactly_the_candidates_we_compute() {
    let dir = tempfile::tempdir().unwrap();
    let bin = musl_lookup_binary(dir.path());
    for file in FILES {
        let file = file.replace("127.53.0.1", "127.53.0.2");
        let rc = parse_resolv_conf(&file);
        for name in NAMES {
            let real = queries(bin.to_str().unwrap(), "127.53.0.2", &file, name);
            assert_eq!(
                real,
                musl_search_candidates(name, rc.ndots, &rc.search),
                "name {name} with\n{file}"
            );
        }
    }
}
