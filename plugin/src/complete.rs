//! Shell completion through kubectl's plugin completion (kubectl 1.26+): for
//! `kubectl dns-doctor ARGS<TAB>`, kubectl runs `kubectl_complete-dns_doctor ARGS WORD`
//! (WORD the one being completed, possibly empty), which runs
//! `kubectl-dns_doctor __complete ARGS WORD`, and reads cobra's protocol from stdout: one
//! candidate a line (`value<TAB>description`), then `:DIRECTIVE`.
//!
//! This module is the pure part: which kind of word is being completed, judged from the
//! command line as clap defines it, and the output. Pod, namespace and container names come
//! from the API, through `kube::names`, never from a kubectl subprocess.

use clap::Command;

use crate::cli::{Args, Command as Parsed, KubeArgs};
use crate::kube::config::ConnectionSettings;
use crate::kube::names::{ContainerName, PodName};

/// The hidden subcommand the completion script calls.
pub const SUBCOMMAND: &str = "__complete";

/// Cobra's `ShellCompDirective` bits.
pub mod directive {
    pub const DEFAULT: u32 = 0;
    pub const NO_SPACE: u32 = 2;
    pub const NO_FILE_COMP: u32 = 4;
}

/// One completion candidate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub value: String,
    pub description: String,
}

impl Candidate {
    pub fn new(value: impl Into<String>, description: impl Into<String>) -> Self {
        Self {
            value: value.into(),
            description: description.into(),
        }
    }
}

/// A pod, described by its phase.
impl From<PodName> for Candidate {
    fn from(p: PodName) -> Self {
        Self::new(p.name, p.phase)
    }
}

/// A container of the target; the one a run examines without `-c` says so.
impl From<ContainerName> for Candidate {
    fn from(c: ContainerName) -> Self {
        let note = if c.examined_by_default {
            "examined by default"
        } else {
            ""
        };
        Self::new(c.name, note)
    }
}

/// What the word being completed is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Want {
    /// Known without asking anyone (flag names, fixed values).
    Fixed(Vec<Candidate>),
    /// The target: `[TYPE/]NAME`, or a subcommand.
    Target,
    Namespace,
    /// The containers of the target named earlier on the line.
    Container {
        target: String,
    },
    /// Names from the kubeconfig.
    Context,
    Cluster,
    User,
    /// A path: the shell completes it.
    File,
    /// Free text: nothing to offer.
    Nothing,
}

/// A completion request, read from the words after the plugin's name.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    pub want: Want,
    /// The word being completed (after `--flag=` for that form).
    pub prefix: String,
    /// The connection flags given on the line, validated like a real run's.
    pub kube: ConnectionSettings,
}

/// Work out what `words` (the last one being completed) asks for.
pub fn request(words: &[String]) -> Request {
    let mut cmd = <Args as clap::CommandFactory>::command();
    cmd.build();
    let (current, before) = match words.split_last() {
        Some((last, rest)) => (last.clone(), rest),
        None => (String::new(), &[][..]),
    };
    let line = walk(&cmd, before);
    let kube = connection_settings(&line.kube_words);
    let scope = line
        .subcommand
        .as_deref()
        .and_then(|s| cmd.find_subcommand(s))
        .unwrap_or(&cmd);

    let (want, prefix) = if let Some(id) = &line.pending_value {
        (value_want(scope, id, &line), current)
    } else if line.after_double_dash {
        (positional_want(&cmd, &line), current)
    } else if let Some((flag, value)) = current.strip_prefix("--").and_then(|f| f.split_once('=')) {
        match find_long(scope, flag) {
            Some(arg) => (
                value_want(scope, arg.get_id().as_str(), &line),
                value.into(),
            ),
            None => (Want::Nothing, value.into()),
        }
    } else if current.starts_with('-') {
        (Want::Fixed(flags(scope, &current)), current)
    } else {
        (positional_want(&cmd, &line), current)
    };
    Request { want, prefix, kube }
}

/// The command line before the word being completed, as far as completion cares.
#[derive(Debug, Default)]
struct Line {
    subcommand: Option<String>,
    positionals: Vec<String>,
    /// The id of an option whose value is the word being completed.
    pending_value: Option<String>,
    /// The words of connection flags (with their values), to connect as the run would.
    kube_words: Vec<String>,
    after_double_dash: bool,
}

