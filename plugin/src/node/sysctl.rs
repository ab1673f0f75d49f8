//! The few kernel settings that decide whether pod DNS traffic is forwarded and filtered:
//! `net.ipv4.ip_forward`, `net.bridge.bridge-nf-call-iptables` and `rp_filter`.
//!
//! Accepts the three shapes a snapshot takes: `sysctl KEY...` output (`key = value`),
//! `grep -H . /proc/sys/...` output (`/proc/sys/a/b:value`), or a single file's content
//! (see [`parse_sysctl_value`]).

use std::collections::BTreeMap;

use serde::Serialize;

/// Why a sysctl snapshot could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SysctlError {
    #[error("`{text}` is not an integer setting")]
    NotAnInteger { text: String },
}

/// The content of one /proc/sys file holding an integer (`1\n`).
pub fn parse_sysctl_value(text: &str) -> Result<i64, SysctlError> {
    let t = text.trim();
    t.parse().map_err(|_| SysctlError::NotAnInteger {
        text: t.chars().take(64).collect(),
    })
}

/// Settings keyed by dotted name (`net.ipv4.conf.all.rp_filter`). Lines in neither shape,
/// and `sysctl: cannot stat ...` errors for absent keys, are skipped.
pub fn parse_sysctl_lines(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let line = line.trim();
        if let Some(path) = line.strip_prefix("/proc/sys/") {
            if let Some((k, v)) = path.split_once(':') {
                out.insert(k.replace('/', "."), v.trim().to_string());
            }
        } else if let Some((k, v)) = line.split_once(" = ") {
            if !k.contains(' ') {
                out.insert(k.trim().to_string(), v.trim().to_string());
            }
        }
    }
    out
}

/// The settings that matter for DNS on a node. `None` means the key was not in the snapshot
/// (for bridge-nf-call-iptables: br_netfilter not loaded).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct NodeSysctls {
    pub ip_forward: Option<i64>,
    pub bridge_nf_call_iptables: Option<i64>,
    pub rp_filter_all: Option<i64>,
    pub rp_filter_default: Option<i64>,
    /// Per-interface rp_filter values present in the snapshot.
    pub rp_filter_interfaces: BTreeMap<String, i64>,
}

impl NodeSysctls {
    /// The rp_filter mode the kernel applies on `iface`: the maximum of `all` and the
    /// interface's own value (see the kernel's ip-sysctl documentation).
    pub fn effective_rp_filter(&self, iface: &str) -> Option<i64> {
        let own = self.rp_filter_interfaces.get(iface).copied();
        match (self.rp_filter_all, own) {
            (Some(a), Some(i)) => Some(a.max(i)),
            (a, i) => a.or(i),
        }
    }
}

/// Picks the DNS-relevant settings from [`parse_sysctl_lines`] output.
pub fn node_sysctls(settings: &BTreeMap<String, String>) -> NodeSysctls {
    let int = |k: &str| settings.get(k).and_then(|v| v.parse::<i64>().ok());
    let mut out = NodeSysctls {
        ip_forward: int("net.ipv4.ip_forward"),
        bridge_nf_call_iptables: int("net.bridge.bridge-nf-call-iptables"),
        rp_filter_all: int("net.ipv4.conf.all.rp_filter"),
        rp_filter_default: int("net.ipv4.conf.default.rp_filter"),
        rp_filter_interfaces: BTreeMap::new(),
    };
    for (k, v) in settings {
        let Some(rest) = k.strip_prefix("net.ipv4.conf.") else {
            continue;
        };
        let Some(iface) = rest.strip_suffix(".rp_filter") else {
            continue;
        };
        if iface == "all" || iface == "default" {
            continue;
        }
        if let Ok(v) = v.parse() {
            out.rp_filter_interfaces.insert(iface.to_string(), v);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_shapes_and_effective_rp_filter() {
        let s = parse_sysctl_lines(
            "net.ipv4.ip_forward = 0\n/proc/sys/net/ipv4/conf/eth0/rp_filter:2\nsysctl: cannot stat /proc/sys/net/bridge/bridge-nf-call-iptables: No such file or directory\nnet.ipv4.conf.all.rp_filter = 1\n",
        );
        let n = node_sysctls(&s);
        assert_eq!(n.ip_forward, Some(0));
        assert_eq!(n.bridge_nf_call_iptables, None);
        assert_eq!(n.effective_rp_filter("eth0"), Some(2));
        assert_eq!(n.effective_rp_filter("cni0"), Some(1));
        assert_eq!(parse_sysctl_value(" 1\n"), Ok(1));
        assert!(parse_sysctl_value("yes").is_err());
    }
}
