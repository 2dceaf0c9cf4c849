//! The two back ends, SQLite and PostgreSQL, and what every area's SQL shares.
//!
//! Both run identical statements: each area of the store (`spaces.rs`, `connections.rs`, …)
//! writes its SQL once in a macro that [`for_each_backend!`] stamps onto each concrete pool type
//! (sqlx's generic executor bounds would otherwise swamp every method). SQLite gets a
//! single-connection *writer* pool beside its reader pool, so writes queue in kehai instead of
//! failing on SQLite's database lock.

use std::{path::Path, str::FromStr, time::Duration};

use sqlx::{
    PgPool, SqlitePool,
    postgres::PgPoolOptions,
    sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous},
};

use crate::{Result, StoreError};

/// SQLite in one file private to kehai's user: WAL for concurrent readers, one writer connection.
pub(crate) struct SqliteStore {
    read: SqlitePool,
    write: SqlitePool,
}

impl SqliteStore {
    pub(crate) async fn open(path: &Path) -> Result<Self> {
        let io = |e| StoreError::Database(sqlx::Error::Io(e));
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            crate::files::create_private_dir(dir).map_err(io)?;
        }
        // Before SQLite creates it with the umask's mode (its journal files take the same).
        crate::files::create_private_file(path).map_err(io)?;
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(5))
            .foreign_keys(true);
        let write = SqlitePoolOptions::new().max_connections(1).connect_with(options.clone()).await?;
        let read = SqlitePoolOptions::new().max_connections(4).connect_with(options).await?;
        Ok(SqliteStore { read, write })
    }

    pub(crate) fn reader(&self) -> &SqlitePool {
        &self.read
    }

    pub(crate) fn writer(&self) -> &SqlitePool {
        &self.write
    }

    /// A write transaction that takes SQLite's write lock at once (`BEGIN IMMEDIATE`). A
    /// deferred one reads first and would then fail at its first write ("database is locked",
    /// without waiting the busy timeout) whenever another writer — `kehai member add` beside the
    /// server, a backup — held the lock meanwhile; this one waits for it instead.
    pub(crate) async fn write_tx(&self) -> sqlx::Result<sqlx::Transaction<'static, sqlx::Sqlite>> {
        self.write.begin_with("BEGIN IMMEDIATE").await
    }
}

/// PostgreSQL: one pool for everything.
pub(crate) struct PostgresStore {
    pool: PgPool,
}

impl PostgresStore {
    pub(crate) async fn open(url: &str) -> Result<Self> {
        let pool =
            PgPoolOptions::new().max_connections(16).acquire_timeout(Duration::from_secs(5)).connect(url).await?;
        Ok(PostgresStore { pool })
    }

    pub(crate) fn reader(&self) -> &PgPool {
        &self.pool
    }

    pub(crate) fn writer(&self) -> &PgPool {
        &self.pool
    }

    /// A write transaction (rows are locked as they are read: `FOR UPDATE`).
    pub(crate) async fn write_tx(&self) -> sqlx::Result<sqlx::Transaction<'static, sqlx::Postgres>> {
        self.pool.begin().await
    }
}

/// Maps unique and foreign-key violations to the store's own errors.
pub(crate) fn classify(err: sqlx::Error, conflict: &'static str, missing: &'static str) -> StoreError {
    if let sqlx::Error::Database(db) = &err {
        if db.is_unique_violation() {
            return StoreError::Conflict(conflict);
        }
        if db.is_foreign_key_violation() {
            return StoreError::NotFound(missing);
        }
    }
    StoreError::Database(err)
}

pub(crate) fn uuid(s: &str, what: &'static str) -> Result<uuid::Uuid> {
    uuid::Uuid::from_str(s).map_err(|_| StoreError::Corrupt(what))
}

/// Stamps an area's implementation (`$area!`) onto both back ends, with what differs between them:
/// the engine (`$db`, for statements built at run time), its name, its migrations, how it locks a
/// row it read for the rest of the transaction (`$lock`: PostgreSQL `FOR UPDATE`; SQLite has one
/// writer, which already serializes) and how it claims rows (`$skip`: PostgreSQL passes over rows
/// another instance is claiming this moment, `FOR UPDATE SKIP LOCKED`, so that instances sweeping
/// at once divide the work).
macro_rules! for_each_backend {
    ($area:ident) => {
        $area!(crate::backend::SqliteStore, sqlx::Sqlite, "sqlite", sqlx::migrate!("migrations/sqlite"), "", "");
        $area!(
            crate::backend::PostgresStore,
            sqlx::Postgres,
            "postgres",
            sqlx::migrate!("migrations/postgres"),
            " FOR UPDATE",
            " FOR UPDATE SKIP LOCKED"
        );
    };
}
pub(crate) use for_each_backend;

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SqliteStore { .. }")
    }
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PostgresStore { .. }")
    }
}
