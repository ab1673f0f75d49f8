//! Dependencies inside the plugin run one way: the command line depends on the kube layer,
//! never the reverse. `src/kube/`, the only code that talks to the API, takes plain values
//! (connection settings, a target, names) and must not name the command line's modules:
//! `cli` (the clap types) and `complete` (shell completion, built on them). The source is
//! parsed (syn), so a path is found in a `use` tree, in code, or inside a macro, however it
//! is written (`crate::cli`, `super::cli`, `use crate::{cli, …}`).

mod source_scan;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use syn::spanned::Spanned;
use syn::visit::{self, Visit};

use source_scan::{flatten_use, rust_files, uses_in_tokens, InTokens};

/// The modules of the command line, by their path from the crate root.
const COMMAND_LINE: &[&str] = &["cli", "complete"];

/// A path in the kube layer that names a command-line module.
#[derive(Debug, Clone, PartialEq, Eq)]
struct CommandLineUse {
    file: PathBuf,
    line: usize,
    /// The path as written.
    path: String,
}

fn plugin_src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

#[test]
fn the_kube_layer_does_not_use_the_command_line() {
    let src = plugin_src();
    let mut files = BTreeSet::new();
    rust_files(&src.join("kube"), &mut files);
    // The scan sees the layer: its root and the files that once read the CLI's types.
    for file in ["mod.rs", "config.rs", "discover.rs", "names.rs"] {
        assert!(
            files.contains(&src.join("kube").join(file)),
            "{file}: {files:?}"
        );
    }
    let mut found = Vec::new();
    for file in &files {
        let source = std::fs::read_to_string(file)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", file.display()));
        found.extend(command_line_uses(file, &module_of(&src, file), &source));
    }
    assert!(
        found.is_empty(),
        "the kube layer names the command line's modules {COMMAND_LINE:?}; give the kube \
         function the plain values it needs (kube::config::ConnectionSettings, \
         target::TargetRef, ...) and convert on the command-line side:\n{found:#?}"
    );
}

#[test]
fn the_scan_finds_command_line_paths_however_they_are_written() {
    let source = r#"
use crate::cli::KubeArgs;
use crate::{
    cli as flags,
    topology::Topology,
};
use super::cli::Args;
use super::super::complete::Candidate;
use super::complete;
use super::*;
fn f(client: &Client, cli: &str) -> String {
    let _ = crate::cli::DEFAULT_IMAGE;
    let cli = cli.len();
    let _ = kube::client::Client::try_default;
    let _: Vec<super::super::cli::OutputFormat> = Vec::new();
    let _ = complete::SUBCOMMAND;
    format!("{}", crate::cli::DEFAULT_EXTERNAL_NAME)
}
mod tests {
    use super::super::super::cli::Secret;
    use super::super::cli::Secret;
}
"#;
    let file = Path::new("src/kube/config.rs");
    let found: Vec<(usize, String)> =
        command_line_uses(file, &module_of(Path::new("src"), file), source)
            .into_iter()
            .map(|u| (u.line, u.path))
            .collect();
    assert_eq!(
        found,
        [
            (2, "crate::cli::KubeArgs".to_string()),
            (3, "crate::cli".to_string()),
            (8, "super::super::complete::Candidate".to_string()),
            (12, "crate::cli::DEFAULT_IMAGE".to_string()),
            (15, "super::super::cli::OutputFormat".to_string()),
            (16, "complete::SUBCOMMAND".to_string()),
            (17, "crate::cli::DEFAULT_EXTERNAL_NAME".to_string()),
            (20, "super::super::super::cli::Secret".to_string()),
        ]
    );
    // From the layer's root, one `super` is the crate root.
    let root = Path::new("src/kube/mod.rs");
    let found = command_line_uses(root, &module_of(Path::new("src"), root), "use super::cli;");
    assert_eq!(found.len(), 1, "{found:?}");
}

/// The module path of a source file from the crate root: `kube/mod.rs` is `kube`,
/// `kube/config.rs` is `kube::config`.
fn module_of(src: &Path, file: &Path) -> Vec<String> {
    let relative = file.strip_prefix(src).expect("a file under src");
    let mut module: Vec<String> = relative
        .with_extension("")
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if module.last().is_some_and(|m| m == "mod" || m == "lib") {
        module.pop();
    }
    module
}

/// The paths in `source` (the file of `module`) that name a command-line module.
fn command_line_uses(file: &Path, module: &[String], source: &str) -> Vec<CommandLineUse> {
    let ast = syn::parse_file(source)
        .unwrap_or_else(|e| panic!("{} does not parse: {e}", file.display()));
    let mut scanner = Scanner {
        file,
        module: module.to_vec(),
        found: Vec::new(),
    };
    scanner.visit_file(&ast);
    scanner.found
}

struct Scanner<'a> {
    file: &'a Path,
    /// The module being visited, inline modules (`mod tests { … }`) included.
    module: Vec<String>,
    found: Vec<CommandLineUse>,
}

impl Scanner<'_> {
    fn check(&mut self, segments: &[String], line: usize) {
        if names_command_line(&self.module, segments) {
            self.found.push(CommandLineUse {
                file: self.file.to_path_buf(),
                line,
                path: segments.join("::"),
            });
        }
    }
}

/// Whether `segments`, written in `module`, lead to a command-line module: through
/// `crate`, `self` or `super` to the crate root, or (with more to follow) through the
/// module's name alone, which in the kube layer only an import of the crate root puts in
/// scope. A lone `cli` in code is a local name.
fn names_command_line(module: &[String], segments: &[String]) -> bool {
    let mut at: Vec<&str> = module.iter().map(String::as_str).collect();
    let mut rest = segments.iter().map(String::as_str).peekable();
    match rest.peek() {
        Some(&"crate") => {
            at.clear();
            rest.next();
        }
        Some(&"self") => {
            rest.next();
        }
        Some(&"super") => {
            while rest.peek() == Some(&"super") {
                if at.pop().is_none() {
                    return false;
                }
                rest.next();
            }
        }
        Some(first) => {
            return segments.len() > 1 && COMMAND_LINE.contains(first);
        }
        None => return false,
    }
    at.is_empty() && rest.next().is_some_and(|m| COMMAND_LINE.contains(&m))
}

impl<'ast> Visit<'ast> for Scanner<'_> {
    fn visit_item_mod(&mut self, m: &'ast syn::ItemMod) {
        self.module.push(m.ident.to_string());
        visit::visit_item_mod(self, m);
        self.module.pop();
    }

    fn visit_item_use(&mut self, u: &'ast syn::ItemUse) {
        let mut paths = Vec::new();
        flatten_use(&u.tree, &mut Vec::new(), &mut paths);
        for p in paths {
            self.check(&p, u.span().start().line);
        }
    }

    fn visit_path(&mut self, p: &'ast syn::Path) {
        let segments: Vec<String> = p.segments.iter().map(|s| s.ident.to_string()).collect();
        self.check(&segments, p.span().start().line);
        visit::visit_path(self, p);
    }

    fn visit_macro(&mut self, m: &'ast syn::Macro) {
        for found in uses_in_tokens(m.tokens.clone()) {
            if let InTokens::Path { segments, line } = found {
                self.check(&segments, line);
            }
        }
        visit::visit_macro(self, m);
    }
}
