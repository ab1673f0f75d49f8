//! Directories and files only the user may read: captures and node dumps contain names and
//! addresses. The one place with platform-specific file code.
//!
//! On Unix directories are created 0700 and files 0600. Windows has no mode bits: a new file
//! or directory inherits the ACL of its parent, so under the user's profile (the temporary
//! directory is `%LOCALAPPDATA%\Temp`) only the user, SYSTEM and Administrators can read it,
//! and an `--output-dir` elsewhere gets that place's ACL.

use std::fs::{File, OpenOptions};
use std::io;
use std::path::Path;

/// Creates `dir` and its missing parents, each private. An existing directory is kept as
/// it is: its mode is not changed, so pointing `--output-dir` at /tmp cannot lock others out.
pub fn create_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
    }
    #[cfg(not(unix))]
    {
        std::fs::create_dir_all(dir)
    }
}

/// Options that create (or truncate) a file for writing, private when it is new. Use
/// [`restrict_to_owner`] on the opened file when an older, wider file may be reused.
pub fn file_options() -> OpenOptions {
    let mut opts = OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    opts
}

/// Makes an open file private, whatever its mode was: creation modes apply only to new
/// files. Nothing to do on Windows, where the file keeps the ACL it inherited.
pub fn restrict_to_owner(file: &File) -> io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))
    }
    #[cfg(not(unix))]
    {
        let _ = file;
        Ok(())
    }
}

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn new_directories_are_private_and_existing_ones_keep_their_mode() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let deep = tmp.path().join("a").join("b");
        create_dir(&deep).unwrap();
        assert_eq!(mode(&tmp.path().join("a")), 0o700);
        assert_eq!(mode(&deep), 0o700);
        create_dir(tmp.path()).unwrap();
        assert_eq!(mode(tmp.path()), 0o755);
    }

    #[test]
    fn new_files_are_private_and_an_older_wider_one_is_narrowed() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("capture.pcap");
        drop(file_options().open(&path).unwrap());
        assert_eq!(mode(&path), 0o600);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let f = file_options().open(&path).unwrap();
        assert_eq!(mode(&path), 0o644, "creation modes apply to new files only");
        restrict_to_owner(&f).unwrap();
        assert_eq!(mode(&path), 0o600);
    }
}
