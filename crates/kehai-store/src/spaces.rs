//! Spaces and the people registered in them: accounts (email and password hash), memberships
//! with their role, and guests (a display name in one space). Registering someone in a space gives
//! them an avatar there in the same transaction.

use async_trait::async_trait;
use kehai_core::{Account, DisplayName, Email, Guest, Membership, Millis, PersonId, Role, Space, SpaceId, SpaceSlug};

use crate::{
    Member, Result, StoreError,
    backend::{classify, for_each_backend},
    rows::*,
};

/// Spaces, accounts, memberships and guests.
#[async_trait]
pub trait Spaces: Send + Sync {
    /// Fails with `Conflict("space")` when the slug is taken.
    async fn create_space(&self, space: &Space, now: Millis) -> Result<()>;
    async fn space_by_slug(&self, slug: &SpaceSlug) -> Result<Option<Space>>;
    async fn space_by_id(&self, id: SpaceId) -> Result<Option<Space>>;
    /// The spaces an account is a member of, ordered by name.
    async fn spaces_of(&self, account: PersonId) -> Result<Vec<Space>>;
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
    /// Creates a guest of a space with its avatar, atomically — unless `at_most` guests are in
    /// the space already (false): guests with a live session, or who joined in the last minute.
    async fn create_guest(&self, guest: &Guest, now: Millis, at_most: u32) -> Result<bool>;
    /// Whether a space takes guests, and how: `link_hash` is the SHA-256 of its guest link's
    /// secret when they may join through that link only. Fails with `NotFound("space")`.
    async fn set_guests(&self, space: SpaceId, allow: bool, link_hash: Option<&str>) -> Result<()>;
    /// The SHA-256 of the space's guest link secret, when guests join through a link only.
    async fn guest_link_hash(&self, space: SpaceId) -> Result<Option<String>>;
}

/// How long a guest who joined counts without a session yet (it is made right after).
const JOINING_MS: Millis = 60_000;

macro_rules! impl_spaces {
    ($store:ty, $db:ty, $backend:literal, $migrator:expr, $lock:literal, $skip:literal) => {
        #[async_trait]
        impl Spaces for $store {
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

            async fn create_guest(&self, guest: &Guest, now: Millis, at_most: u32) -> Result<bool> {
                let (space, display_name) = (guest.space_id, &guest.display_name);
                let guest = guest.id;
                let mut tx = self.write_tx().await?;
                // The space's row locked first: joins to one space count one after the other.
                sqlx::query(concat!("SELECT id FROM spaces WHERE id = $1", $lock))
                    .bind(space.0.to_string())
                    .execute(&mut *tx)
                    .await?;
                // Guests with a live session — or who joined in the last minute, their session
                // being made: one that never got a session (the join broke off) stops counting.
                let present: i64 = sqlx::query_scalar(
                    "SELECT COUNT(*) FROM guests g WHERE g.space_id = $1 AND (g.created_at > $2 OR EXISTS \
                     (SELECT 1 FROM sessions s WHERE s.person_id = g.id AND s.expires_at > $3))",
                )
                .bind(space.0.to_string())
                .bind(now - JOINING_MS)
                .bind(now)
                .fetch_one(&mut *tx)
                .await?;
                if present >= i64::from(at_most) {
                    return Ok(false);
                }
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
                Ok(true)
            }

            async fn set_guests(&self, space: SpaceId, allow: bool, link_hash: Option<&str>) -> Result<()> {
                let done = sqlx::query("UPDATE spaces SET allow_guests = $2, guest_link_hash = $3 WHERE id = $1")
                    .bind(space.0.to_string())
                    .bind(allow)
                    .bind(link_hash.filter(|_| allow))
                    .execute(self.writer())
                    .await?;
                if done.rows_affected() == 0 {
                    return Err(StoreError::NotFound("space"));
                }
                Ok(())
            }

            async fn guest_link_hash(&self, space: SpaceId) -> Result<Option<String>> {
                Ok(sqlx::query_scalar::<_, Option<String>>("SELECT guest_link_hash FROM spaces WHERE id = $1")
                    .bind(space.0.to_string())
                    .fetch_optional(self.reader())
                    .await?
                    .flatten())
            }
        }
    };
}
for_each_backend!(impl_spaces);
