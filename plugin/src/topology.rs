//! What discovery found in the cluster: plain values, filled by `kube::discover`, read by
//! `plan`, `diagnose` and `report`, and written into the evidence bundle.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::dns_config::coredns_log::{ApiPermission, LogClass};

/// Everything discovery learnt about the target pod and the cluster DNS behind it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Topology {
    pub target: PodInfo,
    /// The workload named on the command line when the target pod was chosen from one.
    #[serde(default)]
    pub chosen_from: Option<String>,
    pub cluster_dns: ClusterDns,
    /// The Service whose ClusterIP is the cluster DNS address; None when no Service owns it.
    #[serde(default)]
    pub dns_service: Option<ServiceInfo>,
    /// Endpoints of the DNS Service, from its EndpointSlices.
    #[serde(default)]
    pub endpoints: Vec<EndpointInfo>,
    /// Pods behind the DNS Service (by endpoint targetRef, else by selector).
    #[serde(default)]
    pub dns_pods: Vec<DnsPodInfo>,
    /// The Corefile of the DNS pods (from the ConfigMap they mount), verbatim.
    #[serde(default)]
    pub corefile: Option<String>,
    #[serde(default)]
    pub kube_proxy: KubeProxyInfo,
    #[serde(default)]
    pub node_local_dns: Option<NodeLocalDnsInfo>,
    /// Services whose DNS answer the API knows: default/kubernetes and the target
    /// namespace's ClusterIP Services. Lookups of them must return these addresses.
    #[serde(default)]
    pub known_services: Vec<KnownService>,
    /// Discovery steps that could not be done (forbidden, not found), with the reason.
    #[serde(default)]
    pub gaps: Vec<String>,
}

/// A Service and its ClusterIPs (one per IP family).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KnownService {
    pub namespace: String,
    pub name: String,
    pub cluster_ips: Vec<IpAddr>,
}

/// A pod as far as DNS cares.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PodInfo {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    #[serde(default)]
    pub node: Option<String>,
    #[serde(default)]
    pub ip: Option<IpAddr>,
    pub phase: String,
    pub ready: bool,
    #[serde(default)]
    pub host_network: bool,
    /// ClusterFirst, ClusterFirstWithHostNet, Default or None.
    pub dns_policy: String,
    /// spec.dnsConfig, when set.
    #[serde(default)]
    pub dns_config: Option<PodDnsConfig>,
    /// Container names, the first being the one the probe targets.
    pub containers: Vec<String>,
    /// Names of ephemeral containers already in the spec (ours from earlier runs included).
    #[serde(default)]
    pub ephemeral_containers: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodDnsConfig {
    #[serde(default)]
    pub nameservers: Vec<String>,
    #[serde(default)]
    pub searches: Vec<String>,
    /// Options as `name` or `name:value`.
    #[serde(default)]
    pub options: Vec<String>,
}

