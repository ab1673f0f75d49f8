//! `kubectl dns-doctor` end to end against the real test cluster (issue 4): a healthy run,
//! bad input and hostile conditions, interruption and cleanup, least privilege.
//!
//! Needs the cluster from tests/cluster/up; built only with `--features cluster`.

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use dns_doctor_tests::cluster::*;

fn findings(report: &serde_json::Value) -> Vec<(String, String)> {
    report["findings"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|f| {
            (
                f["id"].as_str().unwrap_or_default().to_string(),
                f["severity"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

/// Names of the dns-doctor ephemeral containers in a pod now.
fn ephemeral_names(ns: &str, pod: &str) -> Vec<String> {
    ephemeral_states(ns, pod)
        .into_iter()
        .map(|(n, _)| n)
        .collect()
}

/// No node pods left, and every ephemeral container added since `before` has exited.
fn assert_nothing_left(ns: &str, pod: &str, before: &[String]) {
    assert!(
        eventually(Duration::from_secs(60), || leftovers().is_empty()),
        "dns-doctor objects left behind: {:?}",
        leftovers()
    );
    let ours = || {
        ephemeral_states(ns, pod)
            .into_iter()
            .filter(|(n, _)| !before.contains(n))
            .collect::<Vec<_>>()
    };
    assert!(
        eventually(Duration::from_secs(60), || ours()
            .iter()
            .all(|(_, s)| s == "terminated")),
        "ephemeral containers of this run still running in {ns}/{pod}: {:?}",
        ours()
    );
}

#[test]
fn healthy_cluster_reports_healthy_with_evidence() {
    let _guard = cluster_lock();
    let before = ephemeral_names(CLIENT_NS, GLIBC_CLIENT);
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("bundle");
    let run = doctor(&[
        &format!("pod/{GLIBC_CLIENT}"),
        "-n",
        CLIENT_NS,
        "--external-name",
        EXTERNAL_NAME,
        "-o",
        "json",
        "--capture-seconds",
        "8",
        "--output-dir",
        bundle.to_str().unwrap(),
    ]);
    assert_eq!(
        run.code,
        Some(0),
        "healthy run must exit 0\nstdout:\n{}\nstderr:\n{}",
        run.stdout,
        run.stderr
    );
    let report = run.json();
    let bad: Vec<_> = findings(&report)
        .into_iter()
        .filter(|(_, s)| s == "error" || s == "warning")
        .collect();
    assert!(
        bad.is_empty(),
        "healthy cluster has findings: {bad:?}\n{}",
        run.stdout
    );
    let failed: Vec<_> = report["checklist"]
        .as_array()
        .expect("a checklist")
        .iter()
        .filter(|c| c["status"] != "pass")
        .map(|c| format!("{} = {}", c["title"], c["status"]))
        .collect();
    assert!(failed.is_empty(), "runbook steps not green: {failed:?}");
    // Every pcap is in the bundle, private, and readable by tshark.
    let pcaps: Vec<_> = std::fs::read_dir(&bundle)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "pcap"))
        .collect();
    assert!(
        pcaps.len() >= 3,
        "expected pod, DNS pod and node captures, got {pcaps:?}"
    );
    for entry in std::fs::read_dir(&bundle).unwrap() {
        let p = entry.unwrap().path();
        if p.is_file() {
            let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{} has mode {mode:o}", p.display());
        }
    }
    for p in &pcaps {
        let out = std::process::Command::new("tshark")
            .args(["-r", p.to_str().unwrap(), "-Y", "dns"])
            .output()
            .expect("tshark runs");
        assert!(
            out.status.success(),
            "tshark cannot read {}: {}",
            p.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let pod_pcap = pcaps
        .iter()
        .find(|p| p.file_name().unwrap().to_string_lossy().starts_with("pod-"))
        .expect("a pod capture");
    assert!(
        std::fs::metadata(pod_pcap).unwrap().len() > 24,
        "the pod capture holds packets"
    );
    assert!(bundle.join("report.json").exists() && bundle.join("report.txt").exists());
    // The report lists the containers that stay in the pod spec, and they have exited.
    let left = report["ephemeral_containers"]
        .as_array()
        .expect("ephemeral containers listed");
    assert_eq!(left.len(), 3, "the target and both DNS pods: {left:?}");
    assert!(left.iter().all(|e| e["terminated"] == true), "{left:?}");
    assert_nothing_left(CLIENT_NS, GLIBC_CLIENT, &before);
}

#[test]
fn a_name_that_does_not_exist_is_never_healthy() {
    let _guard = cluster_lock();
    // The issue's case: `--names kubernetes.default,nonexistent.invalid` was healthy.
    let run = doctor(&[
        GLIBC_CLIENT,
        "-n",
        CLIENT_NS,
        "--names",
        "kubernetes.default,nonexistent.invalid",
        "-o",
        "json",
    ]);
    assert_eq!(run.code, Some(1), "{}\n{}", run.stdout, run.stderr);
    let report = run.json();
    let top = &report["findings"][0];
    assert_eq!(top["id"], "name-lookup-fails", "{}", run.stdout);
    assert!(
        top["summary"]
            .as_str()
            .unwrap()
            .contains("nonexistent.invalid"),
        "{}",
        top["summary"]
    );
    // The real name resolved to the API's answer, along the pod's resolver path.
    let k = report["lookups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["name"] == "kubernetes.default")
        .expect("a lookup of kubernetes.default");
    assert_eq!(k["verdict"], "ok", "{k}");
    assert_eq!(k["expected"]["service"], "default/kubernetes", "{k}");
}

#[test]
fn the_dns_servers_own_pods_do_not_use_the_cluster_dns_by_design() {
    let _guard = cluster_lock();
    // `deploy/coredns -n kube-system`: dnsPolicy Default is how the DNS server must run;
    // what matters for it is its upstream, which answers.
    let run = doctor(&[
        "deploy/coredns",
        "-n",
        "kube-system",
        "--external-name",
        EXTERNAL_NAME,
        "-o",
        "json",
    ]);
    let report = run.json();
    let policy = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["id"] == "pod-dns-policy-bypasses-cluster-dns")
        .unwrap_or_else(|| panic!("no dnsPolicy finding: {}", run.stdout));
    assert_eq!(policy["severity"], "info", "{policy}");
    assert_eq!(run.code, Some(0), "{}\n{}", run.stdout, run.stderr);
    assert!(eventually(Duration::from_secs(60), || leftovers().is_empty()));
}

#[test]
fn text_report_puts_the_verdict_first() {
    let _guard = cluster_lock();
    let run = doctor(&[
        GLIBC_CLIENT,
        "-n",
        CLIENT_NS,
        "--external-name",
        EXTERNAL_NAME,
        "--no-capture",
    ]);
    assert_eq!(run.code, Some(0), "{}\n{}", run.stdout, run.stderr);
    let first = run
        .stdout
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or_default();
    assert!(
        first.to_lowercase().contains("healthy"),
        "first line is the verdict: {first:?}"
    );
}

#[test]
fn missing_pod_says_so_and_exits_2() {
    let run = doctor(&["pod/does-not-exist", "-n", CLIENT_NS]);
    assert_eq!(run.code, Some(2), "{}", run.stderr);
    assert!(
        run.stderr.contains("not found") && run.stderr.contains("does-not-exist"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("-n"),
        "the hint names the namespace flag: {}",
        run.stderr
    );
    assert!(run.stdout.is_empty());
}

#[test]
fn wrong_namespace_is_a_clear_not_found() {
    let run = doctor(&[GLIBC_CLIENT, "-n", "default"]);
    assert_eq!(run.code, Some(2));
    assert!(
        run.stderr.contains("not found in namespace \"default\""),
        "{}",
        run.stderr
    );
}

#[test]
fn missing_kubeconfig_is_reported() {
    let run = doctor(&[GLIBC_CLIENT, "--kubeconfig", "/nonexistent/kubeconfig"]);
    assert_eq!(run.code, Some(2));
    assert!(run.stderr.contains("kubeconfig"), "{}", run.stderr);
}

#[test]
fn unreachable_cluster_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = std::fs::read_to_string(kubeconfig()).unwrap();
    // The same credentials, pointed at a loopback port where nothing listens.
    let broken = cfg.replace(&api_server(), "https://127.0.0.1:1");
    let path = dir.path().join("kubeconfig");
    std::fs::write(&path, broken).unwrap();
    let run = doctor(&[
        GLIBC_CLIENT,
        "-n",
        CLIENT_NS,
        "--kubeconfig",
        path.to_str().unwrap(),
    ]);
    assert_eq!(run.code, Some(2));
    assert!(
        run.stderr.contains("cannot reach the cluster"),
        "{}",
        run.stderr
    );
}

#[test]
fn unknown_kind_is_a_usage_error() {
    let run = doctor(&["svc/kube-dns"]);
    assert_eq!(run.code, Some(2));
    assert!(
        run.stderr.contains("unknown resource type"),
        "{}",
        run.stderr
    );
}

#[test]
fn finished_pod_is_refused() {
    let _guard = cluster_lock();
    let ns = CLIENT_NS;
    let _ = kubectl(&[
        "delete",
        "pod",
        "-n",
        ns,
        "finished",
        "--ignore-not-found",
        "--wait=true",
    ]);
    let image = kubectl_ok(&[
        "get",
        "pod",
        "-n",
        ns,
        GLIBC_CLIENT,
        "-o",
        "jsonpath={.spec.containers[0].image}",
    ]);
    kubectl_ok(&[
        "run",
        "finished",
        "-n",
        ns,
        "--image",
        &image,
        "--image-pull-policy=Never",
        "--restart=Never",
        "--command",
        "--",
        "/bin/true",
    ]);
    assert!(eventually(Duration::from_secs(60), || kubectl_ok(&[
        "get",
        "pod",
        "-n",
        ns,
        "finished",
        "-o",
        "jsonpath={.status.phase}"
    ]) == "Succeeded"));
    let run = doctor(&["pod/finished", "-n", ns]);
    assert_eq!(run.code, Some(2));
    assert!(
        run.stderr.contains("is Succeeded, not Running"),
        "{}",
        run.stderr
    );
    kubectl_ok(&["delete", "pod", "-n", ns, "finished", "--wait=false"]);
}

#[test]
fn workload_without_ready_pod_is_refused() {
    let _guard = cluster_lock();
    let ns = CLIENT_NS;
    let image = kubectl_ok(&[
        "get",
        "pod",
        "-n",
        ns,
        GLIBC_CLIENT,
        "-o",
        "jsonpath={.spec.containers[0].image}",
    ]);
    let _ = kubectl(&["delete", "deploy", "-n", ns, "idle", "--ignore-not-found"]);
    kubectl_ok(&[
        "create",
        "deployment",
        "idle",
        "-n",
        ns,
        "--image",
        &image,
        "--replicas=0",
    ]);
    let run = doctor(&["deploy/idle", "-n", ns]);
    kubectl_ok(&["delete", "deploy", "-n", ns, "idle"]);
    assert_eq!(run.code, Some(2));
    assert!(run.stderr.contains("has no ready pod"), "{}", run.stderr);
}

#[test]
fn workload_target_names_the_chosen_pod() {
    let _guard = cluster_lock();
    let run = doctor(&[
        "deploy/coredns",
        "-n",
        "kube-system",
        "--external-name",
        EXTERNAL_NAME,
        "--no-capture",
        "--no-node-checks",
        "-o",
        "json",
    ]);
    assert!(
        matches!(run.code, Some(0) | Some(1)),
        "{}\n{}",
        run.stdout,
        run.stderr
    );
    let report = run.json();
    assert_eq!(
        report["target"]["chosen_from"], "deployment/coredns",
        "{}",
        run.stdout
    );
    assert!(
        report["target"]["name"]
            .as_str()
            .unwrap_or_default()
            .starts_with("coredns-"),
        "{}",
        run.stdout
    );
}

#[test]
fn unpullable_image_is_reported_by_name_and_nothing_runs_on() {
    let _guard = cluster_lock();
    let image = "registry.invalid/dns-doctor/missing:v0";
    let run = doctor(&[
        GLIBC_CLIENT,
        "-n",
        CLIENT_NS,
        "--image",
        image,
        "--timeout",
        "90s",
        "--capture-seconds",
        "5",
    ]);
    assert_eq!(run.code, Some(2), "{}", run.stderr);
    assert!(
        run.stderr.contains(image),
        "the error names the image: {}",
        run.stderr
    );
    assert!(
        run.stderr.contains("ErrImage") || run.stderr.contains("ImagePull"),
        "{}",
        run.stderr
    );
    assert!(run.elapsed < Duration::from_secs(100));
    assert!(
        eventually(Duration::from_secs(60), || leftovers().is_empty()),
        "left: {:?}",
        leftovers()
    );
}

#[test]
fn forbidden_verb_names_the_rule_to_add() {
    let _guard = cluster_lock();
    let ns = CLIENT_NS;
    let _ = kubectl(&["delete", "sa", "-n", ns, "nobody", "--ignore-not-found"]);
    kubectl_ok(&["create", "sa", "-n", ns, "nobody"]);
    // Enough to find the pod, nothing more.
    let _ = kubectl(&[
        "delete",
        "role,rolebinding",
        "-n",
        ns,
        "pod-reader",
        "--ignore-not-found",
    ]);
    kubectl_ok(&[
        "create",
        "role",
        "pod-reader",
        "-n",
        ns,
        "--verb=get,list",
        "--resource=pods",
    ]);
    kubectl_ok(&[
        "create",
        "rolebinding",
        "pod-reader",
        "-n",
        ns,
        "--role=pod-reader",
        &format!("--serviceaccount={ns}:nobody"),
    ]);
    let kc = sa_kubeconfig(ns, "nobody");
    let run = doctor(&[
        GLIBC_CLIENT,
        "-n",
        ns,
        "--kubeconfig",
        kc.path().to_str().unwrap(),
        "--external-name",
        EXTERNAL_NAME,
        "-o",
        "json",
    ]);
    // Degrades to what the API shows, and says why.
    assert!(
        matches!(run.code, Some(0) | Some(1) | Some(2)),
        "{}",
        run.stderr
    );
    let text = format!("{}{}", run.stdout, run.stderr);
    assert!(
        text.contains("pods/ephemeralcontainers"),
        "names the missing resource: {text}"
    );
    assert!(leftovers().is_empty());
}

/// A kubeconfig for a ServiceAccount, with a short-lived token.
pub fn sa_kubeconfig(ns: &str, sa: &str) -> tempfile::NamedTempFile {
    let token = kubectl_ok(&["create", "token", "-n", ns, sa, "--duration=1h"]);
    let admin = std::fs::read_to_string(kubeconfig()).unwrap();
    let ca = admin
        .lines()
        .find_map(|l| l.trim().strip_prefix("certificate-authority-data:"))
        .expect("CA in admin kubeconfig")
        .trim()
        .to_string();
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        file.path(),
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: {server}\n    certificate-authority-data: {ca}\nusers:\n- name: u\n  user:\n    token: {}\ncontexts:\n- name: x\n  context:\n    cluster: c\n    user: u\n    namespace: {ns}\ncurrent-context: x\n",
            token.trim(),
            server = api_server(),
        ),
    )
    .unwrap();
    file
}

fn wait_child(child: &mut std::process::Child, limit: Duration) -> Option<i32> {
    let deadline = std::time::Instant::now() + limit;
    while std::time::Instant::now() < deadline {
        if let Some(status) = child.try_wait().unwrap() {
            return status.code();
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    panic!("the plugin did not exit within {}s", limit.as_secs());
}

/// Starts a run (with -v, so it logs its progress steps), sends `signal` once it logs
/// `step`, and checks it exits 130 with nothing of it left behind.
fn interrupt_at(step: &str, signal: &str) {
    let before = ephemeral_names(CLIENT_NS, GLIBC_CLIENT);
    let mut child = spawn_doctor(&[
        GLIBC_CLIENT,
        "-n",
        CLIENT_NS,
        "--external-name",
        EXTERNAL_NAME,
        "--capture-seconds",
        "20",
        "-v",
    ]);
    let mut stderr = StderrWatch::new(&mut child);
    assert!(
        stderr.wait_for(step, Duration::from_secs(60)),
        "the run never logged {step:?}"
    );
    let status = std::process::Command::new("kill")
        .args([&format!("-{signal}"), &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let code = wait_child(&mut child, Duration::from_secs(50));
    assert_eq!(code, Some(130), "SIG{signal} at {step:?}");
    assert_nothing_left(CLIENT_NS, GLIBC_CLIENT, &before);
}

#[test]
fn sigint_at_any_point_cleans_up_and_exits_130() {
    let _guard = cluster_lock();
    // Before anything is started, while containers start, and during the capture: each
    // point found by the progress step the run logs, not by a guess of its timing.
    for step in [
        "discovering the cluster DNS",
        "starting probe containers and node pods",
        "probing DNS",
    ] {
        interrupt_at(step, "INT");
    }
}

#[test]
fn sigterm_is_handled_like_ctrl_c() {
    let _guard = cluster_lock();
    interrupt_at("starting captures", "TERM");
}

/// Runs the plugin through `bash -c SCRIPT` (the binary in `$PLUGIN`), as a runbook script
/// pipes it; returns the plugin's own exit code (PIPESTATUS) and what bash printed.
fn doctor_in_pipeline(script: &str) -> (Option<i32>, String, String) {
    let out = std::process::Command::new("bash")
        .args([
            "-c",
            &format!("{script}; echo \"plugin-exit=${{PIPESTATUS[0]}}\""),
        ])
        .env("PLUGIN", dns_doctor_tests::cluster::plugin_binary())
        .env("KUBECONFIG", dns_doctor_tests::cluster::kubeconfig())
        .stdin(std::process::Stdio::null())
        .output()
        .expect("bash runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let code = stdout
        .lines()
        .find_map(|l| l.strip_prefix("plugin-exit="))
        .and_then(|c| c.trim().parse().ok());
    (code, stdout, stderr)
}

/// What every DNS pod and the target carry of this run: nothing may still be running.
fn running_ephemeral_of_run(
    pods: &[(String, String)],
    before: &[(String, Vec<String>)],
) -> Vec<String> {
    let mut running = Vec::new();
    for (ns, pod) in pods {
        let old = before
            .iter()
            .find(|(p, _)| p == pod)
            .map(|(_, names)| names.clone())
            .unwrap_or_default();
        for (name, state) in ephemeral_states(ns, pod) {
            if !old.contains(&name) && state != "terminated" {
                running.push(format!("{ns}/{pod}: {name} {state}"));
            }
        }
    }
    running
}

#[test]
fn a_closed_stderr_or_stdout_neither_panics_nor_skips_cleanup() {
    let _guard = cluster_lock();
    let mut pods = vec![(CLIENT_NS.to_string(), MUSL_CLIENT.to_string())];
    for name in kubectl_ok(&[
        "get",
        "pods",
        "-n",
        "kube-system",
        "-l",
        "k8s-app=kube-dns",
        "-o",
        "name",
    ])
    .lines()
    {
        pods.push((
            "kube-system".into(),
            name.trim_start_matches("pod/").to_string(),
        ));
    }
    let snapshot = |pods: &[(String, String)]| {
        pods.iter()
            .map(|(ns, p)| (p.clone(), ephemeral_names(ns, p)))
            .collect::<Vec<_>>()
    };
    let args = format!("\"$PLUGIN\" {MUSL_CLIENT} -n {CLIENT_NS} --external-name {EXTERNAL_NAME}");

    // The runbook's way of grepping the log: stderr and stdout into `head -1`, which
    // closes the pipe after the first log line, long before the run is done.
    let before = snapshot(&pods);
    let (code, out, err) = doctor_in_pipeline(&format!("{args} -v 2>&1 | head -1"));
    assert!(
        !out.contains("panicked") && !err.contains("panicked"),
        "{out}\n{err}"
    );
    // The report could not be written (stdout is the same closed pipe): exit 2, not 101.
    assert_eq!(code, Some(2), "stdout:\n{out}\nstderr:\n{err}");
    // Cleanup ran before the exit: no Job, no node pod, no running container of this run,
    // well before any container's own deadline would have ended it.
    assert!(
        eventually(Duration::from_secs(15), || leftovers().is_empty()),
        "left behind: {:?}",
        leftovers()
    );
    assert!(
        eventually(Duration::from_secs(15), || running_ephemeral_of_run(
            &pods, &before
        )
        .is_empty()),
        "still running: {:?}",
        running_ephemeral_of_run(&pods, &before)
    );

    // Only stdout closed (its reader gone before the report is ready): stderr says the
    // report could not be written, and the exit code says the run's result is unknown.
    let before = snapshot(&pods);
    let (code, _out, err) = doctor_in_pipeline(&format!("{args} -q | true"));
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("cannot write the report to stdout"), "{err}");
    assert!(
        eventually(Duration::from_secs(15), || leftovers().is_empty()
            && running_ephemeral_of_run(&pods, &before).is_empty()),
        "left behind: {:?} {:?}",
        leftovers(),
        running_ephemeral_of_run(&pods, &before)
    );
}

#[test]
fn sigkill_leaves_nothing_after_the_deadlines() {
    let _guard = cluster_lock();
    let before = ephemeral_names(CLIENT_NS, GLIBC_CLIENT);
    // A short --timeout gives the containers and Jobs short lifetimes.
    let mut child = spawn_doctor(&[
        GLIBC_CLIENT,
        "-n",
        CLIENT_NS,
        "--external-name",
        EXTERNAL_NAME,
        "--capture-seconds",
        "10",
        "--timeout",
        "40s",
    ]);
    std::thread::sleep(Duration::from_millis(3000));
    child.kill().unwrap();
    let _ = child.wait();
    // hold ends after timeout + 30 s; the Job is then removed by its TTL (30 s).
    assert!(
        eventually(Duration::from_secs(180), || leftovers().is_empty()),
        "left after SIGKILL: {:?}",
        leftovers()
    );
    assert!(
        eventually(Duration::from_secs(30), || ephemeral_states(
            CLIENT_NS,
            GLIBC_CLIENT
        )
        .iter()
        .filter(|(n, _)| !before.contains(n))
        .all(|(_, s)| s == "terminated")),
        "ephemeral containers still running: {:?}",
        ephemeral_states(CLIENT_NS, GLIBC_CLIENT)
    );
}

#[test]
fn cleanup_subcommand_removes_leftover_node_pods() {
    let _guard = cluster_lock();
    let mut child = spawn_doctor(&[
        GLIBC_CLIENT,
        "-n",
        CLIENT_NS,
        "--external-name",
        EXTERNAL_NAME,
        "--capture-seconds",
        "20",
        "--timeout",
        "60s",
    ]);
    assert!(
        eventually(Duration::from_secs(30), || !leftovers().is_empty()),
        "the run started node pods"
    );
    child.kill().unwrap();
    let _ = child.wait();
    let run = doctor(&["cleanup"]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(
        run.stdout.contains("deleted job kube-system/dns-doctor-"),
        "{}",
        run.stdout
    );
    assert!(
        eventually(Duration::from_secs(60), || leftovers().is_empty()),
        "left after cleanup: {:?}",
        leftovers()
    );
}

/// deploy/rbac.yaml applied exactly as shipped, for as long as this lives; deleted again on
/// drop, so other tests and other versions of the file find the cluster as before.
struct ShippedRbac;

impl ShippedRbac {
    fn file() -> String {
        repo_root()
            .join("deploy/rbac.yaml")
            .to_str()
            .unwrap()
            .to_string()
    }

    fn apply() -> Self {
        // Bindings of the ServiceAccount from anything but this file (an older version of
        // it, an earlier test) would grant more than it does: remove them, and the file's
        // own objects, whose roleRef may have been different.
        for (kind, ns, name) in bindings_of_subject("ServiceAccount", "kube-system", "dns-doctor") {
            let mut args = vec!["delete", kind.as_str(), name.as_str(), "--ignore-not-found"];
            if let Some(ns) = &ns {
                args.extend(["-n", ns.as_str()]);
            }
            kubectl_ok(&args);
        }
        kubectl_ok(&["delete", "-f", &Self::file(), "--ignore-not-found"]);
        kubectl_ok(&["apply", "-f", &Self::file()]);
        Self
    }

    /// A kubeconfig with a token of the file's ServiceAccount.
    fn service_account_kubeconfig(&self) -> tempfile::NamedTempFile {
        sa_kubeconfig("kube-system", "dns-doctor")
    }
}

impl Drop for ShippedRbac {
    fn drop(&mut self) {
        let _ = kubectl(&["delete", "-f", &Self::file(), "--ignore-not-found"]);
        // The opt-in binding the file shows in a comment, if a test created it.
        let _ = kubectl(&[
            "delete",
            "clusterrolebinding",
            "dns-doctor-kubelet-configz",
            "--ignore-not-found",
        ]);
    }
}

/// (kind, namespace, name) of every ClusterRoleBinding and RoleBinding naming this subject.
fn bindings_of_subject(kind: &str, ns: &str, name: &str) -> Vec<(String, Option<String>, String)> {
    let out = kubectl_ok(&[
        "get",
        "clusterrolebindings,rolebindings",
        "-A",
        "-o",
        "json",
    ]);
    let list: serde_json::Value = serde_json::from_str(&out).unwrap();
    list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|b| {
            b["subjects"].as_array().into_iter().flatten().any(|s| {
                s["kind"] == kind
                    && s["name"] == name
                    && (kind != "ServiceAccount" || s["namespace"] == ns)
            })
        })
        .map(|b| {
            (
                b["kind"].as_str().unwrap_or_default().to_lowercase(),
                b["metadata"]["namespace"].as_str().map(str::to_string),
                b["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            )
        })
        .collect()
}

/// Runs the doctor on the glibc client with a kubeconfig, JSON out.
fn doctor_as(kubeconfig: &tempfile::NamedTempFile, extra: &[&str]) -> Run {
    let mut args = vec![
        GLIBC_CLIENT,
        "-n",
        CLIENT_NS,
        "--kubeconfig",
        kubeconfig.path().to_str().unwrap(),
        "--external-name",
        EXTERNAL_NAME,
        "-o",
        "json",
    ];
    args.extend(extra);
    doctor(&args)
}

fn capture_kinds(report: &serde_json::Value) -> Vec<String> {
    report["capture_points"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["kind"].as_str().map(str::to_string))
        .collect()
}

/// Discovery gaps other than the kubelet's configz (nodes/proxy is opt-in).
fn gaps_besides_configz(report: &serde_json::Value) -> Vec<String> {
    report["discovery_gaps"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|g| g.as_str())
        .filter(|g| !g.contains("(get nodes/proxy)"))
        .map(str::to_string)
        .collect()
}

#[test]
fn least_privilege_role_runs_the_full_doctor() {
    let _guard = cluster_lock();
    let before = ephemeral_names(CLIENT_NS, GLIBC_CLIENT);
    let rbac = ShippedRbac::apply();
    let kc = rbac.service_account_kubeconfig();
    let run = doctor_as(&kc, &["--capture-seconds", "8"]);
    assert_eq!(run.code, Some(0), "{}\n{}", run.stdout, run.stderr);
    let report = run.json();
    assert_eq!(report["strategy"], "ephemeral_capture", "{}", run.stdout);
    let kinds = capture_kinds(&report);
    for kind in ["node", "pod", "dns_pod"] {
        assert!(kinds.iter().any(|k| k == kind), "{kinds:?}");
    }
    assert!(
        report["step_errors"].as_array().unwrap().is_empty(),
        "{}",
        report["step_errors"]
    );
    // Without the opt-in nodes/proxy role the address comes from the kube-dns Service, and
    // the gap says why; nothing else is missing.
    assert_eq!(report["cluster_dns"]["source"], "kube_dns_service");
    assert!(
        report["discovery_gaps"]
            .as_array()
            .unwrap()
            .iter()
            .any(|g| g.as_str().unwrap_or_default().contains("(get nodes/proxy)")),
        "{}",
        report["discovery_gaps"]
    );
    assert_eq!(gaps_besides_configz(&report), Vec::<String>::new());
    assert_nothing_left(CLIENT_NS, GLIBC_CLIENT, &before);
}

#[test]
fn the_optional_configz_role_gives_the_kubelets_cluster_dns() {
    let _guard = cluster_lock();
    let before = ephemeral_names(CLIENT_NS, GLIBC_CLIENT);
    let rbac = ShippedRbac::apply();
    // The binding deploy/rbac.yaml shows in a comment, as the README says to create it.
    let _ = kubectl(&[
        "delete",
        "clusterrolebinding",
        "dns-doctor-kubelet-configz",
        "--ignore-not-found",
    ]);
    kubectl_ok(&[
        "create",
        "clusterrolebinding",
        "dns-doctor-kubelet-configz",
        "--clusterrole=dns-doctor-kubelet-configz",
        "--serviceaccount=kube-system:dns-doctor",
    ]);
    let kc = rbac.service_account_kubeconfig();
    let run = doctor_as(&kc, &["--no-capture", "--no-node-checks"]);
    assert_eq!(run.code, Some(0), "{}\n{}", run.stdout, run.stderr);
    let report = run.json();
    assert_eq!(
        report["cluster_dns"]["source"], "kubelet_configz",
        "{}",
        run.stdout
    );
    assert_eq!(
        report["discovery_gaps"],
        serde_json::json!([]),
        "{}",
        report["discovery_gaps"]
    );
    assert_nothing_left(CLIENT_NS, GLIBC_CLIENT, &before);
}

/// A ServiceAccount bound to the shipped roles the way deploy/rbac.yaml's `shop-devs`
/// example binds a Group: the target role in the client namespace only, discovery, and
/// the DNS role; no node checks. Removed on drop.
struct NamespaceOnlyAccount;

impl NamespaceOnlyAccount {
    const NAME: &str = "dns-doctor-ns-only";

    fn create() -> Self {
        let sa = format!("--serviceaccount={CLIENT_NS}:{}", Self::NAME);
        let this = Self;
        this.remove();
        kubectl_ok(&["create", "sa", "-n", CLIENT_NS, Self::NAME]);
        kubectl_ok(&[
            "create",
            "rolebinding",
            Self::NAME,
            "-n",
            CLIENT_NS,
            "--clusterrole=dns-doctor-target",
            &sa,
        ]);
        kubectl_ok(&[
            "create",
            "clusterrolebinding",
            Self::NAME,
            "--clusterrole=dns-doctor-discovery",
            &sa,
        ]);
        kubectl_ok(&[
            "create",
            "rolebinding",
            Self::NAME,
            "-n",
            "kube-system",
            "--role=dns-doctor-dns",
            &sa,
        ]);
        this
    }

    fn remove(&self) {
        let _ = kubectl(&[
            "delete",
            "rolebinding",
            Self::NAME,
            "-n",
            CLIENT_NS,
            "--ignore-not-found",
        ]);
        let _ = kubectl(&[
            "delete",
            "rolebinding",
            Self::NAME,
            "-n",
            "kube-system",
            "--ignore-not-found",
        ]);
        let _ = kubectl(&[
            "delete",
            "clusterrolebinding",
            Self::NAME,
            "--ignore-not-found",
        ]);
        let _ = kubectl(&[
            "delete",
            "sa",
            Self::NAME,
            "-n",
            CLIENT_NS,
            "--ignore-not-found",
        ]);
    }
}

impl Drop for NamespaceOnlyAccount {
    fn drop(&mut self) {
        self.remove();
    }
}

#[test]
fn without_node_permissions_it_degrades_and_says_so() {
    let _guard = cluster_lock();
    let before = ephemeral_names(CLIENT_NS, GLIBC_CLIENT);
    let _rbac = ShippedRbac::apply();
    let _account = NamespaceOnlyAccount::create();
    let kc = sa_kubeconfig(CLIENT_NS, NamespaceOnlyAccount::NAME);
    let run = doctor_as(&kc, &["--capture-seconds", "8"]);
    assert_eq!(run.code, Some(0), "{}\n{}", run.stdout, run.stderr);
    let report = run.json();
    let reason = report["strategy_reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("not allowed to create jobs in kube-system"),
        "{reason}"
    );
    let kinds = capture_kinds(&report);
    assert!(
        !kinds.iter().any(|k| k == "node"),
        "no node pods without the permission: {kinds:?}"
    );
    assert!(kinds.iter().any(|k| k == "pod"), "{kinds:?}");
    assert!(kinds.iter().any(|k| k == "dns_pod"), "{kinds:?}");
    assert_eq!(gaps_besides_configz(&report), Vec::<String>::new());
    assert!(leftovers().is_empty(), "{:?}", leftovers());
    assert_nothing_left(CLIENT_NS, GLIBC_CLIENT, &before);
}

/// Creates a node Job in kube-system built and labelled exactly as a run builds its own
/// (`node_pod::job_spec`), as if the run had been killed; returns its name.
fn leftover_node_job(run_id: &str) -> String {
    let node = kubectl_ok(&[
        "get",
        "pod",
        "-n",
        CLIENT_NS,
        GLIBC_CLIENT,
        "-o",
        "jsonpath={.spec.nodeName}",
    ]);
    let name = format!("dns-doctor-{run_id}-0");
    let job = dns_doctor::kube::node_pod::job_spec(
        &name,
        "kube-system",
        run_id,
        node.trim(),
        dns_doctor_probe::DEFAULT_IMAGE,
        Duration::from_secs(600),
    );
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), serde_json::to_string(&job).unwrap()).unwrap();
    kubectl_ok(&["create", "-f", file.path().to_str().unwrap()]);
    name
}

/// Names of the pods of a Job, once it has one.
fn pod_of_job(job: &str) -> String {
    let get = || {
        kubectl_ok(&[
            "get",
            "pods",
            "-n",
            "kube-system",
            "-l",
            &format!("job-name={job}"),
            "-o",
            "jsonpath={.items[*].metadata.name}",
        ])
    };
    assert!(
        eventually(Duration::from_secs(60), || !get().trim().is_empty()),
        "Job {job} made no pod"
    );
    get().trim().to_string()
}

#[test]
fn cleanup_works_under_the_shipped_roles() {
    let _guard = cluster_lock();
    let rbac = ShippedRbac::apply();
    // One Job left by a killed run, and the pod of another whose Job was deleted without
    // its pods (kubectl delete --cascade=orphan).
    let job = leftover_node_job("rbacleft");
    let orphaned_job = leftover_node_job("rbacorph");
    let orphan = pod_of_job(&orphaned_job);
    kubectl_ok(&[
        "delete",
        "job",
        "-n",
        "kube-system",
        &orphaned_job,
        "--cascade=orphan",
    ]);
    let kc = rbac.service_account_kubeconfig();
    let run = doctor(&["cleanup", "--kubeconfig", kc.path().to_str().unwrap()]);
    assert_eq!(run.code, Some(0), "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stdout
            .starts_with("searched namespace kube-system only: "),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains(&format!("deleted job kube-system/{job}\n")),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains(&format!("deleted pod kube-system/{orphan}\n")),
        "{}",
        run.stdout
    );
    assert!(
        eventually(Duration::from_secs(60), || leftovers().is_empty()),
        "left after cleanup: {:?}",
        leftovers()
    );
}

/// A pod running the plugin binary (mounted from this machine, which is the test cluster's
/// node) as the ServiceAccount of deploy/rbac.yaml, with no kubeconfig. Deleted on drop.
struct InClusterRun {
    name: &'static str,
}

impl InClusterRun {
    fn start(args: &[&str]) -> Self {
        let this = Self {
            name: "dns-doctor-in-cluster-run",
        };
        this.delete();
        let pod = serde_json::json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": this.name, "namespace": "kube-system"},
            "spec": {
                "serviceAccountName": "dns-doctor",
                "restartPolicy": "Never",
                "containers": [{
                    "name": "doctor",
                    "image": dns_doctor_probe::DEFAULT_IMAGE,
                    "imagePullPolicy": "Never",
                    "command": std::iter::once("/plugin/kubectl-dns_doctor").chain(args.iter().copied()).collect::<Vec<_>>(),
                    "volumeMounts": [{"name": "plugin", "mountPath": "/plugin/kubectl-dns_doctor", "readOnly": true}],
                }],
                "volumes": [{"name": "plugin", "hostPath": {"path": plugin_binary(), "type": "File"}}],
            },
        });
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), pod.to_string()).unwrap();
        kubectl_ok(&["create", "-f", file.path().to_str().unwrap()]);
        this
    }

    /// Waits for the plugin to exit; its exit code and output.
    fn wait(&self, limit: Duration) -> (Option<i64>, String) {
        let state = || {
            let out = kubectl_ok(&["get", "pod", "-n", "kube-system", self.name, "-o", "json"]);
            let pod: serde_json::Value = serde_json::from_str(&out).unwrap();
            pod["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"].as_i64()
        };
        let ended = eventually(limit, || state().is_some());
        let logs = kubectl(&["logs", "-n", "kube-system", self.name]).1;
        assert!(
            ended,
            "the in-cluster run did not end within {}s:\n{logs}",
            limit.as_secs()
        );
        (state(), logs)
    }

    fn delete(&self) {
        let _ = kubectl(&[
            "delete",
            "pod",
            "-n",
            "kube-system",
            self.name,
            "--ignore-not-found",
        ]);
    }
}

impl Drop for InClusterRun {
    fn drop(&mut self) {
        self.delete();
    }
}

#[test]
fn runs_in_cluster_as_the_shipped_service_account() {
    let _guard = cluster_lock();
    let before = ephemeral_names(CLIENT_NS, GLIBC_CLIENT);
    let _rbac = ShippedRbac::apply();
    let run = InClusterRun::start(&[
        GLIBC_CLIENT,
        "-n",
        CLIENT_NS,
        "--external-name",
        EXTERNAL_NAME,
        "-o",
        "json",
        "-q",
        "--capture-seconds",
        "8",
    ]);
    let (code, logs) = run.wait(Duration::from_secs(180));
    assert_eq!(code, Some(0), "{logs}");
    let report: serde_json::Value =
        serde_json::from_str(&logs).unwrap_or_else(|e| panic!("not a JSON report ({e}):\n{logs}"));
    assert_eq!(report["strategy"], "ephemeral_capture", "{logs}");
    assert!(capture_kinds(&report).iter().any(|k| k == "node"), "{logs}");
    assert_eq!(gaps_besides_configz(&report), Vec::<String>::new());
    assert_nothing_left(CLIENT_NS, GLIBC_CLIENT, &before);
}

// --- kubectl's conventions (issue 11): -c and the default-container annotation, the
// connection flags, KUBECONFIG lists, proxies, in-cluster configuration, credential plugins
// and completion through kubectl. Objects go into a namespace of their own.

/// The namespace these tests create their pods, service accounts and Jobs in.
const CONVENTIONS_NS: &str = "dns-doctor-conventions";

/// Creates [`CONVENTIONS_NS`] if needed; returns its name.
fn conventions_ns() -> &'static str {
    let (exists, _) = kubectl(&["get", "ns", CONVENTIONS_NS]);
    if !exists {
        kubectl_ok(&["create", "ns", CONVENTIONS_NS]);
    }
    CONVENTIONS_NS
}

/// Deletes what a test created when dropped, also when it panics.
struct DeleteOnDrop(Vec<String>);

impl Drop for DeleteOnDrop {
    fn drop(&mut self) {
        let mut args = vec![
            "delete",
            "-n",
            CONVENTIONS_NS,
            "--ignore-not-found",
            "--wait=false",
        ];
        args.extend(self.0.iter().map(String::as_str));
        let _ = kubectl(&args);
    }
}

/// `kubectl apply` of a manifest given as text.
fn apply(manifest: &str) {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), manifest).unwrap();
    kubectl_ok(&["apply", "-f", file.path().to_str().unwrap()]);
}

