//! The SQL behind [`Store`](crate::Store), written once for SQLite and PostgreSQL.
//!
//! The two back ends run identical statements; `impl_store!` stamps the one implementation onto
//! each concrete pool type (sqlx's generic executor bounds would otherwise swamp every method).
//! SQLite gets a single-connection *writer* pool beside its reader pool, so writes queue in
//! kehai instead of failing on SQLite's database lock.

use std::{collections::HashMap, path::Path, str::FromStr, time::Duration};

use async_trait::async_trait;
use kehai_core::{
    Account, Avatar, DisplayName, Email, Emoji, Guest, Membership, Millis, PersonId, PersonKind, PresenceOverride,
    Role, Space, SpaceId, SpaceName, SpaceSlug,
};
use sqlx::{
    PgPool, SqlitePool,
    postgres::PgPoolOptions,
    sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous},
};

use crate::{
    Applied, AvatarChange, Claim, Connection, ConnectionId, ConnectionState, EncryptionCertificate, Member, OAuthState,
    PresenceWrite, Result, Sealed, Session, Store, StoreError, SubscriptionRecord, TokenUpdate, presences,
};

/// SQLite in one file: WAL for concurrent readers, one writer connection.
pub(crate) struct SqliteStore {
    read: SqlitePool,
    write: SqlitePool,
}

impl SqliteStore {
    pub(crate) async fn open(path: &Path) -> Result<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| StoreError::Database(sqlx::Error::Io(e)))?;
        }
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

    fn reader(&self) -> &SqlitePool {
        &self.read
    }

    fn writer(&self) -> &SqlitePool {
        &self.write
    }

    /// A write transaction that takes SQLite's write lock at once (`BEGIN IMMEDIATE`). A
    /// deferred one reads first and would then fail at its first write ("database is locked",
    /// without waiting the busy timeout) whenever another writer — `kehai member add` beside the
    /// server, a backup — held the lock meanwhile; this one waits for it instead.
    async fn write_tx(&self) -> sqlx::Result<sqlx::Transaction<'static, sqlx::Sqlite>> {
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

    fn reader(&self) -> &PgPool {
        &self.pool
    }

    fn writer(&self) -> &PgPool {
        &self.pool
    }

    /// A write transaction (rows are locked as they are read: `FOR UPDATE`).
    async fn write_tx(&self) -> sqlx::Result<sqlx::Transaction<'static, sqlx::Postgres>> {
        self.pool.begin().await
    }
}

