//! kehai's storage: one [`Store`] trait, implemented for SQLite (the default, one file in the
//! data directory) and PostgreSQL (for larger and multi-instance deployments).
//!
//! Both implementations run the *same* SQL text (`backend.rs`): ids are UUID text, timestamps are
//! milliseconds, placeholders are `$n`, and upserts use `ON CONFLICT` and `RETURNING`, which both
//! engines understand. Only the migrations (column types) and the connection set-up differ. One
//! contract test suite (`tests/it`) runs against both.
//!
//! The store knows nothing of HTTP or sessions' cookies: it stores what the domain
//! ([`kehai_core`]) validated, and reports conflicts and missing rows as [`StoreError`]s.

#[macro_use]
mod rows;
mod avatars;
mod backend;
mod certificates;
mod claims;
mod connections;
pub mod files;
mod maintenance;
mod presences;
mod records;
pub mod secrets;
mod sessions;
mod spaces;

use std::{path::PathBuf, sync::Arc};

pub use avatars::Avatars;
pub use certificates::Certificates;
pub use claims::Claims;
pub use connections::Connections;
pub use maintenance::Maintenance;
pub use presences::Presences;
pub use records::{
    Applied, AvatarChange, Claim, Connection, ConnectionId, ConnectionState, EncryptionCertificate, Member, OAuthState,
    PresenceWrite, Sealed, Session, SubscriptionRecord, TokenUpdate,
};
pub use sessions::Sessions;
pub use spaces::Spaces;

/// What can go wrong in the store, as callers need to tell it apart.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A unique key is taken (a space slug, an account email, a membership).
    #[error("{0} already exists")]
    Conflict(&'static str),
    /// A row that the operation needs does not exist.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// Stored data that the domain refuses (only possible if the database was edited by hand).
    #[error("stored {0} is invalid")]
    Corrupt(&'static str),
    /// The database itself failed (unreachable, I/O, …).
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A sealed value did not open, or the new key could not be put in place.
    #[error("re-sealing failed: {0}")]
    Reseal(String),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Where the data lives.
#[derive(Clone, PartialEq, Eq)]
pub enum Database {
    /// A SQLite file, created on first use.
    Sqlite(PathBuf),
    /// A PostgreSQL URL (`postgres://…`).
    Postgres(String),
}

impl std::fmt::Debug for Database {
    // A PostgreSQL URL may carry a password: never print it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Database::Sqlite(path) => write!(f, "Sqlite({})", path.display()),
            Database::Postgres(_) => f.write_str("Postgres(<url redacted>)"),
        }
    }
}

/// Opens the database (creating a SQLite file if missing). Does not migrate: call
/// [`Maintenance::migrate`].
pub async fn open(database: &Database) -> Result<Arc<dyn Store>> {
    Ok(match database {
        Database::Sqlite(path) => Arc::new(backend::SqliteStore::open(path).await?),
        Database::Postgres(url) => Arc::new(backend::PostgresStore::open(url).await?),
    })
}

/// Everything kehai keeps, by area (one trait and one file each); each method is one atomic
/// operation. Callers hold an `Arc<dyn Store>`, on which every area's methods can be called.
pub trait Store:
    Maintenance + Spaces + Avatars + Sessions + Connections + Presences + Certificates + Claims + std::fmt::Debug + 'static
{
}

impl<T> Store for T where
    T: Maintenance
        + Spaces
        + Avatars
        + Sessions
        + Connections
        + Presences
        + Certificates
        + Claims
        + std::fmt::Debug
        + 'static
{
}
