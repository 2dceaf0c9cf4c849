//! kehai's storage: one [`Store`] trait, implemented for SQLite (the default, one file in the
//! data directory) and PostgreSQL (for larger and multi-instance deployments).
//!
//! Both implementations run the *same* SQL text (see [`sql`]): ids are UUID text, timestamps are
//! milliseconds, placeholders are `$n`, and upserts use `ON CONFLICT` and `RETURNING`, which both
//! engines understand. Only the migrations (column types) and the connection set-up differ. One
//! contract test suite (`tests/it`) runs against both.
//!
//! The store knows nothing of HTTP or sessions' cookies: it stores what the domain
//! ([`kehai_core`]) validated, and reports conflicts and missing rows as [`StoreError`]s.

mod microsoft;
mod presences;
mod records;
pub mod secrets;
mod sql;

use std::{path::PathBuf, sync::Arc};

use async_trait::async_trait;
use kehai_core::{
    Account, Avatar, DisplayName, Email, Guest, Membership, Millis, PersonId, PresenceOverride, Role, Space, SpaceId,
    SpaceSlug,
};

pub use microsoft::{
    Connection, ConnectionId, ConnectionState, EncryptionCertificate, OAuthState, Sealed, SubscriptionRecord,
    TokenUpdate,
};
pub use records::{Applied, AvatarChange, Claim, Member, PresenceWrite, Session};

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
/// [`Store::migrate`].
pub async fn open(database: &Database) -> Result<Arc<dyn Store>> {
    Ok(match database {
        Database::Sqlite(path) => Arc::new(sql::SqliteStore::open(path).await?),
        Database::Postgres(url) => Arc::new(sql::PostgresStore::open(url).await?),
    })
}

