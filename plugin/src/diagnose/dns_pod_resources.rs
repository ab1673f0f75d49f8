//! What the rules about the DNS pods' CPU and memory share: the pod spec's requests and
//! limits as evidence, the node probe's cgroup reads of a DNS pod, and durations as people
//! read them.

use dns_doctor_schema::PodCgroupRead;

use crate::topology::{ContainerResources, DnsPodInfo};

use super::Context;

/// `requests cpu 100m, memory 70Mi; limits memory 170Mi, no CPU limit`.
pub fn describe_resources(r: &ContainerResources) -> String {
    let pairs = |cpu: &Option<String>, memory: &Option<String>| {
        let mut v = Vec::new();
        if let Some(c) = cpu {
            v.push(format!("cpu {c}"));
        }
        if let Some(m) = memory {
            v.push(format!("memory {m}"));
        }
        v
    };
    let requests = pairs(&r.cpu_request, &r.memory_request);
    let mut limits = pairs(&r.cpu_limit, &r.memory_limit);
    if r.cpu_limit.is_none() {
        limits.push("no CPU limit".into());
    }
    if r.memory_limit.is_none() {
        limits.push("no memory limit".into());
    }
    let requests = if requests.is_empty() {
        "no requests".to_string()
    } else {
        format!("requests {}", requests.join(", "))
    };
    format!("{requests}; limits {}", limits.join(", "))
}

/// The evidence line with a DNS pod's container resources from its spec.
pub fn resources_line(p: &DnsPodInfo) -> String {
    format!(
        "{}/{} container {}: {} (pod spec)",
        p.namespace,
        p.name,
        p.container,
        describe_resources(&p.resources)
    )
}

/// The node snapshot's cgroup reads holding DNS pod `p`, and that node's name: the pod's own
/// node first, else any node that read it.
pub fn cgroup_reads<'a>(
    cx: &Context<'a>,
    p: &DnsPodInfo,
) -> Option<(&'a str, &'a [PodCgroupRead])> {
    let holds = |reads: &[PodCgroupRead]| reads.iter().any(|r| r.uid == p.uid);
    let nodes = &cx.evidence.nodes;
    nodes
        .iter()
        .filter(|n| Some(n.node.as_str()) == p.node.as_deref())
        .chain(nodes.iter())
        .find(|n| holds(&n.snapshot.pod_cgroups))
        .map(|n| (n.node.as_str(), n.snapshot.pod_cgroups.as_slice()))
}

/// `42 s`, `5 min`, `3 h`, `2 d`.
pub fn ago(secs: u64) -> String {
    match secs {
        0..=119 => format!("{secs} s"),
        120..=7199 => format!("{} min", secs / 60),
        7200..=172_799 => format!("{} h", secs / 3600),
        _ => format!("{} d", secs / 86_400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resources_read_as_written() {
        let kubeadm = ContainerResources {
            cpu_request: Some("100m".into()),
            cpu_limit: None,
            memory_request: Some("70Mi".into()),
            memory_limit: Some("170Mi".into()),
        };
        assert_eq!(
            describe_resources(&kubeadm),
            "requests cpu 100m, memory 70Mi; limits memory 170Mi, no CPU limit"
        );
        assert_eq!(
            describe_resources(&ContainerResources::default()),
            "no requests; limits no CPU limit, no memory limit"
        );
    }

    #[test]
    fn durations_as_people_say_them() {
        assert_eq!(ago(42), "42 s");
        assert_eq!(ago(600), "10 min");
        assert_eq!(ago(3 * 3600 + 5), "3 h");
        assert_eq!(ago(3 * 86_400), "3 d");
    }
}
