//! What the suite's own shell scripts run, read from their syntax trees (`shfmt --to-json`,
//! the parser of mvdan/sh), and the command list that `tests/install-deps` installs from.
//!
//! Two questions are answered here: which external commands each script (and each test
//! written in Rust) starts, so that none can be missing on a fresh machine; and which
//! pipelines end in a reader that may exit before the writer is done, which under
//! `set -o pipefail` turns a match into a random exit status 141.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

/// The list of commands the suite needs, one row per command.
pub const COMMANDS_FILE: &str = "tests/commands.tsv";

/// Folders whose scripts and tests are scanned, relative to the repository root.
const SCANNED: &[&str] = &[
    "tests",
    "scripts",
    ".ci",
    "plugin/fuzz",
    "plugin/tests",
    "debug-image",
];

/// Files whose command-like strings are examples for the scan itself, not programs run.
const EXAMPLES: &[&str] = &["tests/tests/scripts.rs"];

/// One row of `tests/commands.tsv`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Needed {
    pub command: String,
    /// A Debian package, or `@toolchain` for what the machine image itself brings (cargo).
    pub package: String,
    pub used_by: BTreeSet<String>,
}

/// Reads `tests/commands.tsv`: `command<TAB>package<TAB>file,file,...`; `#` starts a comment.
pub fn read_commands(root: &Path) -> Vec<Needed> {
    let path = root.join(COMMANDS_FILE);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|(i, l)| {
            let cols: Vec<&str> = l.split('\t').collect();
            assert!(
                cols.len() == 3,
                "{}:{}: want command<TAB>package<TAB>used-by, got {l:?}",
                COMMANDS_FILE,
                i + 1
            );
            Needed {
                command: cols[0].to_string(),
                package: cols[1].to_string(),
                used_by: cols[2].split(',').map(|s| s.trim().to_string()).collect(),
            }
        })
        .collect()
}

/// A file the scan reads: a shell script or a Rust test source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Shell,
    Rust,
}

/// The files of the scanned folders, relative to `root`, sorted.
pub fn scanned_files(root: &Path) -> Vec<(String, Kind)> {
    let mut out = Vec::new();
    for dir in SCANNED {
        walk(root, &root.join(dir), &mut out);
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, Kind)>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if path.is_dir() {
            if name != "target" && !name.starts_with('.') || name == ".ci" {
                walk(root, &path, out);
            }
            continue;
        }
        let rel = path
            .strip_prefix(root)
            .expect("under root")
            .to_string_lossy()
            .into_owned();
        if EXAMPLES.contains(&rel.as_str()) {
            continue;
        }
        if name.ends_with(".rs") {
            out.push((rel, Kind::Rust));
        } else if name.ends_with(".sh") || is_shell_script(&path) {
            out.push((rel, Kind::Shell));
        }
    }
}

fn is_shell_script(path: &Path) -> bool {
    let Ok(bytes) = std::fs::read(path) else {
        return false;
    };
    let first = bytes.split(|b| *b == b'\n').next().unwrap_or_default();
    let first = String::from_utf8_lossy(first);
    first.starts_with("#!") && (first.ends_with("bash") || first.ends_with("/sh"))
}

/// Parses a shell file into shfmt's JSON syntax tree.
pub fn parse_shell(source: &str, what: &str) -> Value {
    use std::io::Write;
    let mut child = Command::new("shfmt")
        .args(["--language-dialect", "bash", "--to-json"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot run shfmt ({e}): it comes with the Debian package shfmt, which tests/install-deps installs")
        });
    child
        .stdin
        .take()
        .expect("piped")
        .write_all(source.as_bytes())
        .expect("writing to shfmt");
    let out = child.wait_with_output().expect("shfmt ran");
    assert!(
        out.status.success(),
        "shfmt cannot parse {what}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("shfmt writes JSON")
}

/// A command position in a script: the words of one simple command.
#[derive(Debug, Clone)]
pub struct Call {
    pub line: u64,
    /// Each argument's text when it is a literal (no expansion), else `None`.
    pub words: Vec<Option<String>>,
}

/// Every simple command in the tree, in source order.
pub fn calls(tree: &Value) -> Vec<Call> {
    let mut out = Vec::new();
    visit(tree, &mut |node| {
        if node.get("Type").and_then(Value::as_str) == Some("CallExpr") {
            let words: Vec<Option<String>> = node
                .get("Args")
                .and_then(Value::as_array)
                .map(|args| args.iter().map(literal).collect())
                .unwrap_or_default();
            if !words.is_empty() {
                out.push(Call {
                    line: line_of(node),
                    words,
                });
            }
        }
    });
    out
}

/// Names of the functions a tree defines.
pub fn functions(tree: &Value) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    visit(tree, &mut |node| {
        if node.get("Type").and_then(Value::as_str) == Some("FuncDecl") {
            if let Some(name) = node.pointer("/Name/Value").and_then(Value::as_str) {
                out.insert(name.to_string());
            }
        }
    });
    out
}

