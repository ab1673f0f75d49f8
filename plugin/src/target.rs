//! The object a run examines, named the way kubectl names objects: `NAME` (a pod) or
//! `TYPE/NAME`. The command line parses into it and the kube layer resolves it to a pod;
//! neither owns it, so it lives here, parsed by a pure function.

use thiserror::Error;

/// Kinds of object a target may name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TargetKind {
    Pod,
    Deployment,
    StatefulSet,
    DaemonSet,
    Job,
}

impl TargetKind {
    /// The kind a kubectl resource name stands for: singular, plural or short name, in
    /// any case (`pod`, `deployments`, `deploy`, `STS`); None for any other kind.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s.to_ascii_lowercase().as_str() {
            "pod" | "pods" | "po" => Self::Pod,
            "deployment" | "deployments" | "deploy" => Self::Deployment,
            "statefulset" | "statefulsets" | "sts" => Self::StatefulSet,
            "daemonset" | "daemonsets" | "ds" => Self::DaemonSet,
            "job" | "jobs" => Self::Job,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pod => "pod",
            Self::Deployment => "deployment",
            Self::StatefulSet => "statefulset",
            Self::DaemonSet => "daemonset",
            Self::Job => "job",
        }
    }
}

/// The object to examine: a pod, or a workload one of whose ready pods is examined. Its
/// namespace is not part of it: that is decided with the connection (`-n`, else the
/// context's).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TargetRef {
    pub kind: TargetKind,
    pub name: String,
}

impl std::fmt::Display for TargetRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.kind.as_str(), self.name)
    }
}

/// A target that names no object dns-doctor can examine.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum TargetError {
    #[error("unknown resource type {kind:?} in {given:?}; use pod, deployment (deploy), statefulset (sts), daemonset (ds) or job, e.g. pod/{name}")]
    UnknownKind {
        kind: String,
        name: String,
        given: String,
    },
    #[error("{given:?} has no name; write TYPE/NAME, e.g. pod/web-0")]
    EmptyName { given: String },
}

/// Parse `NAME` or `TYPE/NAME` the way kubectl does.
pub fn parse(given: &str) -> Result<TargetRef, TargetError> {
    let (kind, name) = match given.split_once('/') {
        None => (TargetKind::Pod, given),
        Some((kind, name)) => {
            let kind = TargetKind::parse(kind).ok_or_else(|| TargetError::UnknownKind {
                kind: kind.to_string(),
                name: name.to_string(),
                given: given.to_string(),
            })?;
            (kind, name)
        }
    };
    if name.is_empty() || name.contains('/') {
        return Err(TargetError::EmptyName {
            given: given.to_string(),
        });
    }
    Ok(TargetRef {
        kind,
        name: name.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bare_name_is_a_pod() {
        assert_eq!(
            parse("web-0"),
            Ok(TargetRef {
                kind: TargetKind::Pod,
                name: "web-0".into()
            })
        );
    }

    #[test]
    fn workload_kinds_and_aliases() {
        for (given, kind) in [
            ("deploy/api", TargetKind::Deployment),
            ("deployment/api", TargetKind::Deployment),
            ("Deployments/api", TargetKind::Deployment),
            ("sts/api", TargetKind::StatefulSet),
            ("ds/api", TargetKind::DaemonSet),
            ("job/api", TargetKind::Job),
            ("pod/api", TargetKind::Pod),
            ("po/api", TargetKind::Pod),
        ] {
            let t = parse(given).unwrap();
            assert_eq!((t.kind, t.name.as_str()), (kind, "api"), "{given}");
        }
    }

    #[test]
    fn refusals_say_what_is_wrong() {
        assert_eq!(
            parse("svc/kube-dns"),
            Err(TargetError::UnknownKind {
                kind: "svc".into(),
                name: "kube-dns".into(),
                given: "svc/kube-dns".into()
            })
        );
        for given in ["pod/", "deploy/a/b", ""] {
            assert_eq!(
                parse(given),
                Err(TargetError::EmptyName {
                    given: given.into()
                }),
                "{given:?}"
            );
        }
    }

    #[test]
    fn it_prints_as_kind_slash_name() {
        assert_eq!(parse("sts/db").unwrap().to_string(), "statefulset/db");
    }
}
