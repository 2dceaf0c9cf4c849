//! Connections: a member's link to an account at a presence provider, the spaces it is used in
//! (each with its ON/OFF toggle), its tokens and subscription, and the sign-ins in progress that
//! make one.

use async_trait::async_trait;
use kehai_core::{Millis, PersonId, SpaceId};

use crate::{
    Connection, ConnectionId, ConnectionState, OAuthState, Result, StoreError, SubscriptionRecord, TokenUpdate,
    backend::{classify, for_each_backend, uuid},
    rows::*,
};

/// Members' connections to their provider accounts.
#[async_trait]
pub trait Connections: Send + Sync {
    /// Creates or replaces a connection (by id). `Conflict("external account")` when another
    /// member already connected the same account at the provider (or this member has another
    /// connection to the provider).
    async fn save_connection(&self, connection: &Connection) -> Result<()>;
    /// The connection with this id.
    async fn connection(&self, id: ConnectionId) -> Result<Option<Connection>>;
    /// The member's connection to `provider`.
    async fn connection_of(&self, account: PersonId, provider: &str) -> Result<Option<Connection>>;
    /// Stores refreshed tokens of an existing connection (never re-creates a deleted one);
    /// false when the connection is gone. `release`'s refresh claim
    /// ([`Claims::claim_refresh`](crate::Claims::claim_refresh)), if it holds it, is let go of in the same write.
    async fn update_connection_tokens(
        &self,
        id: ConnectionId,
        tokens: &TokenUpdate,
        release: Option<&str>,
    ) -> Result<bool>;
    /// Whether the member is still to be told that their connection to `provider` needs a new
    /// sign-in; true once per time it became Needs reconnect (the caller shows the notice).
    async fn take_connection_notice(&self, account: PersonId, provider: &str) -> Result<bool>;
    /// Sets a connection's state and last error; false when the connection is gone. Becoming
    /// Needs reconnect raises the member's notice ([`Connections::take_connection_notice`]).
    async fn set_connection_state(
        &self,
        id: ConnectionId,
        state: ConnectionState,
        last_error: Option<&str>,
        now: Millis,
    ) -> Result<bool>;
    /// The connection whose subscription at `provider` (or the one it is replacing) is
    /// `subscription_id`.
    async fn connection_by_subscription(&self, provider: &str, subscription_id: &str) -> Result<Option<Connection>>;
    /// The connections whose subscriptions at `provider` (or those they are replacing) are among
    /// `subscription_ids`, in one query (a webhook delivery's items are looked up together).
    async fn connections_by_subscriptions(&self, provider: &str, subscription_ids: &[&str]) -> Result<Vec<Connection>>;
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
    /// Forgets a connection's subscription (and the one it was replacing), if it is still
    /// `subscription` (compare-and-set): they were ended at the provider (the connection is
    /// paused in every space). False otherwise.
    async fn clear_connection_subscription(&self, id: ConnectionId, subscription: &str, now: Millis) -> Result<bool>;
    /// Stores `successor` as the connection's subscription and keeps the current one, if it is
    /// still `current` and none is being replaced already, as the one being replaced (with the
    /// same secret): both are recognized until [`Connections::end_previous_subscription`]. False
    /// otherwise, or when the connection is gone.
    async fn keep_previous_subscription(
        &self,
        id: ConnectionId,
        current: &str,
        successor: &SubscriptionRecord,
        now: Millis,
    ) -> Result<bool>;
    /// Forgets the subscription the connection was replacing, if it is still `previous`: it was
    /// ended at the provider. False otherwise.
    async fn end_previous_subscription(&self, id: ConnectionId, previous: &str, now: Millis) -> Result<bool>;
    /// Makes the subscription being replaced the connection's subscription again, if its
    /// successor is still `successor` (the provider refused to make the successor). False
    /// otherwise.
    async fn restore_previous_subscription(&self, id: ConnectionId, successor: &str, now: Millis) -> Result<bool>;
    /// `provider`'s connected connections in id order, `limit` at a time after `after` (keyset
    /// paging).
    async fn connected_connections(
        &self,
        provider: &str,
        after: Option<ConnectionId>,
        limit: u32,
    ) -> Result<Vec<Connection>>;
    /// How many connections each provider has in each state (states without any are left out).
    async fn connections_by_state(&self) -> Result<Vec<(String, ConnectionState, u64)>>;
    /// Sets when the connection's presence is to be read again (after a read that failed, say).
    async fn set_next_check(&self, id: ConnectionId, at: Option<Millis>) -> Result<()>;
    /// Deletes a connection with its spaces.
    async fn delete_connection(&self, id: ConnectionId) -> Result<()>;
    /// Uses a connection in a space, ON or OFF.
    async fn set_connection_space(&self, id: ConnectionId, space: SpaceId, enabled: bool) -> Result<()>;
    /// Stops using a connection in a space; returns how many spaces still use it. The connection
    /// row is locked meanwhile, so that two spaces let go at once still see the true count.
    async fn remove_connection_space(&self, id: ConnectionId, space: SpaceId) -> Result<usize>;
    /// The spaces a connection is used in, with their toggle.
    async fn connection_spaces(&self, id: ConnectionId) -> Result<Vec<(SpaceId, bool)>>;
    /// Keeps a sign-in in progress, and at most `keep` of its session's (the oldest — soonest to
    /// expire — are dropped): a page that opens popup after popup holds no more.
    async fn create_oauth_state(&self, state: &OAuthState, keep: u32) -> Result<()>;
    /// Takes (and deletes) a sign-in: it can be used once. Expired ones are deleted and `None`.
    async fn take_oauth_state(&self, state_hash: &str, now: Millis) -> Result<Option<OAuthState>>;
}

