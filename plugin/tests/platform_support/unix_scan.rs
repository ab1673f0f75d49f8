//! Finds every use of a Unix-only API in a crate's source and whether a `#[cfg]` keeps it
//! out of non-Unix builds. The source is parsed (syn), so formatting, nested `use` trees
//! and paths inside macros such as `tokio::select!` do not hide a use.
//!
//! A use is a path through `std::os::unix` (or `linux`, `fd`), `tokio::signal::unix`,
//! `tokio::net::unix`, a crate that exists for Unix system calls (`libc`, `nix`, `prctl`),
//! or the probe; or a call of a method that exists on Unix only, such as the `mode` of
//! `tokio::fs::OpenOptions`, which needs no import to use. It is gated when an enclosing
//! item, module declaration, statement or expression carries a `cfg` that holds only on
//! Unix: `unix`, `target_family = "unix"`, a Unix `target_os`, or `all(…)` with one of them.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use proc_macro2::TokenStream;
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::visit::{self, Visit};
use syn::{Attribute, Expr, Item, Meta, Token};

use crate::source_scan::{flatten_use, uses_in_tokens, InTokens};

/// Adjacent path segments that name a Unix-only module.
const UNIX_MODULES: &[[&str; 2]] = &[
    ["os", "unix"],
    ["os", "linux"],
    ["os", "fd"],
    ["signal", "unix"],
    ["net", "unix"],
];
/// Crates whose every use is a Unix system call; and the Linux-only probe.
const UNIX_CRATES: &[&str] = &["libc", "nix", "prctl", "dns_doctor_probe"];
/// Methods and associated functions that exist on Unix only (`std::os::unix` extension
/// traits, and inherent methods of tokio's `OpenOptions`, `DirBuilder` and `Command`).
const UNIX_METHODS: &[&str] = &[
    "mode",
    "set_mode",
    "from_mode",
    "uid",
    "gid",
    "arg0",
    "pre_exec",
    "process_group",
];
const UNIX_OSES: &[&str] = &[
    "linux",
    "android",
    "macos",
    "ios",
    "freebsd",
    "netbsd",
    "openbsd",
    "dragonfly",
    "solaris",
    "illumos",
];

/// One use of a Unix-only API.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct UnixUse {
    pub file: PathBuf,
    pub line: usize,
    pub what: String,
    pub gated: bool,
}

/// What a scan of a crate found.
#[derive(Debug, Default)]
pub struct Scan {
    /// Source files reached from the crate roots through `mod` declarations.
    pub files: BTreeSet<PathBuf>,
    pub uses: Vec<UnixUse>,
}

/// Scans the crate whose root files (`lib.rs`, `main.rs`) are `roots`, following `mod`
/// declarations into their files, which inherit the gate of their declaration.
pub fn scan_crate(roots: &[PathBuf]) -> Scan {
    let mut scan = Scan::default();
    let mut todo: Vec<(PathBuf, bool)> = roots.iter().map(|r| (r.clone(), false)).collect();
    while let Some((file, gated)) = todo.pop() {
        if !scan.files.insert(file.clone()) {
            continue;
        }
        let source = std::fs::read_to_string(&file)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", file.display()));
        let (uses, children) = scan_source(&file, &source, gated);
        scan.uses.extend(uses);
        todo.extend(children);
    }
    scan.uses.sort();
    scan
}

/// Scans one file's source, starting gated or not. Returns its uses and the files of the
/// modules it declares, with their gate.
pub fn scan_source(file: &Path, source: &str, gated: bool) -> (Vec<UnixUse>, Vec<(PathBuf, bool)>) {
    let ast = syn::parse_file(source)
        .unwrap_or_else(|e| panic!("{} does not parse: {e}", file.display()));
    let mut v = Scanner {
        file,
        module_dir: module_dir(file),
        gates: usize::from(gated),
        uses: Vec::new(),
        children: Vec::new(),
    };
    v.visit_file(&ast);
    (v.uses, v.children)
}

