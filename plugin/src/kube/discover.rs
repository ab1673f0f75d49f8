//! Step 1, discover: API reads only. Finds the target pod, the cluster DNS address, the
//! Service that owns it (by IP), its endpoints and pods, their logs and Corefile, kube-proxy,
//! NodeLocal DNSCache, and the NetworkPolicies (with namespace labels) between them. Steps that are forbidden or fail are recorded as gaps, not fatal,
//! except finding the target itself.

use std::collections::BTreeMap;
use std::net::IpAddr;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::{NetworkPolicy, NetworkPolicyPeer, NetworkPolicyPort};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{ListParams, LogParams, PostParams};
use kube::{Api, Client};

use super::{ContainerKind, KubeError};
use crate::dns_config::coredns_log::notable_lines;
use crate::target::{TargetKind, TargetRef};
use crate::topology::{
    ClusterDns, ClusterDnsSource, ContainerResources, DnsApiAccess, DnsPodInfo, EndpointInfo,
    IpBlock, KnownService, KubeProxyInfo, KubeProxyPod, LogLine, NamedPort, NetworkPolicyInfo,
    NodeLocalDnsInfo, PodDnsConfig, PodInfo, PolicyPeer, PolicyPort, PolicyRule, Selector,
    SelectorRequirement, ServiceInfo, ServicePort, Termination, Topology,
};

/// The link-local address NodeLocal DNSCache listens on unless configured otherwise.
pub const NODE_LOCAL_DNS_DEFAULT_IP: &str = "169.254.20.10";
const LOG_TAIL_LINES: i64 = 200;

/// The annotation naming the container kubectl commands default to (KEP 2227).
pub const DEFAULT_CONTAINER_ANNOTATION: &str = "kubectl.kubernetes.io/default-container";

/// The container a run examines, and why that one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerChoice {
    pub name: String,
    pub reason: ContainerReason,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContainerReason {
    /// Named with -c.
    Requested,
    /// Named by the kubectl.kubernetes.io/default-container annotation.
    Annotation,
    /// The first of several, as kubectl defaults.
    First,
    /// The pod has no other.
    Only,
}

/// The container to examine, as kubectl picks one: the one named with -c, which must be one
/// of the pod's containers; else the one the default-container annotation names, if the pod
/// has it; else the first.
pub fn choose_container(pod: &Pod, requested: Option<&str>) -> Result<ContainerChoice, KubeError> {
    let spec = pod.spec.clone().unwrap_or_default();
    let names: Vec<String> = spec.containers.iter().map(|c| c.name.clone()).collect();
    if let Some(want) = requested {
        if names.iter().any(|n| n == want) {
            return Ok(ContainerChoice {
                name: want.to_string(),
                reason: ContainerReason::Requested,
            });
        }
        let init = spec
            .init_containers
            .iter()
            .flatten()
            .any(|c| c.name == want);
        let ephemeral = spec
            .ephemeral_containers
            .iter()
            .flatten()
            .any(|c| c.name == want);
        return Err(KubeError::ContainerNotFound {
            namespace: pod.metadata.namespace.clone().unwrap_or_default(),
            pod: pod.metadata.name.clone().unwrap_or_default(),
            container: want.to_string(),
            kind: if init {
                ContainerKind::Init
            } else if ephemeral {
                ContainerKind::Ephemeral
            } else {
                ContainerKind::Missing
            },
            containers: names,
        });
    }
    let annotated = pod
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(DEFAULT_CONTAINER_ANNOTATION))
        .filter(|n| names.contains(n));
    if let Some(name) = annotated {
        return Ok(ContainerChoice {
            name: name.clone(),
            reason: ContainerReason::Annotation,
        });
    }
    let first = names.first().cloned().ok_or_else(|| KubeError::Other {
        what: format!(
            "pod {}/{}",
            pod.metadata.namespace.as_deref().unwrap_or_default(),
            pod.metadata.name.as_deref().unwrap_or_default()
        ),
        message: "has no containers".into(),
    })?;
    Ok(ContainerChoice {
        name: first,
        reason: if names.len() > 1 {
            ContainerReason::First
        } else {
            ContainerReason::Only
        },
    })
}

/// Find the pod to examine: the named pod, or a ready pod of the named workload.
/// Returns the pod and, for a workload, the workload's `kind/name`.
pub async fn resolve_target(
    client: &Client,
    namespace: &str,
    target: &TargetRef,
) -> Result<(Pod, Option<String>), KubeError> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    if target.kind == TargetKind::Pod {
        let pod = get_or_not_found(&pods, "Pod", &target.name, namespace, "pods").await?;
        check_running(&pod)?;
        return Ok((pod, None));
    }
    let selector = workload_selector(client, namespace, target).await?;
    let list = pods
        .list(&ListParams::default().labels(&selector))
        .await
        .map_err(|e| KubeError::from_api("list pods", "list", "pods", namespace, e))?;
    let pod = choose_ready_pod(list.items).ok_or_else(|| KubeError::NoReadyPod {
        workload: target.to_string(),
        namespace: namespace.to_string(),
    })?;
    Ok((pod, Some(target.to_string())))
}

async fn get_or_not_found<K>(
    api: &Api<K>,
    kind: &str,
    name: &str,
    namespace: &str,
    resource: &str,
) -> Result<K, KubeError>
where
    K: Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    match api.get_opt(name).await {
        Ok(Some(obj)) => Ok(obj),
        Ok(None) => Err(KubeError::NotFound {
            kind: kind.to_string(),
            name: name.to_string(),
            namespace: namespace.to_string(),
        }),
        Err(e) => Err(KubeError::from_api(
            format!("get {kind} {name}"),
            "get",
            resource,
            namespace,
            e,
        )),
    }
}

