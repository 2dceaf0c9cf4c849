//! Sessions: a member's login or a guest's stay, found by the SHA-256 of the cookie. A guest
//! lives as long as their session: ending it deletes the guest and their avatar.

use async_trait::async_trait;
use kehai_core::Millis;

use crate::{
    Result, Session,
    backend::{classify, for_each_backend},
    rows::*,
};

/// Deletes a guest and their avatar, inside the transaction `$tx`.
macro_rules! remove_guest {
    ($tx:ident, $space:expr, $guest:expr) => {
        sqlx::query("DELETE FROM avatars WHERE space_id = $1 AND person_id = $2 AND kind = 'guest'")
            .bind($space.0.to_string())
            .bind($guest.0.to_string())
            .execute(&mut *$tx)
            .await?;
        sqlx::query("DELETE FROM guests WHERE id = $1").bind($guest.0.to_string()).execute(&mut *$tx).await?;
    };
}

/// Logins and guest stays.
#[async_trait]
pub trait Sessions: Send + Sync {
    async fn create_session(&self, session: &Session) -> Result<()>;
    /// The session with this id hash, if it has not expired at `now`.
    async fn session(&self, id_hash: &str, now: Millis) -> Result<Option<Session>>;
    /// Ends a session. A guest's session takes the guest and their avatar with it.
    async fn delete_session(&self, id_hash: &str) -> Result<Option<Session>>;
    /// Ends every session expired at `now` (and their guests); returns them. Expired sign-ins
    /// in progress go too.
    async fn purge_expired_sessions(&self, now: Millis) -> Result<Vec<Session>>;
}

macro_rules! impl_sessions {
    ($store:ty, $db:ty, $backend:literal, $migrator:expr, $lock:literal, $skip:literal) => {
        #[async_trait]
        impl Sessions for $store {
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
                    remove_guest!(tx, space, guest);
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
                    remove_guest!(tx, space, guest);
                }
                sqlx::query("DELETE FROM oauth_states WHERE expires_at <= $1").bind(now).execute(&mut *tx).await?;
                tx.commit().await?;
                Ok(sessions)
            }
        }
    };
}
for_each_backend!(impl_sessions);
