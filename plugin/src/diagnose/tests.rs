//! One table of scenarios per rule, built from the healthy base in `testkit`: each fault
//! must put its finding first, and the healthy cluster must come out clean.

use dns_doctor_schema::{ConnectOutcome, LibcKind, QueryOutcome, ServerRole, Transport};

use crate::capture::correlate::MatchKind;
use crate::capture::{CaptureAnalysis, Correlation, LostQuery, Sighting, Timestamp};
use crate::evidence::CaptureKind;
use crate::kube::discover::scan_dns_log;
use std::collections::BTreeMap;

use crate::topology::{
    ClusterDnsSource, NetworkPolicyInfo, NodeLocalDnsInfo, PodDnsConfig, PolicyPeer, PolicyPort,
    PolicyRule, Selector, SelectorRequirement, Termination,
};

use super::testkit::*;
use super::*;

fn ids(d: &Diagnosis) -> Vec<&str> {
    d.findings.iter().map(|f| f.id.as_str()).collect()
}

fn problems(d: &Diagnosis) -> Vec<(&str, Severity)> {
    d.findings
        .iter()
        .filter(|f| f.severity >= Severity::Warning)
        .map(|f| (f.id.as_str(), f.severity))
        .collect()
}

fn top(d: &Diagnosis) -> &Finding {
    d.root_cause()
        .unwrap_or_else(|| panic!("no problem found; findings: {:?}", d.findings))
}

fn check<'d>(d: &'d Diagnosis, id: &str) -> &'d Check {
    d.checklist
        .iter()
        .find(|c| c.id == id)
        .expect("check present")
}