async fn workload_selector(
    client: &Client,
    namespace: &str,
    target: &TargetRef,
) -> Result<String, KubeError> {
    let name = &target.name;
    let selector: Option<LabelSelector> = match target.kind {
        TargetKind::Deployment => {
            let api: Api<Deployment> = Api::namespaced(client.clone(), namespace);
            get_or_not_found(&api, "Deployment", name, namespace, "deployments")
                .await?
                .spec
                .map(|s| s.selector)
        }
        TargetKind::StatefulSet => {
            let api: Api<StatefulSet> = Api::namespaced(client.clone(), namespace);
            get_or_not_found(&api, "StatefulSet", name, namespace, "statefulsets")
                .await?
                .spec
                .map(|s| s.selector)
        }
        TargetKind::DaemonSet => {
            let api: Api<DaemonSet> = Api::namespaced(client.clone(), namespace);
            get_or_not_found(&api, "DaemonSet", name, namespace, "daemonsets")
                .await?
                .spec
                .map(|s| s.selector)
        }
        TargetKind::Job => {
            let api: Api<Job> = Api::namespaced(client.clone(), namespace);
            get_or_not_found(&api, "Job", name, namespace, "jobs")
                .await?
                .spec
                .and_then(|s| s.selector)
        }
        TargetKind::Pod => unreachable!("pods are fetched directly"),
    };
    selector
        .as_ref()
        .and_then(selector_string)
        .ok_or_else(|| KubeError::Other {
            what: format!("{target}"),
            message: "has no label selector to find its pods by".into(),
        })
}

/// `matchLabels` as a label selector string; None when empty or using expressions only.
pub fn selector_string(sel: &LabelSelector) -> Option<String> {
    let labels = sel.match_labels.as_ref()?;
    if labels.is_empty() {
        return None;
    }
    Some(
        labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(","),
    )
}

fn check_running(pod: &Pod) -> Result<(), KubeError> {
    let phase = pod_phase(pod);
    if phase == "Running" && pod.metadata.deletion_timestamp.is_none() {
        return Ok(());
    }
    Err(KubeError::PodNotRunning {
        namespace: pod.metadata.namespace.clone().unwrap_or_default(),
        name: pod.metadata.name.clone().unwrap_or_default(),
        phase: if pod.metadata.deletion_timestamp.is_some() {
            "terminating".into()
        } else {
            phase
        },
    })
}

/// The first Running, ready, not terminating pod, by name for a stable choice.
pub fn choose_ready_pod(mut pods: Vec<Pod>) -> Option<Pod> {
    pods.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    pods.into_iter().find(|p| {
        pod_phase(p) == "Running" && pod_ready(p) && p.metadata.deletion_timestamp.is_none()
    })
}

fn pod_phase(pod: &Pod) -> String {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.clone())
        .unwrap_or_else(|| "Unknown".into())
}

fn pod_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// The target pod's info, with the examined container first among its containers (the
/// order the probe's injection and the report rely on).
pub fn target_info(pod: &Pod, container: &str) -> PodInfo {
    let mut info = pod_info(pod);
    if let Some(i) = info.containers.iter().position(|c| c == container) {
        let chosen = info.containers.remove(i);
        info.containers.insert(0, chosen);
    }
    info
}

/// The parts of a pod DNS cares about.
pub fn pod_info(pod: &Pod) -> PodInfo {
    let spec = pod.spec.clone().unwrap_or_default();
    let status = pod.status.clone().unwrap_or_default();
    PodInfo {
        namespace: pod.metadata.namespace.clone().unwrap_or_default(),
        name: pod.metadata.name.clone().unwrap_or_default(),
        uid: pod.metadata.uid.clone().unwrap_or_default(),
        node: spec.node_name.clone(),
        ip: status.pod_ip.as_deref().and_then(|s| s.parse().ok()),
        phase: pod_phase(pod),
        ready: pod_ready(pod),
        host_network: spec.host_network.unwrap_or(false),
        dns_policy: spec
            .dns_policy
            .clone()
            .unwrap_or_else(|| "ClusterFirst".into()),
        dns_config: spec.dns_config.as_ref().map(|c| PodDnsConfig {
            nameservers: c.nameservers.clone().unwrap_or_default(),
            searches: c.searches.clone().unwrap_or_default(),
            options: c
                .options
                .iter()
                .flatten()
                .map(|o| match (&o.name, &o.value) {
                    (Some(n), Some(v)) => format!("{n}:{v}"),
                    (Some(n), None) => n.clone(),
                    _ => String::new(),
                })
                .filter(|s| !s.is_empty())
                .collect(),
        }),
        containers: spec.containers.iter().map(|c| c.name.clone()).collect(),
        ephemeral_containers: spec
            .ephemeral_containers
            .iter()
            .flatten()
            .map(|c| c.name.clone())
            .collect(),
        labels: pod.metadata.labels.clone().unwrap_or_default(),
    }
}

/// Everything else about the cluster DNS behind `pod`, whose `container` is examined (it
/// comes first in `Topology::target.containers`). Never fails: what cannot be read is
/// listed in `Topology::gaps`.
pub async fn discover(
    client: &Client,
    pod: &Pod,
    container: &str,
    chosen_from: Option<String>,
) -> Topology {
    let mut topo = Topology {
        target: target_info(pod, container),
        chosen_from,
        ..Topology::default()
    };
    let mut gaps = Vec::new();
    topo.cluster_dns = cluster_dns(client, &topo, &mut gaps).await;
    let services = list_services(client, &mut gaps).await;
    topo.dns_service = find_dns_service(&services, &topo.cluster_dns, &mut gaps);
    topo.known_services = known_services(&services, &topo.target.namespace);
    if let Some(svc) = &topo.dns_service {
        topo.endpoints = endpoints(client, svc, &mut gaps).await;
        topo.dns_pods = dns_pods(client, svc, &topo.endpoints, &mut gaps).await;
        topo.corefile = corefile(client, svc, &topo.dns_pods, &mut gaps).await;
        topo.dns_api_access = dns_api_access(client, &topo.dns_pods, &mut gaps).await;
    }
    topo.kube_proxy = kube_proxy(client, &mut gaps).await;
    topo.node_local_dns = node_local_dns(client, &mut gaps).await;
    let mut namespaces = vec![topo.target.namespace.clone()];
    namespaces.extend(topo.dns_service.as_ref().map(|s| s.namespace.clone()));
    namespaces.extend(topo.dns_pods.iter().map(|p| p.namespace.clone()));
    namespaces.sort();
    namespaces.dedup();
    for ns in &namespaces {
        if let Some(labels) = namespace_labels(client, ns, &mut gaps).await {
            topo.namespace_labels.insert(ns.clone(), labels);
        }
        topo.network_policies
            .extend(network_policies(client, ns, &mut gaps).await);
    }
    topo.gaps.extend(gaps);
    topo
}