fn walk(cmd: &Command, words: &[String]) -> Line {
    let kube_ids: Vec<String> = <KubeArgs as clap::Args>::augment_args(Command::new("kube"))
        .get_arguments()
        .map(|a| a.get_id().to_string())
        .collect();
    let mut line = Line::default();
    let mut i = 0;
    while i < words.len() {
        let word = &words[i];
        i += 1;
        let scope = line
            .subcommand
            .as_deref()
            .and_then(|s| cmd.find_subcommand(s))
            .unwrap_or(cmd);
        if line.after_double_dash || word == "-" || !word.starts_with('-') {
            if word == "-" || line.after_double_dash {
                line.positionals.push(word.clone());
            } else if line.subcommand.is_none()
                && line.positionals.is_empty()
                && cmd.find_subcommand(word).is_some()
            {
                line.subcommand = Some(word.clone());
            } else {
                line.positionals.push(word.clone());
            }
            continue;
        }
        if word == "--" {
            line.after_double_dash = true;
            continue;
        }
        let (arg, inline_value) = if let Some(long) = word.strip_prefix("--") {
            let (name, value) = match long.split_once('=') {
                Some((n, v)) => (n, Some(v.to_string())),
                None => (long, None),
            };
            (find_long(scope, name), value)
        } else {
            // -n NAME, -nNAME, -vv: the first short letter decides.
            let mut chars = word[1..].chars();
            let short = chars.next().unwrap_or_default();
            let rest: String = chars.collect();
            let arg = scope.get_arguments().find(|a| a.get_short() == Some(short));
            let inline = arg
                .filter(|a| takes_value(a))
                .and_then(|_| (!rest.is_empty()).then(|| rest.trim_start_matches('=').to_string()));
            (arg, inline)
        };
        let Some(arg) = arg else { continue };
        let id = arg.get_id().to_string();
        let is_kube = kube_ids.contains(&id);
        if is_kube {
            line.kube_words.push(word.clone());
        }
        if takes_value(arg) && inline_value.is_none() {
            match words.get(i) {
                Some(value) => {
                    if is_kube {
                        line.kube_words.push(value.clone());
                    }
                    i += 1;
                }
                None => line.pending_value = Some(id),
            }
        }
    }
    line
}

fn takes_value(arg: &clap::Arg) -> bool {
    arg.get_action().takes_values()
}

fn find_long<'a>(scope: &'a Command, name: &str) -> Option<&'a clap::Arg> {
    scope.get_arguments().find(|a| {
        a.get_long() == Some(name) || a.get_all_aliases().is_some_and(|al| al.contains(&name))
    })
}

/// The connection flags on the line, validated as a real run would (so `-n` and
/// `--context` apply); defaults when they do not validate.
fn connection_settings(words: &[String]) -> ConnectionSettings {
    let argv = ["kubectl-dns_doctor", "cleanup"]
        .into_iter()
        .map(String::from)
        .chain(words.iter().cloned());
    match <Args as clap::Parser>::try_parse_from(argv).map(Args::validate) {
        Ok(Ok(Parsed::Cleanup { kube })) => *kube,
        _ => ConnectionSettings::default(),
    }
}

