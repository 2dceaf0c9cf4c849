//! Claims: who does which piece of work when several instances share one database. Named
//! claims (a job, an instance's heartbeat) live in their own table; a connection's upkeep and
//! token refresh are claimed on the connection's row. Every claim lapses by itself, so an
//! instance that dies holds nothing for long.

use async_trait::async_trait;
use kehai_core::Millis;

use crate::{Claim, Connection, ConnectionId, Result, backend::for_each_backend, rows::*};

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
            "UPDATE connections SET ",
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
            "UPDATE connections SET ",
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

/// Claims up to `$limit` connected connections matching `$condition` (on `$5`, `$6`…, bound to
/// `$value`s) that are free for `$claim`, the first by `$order` (`RETURNING` keeps no order: the
/// rows come back sorted by `$sort`); `$skip` passes over rows another instance is claiming this
/// moment.
macro_rules! claim_batch {
    ($self:ident, $skip:literal, $condition:literal, [$($value:expr),+], $order:literal, $sort:expr, $claim:ident, $limit:ident) => {{
        let rows = sqlx::query_as::<_, ConnectionRow>(concat!(
            "UPDATE connections SET claimed_by = $1, claimed_until = $3 WHERE id IN (\
             SELECT id FROM connections WHERE state = 'connected' AND ",
            $condition,
            " AND ",
            claim_free!(),
            " ORDER BY ",
            $order,
            " LIMIT $4",
            $skip,
            ") RETURNING ",
            connection_columns!()
        ))
        .bind($claim.holder)
        .bind($claim.now)
        .bind($claim.until)
        .bind(i64::from($limit))
        $(.bind($value))+;
        let mut claimed = connections(rows.fetch_all($self.writer()).await?)?;
        claimed.sort_by_key($sort);
        Ok(claimed)
    }};
}

/// The soonest to lapse first.
fn by_expiry(c: &Connection) -> Option<Millis> {
    c.subscription.as_ref().map(|s| s.expires_at)
}

