//! Files and directories only the shop's own user may read: the data
//! directory holds password hashes, emails, orders and secrets, so what a
//! service creates there is 0700 (directories) and 0600 (files), whatever
//! the process umask would have allowed.
//!
//! Directories that already exist keep their mode: one an operator made
//! (`--data-dir .`, a mounted volume) is theirs to set. Files the shop owns
//! (a SQLite database and its `-wal`/`-shm`) are tightened at start, so an
//! installation from before this rule becomes private too.

use std::fs::{DirBuilder, OpenOptions, Permissions};
use std::io::{ErrorKind, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

pub const DIR_MODE: u32 = 0o700;
pub const FILE_MODE: u32 = 0o600;

/// Creates `path` and any missing parents, each of them 0700.
pub fn create_dir(path: &Path) -> std::io::Result<()> {
    DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(path)
}

/// Makes sure the file at `path` exists and is 0600 (creating it empty if
/// absent, as SQLite would, but private). SQLite gives the `-wal` and
/// `-shm` files it creates later the database file's mode.
pub fn create_file(path: &Path) -> std::io::Result<()> {
    OpenOptions::new()
        .append(true)
        .create(true)
        .mode(FILE_MODE)
        .open(path)?;
    restrict(path)
}

/// Sets an existing file to 0600; a file that does not exist is fine.
pub fn restrict(path: &Path) -> std::io::Result<()> {
    match std::fs::metadata(path) {
        Ok(m) if m.permissions().mode() & 0o777 != FILE_MODE => {
            std::fs::set_permissions(path, Permissions::from_mode(FILE_MODE))
        }
        Ok(_) => Ok(()),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Writes `bytes` to the file at `path` (replacing its content), 0600.
pub fn write(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .truncate(true)
        .create(true)
        .mode(FILE_MODE)
        .open(path)?;
    file.write_all(bytes)?;
    restrict(path)
}

/// The permission bits of `path` (for tests and checks).
pub fn mode(path: &Path) -> std::io::Result<u32> {
    Ok(std::fs::metadata(path)?.permissions().mode() & 0o777)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directories_files_and_rewrites_are_private() {
        let tmp = tempfile::tempdir().unwrap();
        let nested = tmp.path().join("a").join("b");
        create_dir(&nested).unwrap();
        assert_eq!(mode(&tmp.path().join("a")).unwrap(), 0o700);
        assert_eq!(mode(&nested).unwrap(), 0o700);

        let file = nested.join("x.db");
        create_file(&file).unwrap();
        assert_eq!(mode(&file).unwrap(), 0o600);

        // A file from before (0644) is tightened, its content kept.
        let old = nested.join("old");
        std::fs::write(&old, b"kept").unwrap();
        std::fs::set_permissions(&old, Permissions::from_mode(0o644)).unwrap();
        create_file(&old).unwrap();
        assert_eq!(mode(&old).unwrap(), 0o600);
        assert_eq!(std::fs::read(&old).unwrap(), b"kept");

        let pid = nested.join("pid");
        std::fs::write(&pid, b"old content that is longer").unwrap();
        write(&pid, b"42\n").unwrap();
        assert_eq!(mode(&pid).unwrap(), 0o600);
        assert_eq!(std::fs::read(&pid).unwrap(), b"42\n");

        assert!(restrict(&nested.join("absent")).is_ok());
    }
}