fn value_want(scope: &Command, id: &str, line: &Line) -> Want {
    match id {
        "namespace" | "node_namespace" => Want::Namespace,
        "context" => Want::Context,
        "cluster" => Want::Cluster,
        "user" => Want::User,
        "container" => match line.positionals.first() {
            Some(target) if line.subcommand.is_none() => Want::Container {
                target: target.clone(),
            },
            _ => Want::Nothing,
        },
        "kubeconfig"
        | "output_dir"
        | "certificate_authority"
        | "client_certificate"
        | "client_key" => Want::File,
        _ => {
            let fixed: Vec<Candidate> = scope
                .get_arguments()
                .find(|a| a.get_id() == id)
                .map(|a| {
                    a.get_possible_values()
                        .iter()
                        .filter(|v| !v.is_hide_set())
                        .map(|v| {
                            Candidate::new(
                                v.get_name(),
                                v.get_help().map(|h| h.to_string()).unwrap_or_default(),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            if fixed.is_empty() {
                Want::Nothing
            } else {
                Want::Fixed(fixed)
            }
        }
    }
}

fn positional_want(cmd: &Command, line: &Line) -> Want {
    match line.subcommand.as_deref() {
        None if line.positionals.is_empty() => Want::Target,
        Some("analyze") => Want::File,
        Some("completions") if line.positionals.is_empty() => {
            match cmd.find_subcommand("completions") {
                Some(sub) => value_want(sub, "shell", line),
                None => Want::Nothing,
            }
        }
        _ => Want::Nothing,
    }
}

/// The flags of `scope` (its own and the global ones) starting with `prefix`.
fn flags(scope: &Command, prefix: &str) -> Vec<Candidate> {
    let mut out = Vec::new();
    for arg in scope.get_arguments().filter(|a| !a.is_hide_set()) {
        let help = arg
            .get_help()
            .map(|h| first_sentence(&h.to_string()))
            .unwrap_or_default();
        if let Some(long) = arg.get_long() {
            out.push(Candidate::new(format!("--{long}"), help.clone()));
        }
        if let Some(short) = arg.get_short() {
            if prefix.len() <= 2 && !prefix.starts_with("--") {
                out.push(Candidate::new(format!("-{short}"), help.clone()));
            }
        }
    }
    out.retain(|c| c.value.starts_with(prefix));
    out
}

/// A help text cut to what fits a completion menu: its first sentence, without asides.
fn first_sentence(help: &str) -> String {
    let line = help.lines().next().unwrap_or_default();
    let line = line.split(" (").next().unwrap_or_default();
    line.split(". ")
        .next()
        .unwrap_or_default()
        .trim_end_matches(['.', ';', ':'])
        .to_string()
}

/// The subcommands and target types whose name starts with `prefix`, besides the pods.
pub fn target_words(prefix: &str) -> Vec<Candidate> {
    let mut cmd = <Args as clap::CommandFactory>::command();
    cmd.build();
    let mut out: Vec<Candidate> = cmd
        .get_subcommands()
        .filter(|s| !s.is_hide_set() && s.get_name() != "help")
        .map(|s| {
            Candidate::new(
                s.get_name(),
                s.get_about()
                    .map(|a| first_sentence(&a.to_string()))
                    .unwrap_or_default(),
            )
        })
        .collect();
    if !prefix.is_empty() {
        for kind in ["pod", "deployment", "statefulset", "daemonset", "job"] {
            out.push(Candidate::new(format!("{kind}/"), ""));
        }
    }
    out.retain(|c| c.value.starts_with(prefix));
    out
}

/// Cobra's output: candidates, one a line, then `:DIRECTIVE`. Candidates are filtered by
/// prefix here, so every shell gets the same list.
pub fn render(candidates: &[Candidate], prefix: &str, directive: u32) -> String {
    let mut out = String::new();
    for c in candidates.iter().filter(|c| c.value.starts_with(prefix)) {
        out.push_str(&c.value);
        if !c.description.is_empty() {
            out.push('\t');
            out.push_str(&c.description);
        }
        out.push('\n');
    }
    out.push_str(&format!(":{directive}\n"));
    out
}

/// The directive for a list: no file completion (the names come from the cluster), and no
/// space after a `TYPE/` so its name can follow.
pub fn directive_for(candidates: &[Candidate]) -> u32 {
    if !candidates.is_empty() && candidates.iter().all(|c| c.value.ends_with('/')) {
        directive::NO_FILE_COMP | directive::NO_SPACE
    } else {
        directive::NO_FILE_COMP
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(words: &[&str]) -> Request {
        request(&words.iter().map(|w| w.to_string()).collect::<Vec<_>>())
    }

    fn values(want: &Want) -> Vec<String> {
        match want {
            Want::Fixed(c) => c.iter().map(|c| c.value.clone()).collect(),
            other => panic!("expected fixed candidates, got {other:?}"),
        }
    }

    #[test]
    fn the_first_word_is_the_target() {
        assert_eq!(req(&[""]).want, Want::Target);
        let r = req(&["-n", "shop", "--context=prod", "web"]);
        assert_eq!(r.want, Want::Target);
        assert_eq!(r.prefix, "web");
        // The connection flags on the line are the ones the names are read with.
        assert_eq!(r.kube.namespace.as_deref(), Some("shop"));
        assert_eq!(r.kube.context.as_deref(), Some("prod"));
        // After the target, nothing more is positional.
        assert_eq!(req(&["pod/web", ""]).want, Want::Nothing);
    }

    #[test]
    fn option_values_by_kind() {
        assert_eq!(req(&["-n", ""]).want, Want::Namespace);
        assert_eq!(req(&["--namespace", "ku"]).prefix, "ku");
        assert_eq!(req(&["--node-namespace", ""]).want, Want::Namespace);
        assert_eq!(req(&["--context", ""]).want, Want::Context);
        assert_eq!(req(&["--cluster", ""]).want, Want::Cluster);
        assert_eq!(req(&["--user", ""]).want, Want::User);
        assert_eq!(req(&["--kubeconfig", ""]).want, Want::File);
        assert_eq!(req(&["--output-dir", ""]).want, Want::File);
        assert_eq!(values(&req(&["-o", ""]).want), ["text", "json", "yaml"]);
        assert_eq!(req(&["--token", ""]).want, Want::Nothing);
        // --flag=value completes the value.
        let r = req(&["--namespace=kube-"]);
        assert_eq!((r.want, r.prefix.as_str()), (Want::Namespace, "kube-"));
        let r = req(&["--output=j"]);
        assert_eq!(r.prefix, "j");
    }

    #[test]
    fn containers_of_the_target_on_the_line() {
        let r = req(&["deploy/api", "-n", "shop", "-c", ""]);
        assert_eq!(
            r.want,
            Want::Container {
                target: "deploy/api".into()
            }
        );
        assert_eq!(r.kube.namespace.as_deref(), Some("shop"));
        // Before the target is known there is nothing to list.
        assert_eq!(req(&["-c", ""]).want, Want::Nothing);
    }

    #[test]
    fn flag_names_including_the_connection_flags() {
        let r = req(&["--as"]);
        assert_eq!(values(&r.want), ["--as", "--as-group", "--as-uid"]);
        let all = values(&req(&["--"]).want);
        for flag in [
            "--container",
            "--namespace",
            "--cluster",
            "--user",
            "--request-timeout",
            "--token",
            "--server",
            "--certificate-authority",
            "--insecure-skip-tls-verify",
        ] {
            assert!(all.contains(&flag.to_string()), "{flag} in {all:?}");
        }
        assert!(values(&req(&["-"]).want).contains(&"-c".to_string()));
        // Subcommands have their own flags, and the global ones.
        let cleanup = values(&req(&["cleanup", "--"]).want);
        assert!(cleanup.contains(&"--context".to_string()));
        assert!(!cleanup.contains(&"--container".to_string()));
    }

    #[test]
    fn subcommand_arguments() {
        assert_eq!(req(&["analyze", ""]).want, Want::File);
        assert!(values(&req(&["completions", ""]).want).contains(&"zsh".to_string()));
        assert_eq!(req(&["version", ""]).want, Want::Nothing);
        // Short options with attached values and counted flags do not swallow words.
        let r = req(&["-vv", "-nshop", ""]);
        assert_eq!(r.want, Want::Target);
        assert_eq!(r.kube.namespace.as_deref(), Some("shop"));
    }

    #[test]
    fn target_words_add_subcommands_and_types() {
        let words: Vec<String> = target_words("").into_iter().map(|c| c.value).collect();
        assert_eq!(words, ["analyze", "cleanup", "version", "completions"]);
        let words: Vec<String> = target_words("d").into_iter().map(|c| c.value).collect();
        assert_eq!(words, ["deployment/", "daemonset/"]);
    }

    #[test]
    fn names_from_the_api_carry_their_description() {
        let pod = Candidate::from(PodName {
            name: "web-0".into(),
            phase: "Running".into(),
        });
        assert_eq!(pod, Candidate::new("web-0", "Running"));
        let containers: Vec<Candidate> = [("app", true), ("istio-proxy", false)]
            .map(|(name, examined_by_default)| {
                Candidate::from(ContainerName {
                    name: name.into(),
                    examined_by_default,
                })
            })
            .into();
        assert_eq!(
            containers,
            [
                Candidate::new("app", "examined by default"),
                Candidate::new("istio-proxy", "")
            ]
        );
    }

    #[test]
    fn output_is_cobras_protocol() {
        let c = vec![
            Candidate::new("client-glibc", "Running"),
            Candidate::new("client-musl", ""),
            Candidate::new("other", ""),
        ];
        assert_eq!(
            render(&c, "client-", directive_for(&c)),
            "client-glibc\tRunning\nclient-musl\n:4\n"
        );
        let kinds = vec![Candidate::new("deployment/", "")];
        assert_eq!(
            render(&kinds, "dep", directive_for(&kinds)),
            "deployment/\n:6\n"
        );
        assert_eq!(render(&[], "", directive::DEFAULT), ":0\n");
    }
}