fn visit(node: &Value, f: &mut impl FnMut(&Value)) {
    match node {
        Value::Object(map) => {
            f(node);
            for v in map.values() {
                visit(v, f);
            }
        }
        Value::Array(items) => items.iter().for_each(|v| visit(v, f)),
        _ => {}
    }
}

fn line_of(node: &Value) -> u64 {
    node.pointer("/Pos/Line")
        .and_then(Value::as_u64)
        .unwrap_or(0)
}

/// The text of a word made only of literal parts (plain, single- or double-quoted).
fn literal(word: &Value) -> Option<String> {
    let mut text = String::new();
    for part in word.get("Parts")?.as_array()? {
        match part.get("Type")?.as_str()? {
            "Lit" | "SglQuoted" => text.push_str(part.get("Value")?.as_str()?),
            "DblQuoted" => {
                for inner in part
                    .get("Parts")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    if inner.get("Type")?.as_str()? != "Lit" {
                        return None;
                    }
                    text.push_str(inner.get("Value")?.as_str()?);
                }
            }
            _ => return None,
        }
    }
    Some(text)
}

/// Shell builtins and keywords: never looked up on PATH.
const BUILTINS: &[&str] = &[
    ".",
    ":",
    "[",
    "[[",
    "alias",
    "bg",
    "bind",
    "break",
    "builtin",
    "caller",
    "cd",
    "command",
    "compgen",
    "complete",
    "continue",
    "declare",
    "dirs",
    "disown",
    "echo",
    "enable",
    "eval",
    "exec",
    "exit",
    "export",
    "false",
    "fc",
    "fg",
    "getopts",
    "hash",
    "help",
    "history",
    "jobs",
    "kill",
    "let",
    "local",
    "logout",
    "mapfile",
    "popd",
    "printf",
    "pushd",
    "pwd",
    "read",
    "readarray",
    "readonly",
    "return",
    "set",
    "shift",
    "shopt",
    "source",
    "suspend",
    "test",
    "times",
    "trap",
    "true",
    "type",
    "typeset",
    "ulimit",
    "umask",
    "unalias",
    "unset",
    "wait",
];