async fn namespace_labels(
    client: &Client,
    namespace: &str,
    gaps: &mut Vec<String>,
) -> Option<BTreeMap<String, String>> {
    let api: Api<Namespace> = Api::all(client.clone());
    match api.get_opt(namespace).await {
        Ok(ns) => Some(ns?.metadata.labels.unwrap_or_default()),
        Err(e) => {
            gaps.push(format!(
                "cannot read the labels of namespace {namespace} (get namespaces): {e}; NetworkPolicy namespace selectors are matched on its kubernetes.io/metadata.name label only"
            ));
            None
        }
    }
}

/// The NetworkPolicies of a namespace; a gap (never an error) when they cannot be listed.
async fn network_policies(
    client: &Client,
    namespace: &str,
    gaps: &mut Vec<String>,
) -> Vec<NetworkPolicyInfo> {
    let api: Api<NetworkPolicy> = Api::namespaced(client.clone(), namespace);
    match api.list(&ListParams::default()).await {
        Ok(list) => list.items.iter().map(network_policy_info).collect(),
        Err(e) => {
            gaps.push(format!(
                "cannot list NetworkPolicies in {namespace} (list networkpolicies.networking.k8s.io): {e}; policies blocking DNS there are not checked"
            ));
            Vec::new()
        }
    }
}

/// A NetworkPolicy as plain values.
pub fn network_policy_info(np: &NetworkPolicy) -> NetworkPolicyInfo {
    let spec = np.spec.clone().unwrap_or_default();
    NetworkPolicyInfo {
        namespace: np.metadata.namespace.clone().unwrap_or_default(),
        name: np.metadata.name.clone().unwrap_or_default(),
        pod_selector: spec.pod_selector.as_ref().map(selector).unwrap_or_default(),
        policy_types: spec.policy_types.clone().unwrap_or_default(),
        ingress: spec
            .ingress
            .iter()
            .flatten()
            .map(|r| policy_rule(r.from.as_deref(), r.ports.as_deref()))
            .collect(),
        egress: spec
            .egress
            .iter()
            .flatten()
            .map(|r| policy_rule(r.to.as_deref(), r.ports.as_deref()))
            .collect(),
    }
}

fn policy_rule(
    peers: Option<&[NetworkPolicyPeer]>,
    ports: Option<&[NetworkPolicyPort]>,
) -> PolicyRule {
    PolicyRule {
        peers: peers
            .unwrap_or_default()
            .iter()
            .map(|p| PolicyPeer {
                pod_selector: p.pod_selector.as_ref().map(selector),
                namespace_selector: p.namespace_selector.as_ref().map(selector),
                ip_block: p.ip_block.as_ref().map(|b| IpBlock {
                    cidr: b.cidr.clone(),
                    except: b.except.clone().unwrap_or_default(),
                }),
            })
            .collect(),
        ports: ports
            .unwrap_or_default()
            .iter()
            .map(|p| PolicyPort {
                protocol: p.protocol.clone().unwrap_or_else(|| "TCP".into()),
                port: p.port.as_ref().map(int_or_string),
                end_port: p.end_port.and_then(|e| u16::try_from(e).ok()),
            })
            .collect(),
    }
}

fn selector(sel: &LabelSelector) -> Selector {
    Selector {
        match_labels: sel.match_labels.clone().unwrap_or_default(),
        match_expressions: sel
            .match_expressions
            .iter()
            .flatten()
            .map(|r| SelectorRequirement {
                key: r.key.clone(),
                operator: r.operator.clone(),
                values: r.values.clone().unwrap_or_default(),
            })
            .collect(),
    }
}

fn int_or_string(v: &IntOrString) -> String {
    match v {
        IntOrString::Int(i) => i.to_string(),
        IntOrString::String(s) => s.clone(),
    }
}

/// The kubelet's clusterDNS and clusterDomain from `configz`, else the kubeadm default Service.
async fn cluster_dns(client: &Client, topo: &Topology, gaps: &mut Vec<String>) -> ClusterDns {
    if let Some(node) = &topo.target.node {
        let req = http::Request::get(format!("/api/v1/nodes/{node}/proxy/configz"))
            .body(Vec::new())
            .expect("a static request builds");
        match client.request_text(req).await {
            Ok(text) => {
                if let Some(dns) = parse_configz(&text) {
                    return dns;
                }
                gaps.push(format!("kubelet configz of node {node} has no clusterDNS"));
            }
            Err(e) => gaps.push(format!(
                "cannot read the kubelet configuration of node {node} (get nodes/proxy): {e}"
            )),
        }
    }
    let svc: Api<Service> = Api::namespaced(client.clone(), "kube-system");
    if let Ok(Some(s)) = svc.get_opt("kube-dns").await {
        if let Some(ip) = s
            .spec
            .and_then(|s| s.cluster_ip)
            .and_then(|ip| ip.parse::<IpAddr>().ok())
        {
            return ClusterDns {
                source: ClusterDnsSource::KubeDnsService,
                ips: vec![ip],
                domain: "cluster.local".into(),
            };
        }
    }
    ClusterDns {
        domain: "cluster.local".into(),
        ..ClusterDns::default()
    }
}

