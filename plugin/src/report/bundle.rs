//! The evidence bundle: a directory holding the pcaps (put there by the capture step) and
//! what this module writes next to them: topology.json, evidence.json, the raw node
//! snapshots, report.json and report.txt. Captures contain names and addresses, so the
//! directory and every file are private (0700 and 0600 on Unix; see [`crate::private_fs`]).

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::evidence::Evidence;
use crate::private_fs;
use crate::topology::Topology;

use super::Report;

#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("cannot create directory {path}")]
    CreateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot serialise {what}")]
    Serialize {
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },
}

/// Creates `dir` (and missing parents) private (0700 on Unix). An existing directory is kept
/// as it is: its mode is not changed, so pointing `--output-dir` at /tmp cannot lock others out.
pub fn create_dir(dir: &Path) -> Result<(), BundleError> {
    if dir.is_dir() {
        return Ok(());
    }
    private_fs::create_dir(dir).map_err(|source| BundleError::CreateDir {
        path: dir.to_path_buf(),
        source,
    })
}

/// Creates (or truncates) a private file (0600 on Unix) for writing, e.g. a pcap streamed
/// into the bundle.
pub fn create_private_file(path: &Path) -> Result<File, BundleError> {
    let err = |source| BundleError::Write {
        path: path.to_path_buf(),
        source,
    };
    let f = private_fs::file_options().open(path).map_err(err)?;
    private_fs::restrict_to_owner(&f).map_err(err)?;
    Ok(f)
}

/// Writes one private file (0600 on Unix), replacing an existing one.
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<(), BundleError> {
    create_private_file(path)?
        .write_all(bytes)
        .map_err(|source| BundleError::Write {
            path: path.to_path_buf(),
            source,
        })
}

/// A file-name-safe form of a node name, command key or path: only `[A-Za-z0-9._-]`, and
/// never `.` or `..`.
pub fn safe_name(s: &str) -> String {
    let cleaned: String = s
        .trim_start_matches('/')
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if cleaned.is_empty() || cleaned.chars().all(|c| c == '.') {
        format!("_{cleaned}")
    } else {
        cleaned
    }
}

fn json<T: serde::Serialize>(what: &'static str, v: &T) -> Result<Vec<u8>, BundleError> {
    let mut bytes =
        serde_json::to_vec_pretty(v).map_err(|source| BundleError::Serialize { what, source })?;
    bytes.push(b'\n');
    Ok(bytes)
}

/// Writes the bundle's files into `dir` (created 0700 when missing) and returns their
/// paths: topology.json, evidence.json, `nodes/<node>/<command key>.txt` (stdout; stderr in
/// `.stderr.txt` when there is any), `nodes/<node>/files/<path>.txt`, report.json and
/// `report_text` as report.txt.
pub fn write_bundle(
    dir: &Path,
    topology: &Topology,
    evidence: &Evidence,
    report: &Report,
    report_text: &str,
) -> Result<Vec<PathBuf>, BundleError> {
    create_dir(dir)?;
    let mut written = Vec::new();
    let mut put = |path: PathBuf, bytes: &[u8]| -> Result<(), BundleError> {
        write_private(&path, bytes)?;
        written.push(path);
        Ok(())
    };
    put(dir.join("topology.json"), &json("topology", topology)?)?;
    put(dir.join("evidence.json"), &json("evidence", evidence)?)?;
    for n in &evidence.nodes {
        let node_dir = dir.join("nodes").join(safe_name(&n.node));
        create_dir(&node_dir)?;
        for c in &n.snapshot.commands {
            put(
                node_dir.join(format!("{}.txt", safe_name(&c.key))),
                c.stdout.as_bytes(),
            )?;
            if !c.stderr.is_empty() {
                put(
                    node_dir.join(format!("{}.stderr.txt", safe_name(&c.key))),
                    c.stderr.as_bytes(),
                )?;
            }
        }
        let readable: Vec<_> = n
            .snapshot
            .files
            .iter()
            .filter(|f| f.content.is_some())
            .collect();
        if !readable.is_empty() {
            let files_dir = node_dir.join("files");
            create_dir(&files_dir)?;
            for f in readable {
                let content = f.content.as_deref().unwrap_or_default();
                put(
                    files_dir.join(format!("{}.txt", safe_name(&f.path))),
                    content.as_bytes(),
                )?;
            }
        }
    }
    put(dir.join("report.json"), &json("report", report)?)?;
    put(dir.join("report.txt"), report_text.as_bytes())?;
    Ok(written)
}
