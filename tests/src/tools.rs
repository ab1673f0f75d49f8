//! Tools the tests build from their Go modules (`go install`, through the Go module proxy),
//! once, into a cache outside the repository: `$DNS_DOCTOR_TOOLS_CACHE`, by default
//! `/var/cache/dns-doctor-tools`, one folder per tool and version.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::cmd;

/// The Go toolchain: `$GO`, else `/usr/local/go/bin/go`, else `go` on `PATH`.
pub fn go() -> PathBuf {
    if let Some(go) = std::env::var_os("GO") {
        return PathBuf::from(go);
    }
    let usual = Path::new("/usr/local/go/bin/go");
    if usual.is_file() {
        return usual.to_path_buf();
    }
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join("go"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!("no Go toolchain: set GO, or install Go at /usr/local/go or on PATH")
        })
}

/// The binary `name` of the Go package `package` at module version `version`, built with
/// `go install` on first use. The build goes to a scratch folder beside the cache entry and is
/// renamed into place whole, so an interrupted build never looks cached.
pub fn go_install(package: &str, version: &str, name: &str) -> PathBuf {
    let cache = std::env::var_os("DNS_DOCTOR_TOOLS_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/dns-doctor-tools"));
    let dir = cache.join(format!("{name}-{version}"));
    let binary = dir.join(name);
    if binary.is_file() {
        return binary;
    }
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| {
        panic!(
            "cannot create {} for {name} ({e}); set DNS_DOCTOR_TOOLS_CACHE to a writable folder",
            dir.display()
        )
    });
    let scratch = tempfile::tempdir_in(&cache).expect("scratch folder in the tools cache");
    let mut child = Command::new(go())
        .args(["install", &format!("{package}@{version}")])
        .env("GOBIN", scratch.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start go install {package}@{version}: {e}"));
    let stderr = cmd::drain(child.stderr.take());
    let limit = Duration::from_secs(1200);
    let status = cmd::wait_or_kill(&mut child, limit)
        .unwrap_or_else(|| panic!("go install {package}@{version} still running after {limit:?}"));
    assert!(
        status.success(),
        "go install {package}@{version} failed ({status}):\n{}",
        stderr.join().unwrap_or_default()
    );
    std::fs::rename(scratch.path().join(name), &binary)
        .unwrap_or_else(|e| panic!("moving {name} into {}: {e}", dir.display()));
    binary
}