/// Read clusterDNS and clusterDomain from the kubelet's `/configz` JSON.
pub fn parse_configz(text: &str) -> Option<ClusterDns> {
    let v: serde_json::Value = serde_json::from_str(text).ok()?;
    let kc = v.get("kubeletconfig")?;
    let ips: Vec<IpAddr> = kc
        .get("clusterDNS")?
        .as_array()?
        .iter()
        .filter_map(|ip| ip.as_str()?.parse().ok())
        .collect();
    if ips.is_empty() {
        return None;
    }
    Some(ClusterDns {
        source: ClusterDnsSource::KubeletConfigz,
        ips,
        domain: kc
            .get("clusterDomain")
            .and_then(|d| d.as_str())
            .unwrap_or("cluster.local")
            .trim_end_matches('.')
            .to_string(),
    })
}

/// Every Service, to find the DNS Service by IP and the Services whose answers are known.
/// Without list permission: kube-system/kube-dns and default/kubernetes only.
async fn list_services(client: &Client, gaps: &mut Vec<String>) -> Vec<Service> {
    let all: Api<Service> = Api::all(client.clone());
    match all.list(&ListParams::default()).await {
        Ok(list) => list.items,
        Err(e) => {
            gaps.push(format!(
                "cannot list Services in all namespaces: {e}; trying kube-system/kube-dns and default/kubernetes"
            ));
            let mut found = Vec::new();
            for (ns, name) in [("kube-system", "kube-dns"), ("default", "kubernetes")] {
                let api: Api<Service> = Api::namespaced(client.clone(), ns);
                found.extend(api.get_opt(name).await.ok().flatten());
            }
            found
        }
    }
}

/// The Service whose ClusterIP is the cluster DNS address.
fn find_dns_service(
    services: &[Service],
    dns: &ClusterDns,
    gaps: &mut Vec<String>,
) -> Option<ServiceInfo> {
    if dns.ips.is_empty() {
        gaps.push("no cluster DNS address known, so no DNS Service looked up".into());
        return None;
    }
    services
        .iter()
        .filter_map(service_info)
        .find(|s| dns.ips.contains(&s.cluster_ip))
}

/// Services whose DNS answer the API knows and the probe may ask: default/kubernetes and
/// the ClusterIP Services of the target's own namespace (at most [`MAX_KNOWN_SERVICES`]).
pub fn known_services(services: &[Service], target_ns: &str) -> Vec<KnownService> {
    const MAX_KNOWN_SERVICES: usize = 50;
    let mut out: Vec<KnownService> = services
        .iter()
        .filter(|s| {
            let ns = s.metadata.namespace.as_deref().unwrap_or_default();
            let name = s.metadata.name.as_deref().unwrap_or_default();
            (ns == "default" && name == "kubernetes") || ns == target_ns
        })
        .filter_map(|s| {
            let spec = s.spec.as_ref()?;
            // ExternalName Services answer with a CNAME; headless ones with pod IPs.
            if spec.type_.as_deref() == Some("ExternalName") {
                return None;
            }
            let ips: Vec<IpAddr> = spec
                .cluster_ips
                .iter()
                .flatten()
                .chain(spec.cluster_ip.iter())
                .filter_map(|ip| ip.parse().ok())
                .fold(Vec::new(), |mut v, ip| {
                    if !v.contains(&ip) {
                        v.push(ip);
                    }
                    v
                });
            (!ips.is_empty()).then(|| KnownService {
                namespace: s.metadata.namespace.clone().unwrap_or_default(),
                name: s.metadata.name.clone().unwrap_or_default(),
                cluster_ips: ips,
            })
        })
        .collect();
    out.sort_by(|a, b| {
        (
            a.namespace != "default" || a.name != "kubernetes",
            &a.namespace,
            &a.name,
        )
            .cmp(&(
                b.namespace != "default" || b.name != "kubernetes",
                &b.namespace,
                &b.name,
            ))
    });
    out.truncate(MAX_KNOWN_SERVICES);
    out
}

/// A Service as DNS discovery needs it; None for headless or address-less Services.
pub fn service_info(s: &Service) -> Option<ServiceInfo> {
    let spec = s.spec.as_ref()?;
    let cluster_ip: IpAddr = spec.cluster_ip.as_deref()?.parse().ok()?;
    Some(ServiceInfo {
        namespace: s.metadata.namespace.clone().unwrap_or_default(),
        name: s.metadata.name.clone().unwrap_or_default(),
        cluster_ip,
        ports: spec
            .ports
            .iter()
            .flatten()
            .map(|p| ServicePort {
                name: p.name.clone(),
                port: u16::try_from(p.port).unwrap_or(0),
                protocol: p.protocol.clone().unwrap_or_else(|| "TCP".into()),
                target_port: p.target_port.as_ref().map(int_or_string),
            })
            .collect(),
        selector: spec
            .selector
            .clone()
            .unwrap_or_default()
            .into_iter()
            .collect(),
    })
}

async fn endpoints(
    client: &Client,
    svc: &ServiceInfo,
    gaps: &mut Vec<String>,
) -> Vec<EndpointInfo> {
    let api: Api<EndpointSlice> = Api::namespaced(client.clone(), &svc.namespace);
    let lp = ListParams::default().labels(&format!("kubernetes.io/service-name={}", svc.name));
    match api.list(&lp).await {
        Ok(list) => endpoint_infos(&list.items),
        Err(e) => {
            gaps.push(format!(
                "cannot list EndpointSlices of {}/{}: {e}",
                svc.namespace, svc.name
            ));
            Vec::new()
        }
    }
}

