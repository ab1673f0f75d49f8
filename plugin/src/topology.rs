//! What discovery found in the cluster: plain values, filled by `kube::discover`, read by
//! `plan`, `diagnose` and `report`, and written into the evidence bundle.

use std::collections::BTreeMap;
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
    /// What the DNS pods' ServiceAccount may read of what CoreDNS's kubernetes plugin
    /// watches; empty when it could not be asked (no permission to create
    /// SubjectAccessReviews, no DNS pods).
    #[serde(default)]
    pub dns_api_access: Vec<DnsApiAccess>,
    /// Services whose DNS answer the API knows: default/kubernetes and the target
    /// namespace's ClusterIP Services. Lookups of them must return these addresses.
    #[serde(default)]
    pub known_services: Vec<KnownService>,
    /// Labels of the target's and the DNS pods' namespaces, by namespace name, as far as
    /// they could be read (NetworkPolicy namespace selectors match on them).
    #[serde(default)]
    pub namespace_labels: BTreeMap<String, BTreeMap<String, String>>,
    /// NetworkPolicies of the target's and the DNS Service's namespaces.
    #[serde(default)]
    pub network_policies: Vec<NetworkPolicyInfo>,
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
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
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
    /// The same ports with the names of the Service ports they serve (an EndpointSlice
    /// names its ports after them), which tell the DNS port from, say, metrics.
    #[serde(default)]
    pub named_ports: Vec<NamedPort>,
}

/// A port with its protocol and, when it has one, its name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NamedPort {
    #[serde(default)]
    pub name: Option<String>,
    pub protocol: String,
    pub port: u16,
}

/// How a container last ended.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Termination {
    pub reason: String,
    pub exit_code: i32,
    #[serde(default)]
    pub message: Option<String>,
    /// When it ended (RFC 3339), as the container status says.
    #[serde(default)]
    pub finished_at: Option<String>,
    /// How long before discovery it ended, in seconds.
    #[serde(default)]
    pub finished_secs_ago: Option<u64>,
}

/// A container's CPU and memory requests and limits from the pod spec, as written there
/// (`100m`, `170Mi`); None when not set.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerResources {
    #[serde(default)]
    pub cpu_request: Option<String>,
    #[serde(default)]
    pub cpu_limit: Option<String>,
    #[serde(default)]
    pub memory_request: Option<String>,
    #[serde(default)]
    pub memory_limit: Option<String>,
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
    /// metadata.deletionTimestamp is set: the pod is being deleted (replaced by a rollout,
    /// evicted), whatever its readiness still says.
    #[serde(default)]
    pub deleting: bool,
    /// How the DNS container ended when its current state is terminated: it exited and the
    /// kubelet has not restarted it yet (between the restarts of a crash loop).
    #[serde(default)]
    pub exited: Option<Termination>,
    #[serde(default)]
    pub last_termination: Option<Termination>,
    #[serde(default)]
    pub log_lines: Vec<LogLine>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// The DNS container's declared containerPorts.
    #[serde(default)]
    pub container_ports: Vec<NamedPort>,
    /// spec.serviceAccountName (`default` when unset).
    #[serde(default)]
    pub service_account: String,
    /// The DNS container's ID from its status (`containerd://<id>`): its cgroup directory
    /// is named after it.
    #[serde(default)]
    pub container_id: Option<String>,
    /// The DNS container's requests and limits.
    #[serde(default)]
    pub resources: ContainerResources,
}

/// Whether the DNS pods' ServiceAccount may do what the DNS server's `kubernetes` plugin
/// needs, as the API server's authorizer answers (SubjectAccessReview).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DnsApiAccess {
    /// `system:serviceaccount:<ns>:<name>`.
    pub user: String,
    pub verb: String,
    /// `resource` or `resource.group`, e.g. `endpointslices.discovery.k8s.io`.
    pub resource: String,
    pub allowed: bool,
    #[serde(default)]
    pub reason: Option<String>,
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
    /// A DaemonSet kube-system/kube-proxy exists (its pods may all be gone).
    #[serde(default)]
    pub daemonset: bool,
}

