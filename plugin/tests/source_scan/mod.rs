//! Reading the plugin's own source in tests: its files, and the paths it names in `use`
//! trees and inside macros (which syn leaves as unparsed tokens). The tests that hold the
//! code to a rule (platform gates, layering) build their checks on these.
#![allow(dead_code)] // each test binary uses a different part of this shared module

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use proc_macro2::{Delimiter, Spacing, TokenStream, TokenTree};

/// Every `.rs` file under `dir`, at any depth.
pub fn rust_files(dir: &Path, out: &mut BTreeSet<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("readable source folder") {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.insert(path);
        }
    }
}

/// The paths a `use` tree brings in, one per leaf: `use a::{b, c::*}` gives `a::b` and
/// `a::c::*`; a renamed leaf keeps its own name (`a::b as x` gives `a::b`).
pub fn flatten_use(tree: &syn::UseTree, prefix: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    match tree {
        syn::UseTree::Path(p) => {
            prefix.push(p.ident.to_string());
            flatten_use(&p.tree, prefix, out);
            prefix.pop();
        }
        syn::UseTree::Name(n) => out.push([prefix.clone(), vec![n.ident.to_string()]].concat()),
        syn::UseTree::Rename(r) => out.push([prefix.clone(), vec![r.ident.to_string()]].concat()),
        syn::UseTree::Glob(_) => out.push([prefix.clone(), vec!["*".to_owned()]].concat()),
        syn::UseTree::Group(g) => {
            for t in &g.items {
                flatten_use(t, prefix, out);
            }
        }
    }
}

/// A path or a method call among a macro's tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InTokens {
    /// `a::b::c`, or a single identifier.
    Path { segments: Vec<String>, line: usize },
    /// `.name(`
    MethodCall { name: String, line: usize },
}

/// The paths and method calls among `tokens`, nested groups included, in source order.
pub fn uses_in_tokens(tokens: TokenStream) -> Vec<InTokens> {
    let mut out = Vec::new();
    collect_tokens(tokens, &mut out);
    out
}

fn collect_tokens(tokens: TokenStream, out: &mut Vec<InTokens>) {
    let tokens: Vec<TokenTree> = tokens.into_iter().collect();
    let mut i = 0;
    while i < tokens.len() {
        match &tokens[i] {
            TokenTree::Group(g) => {
                collect_tokens(g.stream(), out);
                i += 1;
            }
            TokenTree::Punct(p) if p.as_char() == '.' => {
                if let (Some(TokenTree::Ident(name)), Some(TokenTree::Group(g))) =
                    (tokens.get(i + 1), tokens.get(i + 2))
                {
                    if g.delimiter() == Delimiter::Parenthesis {
                        out.push(InTokens::MethodCall {
                            name: name.to_string(),
                            line: name.span().start().line,
                        });
                    }
                }
                i += 1;
            }
            TokenTree::Ident(first) => {
                let line = first.span().start().line;
                let mut segments = vec![first.to_string()];
                let mut j = i + 1;
                while let (
                    Some(TokenTree::Punct(a)),
                    Some(TokenTree::Punct(b)),
                    Some(TokenTree::Ident(next)),
                ) = (tokens.get(j), tokens.get(j + 1), tokens.get(j + 2))
                {
                    if a.as_char() != ':' || a.spacing() != Spacing::Joint || b.as_char() != ':' {
                        break;
                    }
                    segments.push(next.to_string());
                    j += 3;
                }
                out.push(InTokens::Path { segments, line });
                i = j;
            }
            TokenTree::Punct(_) | TokenTree::Literal(_) => i += 1,
        }
    }
}