/// Flatten EndpointSlices into one entry per address, merging ports of the same address.
pub fn endpoint_infos(slices: &[EndpointSlice]) -> Vec<EndpointInfo> {
    let mut by_ip: BTreeMap<IpAddr, EndpointInfo> = BTreeMap::new();
    for slice in slices {
        let named: Vec<NamedPort> = slice
            .ports
            .iter()
            .flatten()
            .filter_map(|p| {
                Some(NamedPort {
                    name: p.name.clone().filter(|n| !n.is_empty()),
                    protocol: p.protocol.clone().unwrap_or_else(|| "TCP".into()),
                    port: u16::try_from(p.port?).ok()?,
                })
            })
            .collect();
        for ep in &slice.endpoints {
            let cond = ep.conditions.clone().unwrap_or_default();
            let ready = cond.ready.unwrap_or(true);
            for addr in &ep.addresses {
                let Ok(ip) = addr.parse::<IpAddr>() else {
                    continue;
                };
                let entry = by_ip.entry(ip).or_insert_with(|| EndpointInfo {
                    ip,
                    ports: Vec::new(),
                    ready,
                    serving: cond.serving.unwrap_or(ready),
                    terminating: cond.terminating.unwrap_or(false),
                    pod: ep
                        .target_ref
                        .as_ref()
                        .filter(|r| r.kind.as_deref() == Some("Pod"))
                        .map(|r| {
                            format!(
                                "{}/{}",
                                r.namespace.clone().unwrap_or_default(),
                                r.name.clone().unwrap_or_default()
                            )
                        }),
                    node: ep.node_name.clone(),
                    named_ports: Vec::new(),
                });
                for p in &named {
                    let by_protocol = (p.protocol.clone(), p.port);
                    if !entry.ports.contains(&by_protocol) {
                        entry.ports.push(by_protocol);
                    }
                    if !entry.named_ports.contains(p) {
                        entry.named_ports.push(p.clone());
                    }
                }
            }
        }
    }
    by_ip.into_values().collect()
}

async fn dns_pods(
    client: &Client,
    svc: &ServiceInfo,
    endpoints: &[EndpointInfo],
    gaps: &mut Vec<String>,
) -> Vec<DnsPodInfo> {
    let api: Api<Pod> = Api::namespaced(client.clone(), &svc.namespace);
    let mut pods: Vec<Pod> = Vec::new();
    // The selector also finds pods missing from the endpoints (crashing, not yet ready).
    if !svc.selector.is_empty() {
        let sel = svc
            .selector
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(",");
        match api.list(&ListParams::default().labels(&sel)).await {
            Ok(list) => pods.extend(list.items),
            Err(e) => gaps.push(format!("cannot list DNS pods in {}: {e}", svc.namespace)),
        }
    }
    for ep in endpoints {
        let Some((ns, name)) = ep.pod.as_deref().and_then(|p| p.split_once('/')) else {
            continue;
        };
        if pods
            .iter()
            .any(|p| p.metadata.name.as_deref() == Some(name))
        {
            continue;
        }
        let api: Api<Pod> = Api::namespaced(client.clone(), ns);
        if let Ok(Some(p)) = api.get_opt(name).await {
            pods.push(p);
        }
    }
    pods.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    let mut out = Vec::new();
    for pod in &pods {
        let mut info = dns_pod_info(pod);
        let ns = info.namespace.clone();
        let api: Api<Pod> = Api::namespaced(client.clone(), &ns);
        for previous in [false, true] {
            if previous && info.restarts == 0 {
                continue;
            }
            let lp = LogParams {
                container: Some(info.container.clone()),
                tail_lines: Some(LOG_TAIL_LINES),
                previous,
                ..LogParams::default()
            };
            match api.logs(&info.name, &lp).await {
                Ok(text) => info.log_lines.extend(scan_dns_log(&text, previous)),
                Err(e) if !previous => gaps.push(format!(
                    "cannot read logs of {ns}/{} (get pods/log): {e}",
                    info.name
                )),
                Err(_) => {}
            }
        }
        out.push(info);
    }
    out
}

/// Status of a DNS pod: readiness, restarts, why it last stopped.
pub fn dns_pod_info(pod: &Pod) -> DnsPodInfo {
    let info = pod_info(pod);
    let status = pod.status.clone().unwrap_or_default();
    let statuses = status.container_statuses.unwrap_or_default();
    // The DNS container: the one exposing port 53, else the first.
    let dns_container = pod.spec.as_ref().and_then(|s| {
        s.containers
            .iter()
            .find(|c| c.ports.iter().flatten().any(|p| p.container_port == 53))
            .or(s.containers.first())
    });
    let container = dns_container.map(|c| c.name.clone()).unwrap_or_default();
    let container_ports = dns_container
        .iter()
        .flat_map(|c| c.ports.iter().flatten())
        .filter_map(|p| {
            Some(NamedPort {
                name: p.name.clone().filter(|n| !n.is_empty()),
                protocol: p.protocol.clone().unwrap_or_else(|| "TCP".into()),
                port: u16::try_from(p.container_port).ok()?,
            })
        })
        .collect();
    let cs = statuses.iter().find(|s| s.name == container);
    DnsPodInfo {
        namespace: info.namespace,
        name: info.name,
        uid: info.uid,
        ip: info.ip,
        node: info.node,
        phase: info.phase,
        ready: info.ready,
        restarts: cs.map_or(0, |s| u32::try_from(s.restart_count).unwrap_or(0)),
        container: container.clone(),
        waiting_reason: cs
            .and_then(|s| s.state.as_ref())
            .and_then(|s| s.waiting.as_ref())
            .and_then(|w| w.reason.clone()),
        deleting: pod.metadata.deletion_timestamp.is_some(),
        exited: cs
            .and_then(|s| s.state.as_ref())
            .and_then(|s| s.terminated.as_ref())
            .map(termination),
        last_termination: cs
            .and_then(|s| s.last_state.as_ref())
            .and_then(|s| s.terminated.as_ref())
            .map(termination),
        log_lines: Vec::new(),
        labels: info.labels,
        container_ports,
        service_account: pod
            .spec
            .as_ref()
            .and_then(|s| s.service_account_name.clone())
            .unwrap_or_else(|| "default".into()),
        container_id: cs.and_then(|s| s.container_id.clone()),
        resources: dns_container
            .and_then(|c| c.resources.as_ref())
            .map(container_resources)
            .unwrap_or_default(),
    }
}

