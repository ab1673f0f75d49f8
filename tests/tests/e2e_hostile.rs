//! Hostile conditions on the real cluster (issue 4): Pod Security admission, hostNetwork and
//! dnsPolicy None pods, a node pod that cannot be created, a target deleted mid-run. Each
//! gets a clear outcome, and nothing is left behind.
//!
//! Needs the cluster from tests/cluster/up; built only with `--features cluster`.

use std::time::Duration;

use dns_doctor_tests::cluster::*;

fn client_image() -> String {
    kubectl_ok(&[
        "get",
        "pod",
        "-n",
        CLIENT_NS,
        GLIBC_CLIENT,
        "-o",
        "jsonpath={.spec.containers[0].image}",
    ])
}

/// Create (or recreate) a namespace and a client pod in it from a pod spec fragment.
fn client_pod(ns: &str, name: &str, ns_labels: &[&str], spec_extra: &str) {
    let _ = kubectl(&["create", "namespace", ns]);
    for l in ns_labels {
        kubectl_ok(&["label", "namespace", ns, l, "--overwrite"]);
    }
    let _ = kubectl(&[
        "delete",
        "pod",
        "-n",
        ns,
        name,
        "--ignore-not-found",
        "--wait=true",
        "--timeout=60s",
    ]);
    let manifest = format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  namespace: {ns}\nspec:\n  terminationGracePeriodSeconds: 1\n{spec_extra}  containers:\n  - name: client\n    image: {image}\n    imagePullPolicy: Never\n    command: [\"/usr/local/bin/dnsc\", \"sleep\"]\n    securityContext:\n      allowPrivilegeEscalation: false\n      runAsNonRoot: true\n      runAsUser: 1000\n      capabilities: {{drop: [\"ALL\"]}}\n      seccompProfile: {{type: RuntimeDefault}}\n",
        image = client_image()
    );
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), manifest).unwrap();
    kubectl_ok(&["apply", "-f", file.path().to_str().unwrap()]);
    kubectl_ok(&[
        "wait",
        "-n",
        ns,
        "--for=condition=Ready",
        &format!("pod/{name}"),
        "--timeout=90s",
    ]);
}

fn run_json(args: &[&str]) -> (Option<i32>, serde_json::Value, String) {
    let run = doctor(args);
    (
        run.code,
        serde_json::from_str(&run.stdout).unwrap_or(serde_json::Value::Null),
        format!("{}\n{}", run.stdout, run.stderr),
    )
}

/// Creates client pod NS/POD with `spec_extra` and runs the doctor on it (JSON, 8 s capture).
fn doctor_on_new_pod(
    ns: &str,
    pod: &str,
    spec_extra: &str,
) -> (Option<i32>, serde_json::Value, String) {
    client_pod(ns, pod, &[], spec_extra);
    run_json(&[
        pod,
        "-n",
        ns,
        "--external-name",
        EXTERNAL_NAME,
        "-o",
        "json",
        "--capture-seconds",
        "8",
    ])
}

