//! The certificates providers encrypt notifications for (Microsoft Graph's rich notifications):
//! the newest one not retired is current; a retired one is kept while a subscription uses it and
//! for a while after.

use async_trait::async_trait;
use kehai_core::Millis;

use crate::{
    EncryptionCertificate, Result,
    backend::{classify, for_each_backend},
    rows::*,
};

/// Whether a connected connection's subscription names the `encryption_certificates` row at hand
/// (notifications for other connections are dropped unread: they need no key).
macro_rules! certificate_used {
    () => {
        "EXISTS (SELECT 1 FROM connections WHERE state = 'connected' \
         AND subscription_certificate_id = encryption_certificates.id)"
    };
}

/// Encryption certificates and their private keys (sealed).
#[async_trait]
pub trait Certificates: Send + Sync {
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
}

macro_rules! impl_certificates {
    ($store:ty, $db:ty, $backend:literal, $migrator:expr, $lock:literal, $skip:literal) => {
        #[async_trait]
        impl Certificates for $store {
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
                     (SELECT COUNT(*) FROM connections m WHERE m.subscription_certificate_id = c.id) \
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
    };
}
for_each_backend!(impl_certificates);