/// Requests and limits of a container spec, as written.
fn container_resources(r: &k8s_openapi::api::core::v1::ResourceRequirements) -> ContainerResources {
    let get = |map: &Option<BTreeMap<String, Quantity>>, key: &str| {
        map.as_ref().and_then(|m| m.get(key)).map(|q| q.0.clone())
    };
    ContainerResources {
        cpu_request: get(&r.requests, "cpu"),
        cpu_limit: get(&r.limits, "cpu"),
        memory_request: get(&r.requests, "memory"),
        memory_limit: get(&r.limits, "memory"),
    }
}

/// What CoreDNS's kubernetes plugin lists and watches (its documented RBAC).
pub const DNS_SERVER_NEEDS: [(&str, &str, &str); 8] = [
    ("list", "", "services"),
    ("watch", "", "services"),
    ("list", "", "namespaces"),
    ("watch", "", "namespaces"),
    ("list", "discovery.k8s.io", "endpointslices"),
    ("watch", "discovery.k8s.io", "endpointslices"),
    ("list", "", "pods"),
    ("watch", "", "pods"),
];

/// Asks the API server whether the DNS pods' ServiceAccount may list and watch what the
/// DNS server needs (SubjectAccessReview). CoreDNS logs only "Failed to watch" when it
/// may not, so this is how the missing permission gets a name.
async fn dns_api_access(
    client: &Client,
    pods: &[DnsPodInfo],
    gaps: &mut Vec<String>,
) -> Vec<DnsApiAccess> {
    use k8s_openapi::api::authorization::v1::{
        ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
    };
    let Some(p) = pods.first() else {
        return Vec::new();
    };
    let user = format!(
        "system:serviceaccount:{}:{}",
        p.namespace, p.service_account
    );
    let api: Api<SubjectAccessReview> = Api::all(client.clone());
    let mut out = Vec::new();
    for (verb, group, resource) in DNS_SERVER_NEEDS {
        let review = SubjectAccessReview {
            spec: SubjectAccessReviewSpec {
                user: Some(user.clone()),
                groups: Some(vec![
                    "system:serviceaccounts".into(),
                    format!("system:serviceaccounts:{}", p.namespace),
                    "system:authenticated".into(),
                ]),
                resource_attributes: Some(ResourceAttributes {
                    verb: Some(verb.into()),
                    group: Some(group.into()),
                    resource: Some(resource.into()),
                    ..ResourceAttributes::default()
                }),
                ..SubjectAccessReviewSpec::default()
            },
            ..SubjectAccessReview::default()
        };
        match api.create(&PostParams::default(), &review).await {
            Ok(r) => {
                let status = r.status.unwrap_or_default();
                out.push(DnsApiAccess {
                    user: user.clone(),
                    verb: verb.into(),
                    resource: if group.is_empty() {
                        resource.into()
                    } else {
                        format!("{resource}.{group}")
                    },
                    allowed: status.allowed,
                    reason: status.reason.filter(|r| !r.is_empty()),
                });
            }
            Err(e) => {
                gaps.push(format!(
                    "cannot ask what {user} may read (create subjectaccessreviews): {e}"
                ));
                return Vec::new();
            }
        }
    }
    out
}

/// Lines of a CoreDNS log that point at a cause, classified.
pub fn scan_dns_log(text: &str, previous: bool) -> Vec<LogLine> {
    notable_lines(text)
        .into_iter()
        .map(|l| LogLine {
            kind: l.class,
            line: l.text,
            previous,
            forbidden: l.forbidden,
        })
        .collect()
}

/// The Corefile the DNS pods mount (via their ConfigMap volume), else ConfigMap `coredns`.
async fn corefile(
    client: &Client,
    svc: &ServiceInfo,
    pods: &[DnsPodInfo],
    gaps: &mut Vec<String>,
) -> Option<String> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), &svc.namespace);
    let mut names: Vec<String> = Vec::new();
    let pod_api: Api<Pod> = Api::namespaced(client.clone(), &svc.namespace);
    if let Some(p) = pods.first() {
        if let Ok(Some(pod)) = pod_api.get_opt(&p.name).await {
            names.extend(
                pod.spec
                    .iter()
                    .flat_map(|s| s.volumes.iter().flatten())
                    .filter_map(|v| v.config_map.as_ref().map(|c| c.name.clone())),
            );
        }
    }
    names.push("coredns".into());
    for name in names {
        match api.get_opt(&name).await {
            Ok(Some(cm)) => {
                if let Some(text) = cm.data.as_ref().and_then(|d| d.get("Corefile")) {
                    return Some(text.clone());
                }
            }
            Ok(None) => {}
            Err(e) => {
                gaps.push(format!(
                    "cannot read ConfigMap {}/{name}: {e}",
                    svc.namespace
                ));
                return None;
            }
        }
    }
    None
}

async fn kube_proxy(client: &Client, gaps: &mut Vec<String>) -> KubeProxyInfo {
    let pods: Api<Pod> = Api::namespaced(client.clone(), "kube-system");
    let mut info = KubeProxyInfo::default();
    match pods
        .list(&ListParams::default().labels("k8s-app=kube-proxy"))
        .await
    {
        Ok(list) => {
            info.pods = list
                .items
                .iter()
                .map(|p| {
                    let d = dns_pod_info(p);
                    KubeProxyPod {
                        name: d.name,
                        node: d.node,
                        phase: d.phase,
                        ready: d.ready,
                        restarts: d.restarts,
                    }
                })
                .collect();
        }
        Err(e) => gaps.push(format!("cannot list kube-proxy pods in kube-system: {e}")),
    }
    let dss: Api<DaemonSet> = Api::namespaced(client.clone(), "kube-system");
    info.daemonset = matches!(dss.get_opt("kube-proxy").await, Ok(Some(_)));
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "kube-system");
    if let Ok(Some(cm)) = cms.get_opt("kube-proxy").await {
        info.configured_mode = cm
            .data
            .as_ref()
            .and_then(|d| d.get("config.conf"))
            .map(|conf| kube_proxy_mode(conf));
    }
    info
}