/// The image of a client pod's container, to reuse in pods of our own (imported, never pulled).
fn client_image(pod: &str) -> String {
    client_pod_field(pod, "{.spec.containers[0].image}")
}

/// A pod whose first container is a "mesh" sidecar (the musl client image) and whose
/// second is the "app" (the glibc client image): which one a run examines shows in the
/// report's container and libc.
fn sidecar_first_pod(name: &str, default_container: Option<&str>) -> String {
    let annotation = default_container
        .map(|c| format!("  annotations:\n    kubectl.kubernetes.io/default-container: {c}\n"))
        .unwrap_or_default();
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  namespace: {ns}\n{annotation}spec:\n  terminationGracePeriodSeconds: 2\n  containers:\n  - name: mesh\n    image: {musl}\n    imagePullPolicy: Never\n    command: [\"/usr/local/bin/dnsc\", \"sleep\"]\n  - name: app\n    image: {glibc}\n    imagePullPolicy: Never\n    command: [\"/usr/local/bin/dnsc\", \"sleep\"]\n",
        ns = CONVENTIONS_NS,
        musl = client_image(MUSL_CLIENT),
        glibc = client_image(GLIBC_CLIENT),
    )
}

fn wait_ready(kind_name: &str) {
    kubectl_ok(&[
        "wait",
        "-n",
        CONVENTIONS_NS,
        "--for=condition=Ready",
        kind_name,
        "--timeout=90s",
    ]);
}

