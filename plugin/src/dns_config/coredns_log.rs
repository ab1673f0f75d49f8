//! Classifier for CoreDNS log lines: which failure a line reports. It reads CoreDNS's own
//! format (`[ERROR] plugin/errors: ...`) and klog's (`E1130 17:02:03.123456       1
//! reflector.go:547] ...`), which older CoreDNS releases print for the client-go code inside
//! their kubernetes plugin (newer ones wrap the same text as `[INFO] plugin/kubernetes: ...`).
//!
//! The cause usually sits at the end of a line (`... is forbidden: User "..." cannot list
//! resource ...`), so lines are kept whole up to [`MAX_LINE_CHARS`] and a longer one is cut
//! with a visible marker, never silently.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A kept line is at most this many characters, plus the cut marker.
pub const MAX_LINE_CHARS: usize = 2000;

/// At most this many lines of one class are kept, so a flood of one error (a timeout per
/// query) does not drown the single line that names another cause.
pub const MAX_PER_CLASS: usize = 3;

/// What a notable CoreDNS log line reports. Ordered from the most to the least telling, so
/// sorting lines by class puts the likely cause first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogClass {
    /// `[FATAL] plugin/loop: Loop (...) detected`: queries sent upstream come back to this
    /// server; CoreDNS exits.
    ForwardingLoop,
    /// The Corefile does not parse or a reload failed (`Error during parsing`, `Unknown
    /// directive`, a `[FATAL]` naming the Corefile or a parse error).
    ConfigError,
    /// The API server refused the kubernetes plugin (RBAC, HTTP 403); the refused
    /// permission is in [`Classified::forbidden`] when the line names it.
    KubernetesApiForbidden,
    /// The kubernetes plugin could not list or watch the API: no answer, connection refused,
    /// TLS or credential failure on the way to the API server.
    KubernetesApiUnreachable,
    /// A forwarded query timed out (`i/o timeout` not toward the API).
    UpstreamTimeout,
    /// A forwarded query was refused (`connection refused` not toward the API).
    UpstreamRefused,
    /// Another failure on a forwarded query: `no such host`, SERVFAIL, or any error the
    /// `errors`/`forward` plugins log.
    UpstreamError,
    /// `plugin/ready: Still waiting on: "kubernetes"` (or a server started unsynced): the pod
    /// stays unready until the kubernetes plugin has synced with the API. A symptom; the
    /// lines above it usually say why.
    WaitingForKubernetes,
    /// An `[ERROR]`/`[FATAL]` (or klog `E`/`F`) line not recognised as any of the above.
    Error,
}

impl LogClass {
    /// The class as it is serialized, e.g. `forwarding_loop`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ForwardingLoop => "forwarding_loop",
            Self::ConfigError => "config_error",
            Self::KubernetesApiForbidden => "kubernetes_api_forbidden",
            Self::KubernetesApiUnreachable => "kubernetes_api_unreachable",
            Self::UpstreamTimeout => "upstream_timeout",
            Self::UpstreamRefused => "upstream_refused",
            Self::UpstreamError => "upstream_error",
            Self::WaitingForKubernetes => "waiting_for_kubernetes",
            Self::Error => "error",
        }
    }

    /// True for failures of forwarded queries (the upstream, not the API).
    pub fn is_upstream(self) -> bool {
        matches!(
            self,
            Self::UpstreamTimeout | Self::UpstreamRefused | Self::UpstreamError
        )
    }
}

impl std::fmt::Display for LogClass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A permission the API server refused, from its 403 message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiPermission {
    /// The verb, e.g. `list` or `watch`.
    pub verb: String,
    /// The resource as the API server names it: `endpointslices.discovery.k8s.io`, or
    /// `namespaces` for the core group.
    pub resource: String,
    /// The user the API server saw, e.g. `system:serviceaccount:kube-system:coredns`.
    #[serde(default)]
    pub user: Option<String>,
}