/// The external commands one call starts: the first word, and the command that a wrapper
/// (`timeout 5 dig`, `ip netns exec ns dig`, `in_node 2 dig`, `xargs kill`, `bash -c '…'`)
/// runs in turn.
pub fn commands_of(call: &Call) -> Vec<String> {
    let mut out = Vec::new();
    let mut words: &[Option<String>] = &call.words;
    loop {
        let Some(Some(first)) = words.first() else {
            return out;
        };
        let first = first.as_str();
        let rest = &words[1..];
        let next = match first {
            "timeout" => skip_options(rest, &["-s", "--signal", "-k", "--kill-after"]).get(1..),
            "exec" | "nohup" | "nice" | "setsid" | "stdbuf" | "sudo" => {
                Some(skip_options(rest, &["-n", "-a", "-c"]))
            }
            "command" => match rest.first() {
                Some(Some(opt)) if opt == "-v" || opt == "-V" => return out,
                _ => Some(rest),
            },
            "env" => {
                let r = skip_options(rest, &["-u", "--unset", "-C", "--chdir"]);
                let n = r
                    .iter()
                    .take_while(|w| w.as_deref().is_some_and(|w| w.contains('=')))
                    .count();
                Some(&r[n..])
            }
            "xargs" => Some(skip_options(
                rest,
                &[
                    "-I",
                    "-n",
                    "-P",
                    "-d",
                    "-L",
                    "-s",
                    "-E",
                    "-a",
                    "--max-args",
                    "--max-procs",
                ],
            )),
            // The cluster harness's own wrappers (tests/cluster/lib/common.sh): run the
            // rest inside node N's network namespace.
            "in_node" | "node_exec" => rest.get(1..),
            "nsenter" | "unshare" => Some(skip_options(
                rest,
                &[
                    "-t", "--target", "-S", "--setuid", "-G", "--setgid", "-w", "--wd",
                ],
            )),
            "ip" if rest.len() >= 3
                && rest[0].as_deref() == Some("netns")
                && rest[1].as_deref() == Some("exec") =>
            {
                out.push("ip".into());
                Some(&rest[3..])
            }
            "bash" | "sh" if rest.first().and_then(Option::as_deref) == Some("-c") => {
                out.push(first.to_string());
                if let Some(Some(script)) = rest.get(1) {
                    let tree = parse_shell(script, "an inline `bash -c` script");
                    let inner = functions(&tree);
                    for c in calls(&tree) {
                        out.extend(commands_of(&c).into_iter().filter(|c| !inner.contains(c)));
                    }
                }
                return out;
            }
            _ => None,
        };
        if matches!(first, "in_node" | "node_exec") {
            // Shell functions, not programs: only what they run counts.
        } else if !BUILTINS.contains(&first) {
            out.push(first.to_string());
        } else if !matches!(first, "exec" | "command") {
            return out;
        }
        match next {
            Some(n) => words = n,
            None => return out,
        }
    }
}

/// Skips leading options (and the values of the options named in `with_value`) and a `--`.
fn skip_options<'a>(words: &'a [Option<String>], with_value: &[&str]) -> &'a [Option<String>] {
    let mut i = 0;
    while let Some(Some(w)) = words.get(i) {
        if w == "--" {
            return &words[i + 1..];
        }
        if !w.starts_with('-') || w == "-" {
            break;
        }
        i += if with_value.contains(&w.as_str()) {
            2
        } else {
            1
        };
    }
    words.get(i..).unwrap_or_default()
}

/// A program name worth checking: a bare name (PATH lookup) or an absolute path outside
/// the repository. Paths into the repository (`tests/cluster/up`, `"$DIR/x"`) are ours.
fn is_external(command: &str) -> bool {
    !command.is_empty()
        && !command.contains('=')
        && (!command.contains('/')
            || command.starts_with("/usr/")
            || command.starts_with("/bin/")
            || command.starts_with("/sbin/"))
}

/// Every external command each scanned file starts, with the lines where it does.
pub fn used_commands(root: &Path) -> BTreeMap<String, BTreeMap<String, Vec<u64>>> {
    let files = scanned_files(root);
    let mut trees = Vec::new();
    let mut ours = BTreeSet::new();
    for (rel, kind) in &files {
        if *kind == Kind::Shell {
            let source = std::fs::read_to_string(root.join(rel)).expect("readable script");
            let tree = parse_shell(&source, rel);
            ours.extend(functions(&tree));
            trees.push((rel.clone(), tree));
        }
    }
    // command -> file -> lines
    let mut used: BTreeMap<String, BTreeMap<String, Vec<u64>>> = BTreeMap::new();
    let mut add = |command: String, file: &str, line: u64| {
        used.entry(command)
            .or_default()
            .entry(file.to_string())
            .or_default()
            .push(line);
    };
    for (rel, tree) in &trees {
        for call in calls(tree) {
            for c in commands_of(&call) {
                if is_external(&c) && !ours.contains(&c) {
                    add(c, rel, call.line);
                }
            }
        }
    }
    for (rel, kind) in &files {
        if *kind == Kind::Rust {
            let source = std::fs::read_to_string(root.join(rel)).expect("readable source");
            for (c, line) in rust_commands(&source) {
                if is_external(&c) {
                    add(c, rel, line);
                }
            }
        }
    }
    used
}

