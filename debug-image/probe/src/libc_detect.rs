//! Which libc the target container's resolver uses, seen through `/proc/<pid>`.
//!
//! The remediation for lost parallel A/AAAA replies differs (single-request-reopen exists
//! only in glibc), so the plugin needs to know. The decisive evidence is the container's
//! main executable: its ELF interpreter names the libc, and an executable without one is
//! static, resolving names with its own runtime (Go's resolver, a libc linked in) whatever
//! libc files the image also holds. The libc files in the root filesystem are only the
//! fallback when the executable cannot be read. An image can hold both libcs (Debian's
//! `musl` package installs `/lib/ld-musl-*.so.1` beside glibc), which is why the
//! interpreter wins.

use crate::schema::{LibcDetection, LibcKind};
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

/// Command names (as in `/proc/<pid>/comm`, at most 15 bytes) that are never the target:
/// the sandbox's pause process and other probe runs.
const SKIPPED_COMMS: [&str; 2] = ["pause", "dns-doctor-prob"];

/// Program headers sit near the start of an executable; this is far more than enough.
const ELF_READ_LIMIT: u64 = 64 * 1024;

/// Finds the first process under `proc_root` that is neither `self_pid` nor a skipped one,
/// and decides its libc. Never fails: what could not be seen is reported as `NotVisible`.
pub fn detect(proc_root: &Path, self_pid: u32) -> LibcDetection {
    let Some(pid) = target_pid(proc_root, self_pid) else {
        return LibcDetection {
            kind: LibcKind::NotVisible,
            pid: None,
            evidence: None,
        };
    };
    let proc_dir = proc_root.join(pid.to_string());
    let root = proc_dir.join("root");
    if fs::read_dir(&root).is_err() {
        return LibcDetection {
            kind: LibcKind::NotVisible,
            pid: Some(pid),
            evidence: None,
        };
    }
    let exe = proc_dir.join("exe");
    match read_linking(&exe) {
        Some(ElfLinking::Dynamic(interp)) => {
            let kind = kind_of_interpreter(&interp).unwrap_or(LibcKind::Unknown);
            return LibcDetection {
                kind,
                pid: Some(pid),
                evidence: Some(format!("{}: ELF interpreter {interp}", exe.display())),
            };
        }
        Some(ElfLinking::Static) => {
            return LibcDetection {
                kind: LibcKind::Static,
                pid: Some(pid),
                evidence: Some(format!(
                    "{}: static ELF executable (no interpreter)",
                    exe.display()
                )),
            };
        }
        None => {}
    }
    match scan_root(&root) {
        Some((kind, file)) => LibcDetection {
            kind,
            pid: Some(pid),
            evidence: Some(file.display().to_string()),
        },
        None => LibcDetection {
            kind: LibcKind::Unknown,
            pid: Some(pid),
            evidence: None,
        },
    }
}

fn target_pid(proc_root: &Path, self_pid: u32) -> Option<u32> {
    let mut pids: Vec<u32> = fs::read_dir(proc_root)
        .ok()?
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .filter(|&pid| pid != self_pid)
        .collect();
    pids.sort_unstable();
    pids.into_iter().find(|pid| {
        let comm =
            fs::read_to_string(proc_root.join(pid.to_string()).join("comm")).unwrap_or_default();
        !SKIPPED_COMMS.contains(&comm.trim_end())
    })
}

fn read_linking(exe: &Path) -> Option<ElfLinking> {
    let mut bytes = Vec::new();
    fs::File::open(exe)
        .ok()?
        .take(ELF_READ_LIMIT)
        .read_to_end(&mut bytes)
        .ok()?;
    elf_linking(&bytes)
}

fn kind_of_interpreter(interp: &str) -> Option<LibcKind> {
    let file = interp.rsplit('/').next().unwrap_or(interp);
    if file.starts_with("ld-musl") {
        Some(LibcKind::Musl)
    } else if file.starts_with("ld-linux") || file.starts_with("ld64.so") || file == "ld.so.1" {
        Some(LibcKind::Glibc)
    } else {
        None
    }
}