impl KubeProxyInfo {
    /// No kube-proxy is meant to run here: no pod, no DaemonSet, no ConfigMap. The
    /// service data plane is something else (an eBPF replacement such as Cilium's).
    pub fn absent_by_design(&self) -> bool {
        self.pods.is_empty() && !self.daemonset && self.configured_mode.is_none()
    }
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

/// A NetworkPolicy as DNS traffic meets it, converted from the API object by discovery.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkPolicyInfo {
    pub namespace: String,
    pub name: String,
    /// The pods of its namespace it applies to; an empty selector selects them all.
    #[serde(default)]
    pub pod_selector: Selector,
    /// `Ingress`, `Egress`, as written; empty when unset.
    #[serde(default)]
    pub policy_types: Vec<String>,
    #[serde(default)]
    pub ingress: Vec<PolicyRule>,
    #[serde(default)]
    pub egress: Vec<PolicyRule>,
}

/// A label selector: every `match_labels` pair and every expression must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Selector {
    #[serde(default)]
    pub match_labels: BTreeMap<String, String>,
    #[serde(default)]
    pub match_expressions: Vec<SelectorRequirement>,
}

/// `key operator values`, the operator being In, NotIn, Exists or DoesNotExist.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SelectorRequirement {
    pub key: String,
    pub operator: String,
    #[serde(default)]
    pub values: Vec<String>,
}

/// One ingress or egress rule: traffic with any of the peers (all when none are listed) on
/// any of the ports (all when none are listed).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyRule {
    /// `to` for egress, `from` for ingress.
    #[serde(default)]
    pub peers: Vec<PolicyPeer>,
    #[serde(default)]
    pub ports: Vec<PolicyPort>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyPeer {
    #[serde(default)]
    pub pod_selector: Option<Selector>,
    #[serde(default)]
    pub namespace_selector: Option<Selector>,
    #[serde(default)]
    pub ip_block: Option<IpBlock>,
}

/// A CIDR with the ranges cut out of it, as written.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpBlock {
    pub cidr: String,
    #[serde(default)]
    pub except: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyPort {
    /// TCP when the policy does not say.
    pub protocol: String,
    /// A number or a named port; every port when None.
    #[serde(default)]
    pub port: Option<String>,
    /// The end of a numeric range starting at `port`.
    #[serde(default)]
    pub end_port: Option<u16>,
}

impl DnsPodInfo {
    /// Whether a probe container can join the DNS container now: it runs, and it is not
    /// between the crashes of a loop (restarted, not ready, last ended with an error). Beside
    /// an exited container an ephemeral container cannot start (the kubelet reports
    /// CreateContainerError only after seconds), and beside one about to crash again it
    /// measures nothing the API does not already say.
    pub fn can_host_probe(&self) -> bool {
        let crash_looping = !self.ready
            && self.restarts > 0
            && self
                .last_termination
                .as_ref()
                .is_some_and(|t| t.exit_code != 0);
        self.phase == "Running"
            && self.waiting_reason.is_none()
            && self.exited.is_none()
            && !crash_looping
    }
}

impl ServiceInfo {
    /// The Service's DNS port for `protocol` ("UDP", "TCP"): port 53 of that protocol.
    pub fn dns_port(&self, protocol: &str) -> Option<&ServicePort> {
        self.ports
            .iter()
            .find(|p| p.port == 53 && p.protocol.eq_ignore_ascii_case(protocol))
    }
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

    /// The port `ep` serves DNS on over `protocol` ("UDP", "TCP"): the EndpointSlice port
    /// named like the DNS Service's port 53 of that protocol (None when the slices have no
    /// such port); without names, its only port of that protocol, else the Service's
    /// numeric targetPort or 53 when it has it.
    pub fn endpoint_dns_port(&self, ep: &EndpointInfo, protocol: &str) -> Option<u16> {
        let svc_port = self.dns_service.as_ref().and_then(|s| s.dns_port(protocol));
        if let Some(sp) = svc_port.filter(|_| !ep.named_ports.is_empty()) {
            return ep
                .named_ports
                .iter()
                .find(|p| p.protocol.eq_ignore_ascii_case(protocol) && p.name == sp.name)
                .map(|p| p.port);
        }
        let candidates: Vec<u16> = ep
            .ports
            .iter()
            .filter(|(proto, _)| proto.eq_ignore_ascii_case(protocol))
            .map(|(_, port)| *port)
            .collect();
        if let [only] = candidates.as_slice() {
            return Some(*only);
        }
        let target = svc_port
            .and_then(|s| s.target_port.as_deref())
            .and_then(|t| t.parse::<u16>().ok());
        target
            .into_iter()
            .chain([53])
            .find(|p| candidates.contains(p))
    }

