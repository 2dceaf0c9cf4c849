//! The database itself: which engine, its migrations, whether it answers, and re-sealing every
//! sealed value under a new master key (`kehai keys rotate`).

use async_trait::async_trait;

use crate::{
    ConnectionId, Result, StoreError,
    backend::{for_each_backend, uuid},
    secrets::{ConnectionSecret, Place, SignInSecret},
};

/// The database as a whole.
#[async_trait]
pub trait Maintenance: Send + Sync {
    /// `sqlite` or `postgres`, for logs and metrics.
    fn backend(&self) -> &'static str;
    /// Applies pending migrations.
    async fn migrate(&self) -> Result<()>;
    /// Succeeds when the database answers a query.
    async fn ping(&self) -> Result<()>;
    /// Closes the database, waiting until every connection has ended (SQLite writes its log back
    /// into the database file as the last one closes). Nothing can be asked afterwards.
    async fn close(&self);
    /// Re-seals every sealed value in one transaction (`kehai keys rotate`): `rekey` gets each
    /// value's place ([`crate::secrets::Place`]) and sealed text and returns the new sealed text;
    /// `before_commit` runs last (the new key is put in place there) and can still abort. Every
    /// row is locked as it is read (PostgreSQL `FOR UPDATE`; SQLite's write lock is taken at the
    /// start), so no write can slip in between the read and the re-sealed write. Returns how many
    /// values were re-sealed.
    async fn reseal(
        &self,
        rekey: &(dyn for<'a, 'b> Fn(Place<'a>, &'b str) -> Result<String, crate::secrets::SecretError> + Send + Sync),
        before_commit: &(dyn Fn() -> std::result::Result<(), String> + Send + Sync),
    ) -> Result<usize>;
}

macro_rules! impl_maintenance {
    ($store:ty, $db:ty, $backend:literal, $migrator:expr, $lock:literal, $skip:literal) => {
        #[async_trait]
        impl Maintenance for $store {
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

            async fn close(&self) {
                self.reader().close().await;
                self.writer().close().await;
            }

            async fn reseal(
                &self,
                rekey: &(
                     dyn for<'a, 'b> Fn(Place<'a>, &'b str) -> std::result::Result<String, crate::secrets::SecretError>
                         + Send
                         + Sync
                 ),
                before_commit: &(dyn Fn() -> std::result::Result<(), String> + Send + Sync),
            ) -> Result<usize> {
                let fail = |e: crate::secrets::SecretError| StoreError::Reseal(e.to_string());
                let mut tx = self.write_tx().await?;
                let mut count = 0;
                // Connections: access token, refresh token, client state.
                let rows: Vec<(String, String, Option<String>, Option<String>)> = sqlx::query_as(concat!(
                    "SELECT id, access_token, refresh_token, client_state FROM connections",
                    $lock
                ))
                .fetch_all(&mut *tx)
                .await?;
                for (id, access, refresh, client_state) in rows {
                    let connection = ConnectionId(uuid(&id, "connection id")?);
                    let place = |secret| Place::Connection(connection, secret);
                    let access = rekey(place(ConnectionSecret::AccessToken), &access).map_err(fail)?;
                    let refresh =
                        refresh.map(|r| rekey(place(ConnectionSecret::RefreshToken), &r)).transpose().map_err(fail)?;
                    let client_state = client_state
                        .map(|c| rekey(place(ConnectionSecret::ClientState), &c))
                        .transpose()
                        .map_err(fail)?;
                    count += 1 + usize::from(refresh.is_some()) + usize::from(client_state.is_some());
                    sqlx::query(
                        "UPDATE connections SET access_token = $2, refresh_token = $3, client_state = $4 WHERE id = $1",
                    )
                    .bind(&id)
                    .bind(access)
                    .bind(refresh)
                    .bind(client_state)
                    .execute(&mut *tx)
                    .await?;
                }
                // Sign-ins in progress: nonce and PKCE verifier.
                let rows: Vec<(String, String, String)> =
                    sqlx::query_as(concat!("SELECT state_hash, nonce, pkce_verifier FROM oauth_states", $lock))
                        .fetch_all(&mut *tx)
                        .await?;
                for (hash, nonce, verifier) in rows {
                    let nonce = rekey(Place::SignIn(&hash, SignInSecret::Nonce), &nonce).map_err(fail)?;
                    let verifier = rekey(Place::SignIn(&hash, SignInSecret::PkceVerifier), &verifier).map_err(fail)?;
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
                    sqlx::query_as(concat!("SELECT id, private_key FROM encryption_certificates", $lock))
                        .fetch_all(&mut *tx)
                        .await?;
                for (id, key) in rows {
                    let key = rekey(Place::CertificateKey(&id), &key).map_err(fail)?;
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
        }
    };
}
for_each_backend!(impl_maintenance);