impl ApiPermission {
    /// The API group and the plain resource name: `("discovery.k8s.io", "endpointslices")`,
    /// `("", "namespaces")` for the core group.
    pub fn group_and_resource(&self) -> (&str, &str) {
        match self.resource.split_once('.') {
            Some((resource, group)) => (group, resource),
            None => ("", &self.resource),
        }
    }
}

/// The verdict on one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Classified {
    pub class: LogClass,
    /// For [`LogClass::KubernetesApiForbidden`]: the refused permission, when the line
    /// names both the verb and the resource.
    pub forbidden: Option<ApiPermission>,
}

/// A line worth showing, as kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotableLine {
    pub class: LogClass,
    /// The trimmed line, whole or visibly cut (see [`cut_visibly`]).
    pub text: String,
    pub forbidden: Option<ApiPermission>,
}

/// Markers of a failed request to the API server, once a line is known to be about the API.
const API_FAILURES: [&str; 11] = [
    "failed to list",
    "failed to watch",
    "api connection failure",
    "dial tcp",
    "i/o timeout",
    "connection refused",
    "no route to host",
    "tls handshake timeout",
    "connection reset",
    "unauthorized",
    "context deadline exceeded",
];

/// What `line` reports, or None for a line that points at no failure (INFO chatter,
/// query logs, the banner).
pub fn classify(line: &str) -> Option<Classified> {
    let lower = line.to_ascii_lowercase();
    let has = |s: &str| lower.contains(s);
    let klog = klog_severity(line);
    let severe = has("[error]") || has("[fatal]") || matches!(klog, Some(b'E' | b'F'));
    let class = if has("plugin/loop") && has(" detected") {
        LogClass::ForwardingLoop
    } else if is_forbidden(&lower) {
        return Some(Classified {
            class: LogClass::KubernetesApiForbidden,
            forbidden: refused_permission(line),
        });
    } else if has("error during parsing")
        || has("unknown directive")
        || has("reload failed")
        || has("restart failed")
        || (has("[fatal]") && (has("parse") || has("corefile")))
    {
        LogClass::ConfigError
    } else if (has("still waiting on:") && has("kubernetes")) || has("unsynced kubernetes api") {
        LogClass::WaitingForKubernetes
    } else if is_about_api(&lower, klog.is_some()) && API_FAILURES.iter().any(|m| has(m)) {
        LogClass::KubernetesApiUnreachable
    } else if has("i/o timeout") {
        LogClass::UpstreamTimeout
    } else if has("connection refused") {
        LogClass::UpstreamRefused
    } else if has("no such host")
        || has("servfail")
        || (severe && (has("plugin/errors") || has("plugin/forward")))
    {
        LogClass::UpstreamError
    } else if severe {
        LogClass::Error
    } else {
        return None;
    };
    Some(Classified {
        class,
        forbidden: None,
    })
}

/// The notable lines of a log, in log order: at most [`MAX_PER_CLASS`] per class, the
/// first ones and the last (the first shows how it started, the last that it still goes
/// on), each whole or visibly cut.
pub fn notable_lines(log: &str) -> Vec<NotableLine> {
    let found: Vec<(&str, Classified)> = log
        .lines()
        .map(str::trim)
        .filter_map(|l| Some((l, classify(l)?)))
        .collect();
    let mut totals: BTreeMap<LogClass, usize> = BTreeMap::new();
    for (_, c) in &found {
        *totals.entry(c.class).or_default() += 1;
    }
    let mut seen: BTreeMap<LogClass, usize> = BTreeMap::new();
    found
        .into_iter()
        .filter_map(|(line, c)| {
            let nth = seen.entry(c.class).or_default();
            *nth += 1;
            let keep = *nth < MAX_PER_CLASS || Some(&*nth) == totals.get(&c.class);
            keep.then(|| NotableLine {
                class: c.class,
                text: cut_visibly(line, MAX_LINE_CHARS),
                forbidden: c.forbidden,
            })
        })
        .collect()
}