/// The target container of every dns-doctor ephemeral container in a pod, by name.
fn ephemeral_targets(ns: &str, pod: &str) -> std::collections::BTreeMap<String, String> {
    let out = kubectl_ok(&["get", "pod", "-n", ns, pod, "-o", "json"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    v["spec"]["ephemeralContainers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| {
            Some((
                c["name"].as_str()?.to_string(),
                c["targetContainerName"].as_str()?.to_string(),
            ))
        })
        .collect()
}

/// The container the run's probe container in `pod` targeted, from the pod's spec.
fn probe_target(report: &serde_json::Value, ns: &str, pod: &str) -> String {
    let ours = report["ephemeral_containers"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|e| e["pod"] == format!("{ns}/{pod}").as_str())
        .and_then(|e| e["container"].as_str())
        .unwrap_or_else(|| panic!("no probe container in {ns}/{pod}: {report}"))
        .to_string();
    ephemeral_targets(ns, pod)
        .remove(&ours)
        .unwrap_or_else(|| panic!("{ours} is not in the spec of {ns}/{pod}"))
}

#[test]
fn container_flag_and_default_container_annotation_choose_the_examined_container() {
    let _guard = cluster_lock();
    let ns = conventions_ns();
    let _delete = DeleteOnDrop(vec!["pod/sidecar-first".into(), "pod/annotated".into()]);
    apply(&sidecar_first_pod("sidecar-first", None));
    apply(&sidecar_first_pod("annotated", Some("app")));
    wait_ready("pod/sidecar-first");
    wait_ready("pod/annotated");
    let run_on = |pod: &str, extra: &[&str]| {
        let mut args = vec![
            pod,
            "-n",
            ns,
            "--external-name",
            EXTERNAL_NAME,
            "--no-node-checks",
            "-o",
            "json",
        ];
        args.extend_from_slice(extra);
        let run = doctor(&args);
        assert!(
            matches!(run.code, Some(0) | Some(1)),
            "{pod} {extra:?}: {}\n{}",
            run.stdout,
            run.stderr
        );
        run
    };

    // Without -c, kubectl's default: the first container, the sidecar; and it says so.
    let run = run_on("pod/sidecar-first", &[]);
    let report = run.json();
    assert_eq!(report["target"]["container"], "mesh", "{}", run.stdout);
    assert_eq!(report["target"]["libc"], "musl", "{}", run.stdout);
    assert_eq!(probe_target(&report, ns, "sidecar-first"), "mesh");
    assert!(
        run.stderr.contains("examining container \"mesh\"") && run.stderr.contains("-c"),
        "{}",
        run.stderr
    );

    // -c app examines the app: its libc, and the probe's container targets it. A short
    // --request-timeout does not cut the run's streams (captures, probe output).
    let run = run_on(
        "pod/sidecar-first",
        &["-c", "app", "--request-timeout", "3s"],
    );
    let report = run.json();
    assert_eq!(report["target"]["container"], "app", "{}", run.stdout);
    assert_eq!(report["target"]["libc"], "glibc", "{}", run.stdout);
    assert!(
        !run.stderr.contains("examining container"),
        "{}",
        run.stderr
    );
    assert_eq!(probe_target(&report, ns, "sidecar-first"), "app");

    // The kubectl.kubernetes.io/default-container annotation is honoured.
    let run = run_on("pod/annotated", &[]);
    let report = run.json();
    assert_eq!(report["target"]["container"], "app", "{}", run.stdout);
    assert_eq!(report["target"]["libc"], "glibc", "{}", run.stdout);
    assert_eq!(probe_target(&report, ns, "annotated"), "app");

    // A name that is not a container lists the pod's containers, before anything is added.
    let before = ephemeral_targets(ns, "sidecar-first");
    let run = doctor(&["pod/sidecar-first", "-n", ns, "-c", "ap"]);
    assert_eq!(run.code, Some(2), "{}", run.stderr);
    assert!(
        run.stderr.contains("has no container \"ap\"")
            && run.stderr.contains("its containers: mesh, app")
            && run.stderr.contains("-c mesh"),
        "{}",
        run.stderr
    );
    assert_eq!(ephemeral_targets(ns, "sidecar-first"), before);
    assert!(leftovers().is_empty());
}

#[test]
fn impersonation_with_as_acts_as_that_user_and_explains_a_refusal() {
    let _guard = cluster_lock();
    let ns = conventions_ns();
    let who = format!("system:serviceaccount:{ns}:nobody");
    let run = doctor(&[GLIBC_CLIENT, "-n", CLIENT_NS, "--as", &who]);
    assert_eq!(run.code, Some(2), "{}", run.stderr);
    assert!(
        run.stderr
            .contains(&format!("forbidden: User \"{who}\" cannot get pods")),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains("With --as, the rule must be granted to the impersonated user"),
        "{}",
        run.stderr
    );
    // Impersonating a group that may do everything gets as far as the admin itself.
    let run = doctor(&[
        "pod/does-not-exist",
        "-n",
        CLIENT_NS,
        "--as",
        "someone",
        "--as-group",
        "system:masters",
    ]);
    assert_eq!(run.code, Some(2));
    assert!(
        run.stderr.contains("\"does-not-exist\" not found"),
        "{}",
        run.stderr
    );
    // An identity that may not impersonate is told so, not sent after a missing rule.
    let _ = kubectl(&["create", "sa", "-n", ns, "nobody"]);
    let _delete = DeleteOnDrop(vec!["sa/nobody".into()]);
    let kc = sa_kubeconfig(ns, "nobody");
    let run = doctor(&[
        GLIBC_CLIENT,
        "-n",
        CLIENT_NS,
        "--kubeconfig",
        kc.path().to_str().unwrap(),
        "--as",
        "someone",
    ]);
    assert_eq!(run.code, Some(2), "{}", run.stderr);
    assert!(
        run.stderr.contains(&format!("{who} may not impersonate"))
            && run.stderr.contains("or run without --as"),
        "{}",
        run.stderr
    );
    // A group without a user is refused before anything is sent, as kubectl does.
    let run = doctor(&[GLIBC_CLIENT, "--as-group", "system:masters"]);
    assert_eq!(run.code, Some(2));
    assert!(run.stderr.contains("need --as"), "{}", run.stderr);
}

#[test]
fn request_timeout_bounds_a_request_to_a_server_that_never_answers() {
    // A listener that never accepts: connections complete in its backlog, and the TLS
    // handshake then waits forever.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let server = format!("https://{}", silent.local_addr().unwrap());
    let started = std::time::Instant::now();
    let run = doctor(&[
        "pod/x",
        "--kubeconfig",
        "/dev/null",
        "--server",
        &server,
        "--insecure-skip-tls-verify",
        "--token",
        "t",
        "--request-timeout",
        "2s",
    ]);
    let took = started.elapsed();
    assert_eq!(run.code, Some(2), "{}", run.stderr);
    assert!(
        took < Duration::from_secs(20),
        "ended only after {took:?} (the run's own --timeout is 120s)"
    );
    assert!(
        run.stderr.contains("did not answer within 2s")
            && run.stderr.contains("raise --request-timeout"),
        "{}",
        run.stderr
    );
    drop(silent);
}

/// The admin kubeconfig's server, CA, client certificate and key, as files for the flags.
struct AdminCredentials {
    server: String,
    dir: tempfile::TempDir,
}

impl AdminCredentials {
    fn read() -> Self {
        use base64::Engine as _;
        let text = std::fs::read_to_string(kubeconfig()).unwrap();
        let field = |name: &str| {
            text.lines()
                .find_map(|l| l.trim().strip_prefix(name))
                .unwrap_or_else(|| panic!("{name} in the admin kubeconfig"))
                .trim()
                .to_string()
        };
        let dir = tempfile::tempdir().unwrap();
        for (file, key) in [
            ("ca.crt", "certificate-authority-data:"),
            ("admin.crt", "client-certificate-data:"),
            ("admin.key", "client-key-data:"),
        ] {
            let pem = base64::engine::general_purpose::STANDARD
                .decode(field(key))
                .unwrap();
            std::fs::write(dir.path().join(file), pem).unwrap();
        }
        Self {
            server: field("server:"),
            dir,
        }
    }

    fn path(&self, file: &str) -> String {
        self.dir.path().join(file).to_str().unwrap().to_string()
    }
}

#[test]
fn server_and_credentials_as_flags_run_without_any_kubeconfig() {
    let _guard = cluster_lock();
    let admin = AdminCredentials::read();
    let (ca, crt, key) = (
        admin.path("ca.crt"),
        admin.path("admin.crt"),
        admin.path("admin.key"),
    );
    // A whole run (discovery, ephemeral container, exec streams) on flags alone.
    let run = doctor(&[
        GLIBC_CLIENT,
        "-n",
        CLIENT_NS,
        "--kubeconfig",
        "/dev/null",
        "--server",
        &admin.server,
        "--certificate-authority",
        &ca,
        "--client-certificate",
        &crt,
        "--client-key",
        &key,
        "--external-name",
        EXTERNAL_NAME,
        "--no-node-checks",
        "-o",
        "json",
    ]);
    assert!(
        matches!(run.code, Some(0) | Some(1)),
        "{}\n{}",
        run.stdout,
        run.stderr
    );
    let report = run.json();
    assert_eq!(report["target"]["name"], GLIBC_CLIENT);
    assert_eq!(report["target"]["libc"], "glibc", "{}", run.stdout);

    // Without the CA the server's certificate is not trusted; --insecure-skip-tls-verify
    // accepts it.
    let no_ca = [
        "pod/does-not-exist",
        "-n",
        CLIENT_NS,
        "--kubeconfig",
        "/dev/null",
        "--server",
        &admin.server,
        "--client-certificate",
        &crt,
        "--client-key",
        &key,
    ];
    let run = doctor(&no_ca);
    assert_eq!(run.code, Some(2));
    assert!(
        run.stderr.contains("cannot reach the cluster"),
        "{}",
        run.stderr
    );
    let mut insecure = no_ca.to_vec();
    insecure.push("--insecure-skip-tls-verify");
    let run = doctor(&insecure);
    assert_eq!(run.code, Some(2));
    assert!(
        run.stderr.contains("\"does-not-exist\" not found"),
        "{}",
        run.stderr
    );

    // --token: a service account's token, which the API server names in its refusal.
    let ns = conventions_ns();
    let _ = kubectl(&["create", "sa", "-n", ns, "token-only"]);
    let _delete = DeleteOnDrop(vec!["sa/token-only".into()]);
    let token = kubectl_ok(&["create", "token", "-n", ns, "token-only", "--duration=10m"]);
    let run = doctor(&[
        GLIBC_CLIENT,
        "-n",
        CLIENT_NS,
        "--kubeconfig",
        "/dev/null",
        "--server",
        &admin.server,
        "--certificate-authority",
        &ca,
        "--token",
        token.trim(),
    ]);
    assert_eq!(run.code, Some(2), "{}", run.stderr);
    assert!(
        run.stderr.contains(&format!(
            "User \"system:serviceaccount:{ns}:token-only\" cannot get pods"
        )),
        "{}",
        run.stderr
    );
    // A token the API server does not know is a 401, said as such.
    let run = doctor(&[
        GLIBC_CLIENT,
        "--kubeconfig",
        "/dev/null",
        "--server",
        &admin.server,
        "--certificate-authority",
        &ca,
        "--token",
        "not-a-token",
    ]);
    assert_eq!(run.code, Some(2));
    assert!(
        run.stderr.contains("did not accept the credentials"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_missing_file_in_a_kubeconfig_list_is_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("not-there");
    let list = format!("{}:{}", missing.display(), kubeconfig().display());
    let run = doctor_with_env(
        &["pod/does-not-exist", "-n", CLIENT_NS],
        &[("KUBECONFIG", &list)],
    );
    assert_eq!(run.code, Some(2));
    // Connected through the second file: the API server answered for the pod.
    assert!(
        run.stderr.contains("\"does-not-exist\" not found"),
        "{}",
        run.stderr
    );
    // With no file there at all (and not in a pod) the error says where it looked.
    let run = doctor_with_env(
        &["pod/does-not-exist"],
        &[("KUBECONFIG", missing.to_str().unwrap())],
    );
    assert_eq!(run.code, Some(2));
    assert!(
        run.stderr.contains("no kubeconfig found") && run.stderr.contains("not-there"),
        "{}",
        run.stderr
    );
}

/// An HTTP CONNECT proxy on loopback that records the targets it was asked for and relays
/// the bytes: a real proxy, as small as one can be.
struct ConnectProxy {
    addr: std::net::SocketAddr,
    targets: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl ConnectProxy {
    fn start() -> Self {
        use std::io::{BufRead, BufReader, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let targets = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = targets.clone();
        std::thread::spawn(move || {
            for client in listener.incoming().map_while(Result::ok) {
                let seen = seen.clone();
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(client.try_clone().unwrap());
                    let mut request = String::new();
                    reader.read_line(&mut request).unwrap_or_default();
                    loop {
                        let mut header = String::new();
                        if reader.read_line(&mut header).unwrap_or_default() <= 2 {
                            break;
                        }
                    }
                    let target = request
                        .split_whitespace()
                        .nth(1)
                        .unwrap_or_default()
                        .to_string();
                    seen.lock().unwrap().push(target.clone());
                    let Ok(upstream) = std::net::TcpStream::connect(&target) else {
                        let _ = (&client).write_all(b"HTTP/1.1 502 Bad Gateway\r\n\r\n");
                        return;
                    };
                    let _ = (&client).write_all(b"HTTP/1.1 200 Connection established\r\n\r\n");
                    let (mut up_r, mut up_w) = (upstream.try_clone().unwrap(), upstream);
                    let mut down_w = client;
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut reader, &mut up_w);
                        let _ = up_w.shutdown(std::net::Shutdown::Write);
                    });
                    let _ = std::io::copy(&mut up_r, &mut down_w);
                    let _ = down_w.shutdown(std::net::Shutdown::Write);
                });
            }
        });
        Self { addr, targets }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn targets(&self) -> Vec<String> {
        self.targets.lock().unwrap().clone()
    }
}

#[test]
fn https_proxy_and_the_kubeconfigs_proxy_url_carry_the_run() {
    let _guard = cluster_lock();
    // The node address is in the API server certificate and is not loopback, so
    // HTTPS_PROXY applies to it (Go, and so kubectl, never proxies loopback).
    let node_ip = kubectl_ok(&[
        "get",
        "nodes",
        "-o",
        "jsonpath={.items[0].status.addresses[?(@.type==\"InternalIP\")].address}",
    ]);
    let admin = std::fs::read_to_string(kubeconfig()).unwrap();
    let server_line = admin
        .lines()
        .find(|l| l.trim().starts_with("server:"))
        .unwrap()
        .to_string();
    let port = server_line.rsplit(':').next().unwrap().trim().to_string();
    let dir = tempfile::tempdir().unwrap();
    let via_node = dir.path().join("via-node");
    std::fs::write(
        &via_node,
        admin.replace(
            &server_line,
            &format!("    server: https://{node_ip}:{port}"),
        ),
    )
    .unwrap();
    let target = format!("{node_ip}:{port}");

    // A whole run through HTTPS_PROXY, exec streams included.
    let proxy = ConnectProxy::start();
    let run = doctor_with_env(
        &[
            GLIBC_CLIENT,
            "-n",
            CLIENT_NS,
            "--kubeconfig",
            via_node.to_str().unwrap(),
            "--external-name",
            EXTERNAL_NAME,
            "--no-node-checks",
            "-o",
            "json",
        ],
        &[("HTTPS_PROXY", &proxy.url()), ("NO_PROXY", "")],
    );
    assert!(
        matches!(run.code, Some(0) | Some(1)),
        "{}\n{}",
        run.stdout,
        run.stderr
    );
    assert_eq!(run.json()["target"]["libc"], "glibc", "{}", run.stdout);
    let seen = proxy.targets();
    assert!(
        !seen.is_empty() && seen.iter().all(|t| *t == target),
        "the proxy saw {seen:?}, expected CONNECTs to {target}"
    );

    // NO_PROXY naming the server: straight there.
    let proxy = ConnectProxy::start();
    let run = doctor_with_env(
        &[
            "pod/does-not-exist",
            "-n",
            CLIENT_NS,
            "--kubeconfig",
            via_node.to_str().unwrap(),
        ],
        &[("HTTPS_PROXY", &proxy.url()), ("NO_PROXY", &node_ip)],
    );
    assert!(run.stderr.contains("not found"), "{}", run.stderr);
    assert_eq!(proxy.targets(), Vec::<String>::new());

    // The kubeconfig's proxy-url applies even to a loopback server.
    let proxy = ConnectProxy::start();
    let with_proxy_url = dir.path().join("proxy-url");
    std::fs::write(
        &with_proxy_url,
        admin.replace(
            &server_line,
            &format!("{server_line}\n    proxy-url: {}", proxy.url()),
        ),
    )
    .unwrap();
    let run = doctor_with_env(
        &[
            "pod/does-not-exist",
            "-n",
            CLIENT_NS,
            "--kubeconfig",
            with_proxy_url.to_str().unwrap(),
        ],
        &[("HTTPS_PROXY", ""), ("NO_PROXY", "*")],
    );
    assert!(run.stderr.contains("not found"), "{}", run.stderr);
    let loopback = server_line
        .trim()
        .trim_start_matches("server: https://")
        .to_string();
    assert!(
        proxy.targets().contains(&loopback),
        "the proxy saw {:?}, expected {loopback}",
        proxy.targets()
    );
}

#[test]
fn a_job_without_kubeconfig_uses_its_service_account() {
    let _guard = cluster_lock();
    let ns = conventions_ns();
    let binary = plugin_binary();
    let _delete = DeleteOnDrop(vec!["job/in-cluster".into()]);
    let _ = kubectl(&[
        "delete",
        "job",
        "-n",
        ns,
        "in-cluster",
        "--ignore-not-found",
        "--wait=true",
    ]);
    // The plugin binary from this build, mounted from the node (this machine) into the
    // glibc client image; no kubeconfig anywhere in the pod, no -n.
    apply(&format!(
        "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: in-cluster\n  namespace: {ns}\nspec:\n  backoffLimit: 0\n  ttlSecondsAfterFinished: 300\n  template:\n    spec:\n      restartPolicy: Never\n      containers:\n      - name: doctor\n        image: {image}\n        imagePullPolicy: Never\n        command: [\"/dns-doctor/kubectl-dns_doctor\", \"pod/some-pod\"]\n        volumeMounts:\n        - {{name: plugin, mountPath: /dns-doctor/kubectl-dns_doctor, readOnly: true}}\n      volumes:\n      - name: plugin\n        hostPath: {{path: {path}, type: File}}\n",
        image = client_image(GLIBC_CLIENT),
        path = binary.display(),
    ));
    assert!(
        eventually(Duration::from_secs(90), || {
            let (_, out) = kubectl(&[
                "get",
                "job",
                "-n",
                ns,
                "in-cluster",
                "-o",
                "jsonpath={.status.failed}{.status.succeeded}",
            ]);
            !out.trim().is_empty()
        }),
        "the Job did not finish"
    );
    let log = kubectl_ok(&["logs", "-n", ns, "job/in-cluster"]);
    // The pod's own service account, in the pod's own namespace, reached the API server.
    assert!(
        log.contains(&format!(
            "forbidden: User \"system:serviceaccount:{ns}:default\" cannot get pods in namespace \"{ns}\""
        )),
        "{log}"
    );
    let failed = kubectl_ok(&[
        "get",
        "job",
        "-n",
        ns,
        "in-cluster",
        "-o",
        "jsonpath={.status.failed}",
    ]);
    assert_eq!(failed.trim(), "1", "exit 2 fails the Job: {log}");
}

/// A kubeconfig whose user is an exec credential plugin: a shell script that asks for a
/// passcode on the terminal, then hands out the admin's client certificate.
fn exec_plugin_kubeconfig(dir: &std::path::Path, interactive_mode: &str) -> std::path::PathBuf {
    let text = std::fs::read_to_string(kubeconfig()).unwrap();
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(name))
            .unwrap()
            .trim()
            .to_string()
    };
    use base64::Engine as _;
    let pem = |key: &str| {
        String::from_utf8(
            base64::engine::general_purpose::STANDARD
                .decode(field(key))
                .unwrap(),
        )
        .unwrap()
    };
    let credential = serde_json::json!({
        "apiVersion": "client.authentication.k8s.io/v1",
        "kind": "ExecCredential",
        "status": {
            "clientCertificateData": pem("client-certificate-data:"),
            "clientKeyData": pem("client-key-data:"),
        }
    });
    std::fs::write(dir.join("credential.json"), credential.to_string()).unwrap();
    let plugin = dir.join("credential-plugin");
    std::fs::write(
        &plugin,
        format!(
            "#!/bin/sh\nprintf 'Passcode for the cluster: ' >&2\nread -r code\n[ \"$code\" = 1234 ] || exit 1\necho 'thank you' >&2\ncat {}\n",
            dir.join("credential.json").display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&plugin, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = dir.join("kubeconfig");
    std::fs::write(
        &path,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: {}\n    certificate-authority-data: {}\nusers:\n- name: u\n  user:\n    exec:\n      apiVersion: client.authentication.k8s.io/v1\n      command: {}\n      interactiveMode: {interactive_mode}\ncontexts:\n- name: x\n  context: {{cluster: c, user: u}}\ncurrent-context: x\n",
            field("server:"),
            field("certificate-authority-data:"),
            plugin.display()
        ),
    )
    .unwrap();
    path
}

