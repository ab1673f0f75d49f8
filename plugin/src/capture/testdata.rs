//! The real captures the unit tests read: this repository's fixtures and tcpdump's test
//! suite.

use std::path::{Path, PathBuf};

/// The pcap and pcapng files in `dir`, sorted.
pub fn captures(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .filter(|p| {
            matches!(
                p.extension().and_then(|e| e.to_str()),
                Some("pcap" | "pcapng")
            )
        })
        .collect();
    v.sort();
    v
}

/// tests/fixtures/captures.
pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/captures")
}

/// tcpdump's test captures, in `shared/testdata` beside the repository or beside a folder
/// holding it (a worktree's).
pub fn tcpdump_suite() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest
        .ancestors()
        .map(|a| a.join("shared/testdata/tcpdump-captures"))
        .find(|d| d.is_dir())
        .unwrap_or_else(|| {
            panic!(
                "tcpdump test captures missing: no shared/testdata/tcpdump-captures beside {} \
                 or a folder above it",
                manifest.display()
            )
        })
}
