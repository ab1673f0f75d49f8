//! Rule: the DNS Service and the DNS pods disagree on ports. Pods always ask the ClusterIP
//! on 53; kube-proxy sends that to the EndpointSlice port (the Service's targetPort,
//! resolved per pod), and only a server listening there answers. Checked: the Service has
//! port 53 for UDP and for TCP; its numeric targetPort is the EndpointSlice port; the
//! EndpointSlice port is a declared containerPort of the DNS container and a port a server
//! block of the Corefile listens on.

use std::collections::BTreeMap;

use dns_doctor_schema::Transport;

use crate::dns_config::corefile::parse_corefile;
use crate::topology::{EndpointInfo, ServiceInfo, Topology};

use super::finding::{EvidenceRef, Finding, Severity};
use super::Context;

pub const ID: &str = "dns-service-port-mismatch";

/// One disagreement: what shows it, what to change, and which transport it breaks.
struct Mismatch {
    protocol: &'static str,
    /// For the summary, without the protocol: "sent to 5353, the Corefile listens on 53".
    short: String,
    evidence: EvidenceRef,
    fix: Option<Fix>,
    breaks: Option<Transport>,
}

enum Fix {
    Text(String),
    /// Point Service ports (`dns (UDP 53)`) at the port the server listens on, or make it
    /// listen where they point.
    Retarget {
        ports: Vec<String>,
        to: u16,
        why: String,
        alternative: String,
    },
}

/// A Corefile server block key the DNS server listens on.
struct Listener {
    port: u16,
    raw: String,
    line: usize,
}

/// The ports the Corefile's plain-DNS server blocks listen on; None when there is no
/// Corefile or it does not parse.
fn corefile_listeners(topo: &Topology) -> Option<Vec<Listener>> {
    let cf = parse_corefile(topo.corefile.as_deref()?).ok()?;
    let v: Vec<Listener> = cf
        .server_blocks
        .iter()
        .flat_map(|b| {
            b.keys
                .iter()
                .filter(|k| k.transport == "dns")
                .filter_map(move |k| {
                    Some(Listener {
                        port: k.port?,
                        raw: k.raw.clone(),
                        line: b.line,
                    })
                })
        })
        .collect();
    (!v.is_empty()).then_some(v)
}

fn transport_of(protocol: &str) -> Transport {
    if protocol == "UDP" {
        Transport::Udp
    } else {
        Transport::Tcp
    }
}