/// Everything kehai keeps. Each method is one atomic operation.
#[async_trait]
pub trait Store: Send + Sync + std::fmt::Debug + 'static {
    /// `sqlite` or `postgres`, for logs and metrics.
    fn backend(&self) -> &'static str;
    /// Applies pending migrations.
    async fn migrate(&self) -> Result<()>;
    /// Succeeds when the database answers a query.
    async fn ping(&self) -> Result<()>;

    // Spaces.
    /// Fails with `Conflict("space")` when the slug is taken.
    async fn create_space(&self, space: &Space, now: Millis) -> Result<()>;
    async fn space_by_slug(&self, slug: &SpaceSlug) -> Result<Option<Space>>;
    async fn space_by_id(&self, id: SpaceId) -> Result<Option<Space>>;
    /// The spaces an account is a member of, ordered by name.
    async fn spaces_of(&self, account: PersonId) -> Result<Vec<Space>>;

    // Accounts and memberships.
    /// Fails with `Conflict("account")` when the email is taken, whatever its case.
    async fn create_account(&self, account: &Account, password_hash: &str, now: Millis) -> Result<()>;
    /// The account with this email (case-insensitively) and its password hash.
    async fn account_by_email(&self, email: &Email) -> Result<Option<(Account, String)>>;
    /// Makes an account a member of a space and gives it an avatar there, atomically.
    /// Fails with `Conflict("membership")` if it already is one.
    async fn add_member(&self, membership: &Membership, display_name: &DisplayName, now: Millis) -> Result<()>;
    async fn role_in(&self, space: SpaceId, account: PersonId) -> Result<Option<Role>>;
    /// Members of a space, ordered by display name.
    async fn members(&self, space: SpaceId) -> Result<Vec<Member>>;

    // Guests.
    /// Creates a guest of a space with its avatar, atomically.
    async fn create_guest(&self, guest: &Guest, now: Millis) -> Result<()>;

    // Avatars.
    async fn avatar(&self, space: SpaceId, person: PersonId) -> Result<Option<Avatar>>;
    /// All avatars of a space, ordered by display name.
    async fn avatars(&self, space: SpaceId) -> Result<Vec<Avatar>>;
    /// Changes what the person chose (name, own emoji); `None` if there is no such avatar.
    async fn update_avatar(
        &self,
        space: SpaceId,
        person: PersonId,
        change: &AvatarChange,
        now: Millis,
    ) -> Result<Option<Avatar>>;
    /// Sets or clears the presence override; `None` if there is no such avatar.
    async fn set_presence(
        &self,
        space: SpaceId,
        person: PersonId,
        presence: Option<&PresenceOverride>,
        now: Millis,
    ) -> Result<Option<Avatar>>;

    // Sessions.
    async fn create_session(&self, session: &Session) -> Result<()>;
    /// The session with this id hash, if it has not expired at `now`.
    async fn session(&self, id_hash: &str, now: Millis) -> Result<Option<Session>>;
    /// Ends a session. A guest's session takes the guest and their avatar with it.
    async fn delete_session(&self, id_hash: &str) -> Result<Option<Session>>;
    /// Ends every session expired at `now` (and their guests); returns them. Expired sign-ins
    /// in progress go too.
    async fn purge_expired_sessions(&self, now: Millis) -> Result<Vec<Session>>;

    // Microsoft Teams connections.
    /// Creates or replaces a connection (by id). `Conflict("microsoft account")` when another
    /// member already connected the same Microsoft account.
    async fn save_connection(&self, connection: &Connection) -> Result<()>;
    async fn connection_of(&self, account: PersonId) -> Result<Option<Connection>>;
    /// Stores refreshed tokens of an existing connection (never re-creates a deleted one);
    /// false when the connection is gone. `release`'s refresh claim
    /// ([`Store::claim_refresh`]), if it holds it, is let go of in the same write.
    async fn update_connection_tokens(
        &self,
        id: ConnectionId,
        tokens: &TokenUpdate,
        release: Option<&str>,
    ) -> Result<bool>;
    /// Claims the refresh of a connection's tokens (one at a time across instances: each
    /// refresh rotates the refresh token); false when another instance is refreshing them (or
    /// the connection is gone). Claiming again what one holds extends the claim.
    async fn claim_refresh(&self, id: ConnectionId, claim: Claim<'_>) -> Result<bool>;
    /// Lets go of a connection's refresh claim, if `holder` holds it.
    async fn release_refresh(&self, id: ConnectionId, holder: &str) -> Result<()>;
    /// Shows a connection's presence (or with `None` removes it) on the member's avatar in every
    /// space where the connection is ON, and records `sequence` as the last applied — in one
    /// transaction, so that a crash leaves neither without the other — if the connection is
    /// still connected to Microsoft user `ms_user` and `sequence` is newer than the one recorded
    /// (byte order; equal too with `again`), so that a stale or duplicate notification never
    /// wins.
    async fn apply_presence(
        &self,
        id: ConnectionId,
        ms_user: &str,
        sequence: Option<&str>,
        again: bool,
        presence: Option<&PresenceOverride>,
        now: Millis,
    ) -> Result<Applied> {
        let write = PresenceWrite {
            connection: id,
            ms_user: ms_user.to_owned(),
            sequence: sequence.map(str::to_owned),
            again,
            presence: presence.cloned(),
        };
        let mut applied = self.apply_presences(std::slice::from_ref(&write), now).await?;
        applied.pop().ok_or_else(|| StoreError::Corrupt("presence write outcome"))
    }
    /// [`Store::apply_presence`] for many writes in one transaction — a group commit: under load,
    /// tens of notifications' presences cost one transaction of five statements instead of five
    /// statements each. The outcomes come in the writes' order, as applying them one after the
    /// other would give them (of several writes for one connection, only the newest is shown).
    async fn apply_presences(&self, writes: &[PresenceWrite], now: Millis) -> Result<Vec<Applied>>;
    /// Whether the member is still to be told that their connection needs a new sign-in; true
    /// once per time it became Needs reconnect (the caller shows the notice).
    async fn take_connection_notice(&self, account: PersonId) -> Result<bool>;
    /// Sets a connection's state and last error; false when the connection is gone. Becoming
    /// Needs reconnect raises the member's notice ([`Store::take_connection_notice`]).
    async fn set_connection_state(
        &self,
        id: ConnectionId,
        state: ConnectionState,
        last_error: Option<&str>,
        now: Millis,
    ) -> Result<bool>;
    async fn connection_by_subscription(&self, subscription_id: &str) -> Result<Option<Connection>>;
    /// Records a connection's renewed or new subscription, if its subscription is still
    /// `replacing` (compare-and-set: of two concurrent renewals or recreations only one wins).
    /// False when it is not, or the connection is gone. When stored, `release`'s upkeep claim on
    /// the connection (if it holds it) is let go of in the same write — one statement less per
    /// renewal, at tens of renewals a second with 100,000 connections; when not, the claim stays.
    async fn set_connection_subscription(
        &self,
        id: ConnectionId,
        replacing: Option<&str>,
        subscription: &SubscriptionRecord,
        now: Millis,
        release: Option<&str>,
    ) -> Result<bool>;
    /// Connected connections in id order, `limit` at a time after `after` (keyset paging).
    async fn connected_connections(&self, after: Option<ConnectionId>, limit: u32) -> Result<Vec<Connection>>;
    /// How many connections are in each state (states without any are left out).
    async fn connections_by_state(&self) -> Result<Vec<(ConnectionState, u64)>>;
    /// Claims up to `limit` connected connections whose subscription lapses before `before` and
    /// that no other instance holds, the soonest first (PostgreSQL skips rows another instance is
    /// claiming this moment rather than waiting for them).
    async fn claim_expiring(&self, before: Millis, claim: Claim<'_>, limit: u32) -> Result<Vec<Connection>>;
    /// Claims up to `limit` connected connections whose subscription is encrypted for a
    /// certificate other than `current` (a retired one) and that no other instance holds, the
    /// soonest to lapse first.
    async fn claim_on_other_certificates(&self, current: &str, claim: Claim<'_>, limit: u32)
    -> Result<Vec<Connection>>;
    /// Claims one connection's upkeep; false when another instance holds it (or it is gone).
    /// Claiming again what one holds extends the claim.
    async fn claim_connection(&self, id: ConnectionId, claim: Claim<'_>) -> Result<bool>;
    /// Lets go of a connection's claim, if `holder` holds it.
    async fn release_connection(&self, id: ConnectionId, holder: &str) -> Result<()>;
    /// Deletes a connection with its spaces.
    async fn delete_connection(&self, id: ConnectionId) -> Result<()>;
    /// Uses a connection in a space, ON or OFF.
    async fn set_connection_space(&self, id: ConnectionId, space: SpaceId, enabled: bool) -> Result<()>;
    /// Stops using a connection in a space; returns how many spaces still use it. The connection
    /// row is locked meanwhile, so that two spaces let go at once still see the true count.
    async fn remove_connection_space(&self, id: ConnectionId, space: SpaceId) -> Result<usize>;
    /// The spaces a connection is used in, with their toggle.
    async fn connection_spaces(&self, id: ConnectionId) -> Result<Vec<(SpaceId, bool)>>;

    // Sign-ins in progress.
    async fn create_oauth_state(&self, state: &OAuthState) -> Result<()>;
    /// Takes (and deletes) a sign-in: it can be used once. Expired ones are deleted and `None`.
    async fn take_oauth_state(&self, state_hash: &str, now: Millis) -> Result<Option<OAuthState>>;

    // Encryption certificates.
    async fn add_certificate(&self, certificate: &EncryptionCertificate) -> Result<()>;
    /// The newest certificate not retired.
    async fn current_certificate(&self) -> Result<Option<EncryptionCertificate>>;
    async fn certificate(&self, id: &str) -> Result<Option<EncryptionCertificate>>;
    /// Retires every certificate but `except` (their private keys stay for decryption); returns
    /// how many.
    async fn retire_certificates(&self, except: &str, now: Millis) -> Result<u64>;
    /// Notes since when each retired certificate is unused (no subscription names it), and
    /// deletes those unused for `unused_for` by `now`; returns their ids.
    async fn remove_unused_certificates(&self, now: Millis, unused_for: Millis) -> Result<Vec<String>>;
    /// Every certificate, the oldest first, with how many subscriptions use it.
    async fn certificates(&self) -> Result<Vec<(EncryptionCertificate, u64)>>;

    // Claims of named work (a job, an instance's heartbeat).
    /// Claims `name`; false when another holder's claim has not lapsed. Claiming again what one
    /// holds extends the claim.
    async fn claim(&self, name: &str, claim: Claim<'_>) -> Result<bool>;
    /// Lets go of `name`, if `holder` holds it.
    async fn release(&self, name: &str, holder: &str) -> Result<()>;
    /// Deletes the claims named `prefix…` that lapsed by `now` and returns their names: each is
    /// returned to exactly one caller, even with several instances asking at once.
    async fn take_lapsed(&self, prefix: &str, now: Millis) -> Result<Vec<String>>;

    /// Re-seals every sealed value in one transaction (`kehai keys rotate`): `rekey` gets each
    /// value's row label ([`secrets::row_label`]) and sealed text and returns the new sealed
    /// text; `before_commit` runs last (the new key is put in place there) and can still abort.
    /// Returns how many values were re-sealed.
    async fn reseal(
        &self,
        rekey: &(dyn for<'a, 'b> Fn(&'a str, &'b str) -> Result<String, secrets::SecretError> + Send + Sync),
        before_commit: &(dyn Fn() -> std::result::Result<(), String> + Send + Sync),
    ) -> Result<usize>;
}