    /// Whether a DNS pod is on its way out: it is being deleted, or its endpoint is
    /// terminating (replaced by a rollout, evicted: it takes no new queries).
    pub fn dns_pod_terminating(&self, p: &DnsPodInfo) -> bool {
        let full = format!("{}/{}", p.namespace, p.name);
        p.deleting
            || self
                .endpoints
                .iter()
                .any(|e| e.terminating && e.pod.as_deref() == Some(full.as_str()))
    }

    /// The DNS pod behind an endpoint, by its targetRef.
    pub fn dns_pod_of(&self, ep: &EndpointInfo) -> Option<&DnsPodInfo> {
        let (ns, name) = ep.pod.as_deref()?.split_once('/')?;
        self.dns_pods
            .iter()
            .find(|p| p.namespace == ns && p.name == name)
    }

    /// The DNS pod (namespace/name) behind the endpoint at `ip`, or the address itself when
    /// no endpoint there names its pod.
    pub fn endpoint_pod_name(&self, ip: &IpAddr) -> String {
        self.endpoints
            .iter()
            .find(|e| e.ip == *ip)
            .and_then(|e| e.pod.clone())
            .unwrap_or_else(|| ip.to_string())
    }

    /// The node of the DNS endpoint at `ip`, when its EndpointSlice names one.
    pub fn endpoint_node(&self, ip: &IpAddr) -> Option<&str> {
        self.endpoints
            .iter()
            .find(|e| e.ip == *ip)
            .and_then(|e| e.node.as_deref())
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

#[cfg(test)]
mod tests {
    use super::*;

    fn port(name: Option<&str>, protocol: &str, port: u16) -> NamedPort {
        NamedPort {
            name: name.map(str::to_string),
            protocol: protocol.into(),
            port,
        }
    }

    fn topology(target_port: &str, ep_ports: Vec<NamedPort>) -> (Topology, EndpointInfo) {
        let svc_port = |name: &str, protocol: &str| ServicePort {
            name: Some(name.into()),
            port: 53,
            protocol: protocol.into(),
            target_port: Some(target_port.into()),
        };
        let topo = Topology {
            dns_service: Some(ServiceInfo {
                namespace: "kube-system".into(),
                name: "kube-dns".into(),
                cluster_ip: "10.96.0.10".parse().unwrap(),
                ports: vec![svc_port("dns", "UDP"), svc_port("dns-tcp", "TCP")],
                selector: Vec::new(),
            }),
            ..Topology::default()
        };
        let ep = EndpointInfo {
            ip: "10.244.0.2".parse().unwrap(),
            ports: ep_ports
                .iter()
                .map(|p| (p.protocol.clone(), p.port))
                .collect(),
            ready: true,
            serving: true,
            terminating: false,
            pod: None,
            node: None,
            named_ports: ep_ports,
        };
        (topo, ep)
    }

    #[test]
    fn endpoint_dns_port_is_the_slice_port_named_like_the_service_port() {
        let (topo, ep) = topology(
            "5353",
            vec![
                port(Some("metrics"), "TCP", 9153),
                port(Some("dns-tcp"), "TCP", 5353),
                port(Some("dns"), "UDP", 5353),
            ],
        );
        assert_eq!(topo.endpoint_dns_port(&ep, "UDP"), Some(5353));
        assert_eq!(topo.endpoint_dns_port(&ep, "TCP"), Some(5353));
        // Without names (an older bundle): the targetPort among the TCP ports.
        let mut unnamed = ep.clone();
        unnamed.named_ports.clear();
        assert_eq!(topo.endpoint_dns_port(&unnamed, "TCP"), Some(5353));
        assert_eq!(topo.endpoint_dns_port(&unnamed, "UDP"), Some(5353));
        // The slices carry no port for the Service's DNS ports: metrics is not one.
        let (topo, ep) = topology("dns-tcp", vec![port(Some("metrics"), "TCP", 9153)]);
        assert_eq!(topo.endpoint_dns_port(&ep, "TCP"), None);
        assert_eq!(topo.endpoint_dns_port(&ep, "UDP"), None);
    }
}
