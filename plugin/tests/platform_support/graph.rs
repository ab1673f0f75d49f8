//! The workspace's resolved dependency graph for one target, as `cargo metadata
//! --filter-platform` reports it: which crates a build for that target compiles.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::process::Command;

use serde::Deserialize;

#[derive(Deserialize)]
struct Metadata {
    packages: Vec<Package>,
    workspace_members: Vec<String>,
    resolve: Resolve,
}

#[derive(Deserialize)]
struct Package {
    id: String,
    name: String,
}

#[derive(Deserialize)]
struct Resolve {
    nodes: Vec<Node>,
}

#[derive(Deserialize)]
struct Node {
    id: String,
    deps: Vec<Dep>,
}

#[derive(Deserialize)]
struct Dep {
    pkg: String,
    dep_kinds: Vec<DepKind>,
}

#[derive(Deserialize)]
struct DepKind {
    /// None for a normal dependency, else "dev" or "build".
    kind: Option<String>,
}

/// Normal (not dev, not build) dependency edges between package names, for one target.
pub struct Graph {
    pub target: String,
    names: HashMap<String, String>,
    members: BTreeSet<String>,
    normal: HashMap<String, Vec<String>>,
}

impl Graph {
    /// Runs `cargo metadata --locked --filter-platform TARGET` on the workspace at `root`.
    /// Cargo may download the manifests of crates used only on that target, as a build
    /// for it would.
    pub fn load(root: &Path, target: &str) -> Graph {
        let out = Command::new(env!("CARGO"))
            .args(["metadata", "--format-version", "1", "--locked"])
            .args(["--filter-platform", target])
            .arg("--manifest-path")
            .arg(root.join("Cargo.toml"))
            .output()
            .expect("cargo runs");
        assert!(
            out.status.success(),
            "cargo metadata --filter-platform {target} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let meta: Metadata = serde_json::from_slice(&out.stdout).expect("cargo metadata JSON");
        let names: HashMap<String, String> =
            meta.packages.into_iter().map(|p| (p.id, p.name)).collect();
        let normal = meta
            .resolve
            .nodes
            .into_iter()
            .map(|n| {
                let deps = n
                    .deps
                    .into_iter()
                    .filter(|d| d.dep_kinds.iter().any(|k| k.kind.is_none()))
                    .map(|d| d.pkg)
                    .collect();
                (n.id, deps)
            })
            .collect();
        let members = meta
            .workspace_members
            .iter()
            .map(|id| names[id].clone())
            .collect();
        Graph {
            target: target.to_owned(),
            names,
            members,
            normal,
        }
    }

    /// Names of `package` and every crate it reaches by normal dependencies on this target:
    /// what `cargo build -p PACKAGE --target TARGET` compiles for the target.
    pub fn compiled_with(&self, package: &str) -> BTreeSet<String> {
        let start = self
            .names
            .iter()
            .filter(|(_, n)| *n == package)
            .map(|(id, _)| id.clone())
            .collect::<Vec<_>>();
        assert_eq!(start.len(), 1, "{package} is one package of the workspace");
        let mut seen = BTreeSet::new();
        let mut todo = start;
        while let Some(id) = todo.pop() {
            if seen.insert(id.clone()) {
                todo.extend(self.normal.get(&id).into_iter().flatten().cloned());
            }
        }
        seen.iter().map(|id| self.names[id].clone()).collect()
    }

    /// Names of the workspace's own crates.
    pub fn members(&self) -> &BTreeSet<String> {
        &self.members
    }
}