fn ids(report: &serde_json::Value) -> Vec<String> {
    report["findings"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|f| f["id"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[test]
fn pod_security_baseline_is_handled_by_preflight() {
    let _guard = cluster_lock();
    client_pod(
        "dd-baseline",
        "client",
        &["pod-security.kubernetes.io/enforce=baseline"],
        "",
    );
    let (code, report, out) = run_json(&[
        "client",
        "-n",
        "dd-baseline",
        "--external-name",
        EXTERNAL_NAME,
        "-o",
        "json",
        "--capture-seconds",
        "8",
    ]);
    assert_eq!(code, Some(0), "{out}");
    // NET_RAW is not admitted: the probe runs unprivileged, packets come from the node.
    assert_eq!(report["strategy"], "node_capture", "{out}");
    assert!(
        report["strategy_reason"]
            .as_str()
            .unwrap_or_default()
            .contains("admission rejects"),
        "{out}"
    );
    let states = ephemeral_states("dd-baseline", "client");
    assert_eq!(
        states.len(),
        1,
        "exactly one container was added (no half-added rejected one): {states:?}"
    );
    let pod_capture = report["capture_points"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["kind"] == "pod")
        .cloned();
    assert!(
        pod_capture.is_some_and(|c| c["bytes"].as_u64().unwrap_or(0) > 24),
        "the nsenter capture of the pod has packets: {out}"
    );
    assert!(eventually(Duration::from_secs(60), || leftovers().is_empty()));
}

#[test]
fn pod_security_restricted_still_probes() {
    let _guard = cluster_lock();
    client_pod(
        "dd-restricted",
        "client",
        &["pod-security.kubernetes.io/enforce=restricted"],
        "",
    );
    let (code, report, out) = run_json(&[
        "client",
        "-n",
        "dd-restricted",
        "--external-name",
        EXTERNAL_NAME,
        "-o",
        "json",
        "--capture-seconds",
        "8",
    ]);
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(report["strategy"], "node_capture", "{out}");
    assert_eq!(
        ephemeral_states("dd-restricted", "client").len(),
        1,
        "{out}"
    );
}

#[test]
fn host_network_pod_is_examined() {
    let _guard = cluster_lock();
    let (code, report, out) = doctor_on_new_pod(
        "dd-hostnet",
        "client",
        "  hostNetwork: true\n  dnsPolicy: ClusterFirstWithHostNet\n",
    );
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(report["target"]["dns_policy"], "ClusterFirstWithHostNet");
    assert!(eventually(Duration::from_secs(60), || leftovers().is_empty()));
}

#[test]
fn host_network_with_cluster_first_is_named() {
    let _guard = cluster_lock();
    let (code, report, out) = doctor_on_new_pod(
        "dd-hostnet",
        "client-cf",
        "  hostNetwork: true\n  dnsPolicy: ClusterFirst\n",
    );
    // hostNetwork + ClusterFirst falls back to the node's resolver: cluster names fail.
    assert_eq!(code, Some(1), "{out}");
    assert_eq!(
        ids(&report).first().map(String::as_str),
        Some("pod-dns-policy-bypasses-cluster-dns"),
        "{out}"
    );
}

#[test]
fn dns_policy_none_with_custom_nameservers_is_named() {
    let _guard = cluster_lock();
    // The fake upstream answers external names but knows nothing of the cluster.
    let (code, report, out) = doctor_on_new_pod(
        "dd-custom",
        "client",
        "  dnsPolicy: None\n  dnsConfig:\n    nameservers: [\"10.253.0.2\"]\n    searches: [\"dd-custom.svc.cluster.local\"]\n",
    );
    assert_eq!(code, Some(1), "{out}");
    assert_eq!(
        ids(&report).first().map(String::as_str),
        Some("pod-dns-policy-bypasses-cluster-dns"),
        "{out}"
    );
}

#[test]
fn a_node_pod_that_cannot_start_is_reported_and_the_run_goes_on() {
    let _guard = cluster_lock();
    let ns = "dd-no-pods";
    let _ = kubectl(&["create", "namespace", ns]);
    kubectl_ok(&[
        "label",
        "namespace",
        ns,
        "pod-security.kubernetes.io/enforce=privileged",
        "--overwrite",
    ]);
    let _ = kubectl(&["-n", ns, "create", "quota", "no-pods", "--hard=pods=0"]);
    let (code, report, out) = run_json(&[
        GLIBC_CLIENT,
        "-n",
        CLIENT_NS,
        "--node-namespace",
        ns,
        "--external-name",
        EXTERNAL_NAME,
        "-o",
        "json",
        "--capture-seconds",
        "8",
        "--timeout",
        "150s",
    ]);
    assert_eq!(code, Some(0), "pod-level checks still decide: {out}");
    let errors = report["step_errors"].to_string();
    assert!(
        errors.contains("node pod on"),
        "the node pod failure is reported: {errors}"
    );
    assert!(
        eventually(Duration::from_secs(60), || leftovers().is_empty()),
        "{:?}",
        leftovers()
    );
}

#[test]
fn target_deleted_mid_run_ends_cleanly() {
    let _guard = cluster_lock();
    client_pod("dd-vanish", "client", &[], "");
    // With the upstream down, external names time out and the probe runs long enough for
    // the pod to disappear under it.
    let _slow = Fault::on("upstream-down");
    let mut child = spawn_doctor(&[
        "client",
        "-n",
        "dd-vanish",
        "--external-name",
        EXTERNAL_NAME,
        "--capture-seconds",
        "20",
        "-v",
    ]);
    // Deleted while the probe runs.
    let mut stderr = StderrWatch::new(&mut child);
    assert!(stderr.wait_for("probing DNS", Duration::from_secs(60)));
    kubectl_ok(&[
        "delete",
        "pod",
        "-n",
        "dd-vanish",
        "client",
        "--wait=false",
        "--grace-period=0",
        "--force",
    ]);
    let deadline = std::time::Instant::now() + Duration::from_secs(150);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the run did not end after its target vanished"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        stderr.all(Duration::from_secs(5))
    );
    assert!(
        matches!(status.code(), Some(1) | Some(2)),
        "exit {:?}: {text}",
        status.code()
    );
    assert!(text.contains("dd-vanish"), "the pod is named: {text}");
    assert!(
        eventually(Duration::from_secs(60), || leftovers().is_empty()),
        "{:?}",
        leftovers()
    );
}
