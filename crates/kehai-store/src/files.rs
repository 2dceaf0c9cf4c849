//! Files only kehai's own user may read: the data directory is created `0700` and the SQLite
//! database `0600` (SQLite gives its `-wal` and `-shm` files the database file's mode). They hold
//! password hashes, emails and session hashes; the default umask would leave them readable by
//! every local user.

use std::{io, path::Path};

/// Creates `dir` (and any missing parent) readable by the owner only. An existing directory is
/// left as it is: see [`mode_if_shared`].
pub fn create_private_dir(dir: &Path) -> io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

/// Creates the file at `path` empty and readable by the owner only, unless it exists.
pub fn create_private_file(path: &Path) -> io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(false);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path).map(drop)
}

/// The permission bits of `path` when others than its owner may use it (`None` when private, or
/// not unix).
pub fn mode_if_shared(path: &Path) -> io::Result<Option<u32>> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path)?.permissions().mode() & 0o777;
        Ok((mode & 0o077 != 0).then_some(mode))
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        Ok(None)
    }
}