/// Runs the plugin on a terminal (`script` allocates one) with `input` typed into it;
/// returns the exit code and everything the terminal showed.
fn doctor_on_a_terminal(args: &[&str], input: &str) -> (Option<i32>, String) {
    use std::io::Write;
    let command = std::iter::once(plugin_binary().display().to_string())
        .chain(args.iter().map(|a| format!("'{a}'")))
        .collect::<Vec<_>>()
        .join(" ");
    let mut child = std::process::Command::new("script")
        .args(["--quiet", "--return", "--command", &command, "/dev/null"])
        .env_remove("RUST_LOG")
        .env_remove("NO_COLOR")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(input.as_bytes()).unwrap();
    // stdin stays open until the run ends: at its end `script` would end the session.
    let waiter = std::thread::spawn(move || child.wait_with_output().unwrap());
    let deadline = std::time::Instant::now() + Duration::from_secs(180);
    while !waiter.is_finished() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    if !waiter.is_finished() {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status();
    }
    drop(stdin);
    let out = waiter.join().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// The frames of indicatif's spinner (its default tick strings, braille dots).
const SPINNER_FRAMES: [char; 10] = ['⠁', '⠉', '⠙', '⠚', '⠒', '⠂', '⠲', '⠴', '⠤', '⠄'];

#[test]
fn an_exec_credential_plugins_prompt_is_never_drawn_over() {
    let _guard = cluster_lock();
    let dir = tempfile::tempdir().unwrap();
    let args = |kc: &std::path::Path| {
        vec![
            GLIBC_CLIENT.to_string(),
            "-n".into(),
            CLIENT_NS.into(),
            "--kubeconfig".into(),
            kc.display().to_string(),
            "--external-name".into(),
            EXTERNAL_NAME.into(),
            "--no-node-checks".into(),
            "-o".into(),
            "json".into(),
        ]
    };
    // A plugin that may prompt (again, to refresh): its prompt stands on its own line, the
    // steps follow as lines, and no spinner frame is drawn anywhere.
    let kc = exec_plugin_kubeconfig(dir.path(), "IfAvailable");
    let a = args(&kc);
    // kube-rs runs the plugin more than once while it builds the client (for the TLS
    // identity and for the auth layer): the code is typed for each time.
    let (code, screen) = doctor_on_a_terminal(
        &a.iter().map(String::as_str).collect::<Vec<_>>(),
        &"1234\n".repeat(4),
    );
    assert!(matches!(code, Some(0) | Some(1)), "{screen}");
    let prompt = screen
        .find("Passcode for the cluster: ")
        .unwrap_or_else(|| panic!("no prompt on the terminal: {screen}"));
    let steps = screen
        .find("... discovering the cluster DNS")
        .unwrap_or_else(|| panic!("no step lines: {screen}"));
    assert!(prompt < steps, "{screen}");
    assert!(
        !screen.contains(SPINNER_FRAMES),
        "a spinner was drawn beside a credential prompt: {screen}"
    );
    assert!(screen.contains("\"libc\": \"glibc\""), "{screen}");

    // A plugin that never prompts keeps the spinner (so the check above can fail).
    let never = tempfile::tempdir().unwrap();
    let kc = exec_plugin_kubeconfig(never.path(), "Never");
    // With interactiveMode Never kube-rs gives the plugin no terminal: it reads the code
    // from a pipe; the spinner runs, once connected.
    let plugin = never.path().join("credential-plugin");
    let script = std::fs::read_to_string(&plugin)
        .unwrap()
        .replace("read -r code\n", "code=1234\n");
    std::fs::write(&plugin, script).unwrap();
    let a = args(&kc);
    let (code, screen) =
        doctor_on_a_terminal(&a.iter().map(String::as_str).collect::<Vec<_>>(), "");
    assert!(matches!(code, Some(0) | Some(1)), "{screen}");
    assert!(screen.contains(SPINNER_FRAMES), "no spinner: {screen}");
    let prompt = screen.find("Passcode for the cluster: ");
    let first_frame = screen.find(SPINNER_FRAMES);
    assert!(
        prompt.is_none() || prompt < first_frame,
        "the spinner started before the credential plugin ran: {screen}"
    );
}

#[test]
fn kubectl_completes_pods_namespaces_and_containers_through_the_plugin() {
    let _guard = cluster_lock();
    // kubectl finds both executables on PATH, as after `cargo install` or a Krew install
    // with the completion script linked.
    let bin = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(plugin_binary(), bin.path().join("kubectl-dns_doctor")).unwrap();
    std::os::unix::fs::symlink(
        repo_root().join("plugin/kubectl_complete-dns_doctor"),
        bin.path().join("kubectl_complete-dns_doctor"),
    )
    .unwrap();
    let path = format!(
        "{}:{}",
        bin.path().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let complete = |words: &[&str]| {
        let out = std::process::Command::new("kubectl")
            .arg("__complete")
            .arg("dns-doctor")
            .args(words)
            .env("PATH", &path)
            .env("KUBECONFIG", kubeconfig())
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let values: Vec<String> = text
            .lines()
            .map(|l| l.split('\t').next().unwrap_or_default().to_string())
            .collect();
        values
    };
    let pods = complete(&["-n", CLIENT_NS, "client-"]);
    assert_eq!(
        pods,
        vec![
            GLIBC_CLIENT.to_string(),
            MUSL_CLIENT.to_string(),
            ":4".into()
        ]
    );
    let namespaces = complete(&["-n", ""]);
    assert!(
        namespaces.contains(&CLIENT_NS.to_string())
            && namespaces.contains(&"kube-system".to_string()),
        "{namespaces:?}"
    );
    let workloads = complete(&["-n", "kube-system", "deploy/"]);
    assert_eq!(workloads, vec!["deploy/coredns".to_string(), ":4".into()]);
    let containers = complete(&[&format!("pod/{GLIBC_CLIENT}"), "-n", CLIENT_NS, "-c", ""]);
    assert_eq!(containers, vec!["client".to_string(), ":4".into()]);
    let flags = complete(&["--request"]);
    assert_eq!(flags, vec!["--request-timeout".to_string(), ":4".into()]);
}