/// Where the files of the modules a file declares live: beside `lib.rs`, `main.rs` and
/// `mod.rs`, else in the folder named after the file.
fn module_dir(file: &Path) -> PathBuf {
    let parent = file.parent().unwrap_or(Path::new(""));
    match file.file_name().and_then(|n| n.to_str()) {
        Some("lib.rs" | "main.rs" | "mod.rs") => parent.to_path_buf(),
        _ => parent.join(file.file_stem().expect("a file name")),
    }
}

struct Scanner<'a> {
    file: &'a Path,
    module_dir: PathBuf,
    /// How many enclosing Unix-only gates the visitor is inside.
    gates: usize,
    uses: Vec<UnixUse>,
    children: Vec<(PathBuf, bool)>,
}

impl Scanner<'_> {
    fn record(&mut self, line: usize, what: String) {
        self.uses.push(UnixUse {
            file: self.file.to_path_buf(),
            line,
            what,
            gated: self.gates > 0,
        });
    }

    /// `names_item` is false for a path in code, where a single segment is a local name
    /// (`libc` the variable) rather than the crate.
    fn check_path(&mut self, segments: &[String], line: usize, names_item: bool) {
        let unix_module = segments
            .windows(2)
            .any(|w| UNIX_MODULES.iter().any(|m| w[0] == m[0] && w[1] == m[1]));
        let unix_crate = (names_item || segments.len() > 1)
            && segments
                .first()
                .is_some_and(|s| UNIX_CRATES.contains(&s.as_str()));
        let unix_fn = segments.len() > 1
            && segments
                .last()
                .is_some_and(|s| UNIX_METHODS.contains(&s.as_str()));
        if unix_module || unix_crate || unix_fn {
            self.record(line, segments.join("::"));
        }
    }

    fn check_method(&mut self, name: &str, line: usize) {
        if UNIX_METHODS.contains(&name) {
            self.record(line, format!(".{name}()"));
        }
    }

    /// Runs `f` inside the gate `attrs` set up, if any.
    fn within(&mut self, attrs: &[Attribute], f: impl FnOnce(&mut Self)) {
        let gate = attrs.iter().any(cfg_only_on_unix);
        self.gates += usize::from(gate);
        f(self);
        self.gates -= usize::from(gate);
    }

    /// Paths and method calls inside a macro's tokens, which syn leaves unparsed.
    fn scan_tokens(&mut self, tokens: TokenStream) {
        for found in uses_in_tokens(tokens) {
            match found {
                InTokens::Path { segments, line } => self.check_path(&segments, line, false),
                InTokens::MethodCall { name, line } => self.check_method(&name, line),
            }
        }
    }

    /// The file of `mod name;`: `#[path]` relative to this file's folder, else
    /// `name.rs` or `name/mod.rs` in the module folder.
    fn module_file(&self, m: &syn::ItemMod) -> PathBuf {
        for attr in &m.attrs {
            if let Meta::NameValue(nv) = &attr.meta {
                if nv.path.is_ident("path") {
                    if let Expr::Lit(syn::ExprLit {
                        lit: syn::Lit::Str(s),
                        ..
                    }) = &nv.value
                    {
                        let dir = self.file.parent().unwrap_or(Path::new(""));
                        return dir.join(s.value());
                    }
                }
            }
        }
        let name = m.ident.to_string();
        let flat = self.module_dir.join(format!("{name}.rs"));
        if flat.exists() {
            flat
        } else {
            self.module_dir.join(name).join("mod.rs")
        }
    }
}

