//! Names as applications write them: which ones the cluster DNS answers itself.

/// Whether a name is expected to be answered by the cluster DNS itself (a Service name)
/// rather than forwarded upstream.
pub fn is_cluster_name(name: &str, domain: &str) -> bool {
    let n = name.trim_end_matches('.');
    let domain = if domain.is_empty() {
        "cluster.local"
    } else {
        domain
    };
    // Service names are written `svc`, `svc.ns`, `svc.ns.svc` or fully qualified; a
    // two-label name in the namespaces every cluster has is a Service too.
    !n.contains('.')
        || n.ends_with(&format!(".{domain}"))
        || n.ends_with(".svc")
        || n.contains(".svc.")
        || n.ends_with(".default")
        || n.ends_with(".kube-system")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_names_are_told_from_external_ones() {
        assert!(is_cluster_name("kubernetes.default", "cluster.local"));
        assert!(is_cluster_name(
            "kubernetes.default.svc.cluster.local.",
            "cluster.local"
        ));
        assert!(is_cluster_name("web.shop.svc", "cluster.local"));
        assert!(!is_cluster_name("external.test", "cluster.local"));
        assert!(!is_cluster_name("kubernetes.io", "cluster.local"));
    }
}
