//! The plugin builds for Linux, macOS and Windows. This machine has the standard library of
//! its own target only, so these tests check, from Linux, what decides whether the other
//! builds can work: the crates a build for each target compiles (not the Linux-only probe,
//! no crate that exists for Linux kernel interfaces), and the plugin's own code (every
//! Unix-only API behind a `cfg` gate). The release workflow then builds each target.

mod platform_support;
mod source_scan;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use platform_support::graph::Graph;
use platform_support::unix_scan::{self, UnixUse};
use source_scan::rust_files;

const NON_LINUX_TARGETS: &[&str] = &[
    "x86_64-apple-darwin",
    "aarch64-apple-darwin",
    "x86_64-pc-windows-msvc",
];

/// Crates whose purpose is a Linux kernel interface (process, netlink, capabilities,
/// seccomp, io_uring, inotify) and the probe: wherever they compile, depending on them
/// unconditionally makes a program Linux-only.
const LINUX_ONLY: &[&str] = &[
    "dns-doctor-probe",
    "procfs",
    "procfs-core",
    "inotify",
    "inotify-sys",
    "netlink-sys",
    "netlink-proto",
    "netlink-packet-core",
    "netlink-packet-route",
    "rtnetlink",
    "caps",
    "prctl",
    "landlock",
    "seccompiler",
    "libseccomp",
    "io-uring",
    "tokio-uring",
];

/// The workspace's crates a plugin build may compile.
const PLUGIN_CRATES: &[&str] = &["kubectl-dns-doctor", "dns-doctor-schema"];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the plugin is inside the workspace")
        .to_path_buf()
}

/// Why a build of `package` for the graph's target would be Linux-only, if it would.
fn linux_only_parts(graph: &Graph, package: &str) -> Vec<String> {
    let compiled = graph.compiled_with(package);
    let mut problems: Vec<String> = compiled
        .iter()
        .filter(|c| LINUX_ONLY.contains(&c.as_str()))
        .map(|c| format!("{package} for {} compiles {c}", graph.target))
        .collect();
    problems.extend(
        compiled
            .intersection(graph.members())
            .filter(|c| !PLUGIN_CRATES.contains(&c.as_str()) && c.as_str() != package)
            .map(|c| {
                format!(
                    "{package} for {} compiles the workspace crate {c}",
                    graph.target
                )
            }),
    );
    problems
}

#[test]
fn builds_for_macos_and_windows_compile_neither_the_probe_nor_linux_only_crates() {
    let root = root();
    for target in NON_LINUX_TARGETS {
        let graph = Graph::load(&root, target);
        let problems = linux_only_parts(&graph, "kubectl-dns-doctor");
        assert!(problems.is_empty(), "{problems:#?}");
        let compiled = graph.compiled_with("kubectl-dns-doctor");
        assert!(compiled.contains("dns-doctor-schema"), "{compiled:?}");
        // The graph really is the target's: its platform-specific crates are in it.
        if target.contains("windows") {
            assert!(compiled.contains("windows-sys"), "{target}: {compiled:?}");
        } else {
            assert!(
                compiled.contains("security-framework") && !compiled.contains("windows-sys"),
                "{target}: {compiled:?}"
            );
        }
    }
}

#[test]
fn the_plugin_no_longer_links_the_probe_on_linux_either() {
    let graph = Graph::load(&root(), "x86_64-unknown-linux-gnu");
    let problems = linux_only_parts(&graph, "kubectl-dns-doctor");
    assert!(problems.is_empty(), "{problems:#?}");
    // The check sees a crate that does link the probe: the test crate, which runs it.
    let problems = linux_only_parts(&graph, "dns-doctor-tests");
    assert!(
        problems
            .iter()
            .any(|p| p.ends_with("compiles dns-doctor-probe")),
        "{problems:#?}"
    );
}