/// How an ELF executable is linked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ElfLinking {
    /// Its PT_INTERP program header names this loader, e.g. `/lib/ld-musl-x86_64.so.1`.
    Dynamic(String),
    /// Its program headers are complete and none is PT_INTERP: no libc from the image is
    /// loaded.
    Static,
}

/// How an ELF executable (32 or 64 bit, either byte order) is linked, or None for a script
/// or anything whose ELF header and program headers are not complete within `bytes`.
pub fn elf_linking(bytes: &[u8]) -> Option<ElfLinking> {
    const PT_INTERP: u32 = 3;
    if bytes.get(..4)? != b"\x7fELF" {
        return None;
    }
    let wide = match bytes.get(4)? {
        1 => false,
        2 => true,
        _ => return None,
    };
    let little = match bytes.get(5)? {
        1 => true,
        2 => false,
        _ => return None,
    };
    let read = |offset: usize, size: usize| -> Option<u64> {
        let field = bytes.get(offset..offset.checked_add(size)?)?;
        let mut buf = [0u8; 8];
        if little {
            buf[..size].copy_from_slice(field);
            Some(u64::from_le_bytes(buf))
        } else {
            buf[8 - size..].copy_from_slice(field);
            Some(u64::from_be_bytes(buf))
        }
    };
    let word = if wide { 8 } else { 4 };
    let (phoff, phentsize, phnum) = if wide {
        (read(0x20, 8)?, read(0x36, 2)?, read(0x38, 2)?)
    } else {
        (read(0x1c, 4)?, read(0x2a, 2)?, read(0x2c, 2)?)
    };
    let (off_field, size_field) = if wide { (0x08, 0x20) } else { (0x04, 0x10) };
    // An executable always has program headers; without them this is no executable (or an
    // object file) and says nothing about how the process was started.
    if phnum == 0 {
        return None;
    }
    for i in 0..phnum {
        let header = usize::try_from(phoff.checked_add(i.checked_mul(phentsize)?)?).ok()?;
        if read(header, 4)? != u64::from(PT_INTERP) {
            continue;
        }
        let offset = usize::try_from(read(header + off_field, word)?).ok()?;
        let size = usize::try_from(read(header + size_field, word)?).ok()?;
        let raw = bytes.get(offset..offset.checked_add(size)?)?;
        let text = raw.split(|&b| b == 0).next()?;
        return String::from_utf8(text.to_vec())
            .ok()
            .map(ElfLinking::Dynamic);
    }
    Some(ElfLinking::Static)
}