macro_rules! impl_connections {
    ($store:ty, $db:ty, $backend:literal, $migrator:expr, $lock:literal, $skip:literal) => {
        #[async_trait]
        impl Connections for $store {
            async fn save_connection(&self, c: &Connection) -> Result<()> {
                let sub = c.subscription.as_ref();
                // Kept only beside a current subscription, whose secret it shares.
                let previous = sub.and(c.previous_subscription.as_ref());
                sqlx::query(concat!(
                    "INSERT INTO connections (", connection_columns!(), ") \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, \
                     $20, $21, $22, $23, $24, $25) \
                     ON CONFLICT (id) DO UPDATE SET external_tenant = $4, external_user = $5, access_token = $6, \
                     access_expires_at = $7, refresh_token = $8, refresh_expires_at = $9, subscription_id = $10, \
                     subscription_expires_at = $11, client_state = $12, state = $13, last_error = $14, updated_at = $16, \
                     last_sequence = $17, access_refresh_at = $18, subscription_certificate_id = $19, \
                     next_check_at = $20, subscription_resource = $21, granted_scope = $22, \
                     previous_subscription_id = $23, previous_subscription_resource = $24, \
                     previous_subscription_expires_at = $25, notice_pending = FALSE"
                ))
                .bind(c.id.0.to_string())
                .bind(c.account_id.0.to_string())
                .bind(&c.provider)
                .bind(&c.external_tenant)
                .bind(&c.external_user)
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
                .bind(c.next_check_at)
                .bind(sub.and_then(|s| s.resource.clone()))
                .bind(c.granted_scope.clone())
                .bind(previous.map(|s| s.id.clone()))
                .bind(previous.and_then(|s| s.resource.clone()))
                .bind(previous.map(|s| s.expires_at))
                .execute(self.writer())
                .await
                .map_err(|e| classify(e, "external account", "account"))?;
                Ok(())
            }

            async fn connection(&self, id: ConnectionId) -> Result<Option<Connection>> {
                sqlx::query_as::<_, ConnectionRow>(concat!("SELECT ", connection_columns!(), " FROM connections WHERE id = $1"))
                    .bind(id.0.to_string())
                    .fetch_optional(self.reader())
                    .await?
                    .map(Connection::try_from)
                    .transpose()
            }

            async fn connection_of(&self, account: PersonId, provider: &str) -> Result<Option<Connection>> {
                sqlx::query_as::<_, ConnectionRow>(concat!(
                    "SELECT ", connection_columns!(), " FROM connections WHERE account_id = $1 AND provider = $2"
                ))
                    .bind(account.0.to_string())
                    .bind(provider)
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
                    "UPDATE connections SET access_token = $2, access_expires_at = $3, \
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

            async fn set_connection_subscription(
                &self,
                id: ConnectionId,
                replacing: Option<&str>,
                subscription: &SubscriptionRecord,
                now: Millis,
                release: Option<&str>,
            ) -> Result<bool> {
                let done = sqlx::query(
                    "UPDATE connections SET subscription_id = $2, subscription_expires_at = $3, client_state = $4, \
                     updated_at = $5, subscription_certificate_id = $7, subscription_resource = $9, \
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
                .bind(&subscription.resource)
                .execute(self.writer())
                .await?;
                Ok(done.rows_affected() > 0)
            }

            async fn connected_connections(
                &self,
                provider: &str,
                after: Option<ConnectionId>,
                limit: u32,
            ) -> Result<Vec<Connection>> {
                sqlx::query_as::<_, ConnectionRow>(concat!(
                    "SELECT ", connection_columns!(), " FROM connections \
                     WHERE provider = $3 AND state = 'connected' AND id > $1 ORDER BY id LIMIT $2"
                ))
                .bind(after.map(|a| a.0.to_string()).unwrap_or_default())
                .bind(i64::from(limit))
                .bind(provider)
                .fetch_all(self.reader())
                .await
                .map_err(StoreError::from)
                .and_then(connections)
            }

            async fn take_connection_notice(&self, account: PersonId, provider: &str) -> Result<bool> {
                let done = sqlx::query(
                    "UPDATE connections SET notice_pending = FALSE \
                     WHERE account_id = $1 AND provider = $2 AND notice_pending AND state = 'needs_reconnect'",
                )
                .bind(account.0.to_string())
                .bind(provider)
                .execute(self.writer())
                .await?;
                Ok(done.rows_affected() > 0)
            }

            async fn connections_by_state(&self) -> Result<Vec<(String, ConnectionState, u64)>> {
                let rows: Vec<(String, String, i64)> =
                    sqlx::query_as("SELECT provider, state, COUNT(*) FROM connections GROUP BY provider, state")
                        .fetch_all(self.reader())
                        .await?;
                rows.into_iter()
                    .map(|(provider, state, n)| {
                        let state = ConnectionState::parse(&state).ok_or(StoreError::Corrupt("connection state"))?;
                        Ok((provider, state, u64::try_from(n).unwrap_or(0)))
                    })
                    .collect()
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
                    "UPDATE connections SET state = $2, last_error = $3, updated_at = $4, notice_pending = CASE \
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

            async fn connection_by_subscription(&self, provider: &str, subscription_id: &str) -> Result<Option<Connection>> {
                sqlx::query_as::<_, ConnectionRow>(concat!(
                    "SELECT ", connection_columns!(), " FROM connections WHERE provider = $1 AND subscription_id = $2 \
                     UNION SELECT ", connection_columns!(), " FROM connections \
                     WHERE provider = $1 AND previous_subscription_id = $2"
                ))
                    .bind(provider)
                    .bind(subscription_id)
                    .fetch_optional(self.reader())
                    .await?
                    .map(Connection::try_from)
                    .transpose()
            }

            async fn connections_by_subscriptions(
                &self,
                provider: &str,
                subscription_ids: &[&str],
            ) -> Result<Vec<Connection>> {
                if subscription_ids.is_empty() {
                    return Ok(Vec::new());
                }
                let mut query = sqlx::QueryBuilder::<$db>::new(concat!(
                    "SELECT ", connection_columns!(), " FROM connections WHERE provider = "
                ));
                // Current subscriptions, and those being replaced: one indexed lookup each (an OR
                // of the two may be planned as a scan of the provider's connections).
                for (i, column) in ["subscription_id", "previous_subscription_id"].into_iter().enumerate() {
                    if i > 0 {
                        query.push(concat!(" UNION SELECT ", connection_columns!(), " FROM connections WHERE provider = "));
                    }
                    query.push_bind(provider).push(" AND ").push(column).push(" IN (");
                    let mut ids = query.separated(", ");
                    for id in subscription_ids {
                        ids.push_bind(*id);
                    }
                    query.push(")");
                }
                query
                    .build_query_as::<ConnectionRow>()
                    .fetch_all(self.reader())
                    .await?
                    .into_iter()
                    .map(Connection::try_from)
                    .collect()
            }

            async fn clear_connection_subscription(
                &self,
                id: ConnectionId,
                subscription: &str,
                now: Millis,
            ) -> Result<bool> {
                self.compare_and_set(
                    "UPDATE connections SET subscription_id = NULL, subscription_expires_at = NULL, \
                     client_state = NULL, subscription_certificate_id = NULL, subscription_resource = NULL, \
                     previous_subscription_id = NULL, previous_subscription_resource = NULL, \
                     previous_subscription_expires_at = NULL, updated_at = $3 WHERE id = $1 AND subscription_id = $2",
                    id,
                    subscription,
                    now,
                )
                .await
            }

            async fn keep_previous_subscription(
                &self,
                id: ConnectionId,
                current: &str,
                successor: &SubscriptionRecord,
                now: Millis,
            ) -> Result<bool> {
                // The right-hand sides are the row as it was.
                let done = sqlx::query(
                    "UPDATE connections SET previous_subscription_id = subscription_id, \
                     previous_subscription_resource = subscription_resource, \
                     previous_subscription_expires_at = subscription_expires_at, subscription_id = $3, \
                     subscription_expires_at = $4, subscription_resource = $5, subscription_certificate_id = $6, \
                     updated_at = $7 WHERE id = $1 AND subscription_id = $2 AND previous_subscription_id IS NULL",
                )
                .bind(id.0.to_string())
                .bind(current)
                .bind(&successor.id)
                .bind(successor.expires_at)
                .bind(&successor.resource)
                .bind(&successor.certificate_id)
                .bind(now)
                .execute(self.writer())
                .await?;
                Ok(done.rows_affected() > 0)
            }

            async fn end_previous_subscription(&self, id: ConnectionId, previous: &str, now: Millis) -> Result<bool> {
                self.compare_and_set(
                    "UPDATE connections SET previous_subscription_id = NULL, previous_subscription_resource = NULL, \
                     previous_subscription_expires_at = NULL, updated_at = $3 \
                     WHERE id = $1 AND previous_subscription_id = $2",
                    id,
                    previous,
                    now,
                )
                .await
            }

            async fn restore_previous_subscription(&self, id: ConnectionId, successor: &str, now: Millis) -> Result<bool> {
                self.compare_and_set(
                    "UPDATE connections SET subscription_id = previous_subscription_id, \
                     subscription_resource = previous_subscription_resource, \
                     subscription_expires_at = previous_subscription_expires_at, subscription_certificate_id = NULL, \
                     previous_subscription_id = NULL, previous_subscription_resource = NULL, \
                     previous_subscription_expires_at = NULL, updated_at = $3 \
                     WHERE id = $1 AND subscription_id = $2 AND previous_subscription_id IS NOT NULL",
                    id,
                    successor,
                    now,
                )
                .await
            }

            async fn set_next_check(&self, id: ConnectionId, at: Option<Millis>) -> Result<()> {
                sqlx::query("UPDATE connections SET next_check_at = $2 WHERE id = $1")
                    .bind(id.0.to_string())
                    .bind(at)
                    .execute(self.writer())
                    .await?;
                Ok(())
            }

            async fn delete_connection(&self, id: ConnectionId) -> Result<()> {
                sqlx::query("DELETE FROM connections WHERE id = $1").bind(id.0.to_string()).execute(self.writer()).await?;
                Ok(())
            }

            async fn set_connection_space(&self, id: ConnectionId, space: SpaceId, enabled: bool) -> Result<()> {
                sqlx::query(
                    "INSERT INTO connection_spaces (connection_id, space_id, enabled) VALUES ($1, $2, $3) \
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
                sqlx::query(concat!("SELECT id FROM connections WHERE id = $1", $lock))
                    .bind(id.0.to_string())
                    .fetch_optional(&mut *tx)
                    .await?;
                sqlx::query("DELETE FROM connection_spaces WHERE connection_id = $1 AND space_id = $2")
                    .bind(id.0.to_string())
                    .bind(space.0.to_string())
                    .execute(&mut *tx)
                    .await?;
                let left: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM connection_spaces WHERE connection_id = $1")
                    .bind(id.0.to_string())
                    .fetch_one(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(usize::try_from(left).unwrap_or(0))
            }

            async fn connection_spaces(&self, id: ConnectionId) -> Result<Vec<(SpaceId, bool)>> {
                let rows: Vec<(String, bool)> =
                    sqlx::query_as("SELECT space_id, enabled FROM connection_spaces WHERE connection_id = $1 ORDER BY space_id")
                        .bind(id.0.to_string())
                        .fetch_all(self.reader())
                        .await?;
                rows.into_iter().map(|(s, e)| Ok((SpaceId(uuid(&s, "space id")?), e))).collect()
            }

            async fn create_oauth_state(&self, st: &OAuthState, keep: u32) -> Result<()> {
                let mut tx = self.write_tx().await?;
                sqlx::query(
                    "INSERT INTO oauth_states (state_hash, session_hash, space_id, nonce, pkce_verifier, expires_at, provider) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7)",
                )
                .bind(&st.state_hash)
                .bind(&st.session_hash)
                .bind(st.space_id.0.to_string())
                .bind(&st.nonce.0)
                .bind(&st.pkce_verifier.0)
                .bind(st.expires_at)
                .bind(&st.provider)
                .execute(&mut *tx)
                .await
                .map_err(|e| classify(e, "sign-in", "space"))?;
                // The new one, and the newest others (among those started in the same
                // millisecond, any).
                sqlx::query(
                    "DELETE FROM oauth_states WHERE session_hash = $1 AND state_hash <> $2 AND state_hash NOT IN \
                     (SELECT state_hash FROM oauth_states WHERE session_hash = $1 AND state_hash <> $2 \
                      ORDER BY expires_at DESC, state_hash DESC LIMIT $3)",
                )
                .bind(&st.session_hash)
                .bind(&st.state_hash)
                .bind(i64::from(keep.saturating_sub(1)))
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(())
            }

            async fn take_oauth_state(&self, state_hash: &str, now: Millis) -> Result<Option<OAuthState>> {
                let row = sqlx::query_as::<_, OAuthStateRow>(
                    "DELETE FROM oauth_states WHERE state_hash = $1 \
                     RETURNING state_hash, provider, session_hash, space_id, nonce, pkce_verifier, expires_at",
                )
                .bind(state_hash)
                .fetch_optional(self.writer())
                .await?;
                row.map(OAuthState::try_from).transpose().map(|s| s.filter(|s| s.expires_at > now))
            }
        }

        impl $store {
            /// Runs a compare-and-set of a connection's subscription columns (`$1` the
            /// connection, `$2` the value expected, `$3` now); whether it matched.
            async fn compare_and_set(&self, sql: &'static str, id: ConnectionId, expected: &str, now: Millis) -> Result<bool> {
                let done =
                    sqlx::query(sql).bind(id.0.to_string()).bind(expected).bind(now).execute(self.writer()).await?;
                Ok(done.rows_affected() > 0)
            }
        }
    };
}
for_each_backend!(impl_connections);
