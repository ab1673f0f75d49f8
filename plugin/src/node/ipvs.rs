//! Parser for `ipvsadm -Ln` (kube-proxy's IPVS mode): virtual services and their real
//! servers with forwarding method, weight and connection counts.

use std::net::IpAddr;

use serde::Serialize;

use super::service::{parse_dnat_destination, Protocol, ProxyEndpoint, ServicePort};

/// The whole table.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct IpvsTable {
    /// From the `IP Virtual Server version 1.2.1 (size=4096)` banner.
    pub version: Option<String>,
    pub services: Vec<IpvsService>,
}

/// One virtual service line (`TCP  10.96.0.10:53 rr`) and the real servers under it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IpvsService {
    /// `TCP`, `UDP`, `SCTP` or `FWM`.
    pub protocol: String,
    /// Address and port; `None` for firewall-mark services.
    pub address: Option<(IpAddr, u16)>,
    pub fwmark: Option<u32>,
    pub scheduler: String,
    /// Session-affinity timeout from `persistent N`.
    pub persistent: Option<u32>,
    /// Remaining flags as printed.
    pub flags: Vec<String>,
    pub real_servers: Vec<RealServer>,
}

/// One `-> 10.244.0.2:53  Masq  1  0  0` line.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RealServer {
    pub address: IpAddr,
    pub port: u16,
    /// `Masq`, `Route`, `Tunnel`, `Local`.
    pub forward: String,
    /// kube-proxy sets 0 for terminating endpoints: no new connections go there.
    pub weight: i64,
    pub active_conn: u64,
    pub inactive_conn: u64,
}

/// Why `ipvsadm -Ln` output could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IpvsError {
    #[error("line {line}: {reason}")]
    Malformed { line: usize, reason: String },
}

/// Parses `ipvsadm -Ln` (also `-Ln --stats`-less variants with extra flags).
pub fn parse_ipvsadm(input: &str) -> Result<IpvsTable, IpvsError> {
    let mut table = IpvsTable::default();
    for (idx, raw) in input.lines().enumerate() {
        let line = idx + 1;
        let bad = |reason: &str| IpvsError::Malformed {
            line,
            reason: reason.to_string(),
        };
        let text = raw.trim();
        if text.is_empty() || text.starts_with("Prot ") || text.starts_with("-> RemoteAddress") {
            continue;
        }
        if let Some(v) = text.strip_prefix("IP Virtual Server version ") {
            table.version = v.split_whitespace().next().map(str::to_string);
            continue;
        }
        let fields: Vec<&str> = text.split_whitespace().collect();
        if fields[0] == "->" {
            let service = table
                .services
                .last_mut()
                .ok_or_else(|| bad("real server before any virtual service"))?;
            if fields.len() < 6 {
                return Err(bad(
                    "real server line needs address, forward, weight and two counts",
                ));
            }
            let (address, port) = parse_dnat_destination(fields[1])
                .and_then(|(a, p)| Some((a, p?)))
                .ok_or_else(|| bad("real server address is not ip:port"))?;
            let num = |s: &str| {
                s.parse::<u64>()
                    .map_err(|_| bad("connection count is not a number"))
            };
            service.real_servers.push(RealServer {
                address,
                port,
                forward: fields[2].to_string(),
                weight: fields[3]
                    .parse()
                    .map_err(|_| bad("weight is not a number"))?,
                active_conn: num(fields[4])?,
                inactive_conn: num(fields[5])?,
            });
            continue;
        }
        if fields.len() < 3 {
            return Err(bad(
                "virtual service line needs protocol, address and scheduler",
            ));
        }
        let protocol = fields[0].to_ascii_uppercase();
        let (address, fwmark) = if protocol == "FWM" {
            (
                None,
                Some(fields[1].parse().map_err(|_| bad("bad firewall mark"))?),
            )
        } else {
            let (a, p) = parse_dnat_destination(fields[1])
                .and_then(|(a, p)| Some((a, p?)))
                .ok_or_else(|| bad("virtual address is not ip:port"))?;
            (Some((a, p)), None)
        };
        let mut flags: Vec<String> = fields[3..].iter().map(|s| s.to_string()).collect();
        let persistent = flags
            .iter()
            .position(|f| f == "persistent")
            .and_then(|i| flags.get(i + 1))
            .and_then(|v| v.parse().ok());
        if persistent.is_some() {
            flags.retain(|f| f != "persistent" && Some(f.parse::<u32>().ok()) != Some(persistent));
        }
        table.services.push(IpvsService {
            protocol,
            address,
            fwmark,
            scheduler: fields[2].to_string(),
            persistent,
            flags,
            real_servers: Vec::new(),
        });
    }
    Ok(table)
}

impl IpvsTable {
    /// The virtual service for `service`, if IPVS has one.
    pub fn service(&self, service: &ServicePort) -> Option<&IpvsService> {
        self.services.iter().find(|s| {
            s.address == Some((service.ip, service.port))
                && Protocol::parse(&s.protocol) == Some(service.protocol)
        })
    }
}

impl IpvsService {
    /// Real servers that take new connections (weight > 0), as endpoints.
    pub fn endpoints(&self) -> Vec<ProxyEndpoint> {
        self.real_servers
            .iter()
            .filter(|r| r.weight > 0)
            .map(|r| ProxyEndpoint {
                address: r.address,
                port: Some(r.port),
                probability: None,
                source: format!("ipvs {} {}:{}", self.protocol, r.address, r.port),
            })
            .collect()
    }
}