#[test]
fn the_schema_crate_is_plain_data_on_every_target() {
    // serde and its derive macro, nothing else: no libc, no system interface.
    let allowed: BTreeSet<&str> = [
        "dns-doctor-schema",
        "serde",
        "serde_core",
        "serde_derive",
        "proc-macro2",
        "quote",
        "syn",
        "unicode-ident",
    ]
    .into();
    let root = root();
    for target in NON_LINUX_TARGETS
        .iter()
        .chain(&["x86_64-unknown-linux-gnu", "aarch64-unknown-linux-musl"])
    {
        let compiled = Graph::load(&root, target).compiled_with("dns-doctor-schema");
        let extra: Vec<&String> = compiled
            .iter()
            .filter(|c| !allowed.contains(c.as_str()))
            .collect();
        assert!(
            extra.is_empty(),
            "dns-doctor-schema for {target} compiles {extra:?}"
        );
    }
    let scan = unix_scan::scan_crate(&[root.join("debug-image/schema/src/lib.rs")]);
    assert!(
        scan.files
            .contains(&root.join("debug-image/schema/src/protocol.rs")),
        "{:?}",
        scan.files
    );
    assert!(scan.uses.is_empty(), "{:#?}", scan.uses);
}

#[test]
fn every_unix_only_use_in_the_plugin_is_behind_a_cfg_gate() {
    let src = root().join("plugin/src");
    let scan = unix_scan::scan_crate(&[src.join("lib.rs"), src.join("main.rs")]);
    let mut on_disk = BTreeSet::new();
    rust_files(&src, &mut on_disk);
    let unscanned: Vec<_> = on_disk.difference(&scan.files).collect();
    assert!(
        unscanned.is_empty(),
        "not reached from lib.rs or main.rs: {unscanned:?}"
    );

    let ungated: Vec<&UnixUse> = scan.uses.iter().filter(|u| !u.gated).collect();
    assert!(
        ungated.is_empty(),
        "Unix-only APIs used without #[cfg(unix)] (the plugin must build for Windows; put \
         platform code in private_fs.rs or behind a cfg gate):\n{ungated:#?}"
    );
    // The scan sees the gated code that exists: the file modes and SIGTERM.
    for (file, what) in [
        ("private_fs.rs", "std::os::unix::fs::DirBuilderExt"),
        ("private_fs.rs", ".mode()"),
        ("app.rs", "tokio::signal::unix::signal"),
    ] {
        assert!(
            scan.uses
                .iter()
                .any(|u| u.file == src.join(file) && u.what == what && u.gated),
            "{file}: {what} not found: {:#?}",
            scan.uses
        );
    }
}

#[test]
fn the_scan_finds_ungated_uses_however_they_are_written() {
    let source = r#"
use std::os::{
    unix::fs::PermissionsExt,
};
fn open(o: &mut tokio::fs::OpenOptions) {
    o.write(true)
        .mode(0o600);
}
#[cfg(unix)]
fn link() {
    std::os::unix::fs::symlink("a", "b").unwrap();
}
#[cfg(all(test, unix))]
mod tests {
    use libc::getpid;
}
extern crate libc;
#[cfg(not(unix))]
fn pid(libc: u32) -> u32 {
    libc::getpid() as u32 + libc
}
async fn wait() {
    tokio::select! {
        _ = tokio::signal::
            unix::signal(kind) => {}
    }
}
fn gated_block() {
    #[cfg(target_os = "linux")]
    {
        nix::unistd::getpid();
    }
    let p = std::fs::Permissions::from_mode(0o600);
}
"#;
    let (uses, children) = unix_scan::scan_source(Path::new("sample.rs"), source, false);
    let found: Vec<(usize, &str, bool)> = uses
        .iter()
        .map(|u| (u.line, u.what.as_str(), u.gated))
        .collect();
    assert_eq!(
        found,
        [
            (2, "std::os::unix::fs::PermissionsExt", false),
            (7, ".mode()", false),
            (11, "std::os::unix::fs::symlink", true),
            (15, "libc::getpid", true),
            (17, "libc", false),
            (20, "libc::getpid", false),
            (24, "tokio::signal::unix::signal", false),
            (31, "nix::unistd::getpid", true),
            (33, "std::fs::Permissions::from_mode", false),
        ]
    );
    assert!(children.is_empty());
    // A module declared behind a gate passes the gate to its file.
    let (_, children) = unix_scan::scan_source(
        Path::new("src/lib.rs"),
        "#[cfg(unix)]\nmod unix;\nmod all;",
        false,
    );
    assert_eq!(
        children,
        [
            (PathBuf::from("src/unix/mod.rs"), true),
            (PathBuf::from("src/all/mod.rs"), false)
        ]
    );
}