/// Maps unique and foreign-key violations to the store's own errors.
fn classify(err: sqlx::Error, conflict: &'static str, missing: &'static str) -> StoreError {
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

fn uuid(s: &str, what: &'static str) -> Result<uuid::Uuid> {
    uuid::Uuid::from_str(s).map_err(|_| StoreError::Corrupt(what))
}

#[derive(sqlx::FromRow)]
struct SpaceRow {
    id: String,
    slug: String,
    name: String,
    allow_guests: bool,
}

impl TryFrom<SpaceRow> for Space {
    type Error = StoreError;
    fn try_from(r: SpaceRow) -> Result<Space> {
        Ok(Space {
            id: SpaceId(uuid(&r.id, "space id")?),
            slug: SpaceSlug::parse(&r.slug).map_err(|_| StoreError::Corrupt("space slug"))?,
            name: SpaceName::parse(&r.name).map_err(|_| StoreError::Corrupt("space name"))?,
            allow_guests: r.allow_guests,
        })
    }
}

#[derive(sqlx::FromRow)]
struct AccountRow {
    id: String,
    email: String,
}

impl TryFrom<AccountRow> for Account {
    type Error = StoreError;
    fn try_from(r: AccountRow) -> Result<Account> {
        Ok(Account {
            id: PersonId(uuid(&r.id, "account id")?),
            email: Email::parse(&r.email).map_err(|_| StoreError::Corrupt("email"))?,
        })
    }
}

#[derive(sqlx::FromRow)]
struct MemberRow {
    id: String,
    email: String,
    role: String,
    display_name: String,
}

impl TryFrom<MemberRow> for Member {
    type Error = StoreError;
    fn try_from(r: MemberRow) -> Result<Member> {
        Ok(Member {
            role: Role::parse(&r.role).ok_or(StoreError::Corrupt("role"))?,
            display_name: DisplayName::parse(&r.display_name).map_err(|_| StoreError::Corrupt("display name"))?,
            account: Account::try_from(AccountRow { id: r.id, email: r.email })?,
        })
    }
}

#[derive(sqlx::FromRow)]
struct AvatarRow {
    space_id: String,
    person_id: String,
    kind: String,
    display_name: String,
    own_emoji: Option<String>,
    presence_provider: Option<String>,
    presence_availability: Option<String>,
    presence_activity: Option<String>,
    presence_label: Option<String>,
    presence_emoji: Option<String>,
    presence_since: Option<i64>,
}

fn emoji(s: &str) -> Result<Emoji> {
    Emoji::parse(s).map_err(|_| StoreError::Corrupt("emoji"))
}

impl TryFrom<AvatarRow> for Avatar {
    type Error = StoreError;
    fn try_from(r: AvatarRow) -> Result<Avatar> {
        let presence = match (
            r.presence_provider,
            r.presence_availability,
            r.presence_activity,
            r.presence_label,
            r.presence_emoji,
            r.presence_since,
        ) {
            (Some(provider), Some(availability), Some(activity), Some(label), Some(e), Some(since)) => {
                Some(PresenceOverride { provider, availability, activity, label, emoji: emoji(&e)?, since })
            }
            _ => None,
        };
        Ok(Avatar {
            space_id: SpaceId(uuid(&r.space_id, "space id")?),
            person_id: PersonId(uuid(&r.person_id, "person id")?),
            kind: PersonKind::parse(&r.kind).ok_or(StoreError::Corrupt("person kind"))?,
            display_name: DisplayName::parse(&r.display_name).map_err(|_| StoreError::Corrupt("display name"))?,
            own_emoji: r.own_emoji.as_deref().map(emoji).transpose()?,
            presence,
        })
    }
}

#[derive(sqlx::FromRow)]
struct SessionRow {
    id_hash: String,
    person_id: String,
    kind: String,
    space_id: Option<String>,
    created_at: i64,
    expires_at: i64,
}

impl TryFrom<SessionRow> for Session {
    type Error = StoreError;
    fn try_from(r: SessionRow) -> Result<Session> {
        Ok(Session {
            id_hash: r.id_hash,
            person_id: PersonId(uuid(&r.person_id, "person id")?),
            kind: PersonKind::parse(&r.kind).ok_or(StoreError::Corrupt("person kind"))?,
            space_id: r.space_id.as_deref().map(|s| uuid(s, "space id").map(SpaceId)).transpose()?,
            created_at: r.created_at,
            expires_at: r.expires_at,
        })
    }
}

/// The columns [`AvatarRow`] reads, as a literal so statements stay `&'static str`.
macro_rules! avatar_columns {
    () => {
        "space_id, person_id, kind, display_name, own_emoji, presence_provider, presence_availability, \
         presence_activity, presence_label, presence_emoji, presence_since"
    };
}

#[derive(sqlx::FromRow)]
struct ConnectionRow {
    id: String,
    account_id: String,
    ms_tenant_id: String,
    ms_user_id: String,
    access_token: String,
    access_expires_at: i64,
    refresh_token: Option<String>,
    refresh_expires_at: Option<i64>,
    subscription_id: Option<String>,
    subscription_expires_at: Option<i64>,
    client_state: Option<String>,
    state: String,
    last_error: Option<String>,
    last_sequence: Option<String>,
    access_refresh_at: i64,
    subscription_certificate_id: Option<String>,
    connected_at: i64,
    updated_at: i64,
}

impl TryFrom<ConnectionRow> for Connection {
    type Error = StoreError;
    fn try_from(r: ConnectionRow) -> Result<Connection> {
        let subscription = match (r.subscription_id, r.subscription_expires_at, r.client_state) {
            (Some(id), Some(expires_at), Some(cs)) => Some(SubscriptionRecord {
                id,
                expires_at,
                client_state: Sealed(cs),
                certificate_id: r.subscription_certificate_id,
            }),
            _ => None,
        };
        Ok(Connection {
            id: ConnectionId(uuid(&r.id, "connection id")?),
            account_id: PersonId(uuid(&r.account_id, "account id")?),
            ms_tenant_id: r.ms_tenant_id,
            ms_user_id: r.ms_user_id,
            access_token: Sealed(r.access_token),
            access_expires_at: r.access_expires_at,
            access_refresh_at: r.access_refresh_at,
            refresh_token: r.refresh_token.map(Sealed),
            refresh_expires_at: r.refresh_expires_at,
            subscription,
            state: ConnectionState::parse(&r.state).ok_or(StoreError::Corrupt("connection state"))?,
            last_error: r.last_error,
            last_sequence: r.last_sequence,
            connected_at: r.connected_at,
            updated_at: r.updated_at,
        })
    }
}

#[derive(sqlx::FromRow)]
struct OAuthStateRow {
    state_hash: String,
    session_hash: String,
    space_id: String,
    nonce: String,
    pkce_verifier: String,
    expires_at: i64,
}

impl TryFrom<OAuthStateRow> for OAuthState {
    type Error = StoreError;
    fn try_from(r: OAuthStateRow) -> Result<OAuthState> {
        Ok(OAuthState {
            state_hash: r.state_hash,
            session_hash: r.session_hash,
            space_id: SpaceId(uuid(&r.space_id, "space id")?),
            nonce: Sealed(r.nonce),
            pkce_verifier: Sealed(r.pkce_verifier),
            expires_at: r.expires_at,
        })
    }
}

#[derive(sqlx::FromRow)]
struct CertificateRow {
    id: String,
    certificate: String,
    private_key: String,
    created_at: i64,
    retired_at: Option<i64>,
}

impl From<CertificateRow> for EncryptionCertificate {
    fn from(r: CertificateRow) -> Self {
        EncryptionCertificate {
            id: r.id,
            certificate: r.certificate,
            private_key: Sealed(r.private_key),
            created_at: r.created_at,
            retired_at: r.retired_at,
        }
    }
}

/// Whether a connected connection's subscription names the `encryption_certificates` row at hand
/// (notifications for other connections are dropped unread: they need no key).
macro_rules! certificate_used {
    () => {
        "EXISTS (SELECT 1 FROM ms_connections WHERE state = 'connected' \
         AND subscription_certificate_id = encryption_certificates.id)"
    };
}

/// Sets (or clears) the presence override of avatar (`$1` space, `$2` person) to `$3`…`$8` at
/// `$9`, returning the avatar.
macro_rules! set_presence {
    () => {
        concat!(
            "UPDATE avatars SET presence_provider = $3, presence_availability = $4, presence_activity = $5, \
             presence_label = $6, presence_emoji = $7, presence_since = $8, updated_at = $9 \
             WHERE space_id = $1 AND person_id = $2 RETURNING ",
            avatar_columns!()
        )
    };
}

/// Binds `$3`…`$9` of [`set_presence!`]: the override (or NULLs) and the time.
macro_rules! bind_presence {
    ($query:expr, $presence:expr, $now:expr) => {
        $query
            .bind($presence.map(|p| p.provider.clone()))
            .bind($presence.map(|p| p.availability.clone()))
            .bind($presence.map(|p| p.activity.clone()))
            .bind($presence.map(|p| p.label.clone()))
            .bind($presence.map(|p| p.emoji.as_str().to_owned()))
            .bind($presence.map(|p| p.since))
            .bind($now)
    };
}

/// The columns [`ConnectionRow`] reads.
macro_rules! connection_columns {
    () => {
        "id, account_id, ms_tenant_id, ms_user_id, access_token, access_expires_at, refresh_token, \
         refresh_expires_at, subscription_id, subscription_expires_at, client_state, state, last_error, \
         connected_at, updated_at, last_sequence, access_refresh_at, subscription_certificate_id"
    };
}

/// Whether a connection is free for the claim at hand (`$1` the holder, `$2` now) kept in the
/// columns `$by` and `$until`: unclaimed, held by the same instance, or held by a claim that
/// lapsed.
macro_rules! claim_free {
    () => {
        claim_free!("claimed_by", "claimed_until")
    };
    ($by:literal, $until:literal) => {
        concat!("(", $by, " IS NULL OR ", $by, " = $1 OR ", $until, " <= $2)")
    };
}

/// Claims one connection in its claim columns `$by` and `$until` (the upkeep claim, the refresh
/// claim); true when this holder has it now.
macro_rules! claim_row {
    ($self:ident, $by:literal, $until:literal, $id:expr, $claim:expr) => {{
        let done = sqlx::query(concat!(
            "UPDATE ms_connections SET ",
            $by,
            " = $1, ",
            $until,
            " = $3 WHERE id = $4 AND ",
            claim_free!($by, $until)
        ))
        .bind($claim.holder)
        .bind($claim.now)
        .bind($claim.until)
        .bind($id.0.to_string())
        .execute($self.writer())
        .await?;
        Ok(done.rows_affected() > 0)
    }};
}

/// Lets go of a connection's claim in `$by` and `$until`, if `$holder` holds it.
macro_rules! release_row {
    ($self:ident, $by:literal, $until:literal, $id:expr, $holder:expr) => {{
        sqlx::query(concat!(
            "UPDATE ms_connections SET ",
            $by,
            " = NULL, ",
            $until,
            " = NULL WHERE id = $1 AND ",
            $by,
            " = $2"
        ))
        .bind($id.0.to_string())
        .bind($holder)
        .execute($self.writer())
        .await?;
        Ok(())
    }};
}

/// Claims up to `$limit` connected connections matching `$condition` (on `$4`, bound to
/// `$value`) that are free for `$claim`, the soonest to lapse first; `$skip` passes over rows
/// another instance is claiming this moment.
macro_rules! claim_batch {
    ($self:ident, $skip:literal, $condition:literal, $value:expr, $claim:ident, $limit:ident) => {{
        let rows = sqlx::query_as::<_, ConnectionRow>(concat!(
            "UPDATE ms_connections SET claimed_by = $1, claimed_until = $3 WHERE id IN (\
             SELECT id FROM ms_connections WHERE state = 'connected' AND ",
            $condition,
            " AND ",
            claim_free!(),
            " ORDER BY subscription_expires_at LIMIT $5",
            $skip,
            ") RETURNING ",
            connection_columns!()
        ))
        .bind($claim.holder)
        .bind($claim.now)
        .bind($claim.until)
        .bind($value)
        .bind(i64::from($limit));
        soonest_first(connections(rows.fetch_all($self.writer()).await?)?)
    }};
}

macro_rules! impl_store {
    // `$db`: the engine (for statements built at run time). `$lock`: how the engine locks a row it read for the rest of the transaction (PostgreSQL:
    // FOR UPDATE; SQLite has one writer, which already serializes). `$skip`: the same for rows
    // being claimed, passing over those another instance is claiming this moment (PostgreSQL:
    // FOR UPDATE SKIP LOCKED, so that instances sweeping at once divide the work).
    ($store:ty, $db:ty, $backend:literal, $migrator:expr, $lock:literal, $skip:literal) => {
        #[async_trait]
        impl Store for $store {
            fn backend(&self) -> &'static str {
                $backend
            }

            async fn migrate(&self) -> Result<()> {
                $migrator.run(self.writer()).await?;
                Ok(())
            }

            async fn ping(&self) -> Result<()> {
                sqlx::query("SELECT 1").execute(self.reader()).await?;
                Ok(())
            }

            async fn create_space(&self, space: &Space, now: Millis) -> Result<()> {
                sqlx::query("INSERT INTO spaces (id, slug, name, allow_guests, created_at) VALUES ($1, $2, $3, $4, $5)")
                    .bind(space.id.0.to_string())
                    .bind(space.slug.as_str())
                    .bind(space.name.as_str())
                    .bind(space.allow_guests)
                    .bind(now)
                    .execute(self.writer())
                    .await
                    .map_err(|e| classify(e, "space", "space"))?;
                Ok(())
            }

            async fn space_by_slug(&self, slug: &SpaceSlug) -> Result<Option<Space>> {
                sqlx::query_as::<_, SpaceRow>("SELECT id, slug, name, allow_guests FROM spaces WHERE slug = $1")
                    .bind(slug.as_str())
                    .fetch_optional(self.reader())
                    .await?
                    .map(Space::try_from)
                    .transpose()
            }

            async fn space_by_id(&self, id: SpaceId) -> Result<Option<Space>> {
                sqlx::query_as::<_, SpaceRow>("SELECT id, slug, name, allow_guests FROM spaces WHERE id = $1")
                    .bind(id.0.to_string())
                    .fetch_optional(self.reader())
                    .await?
                    .map(Space::try_from)
                    .transpose()
            }

            async fn spaces_of(&self, account: PersonId) -> Result<Vec<Space>> {
                sqlx::query_as::<_, SpaceRow>(
                    "SELECT s.id, s.slug, s.name, s.allow_guests FROM spaces s \
                     JOIN memberships m ON m.space_id = s.id WHERE m.account_id = $1 ORDER BY s.name, s.slug",
                )
                .bind(account.0.to_string())
                .fetch_all(self.reader())
                .await?
                .into_iter()
                .map(Space::try_from)
                .collect()
            }

            async fn create_account(&self, account: &Account, password_hash: &str, now: Millis) -> Result<()> {
                sqlx::query(
                    "INSERT INTO accounts (id, email, email_key, password_hash, created_at) VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(account.id.0.to_string())
                .bind(account.email.as_str())
                .bind(account.email.normalized())
                .bind(password_hash)
                .bind(now)
                .execute(self.writer())
                .await
                .map_err(|e| classify(e, "account", "account"))?;
                Ok(())
            }

            async fn account_by_email(&self, email: &Email) -> Result<Option<(Account, String)>> {
                let row: Option<(String, String, String)> =
                    sqlx::query_as("SELECT id, email, password_hash FROM accounts WHERE email_key = $1")
                        .bind(email.normalized())
                        .fetch_optional(self.reader())
                        .await?;
                row.map(|(id, email, hash)| Ok((Account::try_from(AccountRow { id, email })?, hash))).transpose()
            }

            async fn add_member(&self, membership: &Membership, display_name: &DisplayName, now: Millis) -> Result<()> {
                let (space, account, role) = (membership.space_id, membership.account_id, membership.role);
                let mut tx = self.write_tx().await?;
                sqlx::query("INSERT INTO memberships (space_id, account_id, role, created_at) VALUES ($1, $2, $3, $4)")
                    .bind(space.0.to_string())
                    .bind(account.0.to_string())
                    .bind(role.as_str())
                    .bind(now)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| classify(e, "membership", "space or account"))?;
                sqlx::query(
                    "INSERT INTO avatars (space_id, person_id, kind, display_name, updated_at) \
                     VALUES ($1, $2, 'member', $3, $4)",
                )
                .bind(space.0.to_string())
                .bind(account.0.to_string())
                .bind(display_name.as_str())
                .bind(now)
                .execute(&mut *tx)
                .await
                .map_err(|e| classify(e, "avatar", "space"))?;
                tx.commit().await?;
                Ok(())
            }

            async fn role_in(&self, space: SpaceId, account: PersonId) -> Result<Option<Role>> {
                let role: Option<String> =
                    sqlx::query_scalar("SELECT role FROM memberships WHERE space_id = $1 AND account_id = $2")
                        .bind(space.0.to_string())
                        .bind(account.0.to_string())
                        .fetch_optional(self.reader())
                        .await?;
                role.map(|r| Role::parse(&r).ok_or(StoreError::Corrupt("role"))).transpose()
            }

            async fn members(&self, space: SpaceId) -> Result<Vec<Member>> {
                sqlx::query_as::<_, MemberRow>(
                    "SELECT a.id, a.email, m.role, v.display_name \
                     FROM memberships m \
                     JOIN accounts a ON a.id = m.account_id \
                     JOIN avatars v ON v.space_id = m.space_id AND v.person_id = m.account_id \
                     WHERE m.space_id = $1",
                )
                .bind(space.0.to_string())
                .fetch_all(self.reader())
                .await?
                .into_iter()
                .map(Member::try_from)
                .collect::<Result<Vec<_>>>()
                .map(|mut members| {
                    members.sort_by_cached_key(|m| (m.display_name.sort_key(), m.account.email.normalized()));
                    members
                })
            }

            async fn create_guest(&self, guest: &Guest, now: Millis) -> Result<()> {
                let (space, display_name) = (guest.space_id, &guest.display_name);
                let guest = guest.id;
                let mut tx = self.write_tx().await?;
                sqlx::query("INSERT INTO guests (id, space_id, created_at) VALUES ($1, $2, $3)")
                    .bind(guest.0.to_string())
                    .bind(space.0.to_string())
                    .bind(now)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| classify(e, "guest", "space"))?;
                sqlx::query(
                    "INSERT INTO avatars (space_id, person_id, kind, display_name, updated_at) \
                     VALUES ($1, $2, 'guest', $3, $4)",
                )
                .bind(space.0.to_string())
                .bind(guest.0.to_string())
                .bind(display_name.as_str())
                .bind(now)
                .execute(&mut *tx)
                .await
                .map_err(|e| classify(e, "avatar", "space"))?;
                tx.commit().await?;
                Ok(())
            }

            async fn avatar(&self, space: SpaceId, person: PersonId) -> Result<Option<Avatar>> {
                sqlx::query_as::<_, AvatarRow>(concat!(
                    "SELECT ", avatar_columns!(), " FROM avatars WHERE space_id = $1 AND person_id = $2"
                ))
                .bind(space.0.to_string())
                .bind(person.0.to_string())
                .fetch_optional(self.reader())
                .await?
                .map(Avatar::try_from)
                .transpose()
            }

            async fn avatars(&self, space: SpaceId) -> Result<Vec<Avatar>> {
                sqlx::query_as::<_, AvatarRow>(concat!(
                    "SELECT ", avatar_columns!(), " FROM avatars WHERE space_id = $1"
                ))
                .bind(space.0.to_string())
                .fetch_all(self.reader())
                .await?
                .into_iter()
                .map(Avatar::try_from)
                .collect::<Result<Vec<_>>>()
                .map(|mut avatars| {
                    // Sorted here, not in SQL: the engines' collations differ.
                    avatars.sort_by_cached_key(|a| (a.display_name.sort_key(), a.person_id));
                    avatars
                })
            }

            async fn update_avatar(
                &self,
                space: SpaceId,
                person: PersonId,
                change: &AvatarChange,
                now: Millis,
            ) -> Result<Option<Avatar>> {
                let (set_emoji, new_emoji) = match &change.own_emoji {
                    None => (false, None),
                    Some(e) => (true, e.as_ref().map(|e| e.as_str().to_owned())),
                };
                sqlx::query_as::<_, AvatarRow>(concat!(
                    "UPDATE avatars SET display_name = COALESCE($3, display_name), \
                     own_emoji = CASE WHEN $4 THEN $5 ELSE own_emoji END, updated_at = $6 \
                     WHERE space_id = $1 AND person_id = $2 RETURNING ", avatar_columns!(), ""
                ))
                .bind(space.0.to_string())
                .bind(person.0.to_string())
                .bind(change.display_name.as_ref().map(|n| n.as_str().to_owned()))
                .bind(set_emoji)
                .bind(new_emoji)
                .bind(now)
                .fetch_optional(self.writer())
                .await?
                .map(Avatar::try_from)
                .transpose()
            }

            async fn set_presence(
                &self,
                space: SpaceId,
                person: PersonId,
                presence: Option<&PresenceOverride>,
                now: Millis,
            ) -> Result<Option<Avatar>> {
                let query =
                    sqlx::query_as::<_, AvatarRow>(set_presence!()).bind(space.0.to_string()).bind(person.0.to_string());
                bind_presence!(query, presence, now)
                .fetch_optional(self.writer())
                .await?
                .map(Avatar::try_from)
                .transpose()
            }

            async fn create_session(&self, s: &Session) -> Result<()> {
                sqlx::query(
                    "INSERT INTO sessions (id_hash, person_id, kind, space_id, created_at, expires_at) \
                     VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(&s.id_hash)
                .bind(s.person_id.0.to_string())
                .bind(s.kind.as_str())
                .bind(s.space_id.map(|id| id.0.to_string()))
                .bind(s.created_at)
                .bind(s.expires_at)
                .execute(self.writer())
                .await
                .map_err(|e| classify(e, "session", "space"))?;
                Ok(())
            }

            async fn session(&self, id_hash: &str, now: Millis) -> Result<Option<Session>> {
                sqlx::query_as::<_, SessionRow>(
                    "SELECT id_hash, person_id, kind, space_id, created_at, expires_at \
                     FROM sessions WHERE id_hash = $1 AND expires_at > $2",
                )
                .bind(id_hash)
                .bind(now)
                .fetch_optional(self.reader())
                .await?
                .map(Session::try_from)
                .transpose()
            }

            async fn delete_session(&self, id_hash: &str) -> Result<Option<Session>> {
                let mut tx = self.write_tx().await?;
                let row = sqlx::query_as::<_, SessionRow>(
                    "DELETE FROM sessions WHERE id_hash = $1 \
                     RETURNING id_hash, person_id, kind, space_id, created_at, expires_at",
                )
                .bind(id_hash)
                .fetch_optional(&mut *tx)
                .await?;
                let session = row.map(Session::try_from).transpose()?;
                if let Some((space, guest)) = session.as_ref().and_then(Session::guest) {
                    remove_guest(&mut tx, space, guest).await?;
                }
                tx.commit().await?;
                Ok(session)
            }

            async fn purge_expired_sessions(&self, now: Millis) -> Result<Vec<Session>> {
                let mut tx = self.write_tx().await?;
                let sessions = sqlx::query_as::<_, SessionRow>(
                    "DELETE FROM sessions WHERE expires_at <= $1 \
                     RETURNING id_hash, person_id, kind, space_id, created_at, expires_at",
                )
                .bind(now)
                .fetch_all(&mut *tx)
                .await?
                .into_iter()
                .map(Session::try_from)
                .collect::<Result<Vec<_>>>()?;
                for (space, guest) in sessions.iter().filter_map(Session::guest) {
                    remove_guest(&mut tx, space, guest).await?;
                }
                sqlx::query("DELETE FROM oauth_states WHERE expires_at <= $1").bind(now).execute(&mut *tx).await?;
                tx.commit().await?;
                Ok(sessions)
            }

            async fn save_connection(&self, c: &Connection) -> Result<()> {
                let sub = c.subscription.as_ref();
                sqlx::query(concat!(
                    "INSERT INTO ms_connections (", connection_columns!(), ") \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18) \
                     ON CONFLICT (id) DO UPDATE SET ms_tenant_id = $3, ms_user_id = $4, access_token = $5, \
                     access_expires_at = $6, refresh_token = $7, refresh_expires_at = $8, subscription_id = $9, \
                     subscription_expires_at = $10, client_state = $11, state = $12, last_error = $13, updated_at = $15, \
                     last_sequence = $16, access_refresh_at = $17, subscription_certificate_id = $18, \
                     notice_pending = FALSE"
                ))
                .bind(c.id.0.to_string())
                .bind(c.account_id.0.to_string())
                .bind(&c.ms_tenant_id)
                .bind(&c.ms_user_id)
                .bind(&c.access_token.0)
                .bind(c.access_expires_at)
                .bind(c.refresh_token.as_ref().map(|t| t.0.clone()))
                .bind(c.refresh_expires_at)
                .bind(sub.map(|s| s.id.clone()))
                .bind(sub.map(|s| s.expires_at))
                .bind(sub.map(|s| s.client_state.0.clone()))
                .bind(c.state.as_str())
                .bind(c.last_error.clone())
                .bind(c.connected_at)
                .bind(c.updated_at)
                .bind(c.last_sequence.clone())
                .bind(c.access_refresh_at)
                .bind(sub.and_then(|s| s.certificate_id.clone()))
                .execute(self.writer())
                .await
                .map_err(|e| classify(e, "microsoft account", "account"))?;
                Ok(())
            }

            async fn connection_of(&self, account: PersonId) -> Result<Option<Connection>> {
                sqlx::query_as::<_, ConnectionRow>(concat!("SELECT ", connection_columns!(), " FROM ms_connections WHERE account_id = $1"))
                    .bind(account.0.to_string())
                    .fetch_optional(self.reader())
                    .await?
                    .map(Connection::try_from)
                    .transpose()
            }

            async fn update_connection_tokens(
                &self,
                id: ConnectionId,
                t: &TokenUpdate,
                release: Option<&str>,
            ) -> Result<bool> {
                let done = sqlx::query(
                    "UPDATE ms_connections SET access_token = $2, access_expires_at = $3, \
                     refresh_token = COALESCE($4, refresh_token), refresh_expires_at = COALESCE($5, refresh_expires_at), \
                     updated_at = $6, access_refresh_at = $7, \
                     refreshing_until = CASE WHEN refreshing_by = $8 THEN NULL ELSE refreshing_until END, \
                     refreshing_by = CASE WHEN refreshing_by = $8 THEN NULL ELSE refreshing_by END \
                     WHERE id = $1",
                )
                .bind(id.0.to_string())
                .bind(&t.access_token.0)
                .bind(t.access_expires_at)
                .bind(t.refresh_token.as_ref().map(|r| r.0.clone()))
                .bind(t.refresh_expires_at)
                .bind(t.updated_at)
                .bind(t.access_refresh_at)
                .bind(release)
                .execute(self.writer())
                .await?;
                Ok(done.rows_affected() > 0)
            }

            async fn claim_refresh(&self, id: ConnectionId, claim: Claim<'_>) -> Result<bool> {
                claim_row!(self, "refreshing_by", "refreshing_until", id, claim)
            }

            async fn release_refresh(&self, id: ConnectionId, holder: &str) -> Result<()> {
                release_row!(self, "refreshing_by", "refreshing_until", id, holder)
            }

            async fn apply_presences(&self, writes: &[PresenceWrite], now: Millis) -> Result<Vec<Applied>> {
                if writes.is_empty() {
                    return Ok(Vec::new());
                }
                let mut tx = self.write_tx().await?;
                // The connections, locked in id order (two instances' batches never wait on each
                // other in a circle).
                let mut read = sqlx::QueryBuilder::<$db>::new(
                    "SELECT id, account_id, last_sequence, state, ms_user_id FROM ms_connections WHERE id IN (",
                );
                let mut ids = read.separated(", ");
                for w in writes {
                    ids.push_bind(w.connection.0.to_string());
                }
                read.push(concat!(") ORDER BY id", $lock));
                let rows: Vec<(String, String, Option<String>, String, String)> =
                    read.build_query_as().fetch_all(&mut *tx).await?;
                let mut current = HashMap::with_capacity(rows.len());
                for (id, account, last_sequence, state, ms_user) in rows {
                    let id = ConnectionId(uuid(&id, "connection id")?);
                    let account = PersonId(uuid(&account, "account id")?);
                    let state = ConnectionState::parse(&state).ok_or(StoreError::Corrupt("connection state"))?;
                    current.insert(id, presences::Current { account, last_sequence, state, ms_user });
                }
                let decided = presences::decide(writes, &current);
                if !decided.sequences.is_empty() {
                    let mut record = sqlx::QueryBuilder::<$db>::new(
                        "UPDATE ms_connections SET last_sequence = v.column2 FROM (",
                    );
                    record.push_values(&decided.sequences, |mut row, (id, sequence)| {
                        row.push_bind(id.0.to_string()).push_bind(sequence.clone());
                    });
                    record.push(") AS v WHERE ms_connections.id = v.column1");
                    record.build().execute(&mut *tx).await?;
                }
                let shown: Vec<(&PresenceWrite, PersonId)> = writes
                    .iter()
                    .zip(&decided.decisions)
                    .filter_map(|(w, d)| match d {
                        presences::Decision::Show(account) => Some((w, *account)),
                        _ => None,
                    })
                    .collect();
                let mut avatars: HashMap<PersonId, Vec<Avatar>> = HashMap::new();
                if !shown.is_empty() {
                    // Each shown presence on its account's avatars in the spaces where its
                    // connection is ON.
                    let mut show = sqlx::QueryBuilder::<$db>::new(
                        "UPDATE avatars SET presence_provider = v.column3, presence_availability = v.column4, \
                         presence_activity = v.column5, presence_label = v.column6, presence_emoji = v.column7, \
                         presence_since = v.column8, updated_at = ",
                    );
                    show.push_bind(now).push(" FROM (");
                    show.push_values(&shown, |mut row, (w, account)| {
                        let p = w.presence.as_ref();
                        row.push_bind(w.connection.0.to_string())
                            .push_bind(account.0.to_string())
                            .push_bind(p.map(|p| p.provider.clone()))
                            .push_bind(p.map(|p| p.availability.clone()))
                            .push_bind(p.map(|p| p.activity.clone()))
                            .push_bind(p.map(|p| p.label.clone()))
                            .push_bind(p.map(|p| p.emoji.as_str().to_owned()))
                            .push_bind(p.map(|p| p.since));
                    });
                    show.push(concat!(
                        ") AS v WHERE avatars.person_id = v.column2 AND avatars.space_id IN \
                         (SELECT space_id FROM ms_connection_spaces WHERE connection_id = v.column1 AND enabled) \
                         RETURNING ",
                        avatar_columns!()
                    ));
                    for row in show.build_query_as::<AvatarRow>().fetch_all(&mut *tx).await? {
                        let avatar = Avatar::try_from(row)?;
                        avatars.entry(avatar.person_id).or_default().push(avatar);
                    }
                }
                tx.commit().await?;
                Ok(decided
                    .decisions
                    .into_iter()
                    .map(|d| match d {
                        presences::Decision::Show(account) => {
                            let mut shown = avatars.remove(&account).unwrap_or_default();
                            shown.sort_by_key(|a| a.space_id.0);
                            Applied::Shown(shown)
                        }
                        presences::Decision::Stale => Applied::Stale,
                        presences::Decision::NotConnected => Applied::NotConnected,
                    })
                    .collect())
            }

            async fn set_connection_subscription(
                &self,
                id: ConnectionId,
                replacing: Option<&str>,
                subscription: &SubscriptionRecord,
                now: Millis,
                release: Option<&str>,
            ) -> Result<bool> {
                let done = sqlx::query(
                    "UPDATE ms_connections SET subscription_id = $2, subscription_expires_at = $3, client_state = $4, \
                     updated_at = $5, subscription_certificate_id = $7, \
                     claimed_until = CASE WHEN claimed_by = $8 THEN NULL ELSE claimed_until END, \
                     claimed_by = CASE WHEN claimed_by = $8 THEN NULL ELSE claimed_by END \
                     WHERE id = $1 AND (subscription_id = $6 OR (subscription_id IS NULL AND $6 IS NULL))",
                )
                .bind(id.0.to_string())
                .bind(&subscription.id)
                .bind(subscription.expires_at)
                .bind(&subscription.client_state.0)
                .bind(now)
                .bind(replacing)
                .bind(&subscription.certificate_id)
                .bind(release)
                .execute(self.writer())
                .await?;
                Ok(done.rows_affected() > 0)
            }

            async fn connected_connections(&self, after: Option<ConnectionId>, limit: u32) -> Result<Vec<Connection>> {
                sqlx::query_as::<_, ConnectionRow>(concat!(
                    "SELECT ", connection_columns!(), " FROM ms_connections \
                     WHERE state = 'connected' AND id > $1 ORDER BY id LIMIT $2"
                ))
                .bind(after.map(|a| a.0.to_string()).unwrap_or_default())
                .bind(i64::from(limit))
                .fetch_all(self.reader())
                .await
                .map_err(StoreError::from)
                .and_then(connections)
            }

            async fn take_connection_notice(&self, account: PersonId) -> Result<bool> {
                let done = sqlx::query(
                    "UPDATE ms_connections SET notice_pending = FALSE \
                     WHERE account_id = $1 AND notice_pending AND state = 'needs_reconnect'",
                )
                .bind(account.0.to_string())
                .execute(self.writer())
                .await?;
                Ok(done.rows_affected() > 0)
            }

            async fn connections_by_state(&self) -> Result<Vec<(ConnectionState, u64)>> {
                let rows: Vec<(String, i64)> =
                    sqlx::query_as("SELECT state, COUNT(*) FROM ms_connections GROUP BY state")
                        .fetch_all(self.reader())
                        .await?;
                rows.into_iter()
                    .map(|(state, n)| {
                        let state = ConnectionState::parse(&state).ok_or(StoreError::Corrupt("connection state"))?;
                        Ok((state, u64::try_from(n).unwrap_or(0)))
                    })
                    .collect()
            }

            async fn claim_expiring(&self, before: Millis, claim: Claim<'_>, limit: u32) -> Result<Vec<Connection>> {
                claim_batch!(self, $skip, "subscription_expires_at < $4", before, claim, limit)
            }

            async fn claim_on_other_certificates(
                &self,
                current: &str,
                claim: Claim<'_>,
                limit: u32,
            ) -> Result<Vec<Connection>> {
                // Through the few other certificates and the index on the connections' certificate: no
                // scan of every connection when, as nearly always, there are none.
                claim_batch!(
                    self,
                    $skip,
                    "subscription_certificate_id IN (SELECT id FROM encryption_certificates WHERE id <> $4)",
                    current,
                    claim,
                    limit
                )
            }

            async fn claim_connection(&self, id: ConnectionId, claim: Claim<'_>) -> Result<bool> {
                claim_row!(self, "claimed_by", "claimed_until", id, claim)
            }

            async fn release_connection(&self, id: ConnectionId, holder: &str) -> Result<()> {
                release_row!(self, "claimed_by", "claimed_until", id, holder)
            }

            async fn set_connection_state(
                &self,
                id: ConnectionId,
                state: ConnectionState,
                last_error: Option<&str>,
                now: Millis,
            ) -> Result<bool> {
                // Becoming Needs reconnect raises the notice (once: not again while it stays so);
                // connecting again lowers it.
                let done = sqlx::query(
                    "UPDATE ms_connections SET state = $2, last_error = $3, updated_at = $4, notice_pending = CASE \
                     WHEN $2 = 'needs_reconnect' AND state <> 'needs_reconnect' THEN TRUE \
                     WHEN $2 = 'connected' THEN FALSE ELSE notice_pending END WHERE id = $1",
                )
                    .bind(id.0.to_string())
                    .bind(state.as_str())
                    .bind(last_error)
                    .bind(now)
                    .execute(self.writer())
                    .await?;
                Ok(done.rows_affected() > 0)
            }

            async fn connection_by_subscription(&self, subscription_id: &str) -> Result<Option<Connection>> {
                sqlx::query_as::<_, ConnectionRow>(concat!("SELECT ", connection_columns!(), " FROM ms_connections WHERE subscription_id = $1"))
                    .bind(subscription_id)
                    .fetch_optional(self.reader())
                    .await?
                    .map(Connection::try_from)
                    .transpose()
            }

            async fn delete_connection(&self, id: ConnectionId) -> Result<()> {
                sqlx::query("DELETE FROM ms_connections WHERE id = $1").bind(id.0.to_string()).execute(self.writer()).await?;
                Ok(())
            }

            async fn set_connection_space(&self, id: ConnectionId, space: SpaceId, enabled: bool) -> Result<()> {
                sqlx::query(
                    "INSERT INTO ms_connection_spaces (connection_id, space_id, enabled) VALUES ($1, $2, $3) \
                     ON CONFLICT (connection_id, space_id) DO UPDATE SET enabled = $3",
                )
                .bind(id.0.to_string())
                .bind(space.0.to_string())
                .bind(enabled)
                .execute(self.writer())
                .await
                .map_err(|e| classify(e, "connection space", "connection or space"))?;
                Ok(())
            }

            async fn remove_connection_space(&self, id: ConnectionId, space: SpaceId) -> Result<usize> {
                let mut tx = self.write_tx().await?;
                sqlx::query(concat!("SELECT id FROM ms_connections WHERE id = $1", $lock))
                    .bind(id.0.to_string())
                    .fetch_optional(&mut *tx)
                    .await?;
                sqlx::query("DELETE FROM ms_connection_spaces WHERE connection_id = $1 AND space_id = $2")
                    .bind(id.0.to_string())
                    .bind(space.0.to_string())
                    .execute(&mut *tx)
                    .await?;
                let left: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM ms_connection_spaces WHERE connection_id = $1")
                    .bind(id.0.to_string())
                    .fetch_one(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(usize::try_from(left).unwrap_or(0))
            }

            async fn connection_spaces(&self, id: ConnectionId) -> Result<Vec<(SpaceId, bool)>> {
                let rows: Vec<(String, bool)> =
                    sqlx::query_as("SELECT space_id, enabled FROM ms_connection_spaces WHERE connection_id = $1 ORDER BY space_id")
                        .bind(id.0.to_string())
                        .fetch_all(self.reader())
                        .await?;
                rows.into_iter().map(|(s, e)| Ok((SpaceId(uuid(&s, "space id")?), e))).collect()
            }

            async fn create_oauth_state(&self, st: &OAuthState) -> Result<()> {
                sqlx::query(
                    "INSERT INTO oauth_states (state_hash, session_hash, space_id, nonce, pkce_verifier, expires_at) \
                     VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(&st.state_hash)
                .bind(&st.session_hash)
                .bind(st.space_id.0.to_string())
                .bind(&st.nonce.0)
                .bind(&st.pkce_verifier.0)
                .bind(st.expires_at)
                .execute(self.writer())
                .await
                .map_err(|e| classify(e, "sign-in", "space"))?;
                Ok(())
            }

            async fn take_oauth_state(&self, state_hash: &str, now: Millis) -> Result<Option<OAuthState>> {
                let row = sqlx::query_as::<_, OAuthStateRow>(
                    "DELETE FROM oauth_states WHERE state_hash = $1 \
                     RETURNING state_hash, session_hash, space_id, nonce, pkce_verifier, expires_at",
                )
                .bind(state_hash)
                .fetch_optional(self.writer())
                .await?;
                row.map(OAuthState::try_from).transpose().map(|s| s.filter(|s| s.expires_at > now))
            }

            async fn add_certificate(&self, c: &EncryptionCertificate) -> Result<()> {
                sqlx::query(
                    "INSERT INTO encryption_certificates (id, certificate, private_key, created_at, retired_at) \
                     VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(&c.id)
                .bind(&c.certificate)
                .bind(&c.private_key.0)
                .bind(c.created_at)
                .bind(c.retired_at)
                .execute(self.writer())
                .await
                .map_err(|e| classify(e, "certificate", "certificate"))?;
                Ok(())
            }

            async fn claim(&self, name: &str, claim: Claim<'_>) -> Result<bool> {
                let done = sqlx::query(
                    "INSERT INTO claims (name, holder, held_until) VALUES ($1, $2, $4) \
                     ON CONFLICT (name) DO UPDATE SET holder = $2, held_until = $4 \
                     WHERE claims.holder = $2 OR claims.held_until <= $3",
                )
                .bind(name)
                .bind(claim.holder)
                .bind(claim.now)
                .bind(claim.until)
                .execute(self.writer())
                .await?;
                Ok(done.rows_affected() > 0)
            }

            async fn release(&self, name: &str, holder: &str) -> Result<()> {
                sqlx::query("DELETE FROM claims WHERE name = $1 AND holder = $2")
                    .bind(name)
                    .bind(holder)
                    .execute(self.writer())
                    .await?;
                Ok(())
            }

            async fn take_lapsed(&self, prefix: &str, now: Millis) -> Result<Vec<String>> {
                // A prefix of letters, digits, '/' and '-' only: no LIKE wildcards to escape.
                debug_assert!(prefix.chars().all(|c| c.is_ascii_alphanumeric() || c == '/' || c == '-'));
                Ok(sqlx::query_scalar(
                    "DELETE FROM claims WHERE held_until <= $1 AND name LIKE $2 RETURNING name",
                )
                .bind(now)
                .bind(format!("{prefix}%"))
                .fetch_all(self.writer())
                .await?)
            }

            async fn reseal(
                &self,
                rekey: &(dyn for<'a, 'b> Fn(&'a str, &'b str) -> std::result::Result<String, crate::secrets::SecretError> + Send + Sync),
                before_commit: &(dyn Fn() -> std::result::Result<(), String> + Send + Sync),
            ) -> Result<usize> {
                let fail = |e: crate::secrets::SecretError| StoreError::Reseal(e.to_string());
                let mut tx = self.write_tx().await?;
                let mut count = 0;
                // Connections: access token, refresh token, client state.
                let rows: Vec<(String, String, Option<String>, Option<String>)> =
                    sqlx::query_as("SELECT id, access_token, refresh_token, client_state FROM ms_connections")
                        .fetch_all(&mut *tx)
                        .await?;
                for (id, access, refresh, client_state) in rows {
                    let label = |column: &str| crate::secrets::row_label("connection", &id, column);
                    let access = rekey(&label("access_token"), &access).map_err(fail)?;
                    let refresh = refresh.map(|r| rekey(&label("refresh_token"), &r)).transpose().map_err(fail)?;
                    let client_state = client_state.map(|c| rekey(&label("client_state"), &c)).transpose().map_err(fail)?;
                    count += 1 + usize::from(refresh.is_some()) + usize::from(client_state.is_some());
                    sqlx::query("UPDATE ms_connections SET access_token = $2, refresh_token = $3, client_state = $4 WHERE id = $1")
                        .bind(&id)
                        .bind(access)
                        .bind(refresh)
                        .bind(client_state)
                        .execute(&mut *tx)
                        .await?;
                }
                // Sign-ins in progress: nonce and PKCE verifier.
                let rows: Vec<(String, String, String)> =
                    sqlx::query_as("SELECT state_hash, nonce, pkce_verifier FROM oauth_states").fetch_all(&mut *tx).await?;
                for (hash, nonce, verifier) in rows {
                    let label = |column: &str| crate::secrets::row_label("oauth", &hash, column);
                    let nonce = rekey(&label("nonce"), &nonce).map_err(fail)?;
                    let verifier = rekey(&label("pkce_verifier"), &verifier).map_err(fail)?;
                    count += 2;
                    sqlx::query("UPDATE oauth_states SET nonce = $2, pkce_verifier = $3 WHERE state_hash = $1")
                        .bind(&hash)
                        .bind(nonce)
                        .bind(verifier)
                        .execute(&mut *tx)
                        .await?;
                }
                // Certificates' private keys.
                let rows: Vec<(String, String)> =
                    sqlx::query_as("SELECT id, private_key FROM encryption_certificates").fetch_all(&mut *tx).await?;
                for (id, key) in rows {
                    let key = rekey(&crate::secrets::row_label("certificate", &id, "private_key"), &key).map_err(fail)?;
                    count += 1;
                    sqlx::query("UPDATE encryption_certificates SET private_key = $2 WHERE id = $1")
                        .bind(&id)
                        .bind(key)
                        .execute(&mut *tx)
                        .await?;
                }
                before_commit().map_err(StoreError::Reseal)?;
                tx.commit().await?;
                Ok(count)
            }

            async fn current_certificate(&self) -> Result<Option<EncryptionCertificate>> {
                Ok(sqlx::query_as::<_, CertificateRow>(
                    "SELECT id, certificate, private_key, created_at, retired_at FROM encryption_certificates \
                     WHERE retired_at IS NULL ORDER BY created_at DESC, id LIMIT 1",
                )
                .fetch_optional(self.reader())
                .await?
                .map(EncryptionCertificate::from))
            }

            async fn retire_certificates(&self, except: &str, now: Millis) -> Result<u64> {
                let done = sqlx::query(
                    "UPDATE encryption_certificates SET retired_at = $2 WHERE id <> $1 AND retired_at IS NULL",
                )
                .bind(except)
                .bind(now)
                .execute(self.writer())
                .await?;
                Ok(done.rows_affected())
            }

            async fn remove_unused_certificates(&self, now: Millis, unused_for: Millis) -> Result<Vec<String>> {
                let mut tx = self.write_tx().await?;
                // When each retired certificate was first seen unused (and not, if used again).
                sqlx::query(concat!(
                    "UPDATE encryption_certificates SET unused_since = NULL WHERE unused_since IS NOT NULL AND ",
                    certificate_used!()
                ))
                .execute(&mut *tx)
                .await?;
                sqlx::query(concat!(
                    "UPDATE encryption_certificates SET unused_since = $1 \
                     WHERE retired_at IS NOT NULL AND unused_since IS NULL AND NOT ",
                    certificate_used!()
                ))
                .bind(now)
                .execute(&mut *tx)
                .await?;
                let unused: Vec<String> = sqlx::query_scalar(concat!(
                    "SELECT id FROM encryption_certificates WHERE retired_at IS NOT NULL \
                     AND unused_since <= $1 AND NOT ",
                    certificate_used!(),
                    " ORDER BY id"
                ))
                .bind(now - unused_for)
                .fetch_all(&mut *tx)
                .await?;
                for id in &unused {
                    sqlx::query("DELETE FROM encryption_certificates WHERE id = $1").bind(id).execute(&mut *tx).await?;
                }
                tx.commit().await?;
                Ok(unused)
            }

            async fn certificates(&self) -> Result<Vec<(EncryptionCertificate, u64)>> {
                let rows: Vec<(String, String, String, i64, Option<i64>, i64)> = sqlx::query_as(
                    "SELECT c.id, c.certificate, c.private_key, c.created_at, c.retired_at, \
                     (SELECT COUNT(*) FROM ms_connections m WHERE m.subscription_certificate_id = c.id) \
                     FROM encryption_certificates c ORDER BY c.created_at, c.id",
                )
                .fetch_all(self.reader())
                .await?;
                Ok(rows
                    .into_iter()
                    .map(|(id, certificate, private_key, created_at, retired_at, used)| {
                        let row = CertificateRow { id, certificate, private_key, created_at, retired_at };
                        (EncryptionCertificate::from(row), u64::try_from(used).unwrap_or(0))
                    })
                    .collect())
            }

            async fn certificate(&self, id: &str) -> Result<Option<EncryptionCertificate>> {
                Ok(sqlx::query_as::<_, CertificateRow>(
                    "SELECT id, certificate, private_key, created_at, retired_at FROM encryption_certificates WHERE id = $1",
                )
                .bind(id)
                .fetch_optional(self.reader())
                .await?
                .map(EncryptionCertificate::from))
            }
        }

        impl std::fmt::Debug for $store {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(concat!(stringify!($store), " { .. }"))
            }
        }
    };
}

/// Deletes a guest and their avatar (inside the caller's transaction).
macro_rules! define_remove_guest {
    ($name:ident, $db:ty) => {
        async fn $name(tx: &mut sqlx::Transaction<'static, $db>, space: SpaceId, guest: PersonId) -> Result<()> {
            sqlx::query("DELETE FROM avatars WHERE space_id = $1 AND person_id = $2 AND kind = 'guest'")
                .bind(space.0.to_string())
                .bind(guest.0.to_string())
                .execute(&mut **tx)
                .await?;
            sqlx::query("DELETE FROM guests WHERE id = $1").bind(guest.0.to_string()).execute(&mut **tx).await?;
            Ok(())
        }
    };
}

mod sqlite_impl {
    use super::*;
    define_remove_guest!(remove_guest, sqlx::Sqlite);
    impl_store!(SqliteStore, sqlx::Sqlite, "sqlite", sqlx::migrate!("migrations/sqlite"), "", "");
}

mod postgres_impl {
    use super::*;
    define_remove_guest!(remove_guest, sqlx::Postgres);
    impl_store!(
        PostgresStore,
        sqlx::Postgres,
        "postgres",
        sqlx::migrate!("migrations/postgres"),
        " FOR UPDATE",
        " FOR UPDATE SKIP LOCKED"
    );
}

/// Claimed connections, the soonest to lapse first (`RETURNING` keeps no order).
fn soonest_first(mut claimed: Vec<Connection>) -> Result<Vec<Connection>> {
    claimed.sort_by_key(|c| c.subscription.as_ref().map(|s| s.expires_at));
    Ok(claimed)
}

/// Rows of `ms_connections` as connections.
fn connections(rows: Vec<ConnectionRow>) -> Result<Vec<Connection>> {
    rows.into_iter().map(Connection::try_from).collect()
}