/// Where the cluster DNS address came from, best source first.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClusterDnsSource {
    /// The kubelet's live configuration, via the node proxy `configz` endpoint.
    KubeletConfigz,
    /// The target pod's resolv.conf, as read by the probe.
    PodResolvConf,
    /// The Service `kube-dns` in `kube-system`, the kubeadm default.
    KubeDnsService,
    #[default]
    Unknown,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterDns {
    pub source: ClusterDnsSource,
    /// The kubelet's clusterDNS addresses (normally one).
    pub ips: Vec<IpAddr>,
    /// The kubelet's clusterDomain, e.g. cluster.local.
    pub domain: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServicePort {
    #[serde(default)]
    pub name: Option<String>,
    pub port: u16,
    pub protocol: String,
    /// targetPort as written (number or name).
    #[serde(default)]
    pub target_port: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceInfo {
    pub namespace: String,
    pub name: String,
    pub cluster_ip: IpAddr,
    pub ports: Vec<ServicePort>,
    #[serde(default)]
    pub selector: Vec<(String, String)>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointInfo {
    pub ip: IpAddr,
    /// Port numbers by protocol, e.g. [("UDP", 53), ("TCP", 53)].
    pub ports: Vec<(String, u16)>,
    pub ready: bool,
    pub serving: bool,
    pub terminating: bool,
    /// namespace/name of the pod, from targetRef.
    #[serde(default)]
    pub pod: Option<String>,
    #[serde(default)]
    pub node: Option<String>,
}

/// How a container last ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Termination {
    pub reason: String,
    pub exit_code: i32,
    #[serde(default)]
    pub message: Option<String>,
}

/// A notable line in a DNS pod's log, with what it means.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogLine {
    /// What the line reports, e.g. `forwarding_loop`, `upstream_timeout`.
    pub kind: LogClass,
    /// The line, whole, or cut with a visible `… [cut, N more chars]` when very long.
    pub line: String,
    /// True when it came from the previous (crashed) container instance.
    #[serde(default)]
    pub previous: bool,
    /// For `kubernetes_api_forbidden`: the permission the API server refused, when the line
    /// names it.
    #[serde(default)]
    pub forbidden: Option<ApiPermission>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DnsPodInfo {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    #[serde(default)]
    pub ip: Option<IpAddr>,
    #[serde(default)]
    pub node: Option<String>,
    pub phase: String,
    pub ready: bool,
    pub restarts: u32,
    /// The DNS server container's name (the one the probe targets).
    pub container: String,
    /// The current Waiting reason, e.g. CrashLoopBackOff.
    #[serde(default)]
    pub waiting_reason: Option<String>,
    #[serde(default)]
    pub last_termination: Option<Termination>,
    #[serde(default)]
    pub log_lines: Vec<LogLine>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct KubeProxyPod {
    pub name: String,
    #[serde(default)]
    pub node: Option<String>,
    pub phase: String,
    pub ready: bool,
    pub restarts: u32,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct KubeProxyInfo {
    /// Pods labelled k8s-app=kube-proxy (DaemonSet or static pods).
    pub pods: Vec<KubeProxyPod>,
    /// `mode` from the kube-proxy ConfigMap, when there is one ("" means iptables).
    #[serde(default)]
    pub configured_mode: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeLocalDnsInfo {
    pub namespace: String,
    pub name: String,
    pub desired: i32,
    pub ready: i32,
    /// The link-local address it listens on, 169.254.20.10 by default.
    pub local_ip: IpAddr,
}

impl Topology {
    /// Why the target, by design, does not use the cluster DNS, if it is such a pod: a DNS
    /// server must not ask itself (its upstream is what matters), and a hostNetwork pod
    /// with dnsPolicy Default resolves exactly as its node does.
    pub fn bypasses_cluster_dns_by_design(&self) -> Option<String> {
        let t = &self.target;
        if self
            .dns_pods
            .iter()
            .any(|p| p.namespace == t.namespace && p.name == t.name)
        {
            return Some(format!(
                "{}/{} is a pod of the cluster DNS itself: it must not ask itself, it forwards to its upstream",
                t.namespace, t.name
            ));
        }
        if let Some(nl) = &self.node_local_dns {
            if nl.namespace == t.namespace && t.name.starts_with(&format!("{}-", nl.name)) {
                return Some(format!(
                    "{}/{} is a NodeLocal DNSCache pod: it forwards to the cluster DNS and the upstream itself",
                    t.namespace, t.name
                ));
            }
        }
        if t.host_network && t.dns_policy == "Default" {
            return Some(format!(
                "{}/{} runs in the node's network with dnsPolicy Default: it resolves exactly as its node does",
                t.namespace, t.name
            ));
        }
        None
    }

    /// Nodes the run needs node checks on: the target's, then every DNS pod's.
    pub fn nodes_involved(&self) -> Vec<String> {
        let mut nodes: Vec<String> = Vec::new();
        let candidates = self
            .target
            .node
            .iter()
            .chain(self.dns_pods.iter().filter_map(|p| p.node.as_ref()));
        for n in candidates {
            if !nodes.contains(n) {
                nodes.push(n.clone());
            }
        }
        nodes
    }

    /// Addresses of the DNS endpoints that claim to be ready.
    pub fn ready_endpoint_ips(&self) -> Vec<IpAddr> {
        self.endpoints
            .iter()
            .filter(|e| e.ready)
            .map(|e| e.ip)
            .collect()
    }
}