/// The `mode:` of a KubeProxyConfiguration in YAML ("" when unset, which means iptables).
pub fn kube_proxy_mode(conf: &str) -> String {
    conf.lines()
        .find_map(|l| l.strip_prefix("mode:"))
        .map(|v| v.trim().trim_matches('"').trim_matches('\'').to_string())
        .unwrap_or_default()
}

async fn node_local_dns(client: &Client, gaps: &mut Vec<String>) -> Option<NodeLocalDnsInfo> {
    let api: Api<DaemonSet> = Api::all(client.clone());
    let list = match api
        .list(&ListParams::default().labels("k8s-app=node-local-dns"))
        .await
    {
        Ok(l) => l,
        Err(e) => {
            gaps.push(format!(
                "cannot list DaemonSets to look for NodeLocal DNSCache: {e}"
            ));
            return None;
        }
    };
    let ds = list.items.into_iter().next()?;
    let status = ds.status.clone().unwrap_or_default();
    let local_ip = ds
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .and_then(|s| s.containers.first())
        .and_then(|c| c.args.as_ref())
        .and_then(|args| local_ip_from_args(args))
        .unwrap_or_else(|| NODE_LOCAL_DNS_DEFAULT_IP.parse().expect("a valid constant"));
    Some(NodeLocalDnsInfo {
        namespace: ds.metadata.namespace.clone().unwrap_or_default(),
        name: ds.metadata.name.clone().unwrap_or_default(),
        desired: status.desired_number_scheduled,
        ready: status.number_ready,
        local_ip,
    })
}

/// node-cache's `-localip 169.254.20.10,10.96.0.10`: the first address.
fn local_ip_from_args(args: &[String]) -> Option<IpAddr> {
    let pos = args
        .iter()
        .position(|a| a == "-localip" || a == "--localip")?;
    args.get(pos + 1)?.split(',').next()?.trim().parse().ok()
}