/// Looks for a libc's loader or library in the usual places of a root filesystem; musl first,
/// since a musl image with a glibc compatibility shim still resolves through musl.
fn scan_root(root: &Path) -> Option<(LibcKind, PathBuf)> {
    const DIRS: [&str; 4] = ["lib", "usr/lib", "lib64", "usr/lib64"];
    let entries = |dir: &Path| -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = fs::read_dir(dir)
            .map(|rd| rd.filter_map(|e| Some(e.ok()?.path())).collect())
            .unwrap_or_default();
        files.sort();
        files
    };
    let file_name = |p: &Path| {
        p.file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_owned()
    };
    for dir in DIRS {
        if let Some(found) = entries(&root.join(dir)).into_iter().find(|p| {
            let name = file_name(p);
            name.starts_with("ld-musl-") && name.ends_with(".so.1")
        }) {
            return Some((LibcKind::Musl, found));
        }
    }
    for dir in DIRS {
        for path in entries(&root.join(dir)) {
            let name = file_name(&path);
            if name == "libc.so.6" || name.starts_with("ld-linux") {
                return Some((LibcKind::Glibc, path));
            }
            // Debian-style multiarch directories, e.g. lib/x86_64-linux-gnu/libc.so.6.
            if name.ends_with("-linux-gnu") && path.join("libc.so.6").exists() {
                return Some((LibcKind::Glibc, path.join("libc.so.6")));
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(path: &Path) {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, b"").unwrap();
    }

    fn process(proc_root: &Path, pid: u32, comm: &str) -> PathBuf {
        let dir = proc_root.join(pid.to_string());
        fs::create_dir_all(dir.join("root")).unwrap();
        fs::write(dir.join("comm"), format!("{comm}\n")).unwrap();
        dir
    }

    /// A minimal 64-bit little-endian ELF header with one PT_INTERP program header.
    fn elf64_with_interp(interp: &str) -> Vec<u8> {
        let mut b = vec![0u8; 0x78];
        b[..4].copy_from_slice(b"\x7fELF");
        b[4] = 2;
        b[5] = 1;
        b[0x20..0x28].copy_from_slice(&0x40u64.to_le_bytes());
        b[0x36..0x38].copy_from_slice(&0x38u16.to_le_bytes());
        b[0x38..0x3a].copy_from_slice(&1u16.to_le_bytes());
        b[0x40..0x44].copy_from_slice(&3u32.to_le_bytes());
        let offset = b.len() as u64;
        b[0x48..0x50].copy_from_slice(&offset.to_le_bytes());
        b[0x60..0x68].copy_from_slice(&(interp.len() as u64 + 1).to_le_bytes());
        b.extend_from_slice(interp.as_bytes());
        b.push(0);
        b
    }

    #[test]
    fn skips_itself_and_pause_and_finds_musl_files() {
        let tmp = tempfile::tempdir().unwrap();
        process(tmp.path(), 1, "pause");
        process(tmp.path(), 5, "dns-doctor-prob");
        let target = process(tmp.path(), 7, "nginx");
        touch(&target.join("root/lib/ld-musl-x86_64.so.1"));
        touch(&target.join("root/usr/lib/libc.so.6"));
        let found = detect(tmp.path(), 9);
        assert_eq!(found.kind, LibcKind::Musl);
        assert_eq!(found.pid, Some(7));
        assert!(found
            .evidence
            .unwrap()
            .ends_with("7/root/lib/ld-musl-x86_64.so.1"));
    }

    #[test]
    fn finds_glibc_in_a_multiarch_directory() {
        let tmp = tempfile::tempdir().unwrap();
        let target = process(tmp.path(), 3, "app");
        touch(&target.join("root/lib/x86_64-linux-gnu/libc.so.6"));
        let found = detect(tmp.path(), 100);
        assert_eq!(found.kind, LibcKind::Glibc);
        assert!(found
            .evidence
            .unwrap()
            .ends_with("root/lib/x86_64-linux-gnu/libc.so.6"));
    }

    #[test]
    fn the_interpreter_of_the_executable_wins_over_files() {
        let tmp = tempfile::tempdir().unwrap();
        let target = process(tmp.path(), 4, "app");
        touch(&target.join("root/lib/x86_64-linux-gnu/libc.so.6"));
        fs::write(
            target.join("exe"),
            elf64_with_interp("/lib/ld-musl-x86_64.so.1"),
        )
        .unwrap();
        let found = detect(tmp.path(), 100);
        assert_eq!(found.kind, LibcKind::Musl);
        assert!(found
            .evidence
            .unwrap()
            .contains("ELF interpreter /lib/ld-musl-x86_64.so.1"));
    }

    #[test]
    fn an_empty_root_is_unknown_and_no_process_is_not_visible() {
        let tmp = tempfile::tempdir().unwrap();
        assert_eq!(detect(tmp.path(), 1).kind, LibcKind::NotVisible);
        process(tmp.path(), 2, "static-app");
        let found = detect(tmp.path(), 1);
        assert_eq!((found.kind, found.pid), (LibcKind::Unknown, Some(2)));
    }

    #[test]
    fn an_unreadable_root_is_not_visible() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("8");
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("comm"), "app\n").unwrap();
        let found = detect(tmp.path(), 1);
        assert_eq!((found.kind, found.pid), (LibcKind::NotVisible, Some(8)));
    }

    /// The system's shell, not this test binary: a musl build of the tests is static.
    #[test]
    fn reads_the_interpreter_of_a_real_dynamic_executable() {
        let bytes = fs::read("/bin/sh").unwrap();
        let Some(ElfLinking::Dynamic(interp)) = elf_linking(&bytes) else {
            panic!("/bin/sh of this Debian machine is dynamically linked against glibc");
        };
        assert_eq!(kind_of_interpreter(&interp), Some(LibcKind::Glibc));
    }

    /// A real static executable, built by gcc without any libc (the smallest program that
    /// links), has no interpreter: the process is static whatever libc files its image holds.
    #[test]
    fn a_real_static_executable_is_static_despite_libc_files_in_its_root() {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("app.c");
        fs::write(&src, "void _start(void) { for (;;) {} }\n").unwrap();
        let bin = tmp.path().join("static-app");
        let out = std::process::Command::new("gcc")
            .args(["-static", "-nostdlib", "-o"])
            .arg(&bin)
            .arg(&src)
            .output()
            .expect("gcc runs");
        assert!(out.status.success(), "gcc: {out:?}");
        assert_eq!(
            elf_linking(&fs::read(&bin).unwrap()),
            Some(ElfLinking::Static)
        );

        let proc_root = tmp.path().join("proc");
        let target = process(&proc_root, 4, "static-app");
        touch(&target.join("root/lib/x86_64-linux-gnu/libc.so.6"));
        touch(&target.join("root/lib/ld-musl-x86_64.so.1"));
        fs::copy(&bin, target.join("exe")).unwrap();
        let found = detect(&proc_root, 100);
        assert_eq!((found.kind, found.pid), (LibcKind::Static, Some(4)));
        let evidence = found.evidence.unwrap();
        assert!(
            evidence.ends_with("4/exe: static ELF executable (no interpreter)"),
            "{evidence}"
        );
    }

    #[test]
    fn an_unrecognised_interpreter_is_unknown_not_a_guess_from_files() {
        let tmp = tempfile::tempdir().unwrap();
        let target = process(tmp.path(), 4, "app");
        touch(&target.join("root/lib/x86_64-linux-gnu/libc.so.6"));
        fs::write(target.join("exe"), elf64_with_interp("/lib/ld-uClibc.so.0")).unwrap();
        let found = detect(tmp.path(), 100);
        assert_eq!(found.kind, LibcKind::Unknown);
        assert!(found.evidence.unwrap().contains("ld-uClibc.so.0"));
    }

    #[test]
    fn an_unreadable_executable_falls_back_to_the_files() {
        let tmp = tempfile::tempdir().unwrap();
        let target = process(tmp.path(), 4, "app");
        touch(&target.join("root/lib/ld-musl-x86_64.so.1"));
        // A script's text, or an ELF cut short: nothing to decide from.
        fs::write(target.join("exe"), b"#!/bin/sh\n").unwrap();
        assert_eq!(detect(tmp.path(), 100).kind, LibcKind::Musl);
        let cut = elf64_with_interp("/lib64/ld-linux-x86-64.so.2");
        fs::write(target.join("exe"), &cut[..0x50]).unwrap();
        assert_eq!(detect(tmp.path(), 100).kind, LibcKind::Musl);
    }

    #[test]
    fn non_elf_and_truncated_input_is_undecided() {
        assert_eq!(elf_linking(b"#!/bin/sh\n"), None);
        let full = elf64_with_interp("/lib64/ld-linux-x86-64.so.2");
        assert_eq!(
            elf_linking(&full),
            Some(ElfLinking::Dynamic("/lib64/ld-linux-x86-64.so.2".into()))
        );
        assert_eq!(elf_linking(&full[..0x50]), None);
        // Without program headers it is no executable, so not "static" either.
        let mut no_headers = full.clone();
        no_headers[0x38..0x3a].copy_from_slice(&0u16.to_le_bytes());
        assert_eq!(elf_linking(&no_headers), None);
    }
}
