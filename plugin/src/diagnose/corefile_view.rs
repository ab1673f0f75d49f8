//! The DNS pods' Corefile as the rules need it: where the root zone is forwarded.

use crate::dns_config::corefile::{parse_corefile, ForwardTarget};
use crate::topology::Topology;

/// One `forward` of a block serving the root zone.
#[derive(Debug, Clone, PartialEq)]
pub struct RootForward {
    /// Line of the server block in the Corefile.
    pub line: usize,
    pub targets: Vec<ForwardTarget>,
}

impl RootForward {
    /// The targets as written back, e.g. `10.200.0.2:53, /etc/resolv.conf`.
    pub fn describe(&self) -> String {
        let v: Vec<String> = self
            .targets
            .iter()
            .map(|t| match t {
                ForwardTarget::Address { ip, port } => format!("{ip}:{port}"),
                ForwardTarget::Tls { ip, port } => format!("tls://{ip}:{port}"),
                ForwardTarget::ResolvConf { path } => path.clone(),
                ForwardTarget::Other { raw } => raw.clone(),
            })
            .collect();
        v.join(", ")
    }

    /// True when a target is a resolv.conf file: the pod's, which on most nodes names a
    /// local stub resolver or the cluster DNS itself.
    pub fn uses_resolv_conf(&self) -> bool {
        self.targets
            .iter()
            .any(|t| matches!(t, ForwardTarget::ResolvConf { .. }))
    }
}

/// The root zone's forward in the topology's Corefile, when there is one and it parses.
pub fn root_forward(topology: &Topology) -> Option<RootForward> {
    let cf = parse_corefile(topology.corefile.as_deref()?).ok()?;
    cf.server_blocks
        .iter()
        .filter(|b| b.serves_root())
        .find_map(|b| {
            b.forward().map(|f| RootForward {
                line: b.line,
                targets: f.to,
            })
        })
}
