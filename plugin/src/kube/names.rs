//! Names for shell completion, read from the API: pods, namespaces, workloads and the
//! containers of a target. Each is one list call; what cannot be read offers nothing.
//! How they are offered to the shell is the completion's business (`complete`).

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::ListParams;
use kube::{Api, Client, Resource};

use super::{discover, KubeError};
use crate::target::{TargetKind, TargetRef};

/// A pod of a namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodName {
    pub name: String,
    /// Pending, Running, Succeeded, Failed, Unknown; empty when the pod has no status yet.
    pub phase: String,
}

/// A container of the target's pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerName {
    pub name: String,
    /// The container a run examines when no container is asked for.
    pub examined_by_default: bool,
}

/// The pods of a namespace, by name.
pub async fn pods(client: &Client, namespace: &str) -> Result<Vec<PodName>, KubeError> {
    let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let list = api
        .list(&ListParams::default())
        .await
        .map_err(|e| KubeError::from_api("list pods", "list", "pods", namespace, e))?;
    let mut out: Vec<PodName> = list
        .items
        .iter()
        .map(|p| PodName {
            name: p.metadata.name.clone().unwrap_or_default(),
            phase: p
                .status
                .as_ref()
                .and_then(|s| s.phase.clone())
                .unwrap_or_default(),
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// Every namespace, by name.
pub async fn namespaces(client: &Client) -> Result<Vec<String>, KubeError> {
    let api: Api<Namespace> = Api::all(client.clone());
    let list = api
        .list(&ListParams::default())
        .await
        .map_err(|e| KubeError::from_api("list namespaces", "list", "namespaces", "", e))?;
    let mut out: Vec<String> = list
        .items
        .iter()
        .filter_map(|n| n.metadata.name.clone())
        .collect();
    out.sort();
    Ok(out)
}

/// The names of every object of a kind the doctor takes as a target.
pub async fn of_kind(
    client: &Client,
    namespace: &str,
    kind: TargetKind,
) -> Result<Vec<String>, KubeError> {
    Ok(match kind {
        TargetKind::Pod => pods(client, namespace)
            .await?
            .into_iter()
            .map(|p| p.name)
            .collect(),
        TargetKind::Deployment => names_of::<Deployment>(client, namespace).await?,
        TargetKind::StatefulSet => names_of::<StatefulSet>(client, namespace).await?,
        TargetKind::DaemonSet => names_of::<DaemonSet>(client, namespace).await?,
        TargetKind::Job => names_of::<Job>(client, namespace).await?,
    })
}

async fn names_of<K>(client: &Client, namespace: &str) -> Result<Vec<String>, KubeError>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
    K::DynamicType: Default,
{
    let api: Api<K> = Api::namespaced(client.clone(), namespace);
    let plural = K::plural(&K::DynamicType::default()).to_string();
    let list = api.list(&ListParams::default()).await.map_err(|e| {
        KubeError::from_api(format!("list {plural}"), "list", &plural, namespace, e)
    })?;
    let mut names: Vec<String> = list
        .items
        .iter()
        .filter_map(|o| o.meta().name.clone())
        .collect();
    names.sort();
    Ok(names)
}

/// The containers of the target's pod (for a workload, the pod a run would choose), in the
/// pod's order.
pub async fn containers(
    client: &Client,
    namespace: &str,
    target: &TargetRef,
) -> Result<Vec<ContainerName>, KubeError> {
    let (pod, _) = discover::resolve_target(client, namespace, target).await?;
    let default = discover::choose_container(&pod, None).ok().map(|c| c.name);
    Ok(pod
        .spec
        .iter()
        .flat_map(|s| s.containers.iter())
        .map(|c| ContainerName {
            name: c.name.clone(),
            examined_by_default: Some(&c.name) == default.as_ref(),
        })
        .collect())
}