fn evidence_text(f: &Finding) -> String {
    f.evidence
        .iter()
        .map(|e| format!("{}: {}", e.source, e.detail))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn healthy_cluster_has_no_warning_or_error_and_every_check_passes() {
    let d = healthy().diagnose();
    assert_eq!(problems(&d), vec![], "findings: {:#?}", d.findings);
    assert!(!d.has_problems());
    for c in &d.checklist {
        assert!(
            matches!(c.status, CheckStatus::Pass | CheckStatus::Skipped),
            "check {} is {:?}: {}",
            c.id,
            c.status,
            c.detail
        );
    }
    assert_eq!(
        check(&d, "kube-proxy").status,
        CheckStatus::Pass,
        "{}",
        check(&d, "kube-proxy").detail
    );
    assert_eq!(check(&d, "node-firewall").status, CheckStatus::Pass);
    assert_eq!(check(&d, "five-second").status, CheckStatus::Pass);
    assert_eq!(check(&d, "pod-nameservers").status, CheckStatus::Pass);
    // The default search path is reported, as information only.
    assert_eq!(ids(&d), vec![search_path_amplification::ID]);
    assert_eq!(d.findings[0].severity, Severity::Info);
}

#[test]
fn healthy_cluster_with_nft_kube_proxy_is_clean() {
    let mut s = healthy();
    s.set_node_command("iptables-legacy-save", "");
    s.set_node_command(node_view::NFT_RULESET_KEY, NFT_KUBE_PROXY_HEALTHY);
    let d = s.diagnose();
    assert_eq!(problems(&d), vec![]);
    assert_eq!(
        check(&d, "kube-proxy").status,
        CheckStatus::Pass,
        "{}",
        check(&d, "kube-proxy").detail
    );
}

fn coredns_down() -> Scenario {
    let mut s = healthy();
    s.topology.endpoints.clear();
    s.topology.dns_pods.clear();
    s.set_node_command("iptables-legacy-save", IPT_NO_ENDPOINTS);
    // kube-proxy's REJECT answers with ICMP port unreachable / RST.
    s.set_queries(is_cluster_dns, QueryOutcome::Refused, None);
    s.set_connects(
        |c| c.role == ServerRole::Nameserver,
        ConnectOutcome::Refused,
    );
    s.probe().queries.retain(|q| q.role != ServerRole::Endpoint);
    s.probe()
        .tcp_connects
        .retain(|c| c.role != ServerRole::Endpoint);
    s
}

#[test]
fn coredns_down_names_no_endpoints() {
    let d = coredns_down().diagnose();
    let f = top(&d);
    assert_eq!(f.id, dns_service_no_endpoints::ID);
    assert_eq!(f.severity, Severity::Error);
    assert!(f.summary.contains("kube-system/kube-dns"), "{}", f.summary);
    assert!(f.remediation.iter().any(|r| r.contains("k8s-app=kube-dns")));
    assert_eq!(check(&d, "endpoints-present").status, CheckStatus::Fail);
    assert_eq!(check(&d, "endpoints-present").detail, "0 ready: none");
    assert_eq!(check(&d, "dns-pods").status, CheckStatus::Fail);
}

#[test]
fn dns_service_missing_when_no_service_owns_the_ip() {
    let mut s = coredns_down();
    s.topology.dns_service = None;
    let d = s.diagnose();
    assert_eq!(top(&d).id, dns_service_missing::ID);
    assert!(top(&d).summary.contains("10.96.0.10"));
    assert_eq!(check(&d, "dns-service").status, CheckStatus::Fail);
}

#[test]
fn dns_service_missing_is_not_claimed_when_services_could_not_be_listed() {
    let mut s = coredns_down();
    s.topology.dns_service = None;
    s.topology
        .gaps
        .push("cannot list Services in all namespaces: forbidden".into());
    let d = s.diagnose();
    assert!(!ids(&d).contains(&dns_service_missing::ID));
    // The probe still shows the failure.
    assert_eq!(top(&d).id, cluster_dns_unreachable::ID);
}

#[test]
fn crashloop_with_forwarding_loop_names_the_loop_and_its_fix() {
    let mut s = healthy();
    s.topology.corefile = s.topology.corefile.as_ref().map(|c| {
        c.replace(
            &format!("forward . {UPSTREAM}"),
            "forward . /etc/resolv.conf",
        )
    });
    for p in &mut s.topology.dns_pods {
        p.ready = false;
        p.restarts = 4;
        p.waiting_reason = Some("CrashLoopBackOff".into());
        p.last_termination = Some(Termination {
            reason: "Error".into(),
            exit_code: 1,
            message: None,
            ..Termination::default()
        });
        p.log_lines = scan_dns_log(
            "[FATAL] plugin/loop: Loop (127.0.0.1:41315 -> :53) detected for zone \".\", see https://coredns.io/plugins/loop#troubleshooting. Query: \"HINFO 3161394461339880371.4366402768497767271.\"",
            true,
        );
    }
    for e in &mut s.topology.endpoints {
        e.ready = false;
    }
    s.set_node_command("iptables-legacy-save", IPT_NO_ENDPOINTS);
    s.set_queries(is_cluster_dns, QueryOutcome::Refused, None);
    s.set_queries(
        |q| q.role == ServerRole::Endpoint,
        QueryOutcome::Refused,
        None,
    );
    let d = s.diagnose();
    let f = top(&d);
    assert_eq!(f.id, dns_pods_not_ready::ID_CRASHLOOP, "{:?}", ids(&d));
    assert_eq!(f.severity, Severity::Error);
    assert!(f.summary.contains("forwarding loop"), "{}", f.summary);
    assert!(evidence_text(f).contains("Loop (127.0.0.1:41315 -> :53) detected"));
    assert!(f.remediation[0].contains("forward"), "{:?}", f.remediation);
    assert!(
        evidence_text(f).contains("forwards . to /etc/resolv.conf"),
        "{}",
        evidence_text(f)
    );
    assert!(
        f.remediation[0].contains("replace it with the real upstream"),
        "{:?}",
        f.remediation
    );
    // No endpoints is a consequence here, not a second root cause.
    assert!(!ids(&d).contains(&dns_service_no_endpoints::ID));
}

/// CoreDNS 1.11 starting with a ClusterRole that lacks endpointslices, as it logs it.
const RBAC_LOG: &str = r#".:53
[INFO] plugin/reload: Running configuration SHA512 = 591cf328cccc12bc490481273e738df59329c62c0b729d94e8b61db9961c2fa5f046dd37f1cf888b953814040d180f52594972691cd6ff41be96639138a43908
CoreDNS-1.11.3
linux/amd64, go1.21.11, a6338e9
[INFO] plugin/ready: Still waiting on: "kubernetes"
[INFO] plugin/kubernetes: pkg/mod/k8s.io/client-go@v0.29.3/tools/cache/reflector.go:229: failed to list *v1.EndpointSlice: endpointslices.discovery.k8s.io is forbidden: User "system:serviceaccount:kube-system:coredns" cannot list resource "endpointslices" in API group "discovery.k8s.io" at the cluster scope
[ERROR] plugin/kubernetes: pkg/mod/k8s.io/client-go@v0.29.3/tools/cache/reflector.go:229: Failed to watch *v1.EndpointSlice: failed to list *v1.EndpointSlice: endpointslices.discovery.k8s.io is forbidden: User "system:serviceaccount:kube-system:coredns" cannot list resource "endpointslices" in API group "discovery.k8s.io" at the cluster scope
[WARNING] plugin/kubernetes: starting server with unsynced Kubernetes API
[INFO] plugin/ready: Still waiting on: "kubernetes"
"#;

/// CoreDNS 1.11 that cannot reach the API server's ClusterIP.
const API_TIMEOUT_LOG: &str = r#"[INFO] plugin/ready: Still waiting on: "kubernetes"
[INFO] plugin/kubernetes: pkg/mod/k8s.io/client-go@v0.29.3/tools/cache/reflector.go:229: failed to list *v1.Namespace: Get "https://10.96.0.1:443/api/v1/namespaces?limit=500&resourceVersion=0": dial tcp 10.96.0.1:443: i/o timeout
[ERROR] plugin/kubernetes: pkg/mod/k8s.io/client-go@v0.29.3/tools/cache/reflector.go:229: Failed to watch *v1.Namespace: failed to list *v1.Namespace: Get "https://10.96.0.1:443/api/v1/namespaces?limit=500&resourceVersion=0": dial tcp 10.96.0.1:443: i/o timeout
"#;

/// Every DNS pod running but unready with `log`, so nothing answers through the Service.
fn dns_pods_unready_with_log(log: &str) -> Scenario {
    let mut s = healthy();
    for p in &mut s.topology.dns_pods {
        p.ready = false;
        p.log_lines = scan_dns_log(log, false);
    }
    for e in &mut s.topology.endpoints {
        e.ready = false;
    }
    s.set_node_command("iptables-legacy-save", IPT_NO_ENDPOINTS);
    s.set_queries(is_cluster_dns, QueryOutcome::Refused, None);
    s
}

#[test]
fn dns_pods_unready_for_lack_of_rbac_name_the_missing_permission_and_rule() {
    let d = dns_pods_unready_with_log(RBAC_LOG).diagnose();
    let f = top(&d);
    assert_eq!(f.id, dns_pods_not_ready::ID_NOT_READY, "{:?}", ids(&d));
    assert_eq!(f.severity, Severity::Error);
    assert!(
        f.summary.contains(
            "forbids CoreDNS's kubernetes plugin to list endpointslices.discovery.k8s.io (RBAC)"
        ),
        "{}",
        f.summary
    );
    let r = f.remediation.join("\n");
    assert!(
        r.contains(r#"Grant `system:serviceaccount:kube-system:coredns` list on endpointslices.discovery.k8s.io: add the rule `{apiGroups: ["discovery.k8s.io"], resources: ["endpointslices"], verbs: ["list", "watch"]}`"#),
        "{r}"
    );
    // The line keeps the part that says why, and the refusal comes before the waiting it causes.
    let ev = evidence_text(f);
    assert!(
        ev.contains(r#"cannot list resource "endpointslices" in API group "discovery.k8s.io" at the cluster scope"#),
        "{ev}"
    );
    let refusal = ev
        .find("[kubernetes_api_forbidden]")
        .expect("refusal shown");
    let waiting = ev.find("[waiting_for_kubernetes]").expect("waiting shown");
    assert!(refusal < waiting, "{ev}");
}

#[test]
fn dns_pods_unready_without_the_api_say_so() {
    let d = dns_pods_unready_with_log(API_TIMEOUT_LOG).diagnose();
    let f = top(&d);
    assert_eq!(f.id, dns_pods_not_ready::ID_NOT_READY, "{:?}", ids(&d));
    assert!(
        f.summary.contains("cannot reach the API server"),
        "{}",
        f.summary
    );
    assert!(
        f.remediation[0].contains("the `kubernetes` Service in namespace default"),
        "{:?}",
        f.remediation
    );
    assert!(!f.remediation.join("\n").contains("Grant"));
}

#[test]
fn one_pod_not_ready_is_a_warning_not_an_outage() {
    let mut s = healthy();
    s.topology.dns_pods[1].ready = false;
    s.topology.endpoints[1].ready = false;
    // kube-proxy drops a not-ready endpoint from its rules.
    let without_b: String = IPT_HEALTHY
        .lines()
        .filter(|l| !l.contains(EP_B))
        .map(|l| format!("{l}\n"))
        .collect();
    s.set_node_command("iptables-legacy-save", &without_b);
    s.probe().queries.retain(|q| q.server.ip() != ip(EP_B));
    let d = s.diagnose();
    let f = top(&d);
    assert_eq!(f.id, dns_pods_not_ready::ID_NOT_READY);
    assert_eq!(f.severity, Severity::Warning);
}

#[test]
fn kube_proxy_down_names_kube_proxy_with_rule_and_pod_evidence() {
    let mut s = healthy();
    s.topology.kube_proxy.pods[0].phase = "Failed".into();
    s.topology.kube_proxy.pods[0].ready = false;
    s.set_node_command("iptables-legacy-save", IPT_FLUSHED);
    s.evidence.nodes[0].snapshot.http[0].status = None;
    s.evidence.nodes[0].snapshot.http[0].error = Some("connection refused".into());
    s.set_queries(is_cluster_dns, QueryOutcome::TimedOut, None);
    s.set_connects(
        |c| c.role == ServerRole::Nameserver,
        ConnectOutcome::TimedOut,
    );
    let d = s.diagnose();
    let f = top(&d);
    assert_eq!(f.id, kube_proxy_not_translating::ID, "{:?}", ids(&d));
    let ev = evidence_text(f);
    assert!(ev.contains("no KUBE-SERVICES chain"), "{ev}");
    assert!(ev.contains("kube-proxy-x7k2p"), "{ev}");
    assert!(ev.contains("node:node-1/kube-proxy-healthz"), "{ev}");
    assert!(
        ev.contains("straight to the DNS endpoints: 64/64 answered"),
        "{ev}"
    );
    assert_eq!(check(&d, "kube-proxy").status, CheckStatus::Fail);
}

#[test]
fn one_stray_answer_does_not_flip_kube_proxy_down_into_an_upstream_failure() {
    // As seen on the cluster: 1 of 24 ClusterIP answers got through (a reply from before
    // the rules were flushed). "Cluster names resolve" must rest on most tries, not one.
    let mut s = healthy();
    s.topology.kube_proxy.pods[0].phase = "Failed".into();
    s.topology.kube_proxy.pods[0].ready = false;
    s.set_node_command("iptables-legacy-save", IPT_FLUSHED);
    s.set_queries(is_cluster_dns, QueryOutcome::TimedOut, None);
    let stray = s
        .probe()
        .queries
        .iter_mut()
        .find(|q| is_cluster_dns(q) && q.qname == CLUSTER_NAME && q.qtype == "A")
        .unwrap();
    stray.outcome = QueryOutcome::Answered;
    stray.rcode = Some("NOERROR".into());
    stray.answers = vec!["A 10.96.0.1".into()];
    let d = s.diagnose();
    assert_eq!(top(&d).id, kube_proxy_not_translating::ID, "{:?}", ids(&d));
    assert!(!ids(&d).contains(&upstream_failing::ID), "{:?}", ids(&d));
}

#[test]
fn a_kube_proxy_daemonset_without_pods_is_still_kube_proxy_not_translating() {
    // Its pods gone (evicted, unschedulable): kube-proxy is meant to run, so the missing
    // rules are its failure, not an eBPF data plane.
    let mut s = healthy();
    s.topology.kube_proxy.pods.clear();
    s.set_node_command("iptables-legacy-save", IPT_FLUSHED);
    s.set_queries(is_cluster_dns, QueryOutcome::TimedOut, None);
    let d = s.diagnose();
    assert_eq!(top(&d).id, kube_proxy_not_translating::ID, "{:?}", ids(&d));
}

#[test]
fn stale_rules_with_every_clusterip_query_failing_is_still_stale_rules() {
    // Both DNS pods were replaced while kube-proxy was stopped: the rules point at neither.
    let mut s = healthy();
    for (e, new_ip) in s
        .topology
        .endpoints
        .iter_mut()
        .zip(["10.244.0.8", "10.244.0.9"])
    {
        e.ip = ip(new_ip);
    }
    s.topology.kube_proxy.pods[0].phase = "Failed".into();
    s.topology.kube_proxy.pods[0].ready = false;
    s.evidence.nodes[0].snapshot.http[0].status = None;
    for q in s
        .probe()
        .queries
        .iter_mut()
        .filter(|q| q.role == ServerRole::Endpoint)
    {
        q.server = sock(if q.server.ip() == ip(EP_A) {
            "10.244.0.8"
        } else {
            "10.244.0.9"
        });
    }
    s.set_queries(is_cluster_dns, QueryOutcome::TimedOut, None);
    let d = s.diagnose();
    assert_eq!(top(&d).id, kube_proxy_stale_rules::ID, "{:?}", ids(&d));
    assert!(
        evidence_text(top(&d)).contains("kube-proxy pod kube-proxy-x7k2p on node-1: phase Failed")
    );
}

#[test]
fn clusterip_timeouts_without_node_evidence_fall_back_to_unproven() {
    let mut s = healthy();
    s.evidence.nodes.clear();
    s.set_queries(is_cluster_dns, QueryOutcome::TimedOut, None);
    let d = s.diagnose();
    assert_eq!(top(&d).id, cluster_dns_unreachable::ID, "{:?}", ids(&d));
    assert_eq!(top(&d).severity, Severity::Error);
    assert_eq!(check(&d, "kube-proxy").status, CheckStatus::Skipped);
    // No rule proved why, yet the place is named: the endpoints answer directly, so the
    // queries die in the ClusterIP's translation, and the next check is named there.
    assert!(
        top(&d)
            .summary
            .contains("die in the ClusterIP's translation"),
        "{}",
        top(&d).summary
    );
    assert!(top(&d).remediation[0].contains("kube-proxy"));
}

#[test]
fn unproven_loss_is_placed_inside_the_pod_when_its_own_capture_saw_nothing_leave() {
    let mut s = healthy();
    s.evidence.nodes.clear();
    s.set_queries(is_cluster_dns, QueryOutcome::TimedOut, None);
    s.set_queries(
        |q| q.role == ServerRole::Endpoint,
        QueryOutcome::TimedOut,
        None,
    );
    // The capture inside the pod holds no query: they never reached an interface.
    let d = s.diagnose_with_pod_capture(&capture_analysis(0));
    let f = top(&d);
    assert_eq!(f.id, cluster_dns_unreachable::ID, "{:?}", ids(&d));
    assert!(
        f.summary.contains("inside the pod's network namespace"),
        "{}",
        f.summary
    );
    assert_eq!(f.loss_point.as_deref(), Some("pod-web-0"));
    assert!(f.remediation[0].contains("sidecar"), "{:?}", f.remediation);
}

#[test]
fn stale_rules_are_found_by_comparing_dnat_targets_with_endpointslices() {
    let mut s = healthy();
    // coredns-a was replaced by a pod at 10.244.0.4; the node's rules still point at .2.
    s.topology.endpoints[0].ip = ip("10.244.0.4");
    s.topology.endpoints[0].pod = Some("kube-system/coredns-c".into());
    s.topology.dns_pods[0].ip = Some(ip("10.244.0.4"));
    s.topology.kube_proxy.pods[0].ready = false;
    s.set_queries(
        |q| is_cluster_dns(q) && q.id % 2 == 0,
        QueryOutcome::TimedOut,
        None,
    );
    let d = s.diagnose();
    let f = top(&d);
    assert_eq!(f.id, kube_proxy_stale_rules::ID, "{:?}", ids(&d));
    assert!(
        !ids(&d).contains(&kube_proxy_not_translating::ID),
        "{:?}",
        ids(&d)
    );
    assert_eq!(f.severity, Severity::Error);
    let ev = evidence_text(f);
    assert!(
        ev.contains("endpoints no EndpointSlice lists any more: 10.244.0.2"),
        "{ev}"
    );
    assert!(
        ev.contains("ready endpoints without a rule: 10.244.0.4"),
        "{ev}"
    );
    assert!(ev.contains("node:node-1/iptables-legacy-save"), "{ev}");
}

fn node_firewall() -> Scenario {
    let mut s = healthy();
    s.set_node_command("iptables-legacy-save", IPT_NODE_FIREWALL);
    s.set_queries(
        |q| q.role != ServerRole::Upstream,
        QueryOutcome::TimedOut,
        None,
    );
    s.set_connects(|_| true, ConnectOutcome::TimedOut);
    s
}

#[test]
fn node_firewall_names_the_rule_line() {
    let d = node_firewall().diagnose();
    let f = top(&d);
    assert_eq!(f.id, node_firewall::ID, "{:?}", ids(&d));
    let ev = evidence_text(f);
    assert!(
        ev.contains("NODE-FIREWALL -d 10.244.0.0/24 -p udp -m udp --dport 53 -j DROP"),
        "{ev}"
    );
    assert!(f.remediation.iter().any(|r| r.contains("security groups")));
    assert_eq!(check(&d, "node-firewall").status, CheckStatus::Fail);
}

#[test]
fn node_firewall_in_an_nft_table_next_to_nft_kube_proxy() {
    let mut s = node_firewall();
    s.set_node_command("iptables-legacy-save", "");
    s.set_node_command(node_view::NFT_RULESET_KEY, NFT_KUBE_PROXY_NODE_FIREWALL);
    let d = s.diagnose();
    let f = top(&d);
    assert_eq!(f.id, node_firewall::ID, "{:?}", ids(&d));
    let ev = evidence_text(f);
    assert!(ev.contains("node:node-1/nft-list-ruleset"), "{ev}");
    assert!(ev.contains("ip daddr 10.244.0.0/24 udp dport 53"), "{ev}");
    // kube-proxy's own drop of unallocated ClusterIPs is not a firewall finding.
    assert!(!ev.contains("unallocated ClusterIPs"), "{ev}");
    assert_eq!(
        check(&d, "kube-proxy").status,
        CheckStatus::Pass,
        "{}",
        check(&d, "kube-proxy").detail
    );
}

fn lost(id: u16, points: &[(&str, i64)]) -> LostQuery {
    LostQuery {
        transport: crate::capture::Transport::Udp,
        id,
        qname: CLUSTER_NAME.into(),
        qtype: "A".into(),
        sightings: points
            .iter()
            .map(|(p, t)| Sighting {
                point: p.to_string(),
                time: Timestamp::from_nanos(1_764_000_000_000_000_000 + t),
                client: "10.244.0.5:40001".parse().unwrap(),
                server: "10.96.0.10:53".parse().unwrap(),
                answered: false,
                rcode: None,
                response_size: None,
                matched_by: MatchKind::Exact,
            })
            .collect(),
        last_seen_at: points.last().unwrap().0.to_string(),
        answered_at: None,
    }
}

#[test]
fn security_group_case_uses_the_loss_point_from_captures() {
    // Same failure, no rule on the node: the queries are last seen on the node's capture.
    let mut s = node_firewall();
    s.set_node_command("iptables-legacy-save", IPT_HEALTHY);
    let pod = capture_analysis(2);
    let node = capture_analysis(2);
    let dns = capture_analysis(0);
    let points = [
        PointAnalysis {
            name: "pod-web-0",
            kind: CaptureKind::Pod,
            analysis: &pod,
        },
        PointAnalysis {
            name: "node-node-1",
            kind: CaptureKind::Node,
            analysis: &node,
        },
        PointAnalysis {
            name: "dns-coredns-a",
            kind: CaptureKind::DnsPod,
            analysis: &dns,
        },
    ];
    let correlation = Correlation {
        lost: vec![
            lost(7, &[("pod-web-0", 0), ("node-node-1", 41_000)]),
            lost(8, &[("pod-web-0", 5_000_000), ("node-node-1", 5_039_000)]),
        ],
        lost_by_last_point: vec![("node-node-1".into(), 2)],
        delivered: Vec::new(),
    };
    let d = diagnose(&DiagnosisInput {
        topology: &s.topology,
        evidence: &s.evidence,
        captures: &points,
        correlation: Some(&correlation),
    });
    let f = top(&d);
    assert_eq!(f.id, node_firewall::ID, "{:?}", ids(&d));
    assert_eq!(f.loss_point.as_deref(), Some("node-node-1"));
    assert!(
        evidence_text(f).contains("id 7 A kubernetes.default.svc.cluster.local. at 2025-11-24T16:00:00.000041Z: 10.244.0.5:40001 -> 10.96.0.10:53, no answer"),
        "{}",
        evidence_text(f)
    );
    assert!(f.summary.contains("security group"), "{}", f.summary);
    assert_eq!(d.lost_queries.len(), 2);
    let l = &d.lost_queries[0];
    assert_eq!(l.points, vec!["pod-web-0", "node-node-1", "dns-coredns-a"]);
    assert_eq!(l.last_point, "node-node-1");
    assert_eq!(l.seen.len(), 2);
    assert!((l.seen[1].offset_ms - 0.041).abs() < 1e-9);
}

#[test]
fn five_second_stalls_seen_only_in_the_pod_capture_are_a_warning() {
    let mut s = healthy();
    s.probe().parallel.clear();
    s.probe().libc.kind = LibcKind::Musl;
    let mut pod = capture_analysis(3);
    let p = &mut pod.analysis.summary.patterns;
    p.a_aaaa_pairs = 10;
    p.a_aaaa_one_missing = 3;
    p.five_second_retries = 3;
    let d = s.diagnose_with_pod_capture(&pod);
    let f = top(&d);
    assert_eq!(f.id, five_second_latency::ID, "{:?}", ids(&d));
    assert_eq!(f.severity, Severity::Warning);
    assert!(evidence_text(f).contains("capture:pod-web-0: 3 of 10 A/AAAA pairs got one reply only; 3 queries retried after ~5 s"), "{}", evidence_text(f));
    assert!(f.summary.contains("musl"));
}

/// Seen on the real cluster: with a node firewall dropping all DNS, the pod capture shows
/// glibc retrying after its timeout; that is the firewall's symptom, not the conntrack race.
#[test]
fn retries_after_total_loss_are_not_blamed_on_the_conntrack_race() {
    let mut s = node_firewall();
    s.probe().parallel.clear();
    let mut pod = capture_analysis(3);
    pod.analysis.summary.patterns.five_second_retries = 23;
    let d = s.diagnose_with_pod_capture(&pod);
    assert_eq!(top(&d).id, node_firewall::ID, "{:?}", ids(&d));
    assert!(!ids(&d).contains(&five_second_latency::ID), "{:?}", ids(&d));
}

/// Seen on the real cluster (fault nodelocaldns-down): the pod's nameserver is a dead
/// NodeLocal cache, so its lookups stall and are retried; the race is not shown.
#[test]
fn stalls_behind_a_dead_nameserver_are_not_the_conntrack_race() {
    let mut s = healthy();
    s.set_queries(
        |q| q.role == ServerRole::Nameserver,
        QueryOutcome::TimedOut,
        None,
    );
    let mut pod = capture_analysis(3);
    pod.analysis.summary.patterns.five_second_retries = 8;
    let d = s.diagnose_with_pod_capture(&pod);
    assert!(!ids(&d).contains(&five_second_latency::ID), "{:?}", ids(&d));
}

/// The capture helper's real capture (plugin/tests/fixtures/captures/make-fixtures.sh,
/// scenario 3): glibc's getent with every AAAA query dropped by an iptables rule.
#[test]
fn real_capture_of_glibc_aaaa_stall_is_five_second_latency() {
    let pcap: &[u8] = include_bytes!("../../tests/fixtures/captures/glibc-aaaa-dropped.pcap");
    let mut transactions = Vec::new();
    let pod =
        crate::capture::analyze_capture(pcap, Default::default(), Default::default(), &mut |t| {
            transactions.push(t)
        })
        .expect("the fixture is a capture");
    let mut s = healthy();
    s.probe().parallel.clear();
    let d = s.diagnose_with_pod_capture(&pod);
    let f = top(&d);
    assert_eq!(f.id, five_second_latency::ID, "{:?}", ids(&d));
    let ev = evidence_text(f);
    assert!(ev.contains("capture:pod-web-0: "), "{ev}");
    assert!(ev.contains("queries retried after ~5 s"), "{ev}");
    assert!(ev.contains("AAAA? web.example.test."), "{ev}");
    assert!(!transactions.is_empty());
}

#[test]
fn udp_blocked_when_udp_times_out_and_tcp_answers() {
    let mut s = healthy();
    s.set_node_command("iptables-legacy-save", IPT_UDP_BLOCKED);
    s.set_queries(
        |q| q.transport == Transport::Udp && q.role != ServerRole::Upstream,
        QueryOutcome::TimedOut,
        None,
    );
    let d = s.diagnose();
    let f = top(&d);
    assert_eq!(f.id, udp_blocked::ID, "{:?}", ids(&d));
    let ev = evidence_text(f);
    assert!(
        ev.contains("UDP to the cluster DNS: 0/16 answered (16 timed out)"),
        "{ev}"
    );
    assert!(
        ev.contains("TCP to the cluster DNS: 16/16 answered"),
        "{ev}"
    );
    assert!(ev.contains("\"block udp dns\" -j DROP"), "{ev}");
    assert!(!ids(&d).contains(&node_firewall::ID));
}

#[test]
fn upstream_down_when_cluster_names_resolve_and_external_fail() {
    let mut s = healthy();
    s.set_queries(
        |q| is_cluster_dns(q) && q.qname == EXTERNAL_NAME,
        QueryOutcome::Answered,
        Some("SERVFAIL"),
    );
    for q in &mut s.evidence.upstream_probes[0].report.queries {
        q.outcome = QueryOutcome::TimedOut;
        q.rcode = None;
    }
    s.topology.dns_pods[0].log_lines = scan_dns_log(
        "[ERROR] plugin/errors: 2 external.test. A: read udp 10.244.0.2:45678->10.200.0.2:53: i/o timeout",
        false,
    );
    let d = s.diagnose();
    let f = top(&d);
    assert_eq!(f.id, upstream_failing::ID, "{:?}", ids(&d));
    let ev = evidence_text(f);
    assert!(ev.contains("probe:upstream:kube-system/coredns-a"), "{ev}");
    assert!(ev.contains("i/o timeout"), "{ev}");
    assert!(
        ev.contains("the Corefile forwards . to 10.200.0.2:53"),
        "{ev}"
    );
    assert!(
        f.summary.contains("upstream DNS server fails"),
        "{}",
        f.summary
    );
    assert_eq!(check(&d, "external-name").status, CheckStatus::Fail);
    assert_eq!(check(&d, "queries").status, CheckStatus::Pass);
}

#[test]
fn upstream_timeouts_for_every_forwarded_name() {
    let mut s = healthy();
    s.set_queries(
        |q| q.role != ServerRole::Upstream && !q.qname.ends_with(".cluster.local."),
        QueryOutcome::TimedOut,
        None,
    );
    let d = s.diagnose();
    assert_eq!(top(&d).id, upstream_failing::ID, "{:?}", ids(&d));
    // The upstream probe answered: the DNS pods reach it, so the forwarding is suspect.
    assert!(
        top(&d).summary.contains("forwarding is broken"),
        "{}",
        top(&d).summary
    );
}

fn aaaa_drop(libc: LibcKind) -> Scenario {
    let mut s = healthy();
    s.set_node_command("iptables-legacy-save", IPT_AAAA_DROP);
    s.probe().libc.kind = libc;
    let t = &mut s.probe().parallel[0];
    t.same_socket.both_answered = 14;
    t.same_socket.aaaa_missing = 6;
    t.separate_sockets.both_answered = 15;
    t.separate_sockets.aaaa_missing = 5;
    s
}

#[test]
fn aaaa_drop_names_five_second_latency_for_glibc() {
    let d = aaaa_drop(LibcKind::Glibc).diagnose();
    let f = top(&d);
    assert_eq!(f.id, five_second_latency::ID, "{:?}", ids(&d));
    assert!(
        f.summary
            .contains("6 of 20 parallel A/AAAA rounds lost one reply"),
        "{}",
        f.summary
    );
    assert!(f.summary.contains("glibc"));
    assert!(f
        .remediation
        .iter()
        .any(|r| r.contains("NodeLocal DNSCache")));
    assert!(f
        .remediation
        .iter()
        .any(|r| r.contains("glibc: add dnsConfig option `single-request-reopen`")));
    assert!(
        evidence_text(f).contains("hex-string"),
        "{}",
        evidence_text(f)
    );
    assert_eq!(check(&d, "five-second").status, CheckStatus::Fail);
}

#[test]
fn aaaa_drop_on_musl_says_single_request_reopen_does_nothing() {
    let d = aaaa_drop(LibcKind::Musl).diagnose();
    let f = top(&d);
    assert_eq!(f.id, five_second_latency::ID);
    assert!(f.summary.contains("musl"));
    let r = f.remediation.join("\n");
    assert!(
        r.contains("uses musl: `single-request-reopen` and `use-vc` have no effect"),
        "{r}"
    );
    assert!(!r.contains("glibc: add"), "{r}");
}

/// A static executable, or a resolver the probe could not identify, gets no glibc or musl
/// advice: the options may do nothing there.
#[test]
fn aaaa_drop_on_a_static_or_unidentified_client_gives_libc_neutral_advice() {
    for (kind, label) in [
        (
            LibcKind::Static,
            "the resolver (static executable, no libc)",
        ),
        (LibcKind::Unknown, "the resolver (unrecognised libc)"),
        (
            LibcKind::NotVisible,
            "the resolver (libc unknown: its filesystem was not visible)",
        ),
    ] {
        let d = aaaa_drop(kind).diagnose();
        let f = top(&d);
        assert_eq!(f.id, five_second_latency::ID, "{kind:?}");
        assert!(f.summary.contains(label), "{kind:?}: {}", f.summary);
        let r = f.remediation.join("\n");
        assert!(r.contains("Run NodeLocal DNSCache"), "{r}");
        assert!(!r.contains("uses glibc") && !r.contains("uses musl"), "{r}");
        assert!(!r.contains("add dnsConfig option"), "{r}");
        if kind == LibcKind::Static {
            assert!(r.contains("Go's resolver"), "{r}");
        }
    }
}

#[test]
fn udp_blocked_offers_use_vc_only_where_it_works() {
    let advice = |kind: LibcKind| {
        let mut s = healthy();
        s.probe().libc.kind = kind;
        s.set_node_command("iptables-legacy-save", IPT_UDP_BLOCKED);
        s.set_queries(
            |q| q.transport == Transport::Udp && q.role != ServerRole::Upstream,
            QueryOutcome::TimedOut,
            None,
        );
        let d = s.diagnose();
        let f = top(&d);
        assert_eq!(f.id, udp_blocked::ID, "{:?}", ids(&d));
        f.remediation.join("\n")
    };
    let glibc = advice(LibcKind::Glibc);
    assert!(
        glibc.contains("(glibc) can be switched to TCP with the dnsConfig option `use-vc`"),
        "{glibc}"
    );
    assert!(advice(LibcKind::Musl).contains("musl, which ignores `use-vc`"));
    let static_exe = advice(LibcKind::Static);
    assert!(static_exe.contains("Go's resolver"), "{static_exe}");
    assert!(!static_exe.contains("glibc"), "{static_exe}");
    for kind in [LibcKind::Unknown, LibcKind::NotVisible] {
        let r = advice(kind);
        assert!(!r.contains("use-vc") && !r.contains("glibc"), "{r}");
        assert!(r.contains("Allow UDP port 53"), "{r}");
    }
}

#[test]
fn conntrack_insert_failures_are_evidence_for_five_second_latency() {
    let mut s = aaaa_drop(LibcKind::Glibc);
    s.set_node_command("conntrack-stats-after", "cpu=0   \tfound=0 invalid=8 insert=3 insert_failed=17 drop=17 early_drop=0 error=0 search_restart=0 clash_resolve=0 chaintoolong=0 \ncpu=1   \tfound=0 invalid=0 insert=0 insert_failed=0 drop=0 early_drop=0 error=0 search_restart=0 clash_resolve=0 chaintoolong=0 \n");
    let d = s.diagnose();
    assert!(
        evidence_text(top(&d)).contains("insert_failed +17, drop +17"),
        "{}",
        evidence_text(top(&d))
    );
}

#[test]
fn search_path_amplification_warns_beyond_the_kubernetes_default() {
    let mut s = healthy();
    let e = &mut s.probe().search_expansion[1];
    e.candidates = vec![
        "external.test.default.svc.cluster.local.".into(),
        "external.test.svc.cluster.local.".into(),
        "external.test.cluster.local.".into(),
        "external.test.ec2.internal.".into(),
        "external.test.corp.example.".into(),
        "external.test.".into(),
    ];
    e.queries_per_lookup = 12;
    let d = s.diagnose();
    let f = top(&d);
    assert_eq!(f.id, search_path_amplification::ID);
    assert_eq!(f.severity, Severity::Warning);
    assert!(f.summary.contains("costs 12 queries"));
    assert!(
        evidence_text(f)
            .contains("ndots 5, search default.svc.cluster.local svc.cluster.local cluster.local"),
        "{}",
        evidence_text(f)
    );
    assert!(f.remediation.iter().any(|r| r.contains("trailing dot")));
    assert!(f.remediation.iter().any(|r| r.contains("ndots")));
    assert!(f
        .remediation
        .iter()
        .any(|r| r.contains("node's resolv.conf")));

    // Search domains the pod's own dnsConfig adds are named there.
    s.topology.target.dns_config = Some(PodDnsConfig {
        searches: vec![
            "default.svc.cluster.local".into(),
            "ec2.internal".into(),
            "corp.example".into(),
        ],
        ..PodDnsConfig::default()
    });
    let d = s.diagnose();
    assert!(
        top(&d)
            .remediation
            .iter()
            .any(|r| r.contains("spec.dnsConfig.searches (ec2.internal, corp.example)")),
        "{:?}",
        top(&d).remediation
    );
}

#[test]
fn truncated_answers_with_tcp_blocked() {
    let mut s = healthy();
    for q in s
        .probe()
        .queries
        .iter_mut()
        .filter(|q| q.transport == Transport::Udp && q.qname == EXTERNAL_NAME)
    {
        q.truncated = true;
    }
    s.set_queries(
        |q| q.transport == Transport::Tcp && q.role != ServerRole::Upstream,
        QueryOutcome::TimedOut,
        None,
    );
    let d = s.diagnose();
    let f = top(&d);
    assert_eq!(f.id, truncated_no_tcp::ID, "{:?}", ids(&d));
    assert!(f.remediation[0].contains("TCP port 53"));
    assert!(
        evidence_text(f).contains("NOERROR, truncated (TC)"),
        "{}",
        evidence_text(f)
    );
}

#[test]
fn truncated_answers_in_a_capture_are_an_error_once_a_tcp_retry_failed() {
    let s = healthy();
    let mut pod = capture_analysis(0);
    pod.analysis.summary.patterns.truncated_no_tcp = 2;
    let run = |pod: &CaptureAnalysis| s.diagnose_with_pod_capture(pod);
    let d = run(&pod);
    assert_eq!(top(&d).id, truncated_no_tcp::ID, "{:?}", ids(&d));
    assert_eq!(top(&d).severity, Severity::Warning);
    pod.analysis.summary.patterns.truncated_tcp_failed = 1;
    let d = run(&pod);
    assert_eq!(top(&d).id, truncated_no_tcp::ID, "{:?}", ids(&d));
    assert_eq!(top(&d).severity, Severity::Error);
    assert!(evidence_text(top(&d)).contains("TCP retry failed 1, never tried 2"));
}

/// A client that took a truncated answer and asked no more (the probe, which asks over TCP
/// on its own; a DNS server relaying its upstream's truncated answer) is no blocked TCP when
/// the probe fetched that name over TCP.
#[test]
fn a_truncated_answer_not_retried_for_a_name_fetched_over_tcp_is_no_finding() {
    let s = healthy();
    let mut pod = capture_analysis(0);
    pod.analysis.summary.patterns.truncated_no_tcp = 1;
    pod.analysis.summary.patterns.truncated_tcp_ok = 2;
    pod.analysis
        .examples
        .truncated_without_tcp
        .push(crate::capture::transactions::Example {
            time: crate::capture::Timestamp::from_nanos(1_764_000_000_000_000_000),
            frame: 475,
            client: "10.244.0.5:33340".parse().unwrap(),
            server: sock(EP_B),
            id: 64561,
            qname: EXTERNAL_NAME.into(),
            qtype: "A".into(),
            detail: "truncated over UDP and no TCP retry was seen".into(),
        });
    let d = s.diagnose_with_pod_capture(&pod);
    assert!(
        d.findings.iter().all(|f| f.id != truncated_no_tcp::ID),
        "{:?}",
        ids(&d)
    );
    // The same answer for a name no TCP query fetched is the warning.
    pod.analysis.examples.truncated_without_tcp[0].qname = "big.example.com.".into();
    let d = s.diagnose_with_pod_capture(&pod);
    assert_eq!(top(&d).id, truncated_no_tcp::ID, "{:?}", ids(&d));
}

/// The capture helper's real capture (make-fixtures.sh, scenario 5): a truncated answer
/// fetched over TCP, then one whose TCP retry is rejected.
#[test]
fn real_capture_of_a_rejected_tcp_retry_is_truncated_no_tcp() {
    let pcap: &[u8] = include_bytes!("../../tests/fixtures/captures/truncated.pcap");
    let pod =
        crate::capture::analyze_capture(pcap, Default::default(), Default::default(), &mut |_| {})
            .expect("the fixture is a capture");
    let s = healthy();
    let d = s.diagnose_with_pod_capture(&pod);
    let f = top(&d);
    assert_eq!(f.id, truncated_no_tcp::ID, "{:?}", ids(&d));
    assert_eq!(f.severity, Severity::Warning);
    // The rejected retry never carried a DNS message: the capture sees no TCP query for it.
    assert!(
        evidence_text(f)
            .contains("2 truncated answers: TCP retry failed 0, never tried 1, succeeded 1"),
        "{}",
        evidence_text(f)
    );
}

#[test]
fn conntrack_table_near_full() {
    let mut s = healthy();
    s.set_node_file("/proc/sys/net/netfilter/nf_conntrack_count", "240000\n");
    let d = s.diagnose();
    let f = top(&d);
    assert_eq!(f.id, conntrack_table_near_full::ID);
    assert_eq!(f.severity, Severity::Warning);
    assert!(f.summary.contains("92 % full"), "{}", f.summary);
    s.set_node_file("/proc/sys/net/netfilter/nf_conntrack_count", "262144\n");
    assert_eq!(top(&s.diagnose()).severity, Severity::Error);
}

#[test]
fn nodelocaldns_not_answering() {
    let mut s = healthy();
    s.topology.node_local_dns = Some(NodeLocalDnsInfo {
        namespace: "kube-system".into(),
        name: "node-local-dns".into(),
        desired: 1,
        ready: 1,
        local_ip: ip("169.254.20.10"),
    });
    for q in s
        .probe()
        .queries
        .iter_mut()
        .filter(|q| q.role == ServerRole::Nameserver)
    {
        q.server = sock("169.254.20.10");
        q.outcome = QueryOutcome::TimedOut;
        q.rcode = None;
    }
    set_nameserver(&mut s, "169.254.20.10");
    let d = s.diagnose();
    let f = top(&d);
    assert_eq!(f.id, nodelocaldns_not_answering::ID, "{:?}", ids(&d));
    assert_eq!(f.severity, Severity::Error);
    let c = check(&d, "pod-nameservers");
    assert_eq!(c.status, CheckStatus::Fail);
    assert!(
        c.detail.contains("169.254.20.10 (NodeLocal DNSCache): 0/"),
        "{}",
        c.detail
    );
}

/// The pod's resolv.conf with `ip` as its only nameserver.
fn set_nameserver(s: &mut Scenario, ip: &str) {
    let conf = s.probe().resolv_conf.content.clone().unwrap_or_default();
    let conf = conf.replace(
        &format!("nameserver {CLUSTER_IP}"),
        &format!("nameserver {ip}"),
    );
    s.probe().resolv_conf.content = Some(conf);
}

#[test]
fn nodelocaldns_address_as_cluster_dns_is_not_a_missing_service() {
    let mut s = healthy();
    s.topology.node_local_dns = Some(NodeLocalDnsInfo {
        namespace: "kube-system".into(),
        name: "node-local-dns".into(),
        desired: 1,
        ready: 1,
        local_ip: ip("169.254.20.10"),
    });
    s.topology.cluster_dns.ips = vec![ip("169.254.20.10")];
    s.topology.dns_service = None;
    for q in s
        .probe()
        .queries
        .iter_mut()
        .filter(|q| q.role == ServerRole::Nameserver)
    {
        q.server = sock("169.254.20.10");
    }
    let conf = s.probe().resolv_conf.content.take().unwrap();
    s.probe().resolv_conf.content = Some(conf.replace(CLUSTER_IP, "169.254.20.10"));
    let d = s.diagnose();
    assert_eq!(problems(&d), vec![], "{:#?}", d.findings);
    assert_eq!(check(&d, "dns-service").status, CheckStatus::Skipped);
    assert_eq!(
        check(&d, "kube-proxy").status,
        CheckStatus::Pass,
        "{}",
        check(&d, "kube-proxy").detail
    );
}

#[test]
fn dns_policy_none_with_foreign_nameserver() {
    let mut s = healthy();
    s.topology.target.dns_policy = "None".into();
    s.topology.target.dns_config = Some(PodDnsConfig {
        nameservers: vec![UPSTREAM.into()],
        searches: Vec::new(),
        options: Vec::new(),
    });
    for q in s
        .probe()
        .queries
        .iter_mut()
        .filter(|q| q.role == ServerRole::Nameserver)
    {
        q.server = sock(UPSTREAM);
        if q.qname == CLUSTER_NAME {
            q.rcode = Some("NXDOMAIN".into());
            q.answers.clear();
        }
    }
    s.probe().parallel.clear();
    set_nameserver(&mut s, UPSTREAM);
    let d = s.diagnose();
    let f = top(&d);
    assert_eq!(f.id, pod_dns_policy::ID, "{:?}", ids(&d));
    assert_eq!(f.severity, Severity::Error);
    assert!(f.summary.contains(UPSTREAM));
    let c = check(&d, "pod-nameservers");
    assert_eq!(c.status, CheckStatus::Warn, "{}", c.detail);
    assert!(c.detail.contains("(not the cluster DNS)"), "{}", c.detail);
}

#[test]
fn host_network_with_cluster_first_is_flagged() {
    let mut s = healthy();
    s.topology.target.host_network = true;
    let d = s.diagnose();
    let f = top(&d);
    assert_eq!(f.id, pod_dns_policy::ID);
    assert!(f.summary.contains("ClusterFirstWithHostNet"));
}

#[test]
fn one_replica_broken_names_the_pod() {
    let mut s = healthy();
    s.set_queries(|q| q.server.ip() == ip(EP_B), QueryOutcome::TimedOut, None);
    s.set_queries(
        |q| is_cluster_dns(q) && q.id % 2 == 0,
        QueryOutcome::TimedOut,
        None,
    );
    let d = s.diagnose();
    let f = top(&d);
    assert_eq!(f.id, one_replica_broken::ID, "{:?}", ids(&d));
    assert!(
        f.summary.contains("kube-system/coredns-b (10.244.0.3)"),
        "{}",
        f.summary
    );
    assert_eq!(check(&d, "endpoints-direct").status, CheckStatus::Warn);
}

/// Seen on the real cluster (fault one-replica-broken): lookups the Service sends to the
/// broken replica stall for the resolver timeout and the pod capture shows the retries,
/// while the one-socket rounds lose nothing. The replica explains them, not the race.
#[test]
fn stalls_explained_by_a_broken_replica_are_not_the_conntrack_race() {
    let mut s = healthy();
    s.set_queries(|q| q.server.ip() == ip(EP_B), QueryOutcome::TimedOut, None);
    let mut pod = capture_analysis(3);
    pod.analysis.summary.patterns.five_second_retries = 6;
    let d = s.diagnose_with_pod_capture(&pod);
    assert_eq!(top(&d).id, one_replica_broken::ID, "{:?}", ids(&d));
    assert!(!ids(&d).contains(&five_second_latency::ID), "{:?}", ids(&d));
}

#[test]
fn no_endpoints_comes_before_udp_timeouts() {
    let mut s = coredns_down();
    // TCP is refused by kube-proxy's REJECT while UDP times out.
    s.set_queries(
        |q| is_cluster_dns(q) && q.transport == Transport::Udp,
        QueryOutcome::TimedOut,
        None,
    );
    s.set_queries(
        |q| is_cluster_dns(q) && q.transport == Transport::Tcp,
        QueryOutcome::Answered,
        Some("NOERROR"),
    );
    s.set_connects(|_| true, ConnectOutcome::Connected);
    let d = s.diagnose();
    assert!(ids(&d).contains(&udp_blocked::ID), "{:?}", ids(&d));
    assert_eq!(ids(&d)[0], dns_service_no_endpoints::ID);
}

#[test]
fn order_puts_severity_first_then_causal_priority() {
    let f = |id: &str, severity| Finding {
        id: id.into(),
        severity,
        summary: String::new(),
        evidence: Vec::new(),
        remediation: Vec::new(),
        loss_point: None,
        node_pair: None,
    };
    let mut v = vec![
        f(search_path_amplification::ID, Severity::Warning),
        f(five_second_latency::ID, Severity::Error),
        f(udp_blocked::ID, Severity::Error),
        f(dns_pods_not_ready::ID_CRASHLOOP, Severity::Error),
        f(dns_service_no_endpoints::ID, Severity::Error),
        f(kube_proxy_not_translating::ID, Severity::Error),
        f(node_firewall::ID, Severity::Error),
        f(upstream_failing::ID, Severity::Error),
        f(dns_service_missing::ID, Severity::Error),
    ];
    order(&mut v);
    let got: Vec<&str> = v.iter().map(|f| f.id.as_str()).collect();
    assert_eq!(
        got,
        vec![
            dns_service_missing::ID,
            dns_service_no_endpoints::ID,
            dns_pods_not_ready::ID_CRASHLOOP,
            kube_proxy_not_translating::ID,
            node_firewall::ID,
            udp_blocked::ID,
            upstream_failing::ID,
            five_second_latency::ID,
            search_path_amplification::ID,
        ]
    );
}

#[test]
fn without_probe_nothing_is_claimed_and_probe_checks_are_skipped() {
    let mut s = healthy();
    s.evidence.pod_probe = None;
    let d = s.diagnose();
    assert_eq!(problems(&d), vec![]);
    assert_eq!(check(&d, "queries").status, CheckStatus::Skipped);
    assert_eq!(check(&d, "tcp-connect").status, CheckStatus::Skipped);
}

#[test]
fn every_priority_id_is_unique_and_findings_use_known_ids() {
    let mut seen = std::collections::HashSet::new();
    for id in PRIORITY {
        assert!(seen.insert(*id), "duplicate {id}");
    }
    for s in [
        coredns_down(),
        node_firewall(),
        aaaa_drop(LibcKind::Musl),
        healthy(),
    ] {
        for f in s.diagnose().findings {
            assert!(PRIORITY.contains(&f.id.as_str()), "unknown id {}", f.id);
            assert!(!f.evidence.is_empty(), "{} has no evidence", f.id);
            assert!(!f.remediation.is_empty(), "{} has no remediation", f.id);
        }
    }
}

/// Rounds without any reply say nothing about 5-second stalls; the check must not pass.
#[test]
fn parallel_rounds_without_any_reply_do_not_pass_the_five_second_check() {
    let mut s = healthy();
    for t in &mut s.probe().parallel {
        t.same_socket.both_missing = t.same_socket.rounds;
        t.same_socket.both_answered = 0;
    }
    let d = s.diagnose();
    let c = check(&d, "five-second");
    assert_eq!(c.status, CheckStatus::Warn, "{}", c.detail);
    assert!(c.detail.contains("got no reply at all"), "{}", c.detail);
}

#[test]
fn kube_proxy_rules_in_both_iptables_backends_are_named() {
    let mut s = healthy();
    s.set_node_command("iptables-nft-save", IPT_HEALTHY);
    let d = s.diagnose();
    let f = d
        .findings
        .iter()
        .find(|f| f.id == iptables_backends_conflict::ID)
        .unwrap_or_else(|| panic!("{:?}", ids(&d)));
    // Both translate to the same endpoints: a risk, not yet a fault.
    assert_eq!(f.severity, Severity::Warning);
    assert!(evidence_text(f).contains("iptables-legacy-save"));
    assert!(evidence_text(f).contains("iptables-nft-save"));
    // One backend still names endpoints that are gone: an error.
    s.set_node_command(
        "iptables-nft-save",
        &IPT_HEALTHY.replace(EP_B, "10.244.0.99"),
    );
    let d = s.diagnose();
    let f = d
        .findings
        .iter()
        .find(|f| f.id == iptables_backends_conflict::ID)
        .unwrap();
    assert_eq!(f.severity, Severity::Error, "{}", evidence_text(f));
}

#[test]
fn bridged_replies_that_bypass_iptables_are_named() {
    let mut s = healthy();
    s.set_node_command(
        "ip-addr",
        "3: cni0: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 qdisc noqueue state UP\n    link/ether 0a:58:0a:f4:00:01 brd ff:ff:ff:ff:ff:ff promiscuity 0\n    bridge forward_delay 1500 hello_time 200 max_age 2000 ageing_time 30000 stp_state 0\n    inet 10.244.0.1/24 brd 10.244.0.255 scope global cni0\n",
    );
    s.set_node_file("/proc/sys/net/bridge/bridge-nf-call-iptables", "1\n");
    assert!(!ids(&s.diagnose()).contains(&bridge_nf_call_iptables_off::ID));
    s.set_node_file("/proc/sys/net/bridge/bridge-nf-call-iptables", "0\n");
    let d = s.diagnose();
    assert!(
        ids(&d).contains(&bridge_nf_call_iptables_off::ID),
        "{:?}",
        ids(&d)
    );
    // The ClusterIP then fails while the endpoints answer directly: that is the cause.
    s.set_queries(is_cluster_dns, QueryOutcome::TimedOut, None);
    let d = s.diagnose();
    assert_eq!(top(&d).id, bridge_nf_call_iptables_off::ID, "{:?}", ids(&d));
}

#[test]
fn without_kube_proxy_missing_rules_are_not_blamed_on_it() {
    // An eBPF data plane: no kube-proxy pods, no KUBE chains, and the ClusterIP works.
    let mut s = healthy();
    s.topology.kube_proxy.pods.clear();
    s.topology.kube_proxy.configured_mode = None;
    s.topology.kube_proxy.daemonset = false;
    s.set_node_command("iptables-legacy-save", IPT_FLUSHED);
    let d = s.diagnose();
    assert_eq!(problems(&d), vec![], "{:#?}", d.findings);
    assert_eq!(check(&d, "kube-proxy").status, CheckStatus::Pass);
    assert!(check(&d, "kube-proxy")
        .detail
        .contains("another data plane"));
    // Broken ClusterIP there: not a kube-proxy finding.
    s.set_queries(is_cluster_dns, QueryOutcome::TimedOut, None);
    let d = s.diagnose();
    assert!(
        !ids(&d).contains(&kube_proxy_not_translating::ID),
        "{:?}",
        ids(&d)
    );
    assert!(d.has_problems());
}

// --- network-policy-blocks-dns ---

fn selector(pairs: &[(&str, &str)]) -> Selector {
    Selector {
        match_labels: labels(pairs),
        match_expressions: Vec::new(),
    }
}

/// `to`/`from` the CoreDNS pods: their namespace by name and their k8s-app label.
fn dns_peer() -> PolicyPeer {
    PolicyPeer {
        namespace_selector: Some(selector(&[("kubernetes.io/metadata.name", "kube-system")])),
        pod_selector: Some(selector(&[("k8s-app", "kube-dns")])),
        ip_block: None,
    }
}

fn policy_ports(ports: &[(&str, &str)]) -> Vec<PolicyPort> {
    ports
        .iter()
        .map(|(protocol, port)| PolicyPort {
            protocol: protocol.to_string(),
            port: Some(port.to_string()),
            end_port: None,
        })
        .collect()
}

fn egress_policy(name: &str, pod_selector: Selector, egress: Vec<PolicyRule>) -> NetworkPolicyInfo {
    NetworkPolicyInfo {
        namespace: "default".into(),
        name: name.into(),
        pod_selector,
        policy_types: vec!["Egress".into()],
        ingress: Vec::new(),
        egress,
    }
}

/// The pod's queries over `transport` (to the ClusterIP and to the endpoints) time out, as
/// a policy dropping them makes them.
fn drop_transport(s: &mut Scenario, transport: Transport) {
    s.set_queries(
        |q| q.role != ServerRole::Upstream && q.transport == transport,
        QueryOutcome::TimedOut,
        None,
    );
    if transport == Transport::Tcp {
        s.set_connects(|_| true, ConnectOutcome::TimedOut);
    }
}

/// CoreDNS listening on `port` behind the Service's port 53: targetPort, EndpointSlices,
/// containerPorts and the Corefile all say so.
fn listen_on(s: &mut Scenario, port: u16) {
    let svc = s.topology.dns_service.as_mut().unwrap();
    for p in svc.ports.iter_mut().filter(|p| p.port == 53) {
        p.target_port = Some(port.to_string());
    }
    for e in &mut s.topology.endpoints {
        e.ports = vec![
            ("UDP".into(), port),
            ("TCP".into(), port),
            ("TCP".into(), 9153),
        ];
        e.named_ports = coredns_ports(port, port);
    }
    for p in &mut s.topology.dns_pods {
        p.container_ports = coredns_ports(port, port);
    }
    s.topology.corefile = s
        .topology
        .corefile
        .as_ref()
        .map(|c| c.replace(".:53 {", &format!(".:{port} {{")));
    for q in s
        .probe()
        .queries
        .iter_mut()
        .filter(|q| q.role == ServerRole::Endpoint)
    {
        q.server.set_port(port);
    }
    for c in s
        .probe()
        .tcp_connects
        .iter_mut()
        .filter(|c| c.role == ServerRole::Endpoint)
    {
        c.target.set_port(port);
    }
}

#[test]
fn default_deny_egress_blocks_dns_and_the_fix_is_an_egress_rule() {
    let mut s = healthy();
    s.topology.network_policies = vec![egress_policy(
        "default-deny-egress",
        Selector::default(),
        Vec::new(),
    )];
    drop_transport(&mut s, Transport::Udp);
    drop_transport(&mut s, Transport::Tcp);
    let d = s.diagnose();
    let f = top(&d);
    assert_eq!(f.id, network_policy_blocks_dns::ID, "{:?}", ids(&d));
    assert_eq!(f.severity, Severity::Error);
    assert!(
        f.summary.contains("default/default-deny-egress"),
        "{}",
        f.summary
    );
    assert!(
        f.summary
            .contains("egress from the pod to the DNS pods on UDP 53 and TCP 53"),
        "{}",
        f.summary
    );
    let ev = evidence_text(f);
    assert!(ev.contains("egress: none (denies all)"), "{ev}");
    assert!(
        ev.contains("egress UDP to 10.244.0.2:53 (kube-system/coredns-a): not allowed by default/default-deny-egress"),
        "{ev}"
    );
    let fix = &f.remediation[0];
    for want in [
        "kubernetes.io/metadata.name: kube-system",
        "k8s-app: kube-dns",
        "- protocol: UDP\n      port: 53",
        "- protocol: TCP\n      port: 53",
    ] {
        assert!(fix.contains(want), "{want} missing from {fix}");
    }
    // Nothing else is blamed for the timeouts.
    assert!(
        !ids(&d).contains(&cluster_dns_unreachable::ID),
        "{:?}",
        ids(&d)
    );
    assert!(!ids(&d).contains(&node_firewall::ID), "{:?}", ids(&d));
}

#[test]
fn egress_allowing_port_53_blocks_coredns_listening_on_5353() {
    let mut s = healthy();
    listen_on(&mut s, 5353);
    s.topology.network_policies = vec![egress_policy(
        "allow-dns-53",
        Selector::default(),
        vec![PolicyRule {
            peers: vec![dns_peer()],
            ports: policy_ports(&[("UDP", "53"), ("TCP", "53")]),
        }],
    )];
    drop_transport(&mut s, Transport::Udp);
    drop_transport(&mut s, Transport::Tcp);
    let d = s.diagnose();
    let f = top(&d);
    assert_eq!(f.id, network_policy_blocks_dns::ID, "{:?}", ids(&d));
    assert_eq!(f.severity, Severity::Error);
    assert!(f.summary.contains("UDP 5353"), "{}", f.summary);
    let ev = evidence_text(f);
    assert!(
        ev.contains("takes UDP 53 but the DNS pods listen on 5353 (targetPort 5353)"),
        "{ev}"
    );
    assert!(ev.contains("to namespaceSelector kubernetes.io/metadata.name=kube-system + podSelector k8s-app=kube-dns on UDP 53, TCP 53"), "{ev}");
    assert!(
        f.remediation[0].contains("port: 5353"),
        "{:?}",
        f.remediation
    );
    assert!(f.remediation[0].contains("not the Service port"));
}

#[test]
fn egress_allowing_udp_only_blocks_tcp_as_a_warning() {
    let mut s = healthy();
    s.topology.network_policies = vec![egress_policy(
        "allow-dns-udp",
        Selector::default(),
        vec![PolicyRule {
            peers: vec![dns_peer()],
            ports: policy_ports(&[("UDP", "53")]),
        }],
    )];
    drop_transport(&mut s, Transport::Tcp);
    let d = s.diagnose();
    let f = top(&d);
    assert_eq!(f.id, network_policy_blocks_dns::ID, "{:?}", ids(&d));
    // Lookups over UDP work; answers too large for UDP do not.
    assert_eq!(f.severity, Severity::Warning);
    assert!(f.summary.contains("on TCP 53 not allowed"), "{}", f.summary);
    assert!(!f.summary.contains("UDP"), "{}", f.summary);
}

#[test]
fn ingress_policy_on_the_dns_pods_that_leaves_out_the_client_namespace() {
    let mut s = healthy();
    s.topology.network_policies = vec![NetworkPolicyInfo {
        namespace: "kube-system".into(),
        name: "coredns-ingress".into(),
        pod_selector: selector(&[("k8s-app", "kube-dns")]),
        policy_types: vec!["Ingress".into()],
        ingress: vec![PolicyRule {
            peers: vec![PolicyPeer {
                namespace_selector: Some(selector(&[(
                    "kubernetes.io/metadata.name",
                    "monitoring",
                )])),
                ..PolicyPeer::default()
            }],
            ports: policy_ports(&[("UDP", "dns"), ("TCP", "dns-tcp")]),
        }],
        egress: Vec::new(),
    }];
    drop_transport(&mut s, Transport::Udp);
    drop_transport(&mut s, Transport::Tcp);
    let d = s.diagnose();
    let f = top(&d);
    assert_eq!(f.id, network_policy_blocks_dns::ID, "{:?}", ids(&d));
    assert_eq!(f.severity, Severity::Error);
    assert!(
        f.summary
            .contains("ingress to the DNS pods from the pod on UDP 53 and TCP 53"),
        "{}",
        f.summary
    );
    assert!(f.summary.contains("kube-system/coredns-ingress"));
    assert!(f.remediation[0].contains("Allow DNS into the DNS pods"));
    assert!(f.remediation[0].contains("namespaceSelector: {}"));
}

#[test]
fn policies_that_allow_dns_or_select_other_pods_are_not_findings() {
    let deny_all = egress_policy("default-deny-egress", Selector::default(), Vec::new());
    let allow_dns = egress_policy(
        "allow-dns",
        Selector::default(),
        vec![PolicyRule {
            peers: vec![dns_peer()],
            ports: policy_ports(&[("UDP", "53"), ("TCP", "53")]),
        }],
    );
    let other_pods = egress_policy("db-deny-egress", selector(&[("app", "db")]), Vec::new());
    let named_ports = egress_policy(
        "allow-dns-by-name",
        Selector::default(),
        vec![PolicyRule {
            peers: vec![dns_peer()],
            ports: policy_ports(&[("UDP", "dns"), ("TCP", "dns-tcp")]),
        }],
    );
    for policies in [
        vec![deny_all.clone(), allow_dns],
        vec![other_pods],
        vec![deny_all, named_ports],
    ] {
        let mut s = healthy();
        s.topology.network_policies = policies.clone();
        let d = s.diagnose();
        assert_eq!(problems(&d), vec![], "{policies:?}");
    }
}

#[test]
fn match_expressions_decide_which_namespaces_a_rule_reaches() {
    let expr = |op: &str, values: &[&str]| SelectorRequirement {
        key: "kubernetes.io/metadata.name".into(),
        operator: op.into(),
        values: values.iter().map(|v| v.to_string()).collect(),
    };
    let to_namespaces = |req: SelectorRequirement| {
        egress_policy(
            "egress-by-namespace",
            Selector {
                match_labels: BTreeMap::new(),
                match_expressions: vec![SelectorRequirement {
                    key: "app".into(),
                    operator: "In".into(),
                    values: vec!["web".into(), "api".into()],
                }],
            },
            vec![PolicyRule {
                peers: vec![PolicyPeer {
                    namespace_selector: Some(Selector {
                        match_labels: BTreeMap::new(),
                        match_expressions: vec![req],
                    }),
                    ..PolicyPeer::default()
                }],
                ports: Vec::new(),
            }],
        )
    };
    // Everything but kube-system: DNS is blocked.
    let mut s = healthy();
    s.topology.network_policies = vec![to_namespaces(expr("NotIn", &["kube-system"]))];
    drop_transport(&mut s, Transport::Udp);
    drop_transport(&mut s, Transport::Tcp);
    let d = s.diagnose();
    assert_eq!(top(&d).id, network_policy_blocks_dns::ID, "{:?}", ids(&d));
    assert!(
        evidence_text(top(&d)).contains("kubernetes.io/metadata.name notin (kube-system)"),
        "{}",
        evidence_text(top(&d))
    );
    // The captures lose the queries on the pod's node, where the enforcer drops them: the
    // policy, not a firewall or security group without a rule, is named.
    let lost_on_node = (1..=4)
        .map(|id| super::testkit::two_nodes::lost(id, &["pod-web-0", "node-node-1"], None))
        .collect();
    let d = super::testkit::two_nodes::run(&s, lost_on_node);
    assert_eq!(top(&d).id, network_policy_blocks_dns::ID, "{:?}", ids(&d));
    assert!(
        d.findings.iter().all(|f| f.id != node_firewall::ID),
        "{:?}",
        ids(&d)
    );
    // kube-system among others: allowed.
    let mut s = healthy();
    s.topology.network_policies = vec![to_namespaces(expr("In", &["kube-system", "app"]))];
    assert_eq!(problems(&s.diagnose()), vec![]);
}

#[test]
fn a_policy_the_network_plugin_does_not_enforce_is_a_warning() {
    let mut s = healthy();
    s.topology.network_policies = vec![egress_policy(
        "default-deny-egress",
        Selector::default(),
        Vec::new(),
    )];
    let d = s.diagnose();
    let f = top(&d);
    assert_eq!(f.id, network_policy_blocks_dns::ID);
    assert_eq!(f.severity, Severity::Warning);
    assert!(
        evidence_text(f).contains("does not enforce NetworkPolicy"),
        "{}",
        evidence_text(f)
    );
}

// --- dns-service-port-mismatch, and endpoints probed on their port ---

/// Probe results of a Service whose port 53 leads nowhere: the ClusterIP's queries and
/// the direct ones (on the EndpointSlice port) all time out.
fn nothing_listens(s: &mut Scenario) {
    drop_transport(s, Transport::Udp);
    drop_transport(s, Transport::Tcp);
}

#[test]
fn target_port_5353_while_coredns_listens_on_53() {
    let mut s = healthy();
    listen_on(&mut s, 5353);
    // ... but CoreDNS still listens on 53, as its Corefile and container say.
    s.topology.corefile = healthy().topology.corefile;
    for p in &mut s.topology.dns_pods {
        p.container_ports = coredns_ports(53, 53);
    }
    nothing_listens(&mut s);
    let d = s.diagnose();
    let f = top(&d);
    assert_eq!(f.id, dns_service_port_mismatch::ID, "{:?}", ids(&d));
    assert_eq!(f.severity, Severity::Error);
    assert!(
        f.summary
            .contains("UDP and TCP sent to 5353, the Corefile listens on 53"),
        "{}",
        f.summary
    );
    let ev = evidence_text(f);
    assert!(
        ev.contains("api:corefile: the Corefile's server blocks listen on `.:53` (line 1); the EndpointSlices send UDP to port 5353 (10.244.0.2, 10.244.0.3)"),
        "{ev}"
    );
    assert!(
        ev.contains("the DNS container (coredns) of kube-system/coredns-a, kube-system/coredns-b declares TCP containerPort 53"),
        "{ev}"
    );
    assert!(
        f.remediation[0].contains(
            "Set the targetPort of Service kube-system/kube-dns ports dns (UDP 53) and dns-tcp (TCP 53) to 53, where the Corefile listens (`.:53`)"
        ),
        "{:?}",
        f.remediation
    );
    // The endpoints were probed where the Service sends (5353), and failed there: not a
    // broken replica, not kube-proxy.
    assert!(!ids(&d).contains(&one_replica_broken::ID), "{:?}", ids(&d));
    assert!(
        !ids(&d).contains(&kube_proxy_not_translating::ID),
        "{:?}",
        ids(&d)
    );
    assert!(d.has_problems());
}

fn netns_dump(key: &str, stdout: &str) -> dns_doctor_schema::CommandOutput {
    command(key, stdout)
}

#[test]
fn a_drop_in_the_pods_own_network_namespace_is_named_where_packets_die() {
    let mut s = healthy();
    s.set_queries(is_cluster_dns, QueryOutcome::TimedOut, None);
    s.set_queries(
        |q| q.role == ServerRole::Endpoint,
        QueryOutcome::TimedOut,
        None,
    );
    s.probe().netns_rules = vec![
        netns_dump(
            "iptables-legacy-save",
            "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n-A OUTPUT ! -o lo -m comment --comment \"egress lockdown\" -j DROP\nCOMMIT\n",
        ),
        netns_dump("iptables-nft-save", ""),
    ];
    let d = s.diagnose();
    let f = d
        .findings
        .iter()
        .find(|f| f.id == pod_netns_rules::ID_DROPS)
        .unwrap_or_else(|| panic!("{:?}", ids(&d)));
    assert_eq!(f.severity, Severity::Error);
    assert!(
        evidence_text(f).contains("egress lockdown"),
        "{}",
        evidence_text(f)
    );
    assert_eq!(f.loss_point.as_deref(), Some("the pod's network namespace"));
    // A rule for loopback only, or for another port, is not DNS's problem.
    s.probe().netns_rules = vec![netns_dump(
        "iptables-legacy-save",
        "*filter\n:OUTPUT ACCEPT [0:0]\n-A OUTPUT -o lo -j DROP\n-A OUTPUT -p tcp -m tcp --dport 25 -j REJECT\nCOMMIT\n",
    )];
    assert!(!ids(&s.diagnose()).contains(&pod_netns_rules::ID_DROPS));
}

#[test]
fn a_sidecar_dns_redirect_is_reported_as_the_real_first_hop() {
    let mut s = healthy();
    s.probe().netns_rules = vec![netns_dump(
        "iptables-legacy-save",
        "*nat\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:ISTIO_OUTPUT - [0:0]\n-A OUTPUT -j ISTIO_OUTPUT\n-A ISTIO_OUTPUT -d 10.96.0.10/32 -p udp -m udp --dport 53 -j REDIRECT --to-ports 15053\nCOMMIT\n",
    )];
    let d = s.diagnose();
    let f = d
        .findings
        .iter()
        .find(|f| f.id == pod_netns_rules::ID_REDIRECTS)
        .unwrap_or_else(|| panic!("{:?}", ids(&d)));
    // Lookups work through it: worth knowing, not a fault.
    assert_eq!(f.severity, Severity::Info);
    assert!(f.summary.contains("local port 15053"), "{}", f.summary);
    assert!(!d.has_problems());
    // The proxy does not answer: it is the cause.
    s.set_queries(is_cluster_dns, QueryOutcome::TimedOut, None);
    let d = s.diagnose();
    let f = d
        .findings
        .iter()
        .find(|f| f.id == pod_netns_rules::ID_REDIRECTS)
        .unwrap();
    assert_eq!(f.severity, Severity::Error);
}

#[test]
fn corefile_on_5353_behind_a_target_port_of_53() {
    let mut s = healthy();
    s.topology.corefile = s
        .topology
        .corefile
        .as_ref()
        .map(|c| c.replace(".:53 {", ".:5353 {"));
    nothing_listens(&mut s);
    let d = s.diagnose();
    let f = top(&d);
    assert_eq!(f.id, dns_service_port_mismatch::ID, "{:?}", ids(&d));
    assert!(
        f.remediation[0].contains("to 5353, where the Corefile listens (`.:5353`)"),
        "{:?}",
        f.remediation
    );
    // The declared containerPort 53 agrees with the slices; only the Corefile differs.
    assert!(
        !evidence_text(f).contains("declares"),
        "{}",
        evidence_text(f)
    );
}

#[test]
fn service_without_its_tcp_port_is_a_warning() {
    let mut s = healthy();
    let svc = s.topology.dns_service.as_mut().unwrap();
    svc.ports.retain(|p| p.name.as_deref() != Some("dns-tcp"));
    for e in &mut s.topology.endpoints {
        e.named_ports
            .retain(|p| p.name.as_deref() != Some("dns-tcp"));
        e.ports
            .retain(|(proto, port)| proto != "TCP" || *port != 53);
    }
    s.set_queries(
        |q| is_cluster_dns(q) && q.transport == Transport::Tcp,
        QueryOutcome::Refused,
        None,
    );
    s.set_connects(
        |c| c.role == ServerRole::Nameserver,
        ConnectOutcome::Refused,
    );
    let d = s.diagnose();
    let f = top(&d);
    assert_eq!(f.id, dns_service_port_mismatch::ID, "{:?}", ids(&d));
    assert_eq!(f.severity, Severity::Warning);
    assert!(f.summary.contains("TCP port 53 missing"), "{}", f.summary);
    assert!(
        evidence_text(f).contains("has no TCP port 53 (its ports: 53/UDP, 9153/TCP)"),
        "{}",
        evidence_text(f)
    );
    assert!(
        f.remediation[0].contains("{name: dns-tcp, port: 53, protocol: TCP, targetPort: 53}"),
        "{:?}",
        f.remediation
    );
}

#[test]
fn consistent_ports_other_than_53_are_no_mismatch() {
    let mut s = healthy();
    listen_on(&mut s, 5353);
    let d = s.diagnose();
    assert_eq!(problems(&d), vec![], "{:#?}", d.findings);
    assert_eq!(check(&d, "endpoints-direct").status, CheckStatus::Pass);
}

#[test]
fn not_ready_endpoints_are_listed_but_do_not_fail_the_direct_check() {
    let mut s = healthy();
    s.topology.dns_pods[1].ready = false;
    s.topology.endpoints[1].ready = false;
    let without_b: String = IPT_HEALTHY
        .lines()
        .filter(|l| !l.contains(EP_B))
        .map(|l| format!("{l}\n"))
        .collect();
    s.set_node_command("iptables-legacy-save", &without_b);
    // An older probe also asked the not-ready endpoint, which does not answer.
    s.set_queries(|q| q.server.ip() == ip(EP_B), QueryOutcome::TimedOut, None);
    let d = s.diagnose();
    let c = check(&d, "endpoints-direct");
    assert_eq!(c.status, CheckStatus::Pass, "{}", c.detail);
    assert!(
        c.detail
            .contains("not ready, not judged: 10.244.0.3: 0/32 answered"),
        "{}",
        c.detail
    );
    // The not-ready pod is the DNS-pods finding, not a broken replica behind the Service.
    assert!(!ids(&d).contains(&one_replica_broken::ID), "{:?}", ids(&d));
    assert_eq!(top(&d).id, dns_pods_not_ready::ID_NOT_READY);
}

// --- cluster-domain-mismatch ---

fn corefile_serving(s: &mut Scenario, zone: &str) {
    s.topology.corefile = s.topology.corefile.as_ref().map(|c| {
        c.replace(
            "kubernetes cluster.local in-addr.arpa",
            &format!("kubernetes {zone} in-addr.arpa"),
        )
    });
}

/// CoreDNS does not serve cluster.local: every name under it is forwarded and NXDOMAIN.
fn cluster_local_unknown(s: &mut Scenario) {
    for q in s
        .probe()
        .queries
        .iter_mut()
        .filter(|q| q.qname.ends_with(".cluster.local."))
    {
        q.rcode = Some("NXDOMAIN".into());
        q.answers.clear();
    }
}

#[test]
fn kubelet_on_cluster_local_with_a_corefile_on_cluster_test() {
    let mut s = healthy();
    corefile_serving(&mut s, "cluster.test");
    cluster_local_unknown(&mut s);
    let d = s.diagnose();
    let f = top(&d);
    assert_eq!(f.id, cluster_domain_mismatch::ID, "{:?}", ids(&d));
    assert_eq!(f.severity, Severity::Error);
    assert!(
        f.summary
            .contains("pods use cluster.local, the Corefile's kubernetes plugin serves cluster.test in-addr.arpa ip6.arpa"),
        "{}",
        f.summary
    );
    let ev = evidence_text(f);
    assert!(
        ev.contains("the kubelet's clusterDomain (configz) is cluster.local"),
        "{ev}"
    );
    assert!(
        ev.contains("api:corefile: line 5: kubernetes cluster.test"),
        "{ev}"
    );
    assert!(
        ev.contains("kubernetes.default.svc.cluster.local. -> 10.96.0.10:53: NXDOMAIN"),
        "{ev}"
    );
    assert!(
        f.remediation[0].contains("line 5, to `kubernetes cluster.local in-addr.arpa ip6.arpa`"),
        "{:?}",
        f.remediation
    );
    assert!(
        f.remediation[1].contains("clusterDomain: cluster.test"),
        "{:?}",
        f.remediation
    );
    // The failing lookup is the symptom, ranked after the cause.
    assert!(ids(&d).contains(&app_lookups::ID_FAILS), "{:?}", ids(&d));
}

#[test]
fn search_list_without_svc_of_the_cluster_domain() {
    let mut s = healthy();
    s.probe().resolv_conf.content = Some(format!(
        "search default.svc.cluster.test svc.cluster.test cluster.test\nnameserver {CLUSTER_IP}\noptions ndots:5\n"
    ));
    let d = s.diagnose();
    let f = d
        .findings
        .iter()
        .find(|f| f.id == cluster_domain_mismatch::ID)
        .unwrap_or_else(|| panic!("{:?}", ids(&d)));
    assert!(
        f.summary
            .contains("the pod's search list lacks svc.cluster.local"),
        "{}",
        f.summary
    );
    assert!(
        evidence_text(f).contains(
            "searches default.svc.cluster.test svc.cluster.test cluster.test: no svc.cluster.local"
        ),
        "{}",
        evidence_text(f)
    );
    assert!(
        f.remediation[0].contains("recreate the pod"),
        "{:?}",
        f.remediation
    );
}

#[test]
fn without_configz_the_search_list_stands_for_the_kubelet() {
    // configz not readable: "cluster.local" in the topology is a guess. The pod's search
    // list and the Corefile agree on cluster.test: nothing is wrong.
    let mut s = healthy();
    s.topology.cluster_dns.source = ClusterDnsSource::KubeDnsService;
    corefile_serving(&mut s, "cluster.test");
    s.probe().resolv_conf.content = Some(format!(
        "search default.svc.cluster.test svc.cluster.test cluster.test\nnameserver {CLUSTER_IP}\noptions ndots:5\n"
    ));
    let d = s.diagnose();
    assert!(
        !ids(&d).contains(&cluster_domain_mismatch::ID),
        "{:?}",
        ids(&d)
    );
    // They disagree: the search list names the domain pods use.
    let mut s = healthy();
    s.topology.cluster_dns.source = ClusterDnsSource::KubeDnsService;
    corefile_serving(&mut s, "cluster.test");
    cluster_local_unknown(&mut s);
    let d = s.diagnose();
    let f = top(&d);
    assert_eq!(f.id, cluster_domain_mismatch::ID, "{:?}", ids(&d));
    assert!(
        evidence_text(f).contains("the pod's search list names svc.cluster.local"),
        "{}",
        evidence_text(f)
    );
}

// The capture-only context `analyze` uses: no cluster, no probe, the file as the pod's
// capture. The live rules must speak from the capture and stay silent otherwise.

fn fixture_capture(name: &str) -> CaptureAnalysis {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/captures")
        .join(name);
    let file = std::fs::File::open(&path).expect("fixture capture");
    crate::capture::analyze_capture(file, Default::default(), Default::default(), &mut |_| {})
        .expect("the fixture is a capture")
}

fn capture_only(pod: &CaptureAnalysis) -> Diagnosis {
    let topology = crate::topology::Topology::default();
    let evidence = crate::evidence::Evidence::default();
    diagnose(&DiagnosisInput {
        topology: &topology,
        evidence: &evidence,
        captures: &[PointAnalysis {
            name: "file.pcap",
            kind: CaptureKind::Pod,
            analysis: pod,
        }],
        correlation: None,
    })
}

#[test]
fn capture_only_context_claims_nothing_the_capture_does_not_show() {
    let d = capture_only(&fixture_capture("lo-udp-tcp.pcap"));
    assert_eq!(ids(&d), Vec::<&str>::new(), "{:#?}", d.findings);
    // No runbook step ran, so none may fail and wake the safety net.
    for c in &d.checklist {
        assert_eq!(c.status, CheckStatus::Skipped, "{}: {}", c.id, c.detail);
    }
    assert!(d.lookups.is_empty());
}

/// One engine: a capture fed to `analyze` and, as the pod's capture, to a live run without
/// the pod probe gives the same finding ids.
#[test]
fn analyze_and_a_live_run_report_the_same_ids_for_a_capture() {
    let mut s = healthy();
    s.evidence.pod_probe = None;
    let mut all = std::collections::BTreeSet::new();
    for name in [
        "lo-udp-tcp.pcap",
        "any-sll2.pcap",
        "glibc-aaaa-dropped.pcap",
        "search-path.pcap",
        "truncated.pcap",
        "lost.pcapng",
    ] {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/captures")
            .join(name);
        let mut out = Vec::new();
        crate::analyze::run(
            std::slice::from_ref(&path),
            crate::analyze::Format::Json,
            &mut out,
        )
        .expect("analyze");
        let doc: serde_json::Value = serde_json::from_slice(&out).expect("analyze JSON");
        let offline: Vec<String> = doc["files"][0]["findings"]
            .as_array()
            .expect("findings")
            .iter()
            .map(|f| f["id"].as_str().expect("id").to_string())
            .collect();
        let live = s.diagnose_with_pod_capture(&fixture_capture(name));
        assert_eq!(offline, ids(&live), "{name}");
        all.extend(offline);
    }
    // Not vacuous: the fixtures show these.
    for id in [
        cluster_dns_unreachable::ID,
        five_second_latency::ID,
        search_path_amplification::ID,
        truncated_no_tcp::ID,
    ] {
        assert!(all.contains(id), "{id} not in {all:?}");
    }
}

#[test]
fn unanswered_queries_in_a_capture_alone_are_an_error_from_one_percent() {
    let mut pod = capture_analysis(5);
    pod.analysis.summary.transactions = 1000;
    pod.analysis.summary.dns_messages = 1995;
    pod.analysis.examples.lost = vec![crate::capture::transactions::Example {
        time: Timestamp::from_nanos(1_764_000_000_000_000_000),
        frame: 42,
        client: "10.244.0.5:40001".parse().unwrap(),
        server: "10.96.0.10:53".parse().unwrap(),
        id: 7,
        qname: CLUSTER_NAME.into(),
        qtype: "A".into(),
        detail: "no response within 30 s".into(),
    }];
    let d = capture_only(&pod);
    let f = top(&d);
    assert_eq!(f.id, cluster_dns_unreachable::ID, "{:?}", ids(&d));
    assert_eq!(f.severity, Severity::Warning);
    assert!(
        f.summary.contains("5 of 1000 DNS queries (0.5 %)"),
        "{}",
        f.summary
    );
    let ev = evidence_text(f);
    assert!(ev.contains("capture:file.pcap: frame 42 at "), "{ev}");
    assert!(f.remediation[0].contains("capture at the pod's node and at the DNS pods"));
    pod.analysis.summary.unanswered_transactions = 10;
    assert_eq!(top(&capture_only(&pod)).severity, Severity::Error);
    // With the probe, the probe's measurements decide, not the capture.
    let s = healthy();
    assert_eq!(problems(&s.diagnose_with_pod_capture(&pod)), vec![]);
}

fn server_errors_capture() -> CaptureAnalysis {
    let mut pod = capture_analysis(0);
    pod.analysis.summary.dns_messages = 40;
    pod.analysis.summary.patterns.servfail = 3;
    pod.analysis.summary.patterns.refused = 1;
    pod
}

#[test]
fn servfail_and_refused_in_the_pod_capture_are_dns_server_errors() {
    let pod = server_errors_capture();
    for d in [
        capture_only(&pod),
        healthy().diagnose_with_pod_capture(&pod),
    ] {
        let f = top(&d);
        assert_eq!(f.id, dns_server_errors::ID, "{:?}", ids(&d));
        assert_eq!(f.severity, Severity::Warning);
        assert!(
            evidence_text(f).contains("3 queries answered SERVFAIL, 1 query answered REFUSED"),
            "{}",
            evidence_text(f)
        );
        let r = f.remediation.join("\n");
        assert!(r.contains("SERVFAIL: ") && r.contains("REFUSED: "), "{r}");
    }
}

#[test]
fn servfail_explained_by_the_upstream_is_not_reported_twice() {
    let mut s = healthy();
    s.set_queries(
        |q| is_cluster_dns(q) && q.qname == EXTERNAL_NAME,
        QueryOutcome::Answered,
        Some("SERVFAIL"),
    );
    let d = s.diagnose_with_pod_capture(&server_errors_capture());
    assert_eq!(top(&d).id, upstream_failing::ID, "{:?}", ids(&d));
    assert!(!ids(&d).contains(&dns_server_errors::ID), "{:?}", ids(&d));
}

#[test]
fn damaged_and_empty_captures_are_info_naming_each_point() {
    let mut pod = capture_analysis(0);
    pod.read_error = Some("truncated: the file ends inside a record at byte 4096".into());
    pod.stats.frames = 12;
    let d = capture_only(&pod);
    assert_eq!(problems(&d), vec![]);
    let damaged = d
        .findings
        .iter()
        .find(|f| f.id == capture_damaged::ID)
        .expect("capture-damaged");
    assert_eq!(damaged.severity, Severity::Info);
    assert!(
        evidence_text(damaged).contains(
            "capture:file.pcap: truncated: the file ends inside a record at byte 4096; 12 frames read before the damage"
        ),
        "{}",
        evidence_text(damaged)
    );
    let empty = d
        .findings
        .iter()
        .find(|f| f.id == no_dns_traffic::ID)
        .expect("no-dns-traffic");
    assert_eq!(empty.severity, Severity::Info);
    assert!(
        empty.summary.contains("file.pcap (12 frames)"),
        "{}",
        empty.summary
    );
    // In a live run every capture point is looked at, not only the pod's.
    let node = capture_analysis(0);
    let s = healthy();
    let d = diagnose(&DiagnosisInput {
        topology: &s.topology,
        evidence: &s.evidence,
        captures: &[
            PointAnalysis {
                name: "pod-web-0",
                kind: CaptureKind::Pod,
                analysis: &server_errors_capture(),
            },
            PointAnalysis {
                name: "node-node-1",
                kind: CaptureKind::Node,
                analysis: &node,
            },
        ],
        correlation: None,
    });
    let empty = d
        .findings
        .iter()
        .find(|f| f.id == no_dns_traffic::ID)
        .expect("no-dns-traffic");
    assert_eq!(
        evidence_text(empty),
        "capture:node-node-1: 0 DNS messages in 0 frames (0 not DNS)"
    );
}

#[test]
fn refused_queries_without_a_node_rule_are_not_a_security_group() {
    // The Service sends to a port nothing listens on: the DNS pods' kernel refuses every
    // query (ICMP port unreachable). A silent drop between nodes looks different.
    let mut s = healthy();
    s.set_queries(is_cluster_dns, QueryOutcome::Refused, None);
    s.set_queries(
        |q| q.role == ServerRole::Endpoint,
        QueryOutcome::Refused,
        None,
    );
    let lost = Correlation {
        lost: Vec::new(),
        lost_by_last_point: vec![("node-node-1".into(), 12)],
        delivered: Vec::new(),
    };
    let pod = capture_analysis(12);
    let node = capture_analysis(12);
    let points = [
        PointAnalysis {
            name: "pod-web-0",
            kind: CaptureKind::Pod,
            analysis: &pod,
        },
        PointAnalysis {
            name: "node-node-1",
            kind: CaptureKind::Node,
            analysis: &node,
        },
    ];
    let d = diagnose(&DiagnosisInput {
        topology: &s.topology,
        evidence: &s.evidence,
        captures: &points,
        correlation: Some(&lost),
    });
    assert!(!ids(&d).contains(&node_firewall::ID), "{:?}", ids(&d));
    assert!(d.has_problems());
}

#[test]
fn dns_pods_stuck_on_rbac_name_the_permission_the_authorizer_denies() {
    // CoreDNS 1.12 logs only "[ERROR] plugin/kubernetes: Failed to watch": the reason
    // comes from asking the API server what its service account may read.
    let mut s = healthy();
    for p in &mut s.topology.dns_pods {
        p.ready = false;
        p.log_lines = scan_dns_log("[ERROR] plugin/kubernetes: Failed to watch\n", false);
    }
    s.topology
        .endpoints
        .iter_mut()
        .for_each(|e| e.ready = false);
    for (verb, resource, allowed) in [
        ("list", "services", true),
        ("list", "endpointslices.discovery.k8s.io", false),
        ("watch", "endpointslices.discovery.k8s.io", false),
        ("list", "pods", false),
    ] {
        s.topology
            .dns_api_access
            .push(crate::topology::DnsApiAccess {
                user: "system:serviceaccount:kube-system:coredns".into(),
                verb: verb.into(),
                resource: resource.into(),
                allowed,
                reason: None,
            });
    }
    s.set_queries(is_cluster_dns, QueryOutcome::TimedOut, None);
    let d = s.diagnose();
    let f = top(&d);
    assert_eq!(f.id, dns_pods_not_ready::ID_NOT_READY, "{:?}", ids(&d));
    assert_eq!(f.severity, Severity::Error);
    assert!(
        f.summary.contains("list endpointslices.discovery.k8s.io"),
        "{}",
        f.summary
    );
    // pods are only needed with `pods verified`, which this Corefile does not use.
    assert!(
        !f.summary.replace("DNS pods", "").contains("pods"),
        "{}",
        f.summary
    );
    assert!(
        f.remediation
            .iter()
            .any(|r| r.contains("resources: [\"endpointslices\"]")),
        "{:?}",
        f.remediation
    );
    assert!(evidence_text(f).contains("api:subjectaccessreview"));
}

#[test]
fn a_host_network_pod_sees_the_nodes_kube_proxy_rules_not_a_redirect() {
    let mut s = healthy();
    s.topology.target.host_network = true;
    s.topology.target.dns_policy = "ClusterFirstWithHostNet".into();
    s.probe().netns_rules = vec![netns_dump("iptables-nft-save", IPT_HEALTHY)];
    let d = s.diagnose();
    assert!(
        !ids(&d).contains(&pod_netns_rules::ID_REDIRECTS),
        "{:?}",
        ids(&d)
    );
}

#[test]
fn dns_policy_none_elsewhere_is_a_policy_finding_not_a_domain_mismatch() {
    let mut s = healthy();
    s.topology.target.dns_policy = "None".into();
    s.topology.target.dns_config = Some(PodDnsConfig {
        nameservers: vec![UPSTREAM.into()],
        searches: vec!["default.svc.cluster.local".into()],
        options: Vec::new(),
    });
    s.probe().resolv_conf.content = Some(format!(
        "search default.svc.cluster.local\nnameserver {UPSTREAM}\n"
    ));
    let d = s.diagnose();
    assert!(
        !ids(&d).contains(&cluster_domain_mismatch::ID),
        "{:?}",
        ids(&d)
    );
}