/// Programs a Rust test starts by a literal name: `Command::new("x")`, and argv arrays
/// handed to the suite's runners (`cmd::run(&["x", …])`, `exec(ns, &["x", …])`).
pub fn rust_commands(source: &str) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    for (i, line) in source.lines().enumerate() {
        let code = line.trim_start();
        if code.starts_with("//") {
            continue;
        }
        let line_no = i as u64 + 1;
        let mut push = |name: Option<&str>| {
            if let Some(n) = name.map(|n| n.trim().trim_matches('"')).filter(|n| {
                !n.is_empty()
                    && n.chars()
                        .all(|c| c.is_ascii_alphanumeric() || "-_.+/".contains(c))
            }) {
                out.push((n.to_string(), line_no));
            }
        };
        for start in ["Command::new(\"", "run(&[\"", "run_input(&[\""] {
            let mut rest = code;
            while let Some(pos) = rest.find(start) {
                rest = &rest[pos + start.len()..];
                push(rest.split('"').next());
            }
        }
        // `exec(ns, &["dig", …])` on a namespace: the first element of the argv array.
        for exec in [".exec(", ".exec_for("] {
            if let Some(pos) = code.find(exec) {
                if let Some(arr) = code[pos..].find("&[\"") {
                    push(code[pos + arr + 3..].split('"').next());
                }
            }
        }
        // `["ip", "netns", "exec", NS, "cmd", …]`: the command run inside the namespace.
        if let Some(pos) = code.find("\"ip\", \"netns\", \"exec\", ") {
            let after = &code[pos..];
            push(after.split(", ").nth(4).filter(|w| w.starts_with('"')));
        }
    }
    out
}

/// A pipeline whose reader may stop reading before the writer has finished.
#[derive(Debug, Clone)]
pub struct EarlyReader {
    pub file: String,
    pub line: u64,
    pub reader: String,
}

/// Readers that may exit at their first match or line: the writer then dies of SIGPIPE,
/// and `set -o pipefail` reports 141 for a pipeline that found what it looked for.
pub fn exits_early(words: &[Option<String>]) -> bool {
    let Some(Some(cmd)) = words.first() else {
        return false;
    };
    let args: Vec<&str> = words[1..].iter().flatten().map(String::as_str).collect();
    match cmd.as_str() {
        "head" | "read" => true,
        "grep" | "egrep" | "fgrep" | "zgrep" => args.iter().any(|a| {
            matches!(
                *a,
                "--quiet" | "--silent" | "--files-with-matches" | "--files-without-match"
            ) || a.starts_with("--max-count")
                || (a.starts_with('-')
                    && !a.starts_with("--")
                    && a[1..].chars().any(|c| matches!(c, 'q' | 'm' | 'l' | 'L')))
        }),
        "awk" | "gawk" | "mawk" => args.iter().any(|a| has_word(a, "exit")),
        // A `q` command in a sed script: alone, or after `;`, `{` or an address.
        "sed" => args
            .iter()
            .filter(|a| !a.starts_with('-'))
            .any(|a| has_word(a, "q") || a.split(';').any(|c| c.trim().ends_with('q'))),
        _ => false,
    }
}

fn has_word(text: &str, word: &str) -> bool {
    text.split(|c: char| !c.is_alphanumeric() && c != '_')
        .any(|w| w == word)
}

/// Pipelines in one shell file whose reader may exit early.
pub fn early_readers(rel: &str, tree: &Value) -> Vec<EarlyReader> {
    let mut out = Vec::new();
    visit(tree, &mut |node| {
        let is_pipe = node.get("Type").and_then(Value::as_str) == Some("BinaryCmd")
            && matches!(node.get("Op").and_then(Value::as_u64), Some(12 | 13));
        if !is_pipe {
            return;
        }
        let Some(reader) = node.pointer("/Y/Cmd") else {
            return;
        };
        if reader.get("Type").and_then(Value::as_str) != Some("CallExpr") {
            return;
        }
        let words: Vec<Option<String>> = reader
            .get("Args")
            .and_then(Value::as_array)
            .map(|a| a.iter().map(literal).collect())
            .unwrap_or_default();
        if exits_early(&words) {
            out.push(EarlyReader {
                file: rel.to_string(),
                line: line_of(reader),
                reader: words
                    .iter()
                    .map(|w| w.clone().unwrap_or_else(|| "…".into()))
                    .collect::<Vec<_>>()
                    .join(" "),
            });
        }
    });
    out
}

/// The repository root, for tests run from anywhere.
pub fn root() -> PathBuf {
    crate::cluster::repo_root()
}