/// `line` when it has at most `max` characters; otherwise its first `max` characters and
/// `… [cut, N more chars]`, so a reader knows the rest exists.
pub fn cut_visibly(line: &str, max: usize) -> String {
    match line.char_indices().nth(max) {
        None => line.to_string(),
        Some((at, _)) => {
            let more = line[at..].chars().count();
            format!("{}… [cut, {more} more chars]", &line[..at])
        }
    }
}

/// The severity letter of a klog header (`E1130 17:02:03.123456 ...`), or None when the
/// line does not start with one.
fn klog_severity(line: &str) -> Option<u8> {
    let b = line.as_bytes();
    let severity = *b.first()?;
    let digits_at = |range: std::ops::Range<usize>| {
        b.get(range)
            .is_some_and(|d| d.iter().all(u8::is_ascii_digit))
    };
    let header = matches!(severity, b'I' | b'W' | b'E' | b'F')
        && digits_at(1..5)
        && b.get(5) == Some(&b' ')
        && digits_at(6..8)
        && b.get(8) == Some(&b':')
        && digits_at(9..11)
        && b.get(11) == Some(&b':')
        && digits_at(12..14);
    header.then_some(severity)
}

/// True when the line is the API server's RBAC refusal.
fn is_forbidden(lower: &str) -> bool {
    lower.contains(" is forbidden") || cannot_clause(lower).is_some()
}

/// True when the line is about the kubernetes plugin's connection to the API server rather
/// than a forwarded query (the `errors` and `forward` plugins only log forwarded queries).
fn is_about_api(lower: &str, klog: bool) -> bool {
    if lower.contains("plugin/errors") || lower.contains("plugin/forward") {
        return false;
    }
    klog || [
        "plugin/kubernetes",
        "reflector.go",
        "failed to list",
        "failed to watch",
        ":443",
        ":6443",
        "/api/v1/",
        "/apis/",
    ]
    .iter()
    .any(|m| lower.contains(m))
}

/// The byte offset just after `cannot ` in `cannot <verb> resource "`, and the verb's end.
fn cannot_clause(lower: &str) -> Option<(usize, usize)> {
    let mut from = 0;
    while let Some(i) = lower[from..].find("cannot ") {
        let verb_start = from + i + "cannot ".len();
        let rest = &lower[verb_start..];
        let verb_len = rest.find(' ').unwrap_or(rest.len());
        if verb_len > 0 && rest[verb_len..].starts_with(" resource \"") {
            return Some((verb_start, verb_start + verb_len));
        }
        from = verb_start;
    }
    None
}

/// The permission a 403 message names: from `User "U" cannot VERB resource "R" in API
/// group "G"`, else from `R is forbidden` and the `failed to list/watch` around it.
fn refused_permission(line: &str) -> Option<ApiPermission> {
    // Structured klog quotes the message inside `err="..."`, escaping its quotes.
    let line = line.replace("\\\"", "\"");
    let (line, lower) = (line.as_str(), line.to_ascii_lowercase());
    let lower = lower.as_str();
    let user = quoted_after(line, lower, "user \"");
    if let Some((verb_start, verb_end)) = cannot_clause(lower) {
        let after = verb_end + " resource \"".len();
        let resource = line[after..].split('"').next()?;
        let group = quoted_after(&line[after..], &lower[after..], "in api group \"");
        let resource = match group.as_deref() {
            Some(g) if !g.is_empty() => format!("{resource}.{g}"),
            _ => resource.to_string(),
        };
        return Some(ApiPermission {
            verb: line[verb_start..verb_end].to_string(),
            resource,
            user,
        });
    }
    let at = lower.find(" is forbidden")?;
    let resource = line[..at]
        .rsplit(|c: char| c.is_whitespace() || c == ':')
        .next()
        .filter(|r| !r.is_empty())?;
    // The innermost failure is the request the API refused ("Failed to watch X: failed to
    // list X: ..." was refused on list).
    let verb = ["list", "watch", "get"]
        .into_iter()
        .filter_map(|v| Some((lower[..at].rfind(&format!("failed to {v} "))?, v)))
        .max()?
        .1;
    Some(ApiPermission {
        verb: verb.to_string(),
        resource: resource.to_string(),
        user,
    })
}