impl<'ast> Visit<'ast> for Scanner<'_> {
    fn visit_file(&mut self, f: &'ast syn::File) {
        self.within(&f.attrs, |s| visit::visit_file(s, f));
    }

    fn visit_item(&mut self, i: &'ast Item) {
        self.within(item_attrs(i), |s| visit::visit_item(s, i));
    }

    fn visit_item_mod(&mut self, m: &'ast syn::ItemMod) {
        match &m.content {
            Some((_, items)) => {
                let outer = self.module_dir.clone();
                self.module_dir = outer.join(m.ident.to_string());
                for item in items {
                    self.visit_item(item);
                }
                self.module_dir = outer;
            }
            None => {
                let file = self.module_file(m);
                self.children.push((file, self.gates > 0));
            }
        }
    }

    fn visit_item_use(&mut self, u: &'ast syn::ItemUse) {
        let mut paths = Vec::new();
        flatten_use(&u.tree, &mut Vec::new(), &mut paths);
        for p in paths {
            self.check_path(&p, u.span().start().line, true);
        }
    }

    fn visit_item_extern_crate(&mut self, c: &'ast syn::ItemExternCrate) {
        self.check_path(&[c.ident.to_string()], c.span().start().line, true);
    }

    fn visit_impl_item(&mut self, i: &'ast syn::ImplItem) {
        let attrs: &[Attribute] = match i {
            syn::ImplItem::Const(x) => &x.attrs,
            syn::ImplItem::Fn(x) => &x.attrs,
            syn::ImplItem::Type(x) => &x.attrs,
            syn::ImplItem::Macro(x) => &x.attrs,
            _ => &[],
        };
        self.within(attrs, |s| visit::visit_impl_item(s, i));
    }

    fn visit_trait_item(&mut self, i: &'ast syn::TraitItem) {
        let attrs: &[Attribute] = match i {
            syn::TraitItem::Const(x) => &x.attrs,
            syn::TraitItem::Fn(x) => &x.attrs,
            syn::TraitItem::Type(x) => &x.attrs,
            syn::TraitItem::Macro(x) => &x.attrs,
            _ => &[],
        };
        self.within(attrs, |s| visit::visit_trait_item(s, i));
    }

    fn visit_local(&mut self, l: &'ast syn::Local) {
        self.within(&l.attrs, |s| visit::visit_local(s, l));
    }

    fn visit_stmt_macro(&mut self, m: &'ast syn::StmtMacro) {
        self.within(&m.attrs, |s| visit::visit_stmt_macro(s, m));
    }

    fn visit_expr(&mut self, e: &'ast Expr) {
        self.within(expr_attrs(e), |s| visit::visit_expr(s, e));
    }

    fn visit_arm(&mut self, a: &'ast syn::Arm) {
        self.within(&a.attrs, |s| visit::visit_arm(s, a));
    }

    fn visit_field(&mut self, f: &'ast syn::Field) {
        self.within(&f.attrs, |s| visit::visit_field(s, f));
    }

    fn visit_field_value(&mut self, f: &'ast syn::FieldValue) {
        self.within(&f.attrs, |s| visit::visit_field_value(s, f));
    }

    fn visit_variant(&mut self, v: &'ast syn::Variant) {
        self.within(&v.attrs, |s| visit::visit_variant(s, v));
    }

    fn visit_path(&mut self, p: &'ast syn::Path) {
        let segments: Vec<String> = p.segments.iter().map(|s| s.ident.to_string()).collect();
        self.check_path(&segments, p.span().start().line, false);
        visit::visit_path(self, p);
    }

    fn visit_expr_method_call(&mut self, c: &'ast syn::ExprMethodCall) {
        self.check_method(&c.method.to_string(), c.method.span().start().line);
        visit::visit_expr_method_call(self, c);
    }

    fn visit_macro(&mut self, m: &'ast syn::Macro) {
        self.scan_tokens(m.tokens.clone());
        visit::visit_macro(self, m);
    }
}

/// True for `#[cfg(P)]` where P can hold only on Unix.
fn cfg_only_on_unix(attr: &Attribute) -> bool {
    attr.path().is_ident("cfg")
        && attr
            .parse_args::<Meta>()
            .is_ok_and(|pred| only_on_unix(&pred))
}