/// Work claimed by one instance at a time.
#[async_trait]
pub trait Claims: Send + Sync {
    /// Claims the refresh of a connection's tokens (one at a time across instances: each
    /// refresh rotates the refresh token); false when another instance is refreshing them (or
    /// the connection is gone). Claiming again what one holds extends the claim.
    async fn claim_refresh(&self, id: ConnectionId, claim: Claim<'_>) -> Result<bool>;
    /// Lets go of a connection's refresh claim, if `holder` holds it.
    async fn release_refresh(&self, id: ConnectionId, holder: &str) -> Result<()>;
    /// Claims up to `limit` of `provider`'s connected connections whose subscription lapses before
    /// `before` and that no other instance holds, the soonest first (PostgreSQL skips rows another
    /// instance is claiming this moment rather than waiting for them).
    async fn claim_expiring(
        &self,
        provider: &str,
        before: Millis,
        claim: Claim<'_>,
        limit: u32,
    ) -> Result<Vec<Connection>>;
    /// Claims up to `limit` connected connections whose presence is to be read again by
    /// `claim.now` ([`Connection::next_check_at`]) and that no instance holds — this one
    /// included: a renewal under way keeps its claim, and the wake-up waits for it — the longest
    /// due first.
    async fn claim_due(&self, claim: Claim<'_>, limit: u32) -> Result<Vec<Connection>>;
    /// Claims up to `limit` of `provider`'s connected connections whose subscription is
    /// encrypted for a certificate other than `current` (a retired one) and that no other
    /// instance holds, the soonest to lapse first.
    async fn claim_on_other_certificates(
        &self,
        provider: &str,
        current: &str,
        claim: Claim<'_>,
        limit: u32,
    ) -> Result<Vec<Connection>>;
    /// Claims one connection's upkeep; false when another instance holds it (or it is gone).
    /// Claiming again what one holds extends the claim.
    async fn claim_connection(&self, id: ConnectionId, claim: Claim<'_>) -> Result<bool>;
    /// Lets go of a connection's claim, if `holder` holds it.
    async fn release_connection(&self, id: ConnectionId, holder: &str) -> Result<()>;
    /// Claims `name`; false when another holder's claim has not lapsed. Claiming again what one
    /// holds extends the claim.
    async fn claim(&self, name: &str, claim: Claim<'_>) -> Result<bool>;
    /// Lets go of `name`, if `holder` holds it.
    async fn release(&self, name: &str, holder: &str) -> Result<()>;
    /// Deletes the claims named `prefix…` that lapsed by `now` and returns their names: each is
    /// returned to exactly one caller, even with several instances asking at once.
    async fn take_lapsed(&self, prefix: &str, now: Millis) -> Result<Vec<String>>;
    /// The names of the claims `prefix…` still held at `now`.
    async fn held(&self, prefix: &str, now: Millis) -> Result<Vec<String>>;
}

macro_rules! impl_claims {
    ($store:ty, $db:ty, $backend:literal, $migrator:expr, $lock:literal, $skip:literal) => {
        #[async_trait]
        impl Claims for $store {
            async fn claim_refresh(&self, id: ConnectionId, claim: Claim<'_>) -> Result<bool> {
                claim_row!(self, "refreshing_by", "refreshing_until", id, claim)
            }

            async fn release_refresh(&self, id: ConnectionId, holder: &str) -> Result<()> {
                release_row!(self, "refreshing_by", "refreshing_until", id, holder)
            }

            async fn claim_expiring(
                &self,
                provider: &str,
                before: Millis,
                claim: Claim<'_>,
                limit: u32,
            ) -> Result<Vec<Connection>> {
                claim_batch!(
                    self,
                    $skip,
                    "provider = $5 AND subscription_expires_at < $6",
                    [provider, before],
                    "subscription_expires_at",
                    by_expiry,
                    claim,
                    limit
                )
            }

            async fn claim_due(&self, claim: Claim<'_>, limit: u32) -> Result<Vec<Connection>> {
                // Asked every second, and nearly always nothing is due: a read first, so that
                // SQLite's one writer is not taken for nothing.
                let due: Option<String> = sqlx::query_scalar(
                    "SELECT id FROM connections WHERE next_check_at <= $1 AND state = 'connected' \
                     AND (claimed_by IS NULL OR claimed_until <= $1) LIMIT 1",
                )
                .bind(claim.now)
                .fetch_optional(self.reader())
                .await?;
                if due.is_none() {
                    return Ok(Vec::new());
                }
                claim_batch!(
                    self,
                    $skip,
                    "next_check_at <= $5 AND (claimed_by IS NULL OR claimed_until <= $2)",
                    [claim.now],
                    "next_check_at",
                    |c: &Connection| c.next_check_at,
                    claim,
                    limit
                )
            }

            async fn claim_on_other_certificates(
                &self,
                provider: &str,
                current: &str,
                claim: Claim<'_>,
                limit: u32,
            ) -> Result<Vec<Connection>> {
                // Through the few other certificates and the index on the connections' certificate: no
                // scan of every connection when, as nearly always, there are none.
                claim_batch!(
                    self,
                    $skip,
                    "provider = $6 AND subscription_certificate_id IN \
                     (SELECT id FROM encryption_certificates WHERE id <> $5)",
                    [current, provider],
                    "subscription_expires_at",
                    by_expiry,
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
                Ok(sqlx::query_scalar("DELETE FROM claims WHERE held_until <= $1 AND name LIKE $2 RETURNING name")
                    .bind(now)
                    .bind(format!("{prefix}%"))
                    .fetch_all(self.writer())
                    .await?)
            }

            async fn held(&self, prefix: &str, now: Millis) -> Result<Vec<String>> {
                debug_assert!(prefix.chars().all(|c| c.is_ascii_alphanumeric() || c == '/' || c == '-'));
                Ok(sqlx::query_scalar("SELECT name FROM claims WHERE held_until > $1 AND name LIKE $2 ORDER BY name")
                    .bind(now)
                    .bind(format!("{prefix}%"))
                    .fetch_all(self.reader())
                    .await?)
            }
        }
    };
}
for_each_backend!(impl_claims);