/// The text between `marker` (found case-insensitively through `lower`) and the next `"`.
fn quoted_after(line: &str, lower: &str, marker: &str) -> Option<String> {
    let start = lower.find(marker)? + marker.len();
    let end = start + line[start..].find('"')?;
    Some(line[start..end].to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class(line: &str) -> Option<LogClass> {
        classify(line).map(|c| c.class)
    }

    fn permission(line: &str) -> ApiPermission {
        let c = classify(line).expect("classified");
        assert_eq!(c.class, LogClass::KubernetesApiForbidden, "{line}");
        c.forbidden.expect("the permission is named")
    }

    const COREDNS_SA: &str = "system:serviceaccount:kube-system:coredns";

    #[test]
    fn forwarding_loop() {
        assert_eq!(
            class("[FATAL] plugin/loop: Loop (127.0.0.1:55953 -> :53) detected for zone \".\", see https://coredns.io/plugins/loop#troubleshooting. Query: \"HINFO 4547991504243258144.3688648895315093531.\""),
            Some(LogClass::ForwardingLoop)
        );
    }

    #[test]
    fn forwarded_query_failures_are_upstream() {
        assert_eq!(
            class("[ERROR] plugin/errors: 2 example.org. A: read udp 10.244.0.5:39876->10.96.0.1:53: i/o timeout"),
            Some(LogClass::UpstreamTimeout)
        );
        assert_eq!(
            class("[ERROR] plugin/errors: 2 example.org. AAAA: dial udp 10.253.0.2:53: connect: connection refused"),
            Some(LogClass::UpstreamRefused)
        );
        assert_eq!(
            class("[ERROR] plugin/errors: 2 example.org. A: dial udp [fd00::53]:53: connect: network is unreachable"),
            Some(LogClass::UpstreamError)
        );
        assert_eq!(
            class("[ERROR] plugin/errors: 2 api.corp. A: dial tcp: lookup dns.corp on 10.0.0.2:53: no such host"),
            Some(LogClass::UpstreamError)
        );
    }

    #[test]
    fn api_failures_in_coredns_and_klog_format() {
        for line in [
            "[ERROR] plugin/kubernetes: pkg/mod/k8s.io/client-go@v0.29.3/tools/cache/reflector.go:229: Failed to watch *v1.Namespace: failed to list *v1.Namespace: Get \"https://10.96.0.1:443/api/v1/namespaces?limit=500&resourceVersion=0\": dial tcp 10.96.0.1:443: i/o timeout",
            "[INFO] plugin/kubernetes: pkg/mod/k8s.io/client-go@v0.29.3/tools/cache/reflector.go:229: failed to list *v1.Service: Get \"https://10.96.0.1:443/api/v1/services?limit=500&resourceVersion=0\": dial tcp 10.96.0.1:443: connect: connection refused",
            "[WARNING] plugin/kubernetes: Kubernetes API connection failure: Get \"https://10.96.0.1:443/version\": dial tcp 10.96.0.1:443: i/o timeout",
            "E1130 17:02:03.123456       1 reflector.go:153] pkg/mod/k8s.io/client-go@v0.17.2/tools/cache/reflector.go:105: Failed to list *v1.Endpoints: Get https://10.96.0.1:443/api/v1/endpoints?limit=500&resourceVersion=0: dial tcp 10.96.0.1:443: connect: connection refused",
        ] {
            assert_eq!(class(line), Some(LogClass::KubernetesApiUnreachable), "{line}");
        }
    }

    #[test]
    fn rbac_refusals_name_verb_resource_and_user() {
        let p = permission("[ERROR] plugin/kubernetes: Failed to watch *v1.Namespace: failed to list *v1.Namespace: namespaces is forbidden: User \"system:serviceaccount:kube-system:coredns\" cannot list resource \"namespaces\" in API group \"\" at the cluster scope");
        assert_eq!(
            p,
            ApiPermission {
                verb: "list".into(),
                resource: "namespaces".into(),
                user: Some(COREDNS_SA.into()),
            }
        );
        assert_eq!(p.group_and_resource(), ("", "namespaces"));

        let p = permission("W1130 17:02:03.123456       1 reflector.go:547] k8s.io/client-go@v0.30.1/tools/cache/reflector.go:232: failed to list *v1.EndpointSlice: endpointslices.discovery.k8s.io is forbidden: User \"system:serviceaccount:kube-system:coredns\" cannot list resource \"endpointslices\" in API group \"discovery.k8s.io\" at the cluster scope");
        assert_eq!(
            (p.verb.as_str(), p.resource.as_str(), p.user.as_deref()),
            ("list", "endpointslices.discovery.k8s.io", Some(COREDNS_SA))
        );
        assert_eq!(
            p.group_and_resource(),
            ("discovery.k8s.io", "endpointslices")
        );

        // client-go 1.31+ logs through structured klog, escaping the quotes of the message.
        let p = permission(
            r#"E1130 17:02:04.000001       1 reflector.go:158] "Unhandled Error" err="k8s.io/client-go@v0.31.1/tools/cache/reflector.go:243: Failed to watch *v1.Service: failed to list *v1.Service: services is forbidden: User \"system:serviceaccount:kube-system:coredns\" cannot list resource \"services\" in API group \"\" at the cluster scope" logger="UnhandledError""#,
        );
        assert_eq!(
            (p.verb.as_str(), p.resource.as_str(), p.user.as_deref()),
            ("list", "services", Some(COREDNS_SA))
        );

        // Listing allowed, watching not.
        let p = permission("[ERROR] plugin/kubernetes: pkg/mod/k8s.io/client-go@v0.29.3/tools/cache/reflector.go:229: Failed to watch *v1.Service: services is forbidden: User \"system:serviceaccount:kube-system:coredns\" cannot watch resource \"services\" in API group \"\" at the cluster scope");
        assert_eq!(
            (p.verb.as_str(), p.resource.as_str()),
            ("watch", "services")
        );
    }

    #[test]
    fn a_refusal_without_the_rbac_sentence_still_names_what_was_refused() {
        let p = permission("[ERROR] plugin/kubernetes: Failed to watch *v1.EndpointSlice: failed to list *v1.EndpointSlice: endpointslices.discovery.k8s.io is forbidden");
        assert_eq!(
            (p.verb.as_str(), p.resource.as_str(), p.user),
            ("list", "endpointslices.discovery.k8s.io", None)
        );
        // Nothing names the verb: still a refusal, with no permission to quote.
        let c = classify("[ERROR] plugin/kubernetes: namespaces is forbidden").unwrap();
        assert_eq!(
            (c.class, c.forbidden),
            (LogClass::KubernetesApiForbidden, None)
        );
    }

    #[test]
    fn waiting_config_and_generic_errors() {
        assert_eq!(
            class("[INFO] plugin/ready: Still waiting on: \"kubernetes\""),
            Some(LogClass::WaitingForKubernetes)
        );
        assert_eq!(
            class("[WARNING] plugin/kubernetes: starting server with unsynced Kubernetes API"),
            Some(LogClass::WaitingForKubernetes)
        );
        assert_eq!(
            class("/etc/coredns/Corefile:14 - Error during parsing: Unknown directive 'kubernets'"),
            Some(LogClass::ConfigError)
        );
        assert_eq!(
            class("[ERROR] Restart failed: plugin/forward: /etc/coredns/Corefile:5 - Error during parsing: not an IP address or file: \"dns.corp\""),
            Some(LogClass::ConfigError)
        );
        assert_eq!(
            class("[FATAL] plugin/kubernetes: failed to parse kubeconfig"),
            Some(LogClass::ConfigError)
        );
        assert_eq!(
            class("[FATAL] Listen: listen tcp :53: bind: address already in use"),
            Some(LogClass::Error)
        );
        assert_eq!(
            class("E1130 17:02:05.000000       1 leaderelection.go:330] error retrieving resource lock"),
            Some(LogClass::Error)
        );
    }

    #[test]
    fn chatter_is_not_notable() {
        for line in [
            ".:53",
            "CoreDNS-1.11.3",
            "linux/amd64, go1.21.11, a6338e9",
            "[INFO] plugin/reload: Running configuration SHA512 = 591cf328cccc12bc490481273e738df59329c62c0b729d94e8b61db9961c2fa5f046dd37f1cf888b953814040d180f52594972691cd6ff41be96639138a43908",
            "[INFO] 10.244.0.1:51234 - 4201 \"A IN example.org. udp 29 false 512\" NOERROR qr,rd,ra 56 0.012s",
            "[INFO] plugin/kubernetes: pkg/mod/k8s.io/client-go@v0.29.3/tools/cache/reflector.go:229: Watch close - *v1.Namespace total 7 items received",
            "I1130 17:02:03.123456       1 trace.go:236] Trace[1]: \"Reflector ListAndWatch\" (30000ms)",
        ] {
            assert_eq!(class(line), None, "{line}");
        }
    }

    #[test]
    fn long_lines_are_cut_visibly_and_short_ones_kept_whole() {
        let forbidden = "[ERROR] plugin/kubernetes: Failed to watch *v1.Namespace: failed to list *v1.Namespace: namespaces is forbidden: User \"system:serviceaccount:kube-system:coredns\" cannot list resource \"namespaces\" in API group \"\" at the cluster scope";
        let flood = format!(
            "[ERROR] plugin/errors: 2 {}example.org. A: read udp 10.244.0.5:39876->10.96.0.1:53: i/o timeout",
            "a.".repeat(2500)
        );
        let kept = notable_lines(&format!("{forbidden}\n{flood}\n"));
        assert_eq!(kept.len(), 2);
        assert_eq!(kept[0].text, forbidden, "a 250-char line is kept whole");
        let cut = &kept[1];
        assert_eq!(cut.class, LogClass::UpstreamTimeout);
        let more = flood.chars().count() - MAX_LINE_CHARS;
        assert!(
            cut.text.ends_with(&format!("… [cut, {more} more chars]")),
            "{}",
            &cut.text[cut.text.len() - 40..]
        );
        assert!(cut.text.starts_with(&flood[..MAX_LINE_CHARS]));
        // Multi-byte characters are counted, not split.
        assert_eq!(cut_visibly("ééé", 2), "éé… [cut, 1 more chars]");
    }

    #[test]
    fn a_flood_of_one_class_keeps_its_first_and_last_and_every_other_class() {
        let timeout = |n: u32| {
            format!("[ERROR] plugin/errors: 2 n{n}.example.org. A: read udp 10.244.0.5:{n}->10.253.0.2:53: i/o timeout")
        };
        let mut log: Vec<String> = (1..=50).map(timeout).collect();
        log.insert(
            20,
            "[INFO] plugin/ready: Still waiting on: \"kubernetes\"".into(),
        );
        let kept = notable_lines(&log.join("\n"));
        let texts: Vec<&str> = kept.iter().map(|l| l.text.as_str()).collect();
        assert_eq!(
            texts,
            vec![
                timeout(1).as_str(),
                timeout(2).as_str(),
                "[INFO] plugin/ready: Still waiting on: \"kubernetes\"",
                timeout(50).as_str(),
            ]
        );
    }

    #[test]
    fn serialized_as_snake_case() {
        assert_eq!(
            serde_json::to_value(LogClass::KubernetesApiForbidden).unwrap(),
            "kubernetes_api_forbidden"
        );
        assert_eq!(LogClass::ForwardingLoop.to_string(), "forwarding_loop");
    }
}
