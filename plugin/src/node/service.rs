//! The service-side vocabulary shared by the kube-proxy readers (iptables, nftables, IPVS):
//! which ClusterIP:port/protocol is asked about, and the endpoints a data plane sends it to.

use std::fmt;
use std::net::IpAddr;

use serde::Serialize;

/// Transport protocol of a service port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Udp,
    Tcp,
    Sctp,
}

impl Protocol {
    /// Lower-case name as iptables, nft and kube-proxy comments write it.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Udp => "udp",
            Protocol::Tcp => "tcp",
            Protocol::Sctp => "sctp",
        }
    }

    /// Accepts names in any case and the IP protocol numbers 6, 17 and 132.
    pub fn parse(text: &str) -> Option<Protocol> {
        match text.to_ascii_lowercase().as_str() {
            "udp" | "17" => Some(Protocol::Udp),
            "tcp" | "6" => Some(Protocol::Tcp),
            "sctp" | "132" => Some(Protocol::Sctp),
            _ => None,
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A service address as a client uses it, e.g. 10.96.0.10:53/udp.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct ServicePort {
    pub ip: IpAddr,
    pub port: u16,
    pub protocol: Protocol,
}

impl ServicePort {
    pub fn new(ip: IpAddr, port: u16, protocol: Protocol) -> Self {
        ServicePort { ip, port, protocol }
    }
}

impl fmt::Display for ServicePort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.ip {
            IpAddr::V4(ip) => write!(f, "{ip}:{}/{}", self.port, self.protocol),
            IpAddr::V6(ip) => write!(f, "[{ip}]:{}/{}", self.port, self.protocol),
        }
    }
}

/// One backend the data plane translates the service to.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProxyEndpoint {
    pub address: IpAddr,
    /// `None` when the DNAT keeps the original port.
    pub port: Option<u16>,
    /// Share of new connections sent here (kube-proxy's random split); sums to 1 over the
    /// endpoints of a service, or `None` where the data plane uses a scheduler (IPVS).
    pub probability: Option<f64>,
    /// Where the endpoint came from: the KUBE-SEP chain, nft endpoint chain or IPVS line.
    pub source: String,
}

/// Parses a DNAT destination as written by iptables (`10.244.0.2:53`, `[fd00::2]:53`,
/// `10.244.0.2`) or nft (`dnat to 10.244.0.2:53`, `dnat ip6 to [fd00::2]:53`). Port ranges
/// keep their first port; address ranges are not an endpoint and give `None`.
pub fn parse_dnat_destination(text: &str) -> Option<(IpAddr, Option<u16>)> {
    let text = text.trim();
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Some((ip, None));
    }
    let (addr, port) = if let Some(rest) = text.strip_prefix('[') {
        let (addr, after) = rest.split_once(']')?;
        (addr, after.strip_prefix(':'))
    } else {
        match text.rsplit_once(':') {
            Some((a, p)) if !a.contains(':') => (a, Some(p)),
            _ => (text, None),
        }
    };
    let ip = addr.parse::<IpAddr>().ok()?;
    let port = match port {
        Some(p) => {
            let first = p.split(['-', ':']).next().unwrap_or(p);
            Some(first.parse::<u16>().ok()?)
        }
        None => None,
    };
    Some((ip, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dnat_destinations() {
        let v4: IpAddr = "10.244.0.2".parse().unwrap();
        let v6: IpAddr = "fd00::2".parse().unwrap();
        assert_eq!(
            parse_dnat_destination("10.244.0.2:53"),
            Some((v4, Some(53)))
        );
        assert_eq!(parse_dnat_destination("10.244.0.2"), Some((v4, None)));
        assert_eq!(parse_dnat_destination("[fd00::2]:53"), Some((v6, Some(53))));
        assert_eq!(parse_dnat_destination("fd00::2"), Some((v6, None)));
        assert_eq!(
            parse_dnat_destination("10.244.0.2:53-60"),
            Some((v4, Some(53)))
        );
        assert_eq!(parse_dnat_destination("10.0.0.1-10.0.0.3"), None);
        assert_eq!(Protocol::parse("UDP"), Some(Protocol::Udp));
        assert_eq!(
            ServicePort::new(v4, 53, Protocol::Tcp).to_string(),
            "10.244.0.2:53/tcp"
        );
    }
}