/// How a container ended, and how long before discovery.
fn termination(t: &k8s_openapi::api::core::v1::ContainerStateTerminated) -> Termination {
    Termination {
        reason: t.reason.clone().unwrap_or_default(),
        exit_code: t.exit_code,
        message: t.message.clone(),
        finished_at: t.finished_at.as_ref().map(|f| f.0.to_string()),
        finished_secs_ago: t.finished_at.as_ref().and_then(|f| {
            let ago = k8s_openapi::jiff::Timestamp::now().duration_since(f.0);
            u64::try_from(ago.as_secs()).ok()
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns_config::coredns_log::LogClass;

    #[test]
    fn configz_gives_cluster_dns_and_domain() {
        let text = r#"{"kubeletconfig":{"clusterDomain":"cluster.local","clusterDNS":["10.96.0.10"],"cgroupDriver":"cgroupfs"}}"#;
        let dns = parse_configz(text).unwrap();
        assert_eq!(dns.ips, vec!["10.96.0.10".parse::<IpAddr>().unwrap()]);
        assert_eq!(dns.domain, "cluster.local");
        assert_eq!(dns.source, ClusterDnsSource::KubeletConfigz);
        assert!(parse_configz(r#"{"kubeletconfig":{}}"#).is_none());
        assert!(parse_configz("not json").is_none());
    }

    #[test]
    fn log_scan_finds_loop_and_timeouts() {
        let log = "\
.:53
[INFO] plugin/reload: Running configuration SHA512 = abc
[FATAL] plugin/loop: Loop (127.0.0.1:55953 -> :53) detected for zone \".\", see https://coredns.io/plugins/loop#troubleshooting. Query: \"HINFO 4547991504243258144.3688648895315093531.\"
[ERROR] plugin/errors: 2 external.test. A: read udp 10.244.0.5:40000->10.253.0.2:53: i/o timeout
[ERROR] plugin/errors: 2 external.test. A: read udp 10.244.0.5:40001->10.253.0.2:53: i/o timeout
";
        let lines = scan_dns_log(log, true);
        let kinds: Vec<LogClass> = lines.iter().map(|l| l.kind).collect();
        assert_eq!(
            kinds,
            vec![
                LogClass::ForwardingLoop,
                LogClass::UpstreamTimeout,
                LogClass::UpstreamTimeout
            ]
        );
        assert!(lines.iter().all(|l| l.previous));
        assert!(scan_dns_log("[INFO] plugin/reload: ok\n", false).is_empty());
    }

    #[test]
    fn kube_proxy_mode_from_config() {
        assert_eq!(
            kube_proxy_mode("apiVersion: x\nmode: \"nftables\"\n"),
            "nftables"
        );
        assert_eq!(kube_proxy_mode("mode: \"\"\n"), "");
        assert_eq!(kube_proxy_mode("clusterCIDR: 10.244.0.0/16\n"), "");
    }

    #[test]
    fn node_cache_local_ip() {
        let args: Vec<String> = [
            "-localip",
            "169.254.20.11,10.96.0.10",
            "-conf",
            "/etc/Corefile",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(
            local_ip_from_args(&args),
            Some("169.254.20.11".parse().unwrap())
        );
    }

    #[test]
    fn endpoint_slices_flatten_and_merge_ports() {
        let slice: EndpointSlice = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "kube-dns-abc", "namespace": "kube-system"},
            "addressType": "IPv4",
            "ports": [{"name": "dns", "port": 53, "protocol": "UDP"}, {"name": "dns-tcp", "port": 53, "protocol": "TCP"}],
            "endpoints": [
                {"addresses": ["10.244.0.3"], "conditions": {"ready": true}, "nodeName": "n1",
                 "targetRef": {"kind": "Pod", "namespace": "kube-system", "name": "coredns-1"}},
                {"addresses": ["10.244.0.4"], "conditions": {"ready": false, "serving": false}}
            ]
        }))
        .unwrap();
        let eps = endpoint_infos(&[slice]);
        assert_eq!(eps.len(), 2);
        assert!(eps[0].ready && !eps[1].ready);
        assert_eq!(eps[0].pod.as_deref(), Some("kube-system/coredns-1"));
        assert_eq!(
            eps[0].ports,
            vec![("UDP".to_string(), 53), ("TCP".to_string(), 53)]
        );
        assert_eq!(eps[0].named_ports[1].name.as_deref(), Some("dns-tcp"));
    }

    #[test]
    fn network_policy_becomes_plain_values() {
        let np: NetworkPolicy = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "allow-dns", "namespace": "app"},
            "spec": {
                "podSelector": {"matchExpressions": [{"key": "app", "operator": "Exists"}]},
                "policyTypes": ["Egress"],
                "egress": [
                    {"to": [
                        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                         "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}},
                        {"ipBlock": {"cidr": "10.96.0.0/12", "except": ["10.96.0.1/32"]}}
                     ],
                     "ports": [{"port": 53, "protocol": "UDP"}, {"port": "dns-tcp"}, {"port": 5300, "endPort": 5400, "protocol": "UDP"}]},
                    {}
                ]
            }
        }))
        .unwrap();
        let info = network_policy_info(&np);
        assert_eq!(
            (info.namespace.as_str(), info.name.as_str()),
            ("app", "allow-dns")
        );
        assert_eq!(info.pod_selector.match_expressions[0].operator, "Exists");
        assert_eq!(info.policy_types, vec!["Egress"]);
        assert!(info.ingress.is_empty());
        assert_eq!(info.egress.len(), 2);
        let rule = &info.egress[0];
        assert_eq!(
            rule.peers[0]
                .namespace_selector
                .as_ref()
                .unwrap()
                .match_labels["kubernetes.io/metadata.name"],
            "kube-system"
        );
        assert_eq!(
            rule.peers[1].ip_block.as_ref().unwrap().except,
            vec!["10.96.0.1/32"]
        );
        let ports: Vec<(&str, Option<&str>, Option<u16>)> = rule
            .ports
            .iter()
            .map(|p| (p.protocol.as_str(), p.port.as_deref(), p.end_port))
            .collect();
        assert_eq!(
            ports,
            vec![
                ("UDP", Some("53"), None),
                ("TCP", Some("dns-tcp"), None),
                ("UDP", Some("5300"), Some(5400))
            ]
        );
        // `{}` allows everything: no peers, no ports.
        assert_eq!(info.egress[1], PolicyRule::default());
    }

    fn pod_with(containers: &[&str], annotation: Option<&str>) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {
                "name": "web-0",
                "namespace": "shop",
                "annotations": annotation.map(|a| serde_json::json!({DEFAULT_CONTAINER_ANNOTATION: a})),
            },
            "spec": {
                "initContainers": [{"name": "init-db"}],
                "containers": containers.iter().map(|c| serde_json::json!({"name": c})).collect::<Vec<_>>(),
                "ephemeralContainers": [{"name": "dns-doctor-abc123"}],
            }
        }))
        .unwrap()
    }

    #[test]
    fn container_is_the_requested_then_annotated_then_first() {
        let pod = pod_with(&["istio-proxy", "app"], None);
        let first = choose_container(&pod, None).unwrap();
        assert_eq!(first.name, "istio-proxy");
        assert_eq!(first.reason, ContainerReason::First);
        let asked = choose_container(&pod, Some("app")).unwrap();
        assert_eq!(
            (asked.name.as_str(), asked.reason),
            ("app", ContainerReason::Requested)
        );

        let pod = pod_with(&["istio-proxy", "app"], Some("app"));
        let annotated = choose_container(&pod, None).unwrap();
        assert_eq!(
            (annotated.name.as_str(), annotated.reason),
            ("app", ContainerReason::Annotation)
        );
        // -c wins over the annotation.
        assert_eq!(
            choose_container(&pod, Some("istio-proxy")).unwrap().name,
            "istio-proxy"
        );
        // An annotation naming no container is ignored, as kubectl does.
        let pod = pod_with(&["istio-proxy", "app"], Some("gone"));
        assert_eq!(choose_container(&pod, None).unwrap().name, "istio-proxy");
        let only = choose_container(&pod_with(&["app"], None), None).unwrap();
        assert_eq!(only.reason, ContainerReason::Only);
    }

    #[test]
    fn an_unknown_container_lists_the_pods_containers() {
        let pod = pod_with(&["istio-proxy", "app"], None);
        let err = choose_container(&pod, Some("ap")).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("pod shop/web-0 has no container \"ap\"")
                && text.contains("its containers: istio-proxy, app"),
            "{text}"
        );
        assert!(
            err.hint().unwrap().contains("-c istio-proxy"),
            "{:?}",
            err.hint()
        );
        let init = choose_container(&pod, Some("init-db"))
            .unwrap_err()
            .to_string();
        assert!(init.contains("init container"), "{init}");
        let eph = choose_container(&pod, Some("dns-doctor-abc123"))
            .unwrap_err()
            .to_string();
        assert!(eph.contains("ephemeral container"), "{eph}");
    }

    #[test]
    fn the_examined_container_comes_first() {
        let pod = pod_with(&["istio-proxy", "app", "logger"], None);
        assert_eq!(
            target_info(&pod, "app").containers,
            vec!["app", "istio-proxy", "logger"]
        );
        assert_eq!(
            target_info(&pod, "istio-proxy").containers,
            vec!["istio-proxy", "app", "logger"]
        );
    }

    #[test]
    fn ready_pod_is_chosen_by_name() {
        let mk = |name: &str, ready: bool| -> Pod {
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": name},
                "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": if ready {"True"} else {"False"}}]}
            }))
            .unwrap()
        };
        let chosen = choose_ready_pod(vec![mk("c", true), mk("a", false), mk("b", true)]).unwrap();
        assert_eq!(chosen.metadata.name.as_deref(), Some("b"));
        assert!(choose_ready_pod(vec![mk("a", false)]).is_none());
    }
}