fn ips(eps: &[&EndpointInfo]) -> String {
    eps.iter()
        .map(|e| e.ip.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

fn service_ports(svc: &ServiceInfo) -> String {
    let v: Vec<String> = svc
        .ports
        .iter()
        .map(|p| format!("{}/{}", p.port, p.protocol))
        .collect();
    if v.is_empty() {
        "none".into()
    } else {
        v.join(", ")
    }
}

pub fn rule(cx: &Context<'_>) -> Option<Finding> {
    let topo = cx.topology;
    let svc = topo.dns_service.as_ref()?;
    let listeners = corefile_listeners(topo);
    let svc_name = format!("{}/{}", svc.namespace, svc.name);
    let ready: Vec<&EndpointInfo> = topo.endpoints.iter().filter(|e| e.ready).collect();
    let mut found: Vec<Mismatch> = Vec::new();
    let mut evidence_head: Vec<(&str, EvidenceRef)> = Vec::new();
    for protocol in ["UDP", "TCP"] {
        let transport = transport_of(protocol);
        // The DNS container's declared ports of this protocol, without those another
        // Service port leads to (metrics).
        let other_targets: Vec<String> = svc
            .ports
            .iter()
            .filter(|p| !(p.port == 53 && p.protocol.eq_ignore_ascii_case(protocol)))
            .filter(|p| p.protocol.eq_ignore_ascii_case(protocol))
            .map(|p| p.target_port.clone().unwrap_or_else(|| p.port.to_string()))
            .collect();
        let declared = |eps: &[&EndpointInfo]| -> Vec<u16> {
            let mut v: Vec<u16> = eps
                .iter()
                .filter_map(|e| topo.dns_pod_of(e))
                .flat_map(|p| p.container_ports.iter())
                .filter(|p| p.protocol.eq_ignore_ascii_case(protocol))
                .filter(|p| {
                    !other_targets.contains(&p.port.to_string())
                        && !p.name.as_ref().is_some_and(|n| other_targets.contains(n))
                })
                .map(|p| p.port)
                .collect();
            v.sort_unstable();
            v.dedup();
            v
        };
        let listening: Option<u16> = listeners
            .as_ref()
            .and_then(|l| l.first().map(|l| l.port))
            .or_else(|| declared(&ready).first().copied());
        let Some(sp) = svc.dns_port(protocol) else {
            let (name, why) = if protocol == "UDP" {
                ("dns", "every lookup is sent over UDP first")
            } else {
                ("dns-tcp", "answers too large for UDP are retried over TCP")
            };
            found.push(Mismatch {
                protocol,
                short: "port 53 missing".into(),
                evidence: EvidenceRef::new(
                    "api",
                    format!(
                        "Service {svc_name} has no {protocol} port 53 (its ports: {})",
                        service_ports(svc)
                    ),
                ),
                fix: Some(Fix::Text(format!(
                    "Add the {protocol} port to Service {svc_name} ({why}): `{{name: {name}, port: 53, protocol: {protocol}, targetPort: {}}}` in spec.ports.",
                    listening.unwrap_or(53)
                ))),
                breaks: Some(transport),
            });
            continue;
        };
        if ready.is_empty() {
            continue;
        }
        let port_name = sp.name.clone().unwrap_or_else(|| "(unnamed)".into());
        // A Service port without targetPort sends to the same port number.
        let target = sp
            .target_port
            .clone()
            .unwrap_or_else(|| sp.port.to_string());
        let field = format!("{port_name} ({protocol} 53)");
        evidence_head.push((
            protocol,
            EvidenceRef::new(
                "api",
                format!("Service {svc_name} port {field}: targetPort {target}"),
            ),
        ));
        let mut by_port: BTreeMap<u16, Vec<&EndpointInfo>> = BTreeMap::new();
        let mut without: Vec<&EndpointInfo> = Vec::new();
        for e in &ready {
            match topo.endpoint_dns_port(e, protocol) {
                Some(p) => by_port.entry(p).or_default().push(e),
                None => without.push(e),
            }
        }
        if !without.is_empty() {
            let fix = if target.parse::<u16>().is_ok() {
                format!("Check the EndpointSlices of {svc_name}: they must carry port {port_name} ({protocol} {target}) for every DNS pod.")
            } else {
                format!("targetPort `{target}` of Service {svc_name} port {field} must name a {protocol} containerPort of the DNS container: name that port `{target}`, or set the targetPort to the port number.")
            };
            found.push(Mismatch {
                protocol,
                short: format!("has no endpoint port for targetPort {target}"),
                evidence: EvidenceRef::new(
                    "api",
                    format!(
                        "the EndpointSlices of {svc_name} carry no {protocol} port for Service port {port_name} (targetPort {target}) on {}",
                        ips(&without)
                    ),
                ),
                fix: Some(Fix::Text(fix)),
                breaks: Some(transport),
            });
        }
        for (port, eps) in &by_port {
            if let Ok(t) = target.parse::<u16>() {
                if t != *port {
                    found.push(Mismatch {
                        protocol,
                        short: format!("targetPort {t}, but the EndpointSlices send to {port}"),
                        evidence: EvidenceRef::new(
                            "api",
                            format!(
                                "Service {svc_name} port {port_name} ({protocol} 53) has targetPort {t}; its EndpointSlices send to {port} ({})",
                                ips(eps)
                            ),
                        ),
                        fix: Some(Fix::Text(format!(
                            "The EndpointSlices of {svc_name} do not follow its targetPort (managed by hand, or a Service without a selector): make their ports and the targetPorts the port the DNS server listens on ({}).",
                            listening.map_or("see the Corefile".to_string(), |p| p.to_string())
                        ))),
                        breaks: None,
                    });
                }
            }
            let corefile_miss = listeners
                .as_ref()
                .filter(|l| !l.iter().any(|l| l.port == *port));
            if let Some(l) = corefile_miss {
                let keys: Vec<String> = l
                    .iter()
                    .map(|l| format!("`{}` (line {})", l.raw, l.line))
                    .collect();
                let listen = l[0].port;
                found.push(Mismatch {
                    protocol,
                    short: format!("sent to {port}, the Corefile listens on {listen}"),
                    evidence: EvidenceRef::new(
                        "api:corefile",
                        format!(
                            "the Corefile's server blocks listen on {}; the EndpointSlices send {protocol} to port {port} ({})",
                            keys.join(", "),
                            ips(eps)
                        ),
                    ),
                    fix: Some(Fix::Retarget {
                        ports: vec![field.clone()],
                        to: listen,
                        why: format!("where the Corefile listens (`{}`)", l[0].raw),
                        alternative: format!(
                            "make the Corefile's server block listen on {port} (`.:{port}`) and declare containerPort {port}"
                        ),
                    }),
                    breaks: Some(transport),
                });
            }
            let declared_here = declared(eps);
            if !declared_here.is_empty() && !declared_here.contains(port) {
                let dns_pods: Vec<_> = eps.iter().filter_map(|e| topo.dns_pod_of(e)).collect();
                let pods: Vec<String> = dns_pods
                    .iter()
                    .map(|p| format!("{}/{}", p.namespace, p.name))
                    .collect();
                let container = dns_pods.first().map_or("", |p| p.container.as_str());
                let shown: Vec<String> = declared_here.iter().map(|p| p.to_string()).collect();
                // The Corefile is what the server does; declared ports only document it.
                let corefile_agrees = listeners
                    .as_ref()
                    .is_some_and(|l| l.iter().any(|l| l.port == *port));
                found.push(Mismatch {
                    protocol,
                    short: format!(
                        "sent to {port}, the DNS container declares {}",
                        shown.join(",")
                    ),
                    evidence: EvidenceRef::new(
                        "api",
                        format!(
                            "the EndpointSlices send {protocol} to port {port}; the DNS container ({container}) of {} declares {protocol} containerPort {}",
                            pods.join(", "),
                            shown.join(", ")
                        ),
                    ),
                    // With a Corefile that disagrees too, its fix is the one to make.
                    fix: match (&listeners, corefile_agrees) {
                        (_, true) => Some(Fix::Text(format!(
                            "Declare {protocol} containerPort {port} in the DNS container: the Corefile listens there, and a named targetPort resolves through the declared ports."
                        ))),
                        (Some(_), false) => None,
                        (None, false) => Some(Fix::Retarget {
                            ports: vec![field.clone()],
                            to: declared_here[0],
                            why: "the port the DNS container declares".into(),
                            alternative: format!(
                                "make the DNS server listen on {port} and declare that"
                            ),
                        }),
                    },
                    breaks: (listeners.is_none()).then_some(transport),
                });
            }
        }
    }
    if found.is_empty() {
        return None;
    }
    let mut evidence: Vec<EvidenceRef> = evidence_head
        .into_iter()
        .filter(|(protocol, _)| found.iter().any(|m| m.protocol == *protocol))
        .map(|(_, e)| e)
        .collect();
    evidence.extend(found.iter().map(|m| m.evidence.clone()));
    let mut severity = Severity::Warning;
    for transport in [Transport::Udp, Transport::Tcp] {
        if !found.iter().any(|m| m.breaks == Some(transport)) {
            continue;
        }
        let label = if transport == Transport::Udp {
            "UDP"
        } else {
            "TCP"
        };
        match cx.observed.as_ref().map(|o| o.cluster_dns_tally(transport)) {
            Some(t) if t.sent > 0 => {
                evidence.push(EvidenceRef::new(
                    "check:queries",
                    format!("{label} to the cluster DNS: {t}"),
                ));
                if transport == Transport::Udp && t.mostly_failed() {
                    severity = Severity::Error;
                }
            }
            // Without the probe, a broken UDP path is every lookup failing.
            _ if transport == Transport::Udp => severity = Severity::Error,
            _ => {}
        }
    }
    Some(Finding {
        id: ID.into(),
        severity,
        summary: format!(
            "the DNS Service {svc_name} and its pods disagree on ports: {}",
            summary_parts(&found).join("; ")
        ),
        evidence,
        remediation: remediation(&svc_name, &found),
        loss_point: None,
        node_pair: None,
    })
}

/// "UDP and TCP sent to 5353, the Corefile listens on 53": one part per fact, with the
/// protocols it holds for.
fn summary_parts(found: &[Mismatch]) -> Vec<String> {
    let mut parts: Vec<(Vec<&str>, &str)> = Vec::new();
    for m in found {
        match parts.iter_mut().find(|(_, s)| *s == m.short) {
            Some((protocols, _)) => protocols.push(m.protocol),
            None => parts.push((vec![m.protocol], &m.short)),
        }
    }
    parts
        .into_iter()
        .map(|(protocols, short)| format!("{} {short}", protocols.join(" and ")))
        .collect()
}

/// The fixes, each once; retargets of several Service ports to one port merged.
fn remediation(svc_name: &str, found: &[Mismatch]) -> Vec<String> {
    let mut fixes: Vec<Fix> = Vec::new();
    for fix in found.iter().filter_map(|m| m.fix.as_ref()) {
        match fix {
            Fix::Retarget {
                ports,
                to,
                why,
                alternative,
            } => {
                let same = fixes.iter_mut().find_map(|f| match f {
                    Fix::Retarget {
                        ports: p,
                        to: t,
                        why: w,
                        ..
                    } if t == to && w == why => Some(p),
                    _ => None,
                });
                match same {
                    Some(p) => p.extend(
                        ports
                            .iter()
                            .filter(|x| !p.contains(x))
                            .cloned()
                            .collect::<Vec<_>>(),
                    ),
                    None => fixes.push(Fix::Retarget {
                        ports: ports.clone(),
                        to: *to,
                        why: why.clone(),
                        alternative: alternative.clone(),
                    }),
                }
            }
            Fix::Text(t) => {
                if !fixes.iter().any(|f| matches!(f, Fix::Text(x) if x == t)) {
                    fixes.push(Fix::Text(t.clone()));
                }
            }
        }
    }
    fixes
        .into_iter()
        .map(|f| match f {
            Fix::Text(t) => t,
            Fix::Retarget {
                ports,
                to,
                why,
                alternative,
            } => format!(
                "Set the targetPort of Service {svc_name} port{} {} to {to}, {why}; or {alternative}.",
                if ports.len() == 1 { "" } else { "s" },
                ports.join(" and ")
            ),
        })
        .collect()
}
