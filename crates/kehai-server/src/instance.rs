//! One serving instance per SQLite database. Several instances share a PostgreSQL database, but
//! a SQLite file has one writer and no way to share claims or events between processes, so a
//! second `kehai serve` (or `kehai demo`) on the same file is refused at start with a clear
//! message. Administration commands (`kehai member add`, `kehai keys rotate-cert`, …) are not
//! instances and may run beside the server.

use std::{fs::File, path::PathBuf};

use kehai_store::Database;

use crate::config::Config;

/// Held while this process serves a SQLite database: an exclusive lock on `<db>.lock`, released
/// when dropped (or when the process dies, however it dies).
#[derive(Debug)]
pub struct InstanceLock {
    _file: File,
}

/// Claims the database for this instance; `None` on PostgreSQL, where instances share it.
pub fn claim(config: &Config) -> anyhow::Result<Option<InstanceLock>> {
    let Some(Database::Sqlite(db)) = config.database() else { return Ok(None) };
    let path = PathBuf::from(format!("{}.lock", db.display()));
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| anyhow::anyhow!("cannot create the data directory {}: {e}", dir.display()))?;
    }
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| anyhow::anyhow!("cannot open {}: {e}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(Some(InstanceLock { _file: file })),
        Err(std::fs::TryLockError::WouldBlock) => Err(anyhow::anyhow!(
            "another kehai is already serving {} (it holds {}): SQLite allows one instance. \
             Stop the other one, or run several instances on PostgreSQL (KEHAI_DATABASE_URL).",
            db.display(),
            path.display()
        )),
        Err(std::fs::TryLockError::Error(e)) => Err(anyhow::anyhow!("cannot lock {}: {e}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_instance_on_one_sqlite_file_is_refused_until_the_first_is_gone() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let config = Config { data_dir: dir.path().to_owned(), ..Config::default() };
        let first = claim(&config).unwrap_or_else(|e| panic!("{e}"));
        assert!(first.is_some());
        let refused = claim(&config).unwrap_err().to_string();
        assert!(
            refused.contains("another kehai is already serving") && refused.contains("KEHAI_DATABASE_URL"),
            "{refused}"
        );
        drop(first);
        assert!(claim(&config).unwrap_or_else(|e| panic!("{e}")).is_some(), "free again");
        let postgres =
            Config { database_url: Some("postgres://x@127.0.0.1/db".to_owned().into()), ..Config::default() };
        assert!(claim(&postgres).unwrap_or_else(|e| panic!("{e}")).is_none(), "PostgreSQL is shared");
    }
}