fn only_on_unix(pred: &Meta) -> bool {
    match pred {
        Meta::Path(p) => p.is_ident("unix"),
        Meta::NameValue(nv) => {
            let Expr::Lit(syn::ExprLit {
                lit: syn::Lit::Str(value),
                ..
            }) = &nv.value
            else {
                return false;
            };
            let value = value.value();
            (nv.path.is_ident("target_os") && UNIX_OSES.contains(&value.as_str()))
                || (nv.path.is_ident("target_family") && value == "unix")
        }
        Meta::List(list) => {
            let Ok(parts) = list.parse_args_with(Punctuated::<Meta, Token![,]>::parse_terminated)
            else {
                return false;
            };
            if list.path.is_ident("all") {
                parts.iter().any(only_on_unix)
            } else if list.path.is_ident("any") {
                !parts.is_empty() && parts.iter().all(only_on_unix)
            } else {
                false
            }
        }
    }
}

fn item_attrs(i: &Item) -> &[Attribute] {
    match i {
        Item::Const(x) => &x.attrs,
        Item::Enum(x) => &x.attrs,
        Item::ExternCrate(x) => &x.attrs,
        Item::Fn(x) => &x.attrs,
        Item::ForeignMod(x) => &x.attrs,
        Item::Impl(x) => &x.attrs,
        Item::Macro(x) => &x.attrs,
        Item::Mod(x) => &x.attrs,
        Item::Static(x) => &x.attrs,
        Item::Struct(x) => &x.attrs,
        Item::Trait(x) => &x.attrs,
        Item::TraitAlias(x) => &x.attrs,
        Item::Type(x) => &x.attrs,
        Item::Union(x) => &x.attrs,
        Item::Use(x) => &x.attrs,
        _ => &[],
    }
}

fn expr_attrs(e: &Expr) -> &[Attribute] {
    match e {
        Expr::Array(x) => &x.attrs,
        Expr::Assign(x) => &x.attrs,
        Expr::Async(x) => &x.attrs,
        Expr::Await(x) => &x.attrs,
        Expr::Binary(x) => &x.attrs,
        Expr::Block(x) => &x.attrs,
        Expr::Break(x) => &x.attrs,
        Expr::Call(x) => &x.attrs,
        Expr::Cast(x) => &x.attrs,
        Expr::Closure(x) => &x.attrs,
        Expr::Const(x) => &x.attrs,
        Expr::Continue(x) => &x.attrs,
        Expr::Field(x) => &x.attrs,
        Expr::ForLoop(x) => &x.attrs,
        Expr::Group(x) => &x.attrs,
        Expr::If(x) => &x.attrs,
        Expr::Index(x) => &x.attrs,
        Expr::Infer(x) => &x.attrs,
        Expr::Let(x) => &x.attrs,
        Expr::Lit(x) => &x.attrs,
        Expr::Loop(x) => &x.attrs,
        Expr::Macro(x) => &x.attrs,
        Expr::Match(x) => &x.attrs,
        Expr::MethodCall(x) => &x.attrs,
        Expr::Paren(x) => &x.attrs,
        Expr::Path(x) => &x.attrs,
        Expr::Range(x) => &x.attrs,
        Expr::RawAddr(x) => &x.attrs,
        Expr::Reference(x) => &x.attrs,
        Expr::Repeat(x) => &x.attrs,
        Expr::Return(x) => &x.attrs,
        Expr::Struct(x) => &x.attrs,
        Expr::Try(x) => &x.attrs,
        Expr::TryBlock(x) => &x.attrs,
        Expr::Tuple(x) => &x.attrs,
        Expr::Unary(x) => &x.attrs,
        Expr::Unsafe(x) => &x.attrs,
        Expr::While(x) => &x.attrs,
        Expr::Yield(x) => &x.attrs,
        _ => &[],
    }
}
