//! The suite's own scripts, checked the way a fresh machine would check them: every
//! command they (and the Rust tests) start is in `tests/commands.tsv`, which
//! `tests/install-deps` installs from; and no pipeline ends in a reader that may exit
//! early, which under `set -o pipefail` makes a match look like a failure (exit 141).

use std::collections::BTreeSet;

use dns_doctor_tests::scripts::{self, Kind, COMMANDS_FILE};

#[test]
fn every_command_the_suite_runs_is_installed_by_install_deps() {
    let root = scripts::root();
    let listed = scripts::read_commands(&root);
    let used = scripts::used_commands(&root);
    let mut problems = Vec::new();
    for (command, files) in &used {
        let Some(row) = listed.iter().find(|n| &n.command == command) else {
            let where_: Vec<String> = files
                .iter()
                .map(|(f, lines)| format!("{f}:{}", lines[0]))
                .collect();
            problems.push(format!(
                "`{command}` is run ({}) but not listed in {COMMANDS_FILE}: add\n    {command}\t<debian package>\t{}",
                where_.join(", "),
                files.keys().cloned().collect::<Vec<_>>().join(",")
            ));
            continue;
        };
        let missing: Vec<&String> = files.keys().filter(|f| !row.used_by.contains(*f)).collect();
        if !missing.is_empty() {
            problems.push(format!(
                "`{command}` is also run by {missing:?}: add them to its used-by column in {COMMANDS_FILE}"
            ));
        }
    }
    for row in &listed {
        for f in &row.used_by {
            if !root.join(f).exists() {
                problems.push(format!(
                    "{COMMANDS_FILE}: `{}` names {f}, which does not exist",
                    row.command
                ));
            }
        }
        if row.command.starts_with('/') && !used.contains_key(&row.command) {
            // A file needed at run time that no script names (a program the probe starts).
            continue;
        }
        let Some(files) = used.get(&row.command) else {
            problems.push(format!(
                "{COMMANDS_FILE} lists `{}`, which nothing in the suite runs any more: remove the row",
                row.command
            ));
            continue;
        };
        let stale: Vec<&String> = row
            .used_by
            .iter()
            .filter(|f| !files.contains_key(*f))
            .collect();
        if !stale.is_empty() {
            problems.push(format!(
                "{COMMANDS_FILE}: `{}` is no longer run by {stale:?}: drop them from its used-by column",
                row.command
            ));
        }
        assert!(
            !row.package.is_empty() && !row.package.contains(' '),
            "{COMMANDS_FILE}: `{}` needs one Debian package (or @toolchain)",
            row.command
        );
    }
    assert!(problems.is_empty(), "\n{}\n", problems.join("\n"));
    // The scan really sees the suite: the commands CI failed on once are found.
    for known in ["dig", "iptables", "tcpdump", "shfmt"] {
        assert!(
            used.contains_key(known),
            "the scan no longer finds `{known}`: {used:#?}"
        );
    }
}

#[test]
fn no_pipeline_ends_in_a_reader_that_exits_early() {
    let root = scripts::root();
    let mut found = Vec::new();
    for (rel, kind) in scripts::scanned_files(&root) {
        if kind != Kind::Shell {
            continue;
        }
        let source = std::fs::read_to_string(root.join(&rel)).expect("readable");
        let tree = scripts::parse_shell(&source, &rel);
        found.extend(scripts::early_readers(&rel, &tree));
    }
    let lines: Vec<String> = found
        .iter()
        .map(|e| format!("{}:{}: … | {}", e.file, e.line, e.reader))
        .collect();
    assert!(
        found.is_empty(),
        "these pipelines end in a reader that can exit before the writer is done; under \
         `set -o pipefail` the writer's SIGPIPE (141) fails the pipeline at random. Read the \
         writer's output into a variable first, or let the reader consume everything \
         (`grep … >/dev/null` instead of `grep -q`):\n{}",
        lines.join("\n")
    );
}

/// The scanner itself, on scripts whose answer is known.
#[test]
fn the_scan_sees_wrapped_commands_and_early_readers() {
    let tree = scripts::parse_shell(
        r#"
f() { dig +short x; }
timeout -s KILL 5 tcpdump -i any
ip netns exec ns1 conntrack -L | grep -c x
in_node 2 sysctl -n net.netfilter.nf_conntrack_count
node_exec "$n" dnsperf -s x &
xargs -r -n1 kill <list
bash -c 'nft list ruleset'
command -v optional-tool
env A=1 B=2 jq . f
if iptables -S | grep --quiet DROP; then f; fi
x=$(ss -lun | head -n 1)
echo "$x" | awk '/a/ {print; exit}'
"$dir/ours" && tests/cluster/up
"#,
        "sample",
    );
    let mut cmds = BTreeSet::new();
    let defined = scripts::functions(&tree);
    for call in scripts::calls(&tree) {
        cmds.extend(
            scripts::commands_of(&call)
                .into_iter()
                .filter(|c| !defined.contains(c) && !c.contains('/')),
        );
    }
    let want: BTreeSet<String> = [
        "awk",
        "bash",
        "conntrack",
        "dig",
        "dnsperf",
        "env",
        "grep",
        "head",
        "ip",
        "iptables",
        "jq",
        "nft",
        "ss",
        "sysctl",
        "tcpdump",
        "timeout",
        "xargs",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert_eq!(cmds, want);
    let early: Vec<String> = scripts::early_readers("sample", &tree)
        .into_iter()
        .map(|e| e.reader)
        .collect();
    assert_eq!(
        early,
        ["grep --quiet DROP", "head -n 1", "awk /a/ {print; exit}"]
    );
}

#[test]
fn rust_tests_are_scanned_for_the_programs_they_start() {
    let src = r#"
        let out = Command::new("tshark").arg("-r");
        cmd::run(&["ip", "netns", "exec", "client", "dig", "+short"], STEP);
        // cmd::run(&["not-run"]) in a comment
        cmd::run_input(&["ip", "netns", "exec", node, "iptables-restore", "--noflush"], x, y);
        netns.exec("client", &["getent", "hosts", "x"]);
    "#;
    let got: Vec<String> = scripts::rust_commands(src)
        .into_iter()
        .map(|(c, _)| c)
        .collect();
    assert_eq!(
        got,
        ["tshark", "ip", "dig", "ip", "iptables-restore", "getent"]
    );
}
