//! kehai's encryption certificates: Graph encrypts rich notifications' presence for the current
//! one. Generated on first need (RSA-2048, self-signed — Graph does not check the issuer), its
//! private key sealed at rest.
//!
//! `kehai keys rotate-cert` ([`rotate`]) makes a new current certificate, retires the others and
//! moves every subscription to the new one (a `PATCH` that also renews it). One it could not move
//! — or all, when kehai was not serving — moves with the renewal sweep, within a minute. A
//! retired private key is kept while any subscription still uses it and for Graph's four hours of
//! retries after that, then deleted ([`remove_unused`]).

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use base64::{Engine, engine::general_purpose::STANDARD};
use kehai_microsoft::notifications::DecryptionKey;
use kehai_store::{EncryptionCertificate, Sealed, StoreError, secrets::Place};
use secrecy::{ExposeSecret, SecretString};

use super::Teams;
use crate::{
    presence::renewal::{self, Upkeep},
    state::AppState,
};

/// How long Graph retries a notification that was not answered in time: one encrypted for a
/// retired certificate may still arrive this long after its subscription moved.
const RETRY_WINDOW_MS: i64 = 4 * 3600 * 1000;
/// Connections read from the database at a time while moving subscriptions.
const PAGE: u32 = 500;
/// How long a private key stays parsed in memory before it is read again.
const KEY_KEPT: Duration = Duration::from_secs(5 * 60);

/// Why no certificate could be had or made.
#[derive(Debug, thiserror::Error)]
pub enum CertificateError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot generate a certificate: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("cannot seal a private key")]
    Seal,
    #[error("no current certificate")]
    Missing,
}

/// Why no private key could be had for a certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyError {
    /// No such certificate, or its key does not open: nothing to decrypt with.
    Unknown,
    /// The database did not answer.
    Unavailable,
}

/// Certificates' private keys, read, unsealed and parsed once: a rich notification then costs an
/// RSA decryption and little else. A key is read again after five minutes, so that one deleted
/// (here or by another instance) is not kept for longer.
#[derive(Debug, Default)]
pub struct Keys(Mutex<HashMap<String, (Instant, Arc<DecryptionKey>)>>);

impl Keys {
    /// The private key of certificate `id`.
    pub async fn get(&self, state: &AppState, id: &str) -> Result<Arc<DecryptionKey>, KeyError> {
        if let Some((at, key)) = self.lock().get(id)
            && at.elapsed() < KEY_KEPT
        {
            return Ok(Arc::clone(key));
        }
        let cert = state.store.certificate(id).await.map_err(|_| KeyError::Unavailable)?.ok_or(KeyError::Unknown)?;
        let sealed =
            state.secrets.open(&cert.private_key.0, Place::CertificateKey(&cert.id)).map_err(|_| KeyError::Unknown)?;
        let der = STANDARD.decode(sealed.expose_secret()).map_err(|_| KeyError::Unknown)?;
        let key = Arc::new(DecryptionKey::from_pkcs8(&der).map_err(|_| KeyError::Unknown)?);
        let mut keys = self.lock();
        keys.retain(|_, (at, _)| at.elapsed() < KEY_KEPT);
        keys.insert(id.to_owned(), (Instant::now(), Arc::clone(&key)));
        Ok(key)
    }

    /// Forgets every parsed key (certificates were deleted).
    pub fn forget(&self) {
        self.lock().clear();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Instant, Arc<DecryptionKey>)>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The current certificate's id and base64 DER, made if there is none.
pub async fn current(state: &AppState) -> Result<(String, String), CertificateError> {
    if let Some(c) = state.store.current_certificate().await? {
        return Ok((c.id, c.certificate));
    }
    let record = generate(state)?;
    match state.store.add_certificate(&record).await {
        Ok(()) => Ok((record.id, record.certificate)),
        // Another request made one meanwhile: use the current one.
        Err(_) => {
            state.store.current_certificate().await?.map(|c| (c.id, c.certificate)).ok_or(CertificateError::Missing)
        }
    }
}

/// A new certificate with its private key sealed (not stored yet).
fn generate(state: &AppState) -> Result<EncryptionCertificate, CertificateError> {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256)?;
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new())?;
    params.distinguished_name.push(rcgen::DnType::CommonName, "kehai notification encryption");
    let cert = params.self_signed(&key)?;
    let id = format!("kehai-{}", uuid::Uuid::new_v4());
    let private_key = SecretString::from(STANDARD.encode(key.serialize_der()));
    let sealed = state.secrets.seal(&private_key, Place::CertificateKey(&id)).map_err(|_| CertificateError::Seal)?;
    Ok(EncryptionCertificate {
        id,
        certificate: STANDARD.encode(cert.der()),
        private_key: Sealed(sealed),
        created_at: state.clock.now(),
        retired_at: None,
    })
}

/// What a certificate rotation did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rotation {
    /// The new current certificate.
    pub certificate_id: String,
    /// Subscriptions now encrypted for it.
    pub moved: usize,
    /// Subscriptions that could not be moved now (Microsoft unreachable, a refused sign-in):
    /// the serving kehai's sweep tries again every minute, and their old key stays meanwhile.
    pub failed: usize,
    /// Retired certificates whose private keys are still kept.
    pub kept: usize,
}

/// Makes a new current certificate and retires the others; returns its id. Subscriptions move to
/// it as they renew ([`rotate`] moves them at once).
pub async fn make_new_current(state: &AppState) -> Result<String, CertificateError> {
    let record = generate(state)?;
    state.store.add_certificate(&record).await?;
    state.store.retire_certificates(&record.id, state.clock.now()).await?;
    Ok(record.id)
}

/// Makes a new current certificate and moves every rich subscription to it.
pub async fn rotate(state: &AppState, teams: &Teams) -> Result<Rotation, CertificateError> {
    let new = make_new_current(state).await?;
    let mut rotation = Rotation { certificate_id: new.clone(), moved: 0, failed: 0, kept: 0 };
    let mut after = None;
    loop {
        let page = state.store.connected_connections(kehai_core::presence::msteams::ID, after, PAGE).await?;
        let Some(last) = page.last() else { break };
        after = Some(last.id);
        for connection in page {
            let on_old =
                connection.subscription.as_ref().and_then(|s| s.certificate_id.as_deref()).is_some_and(|id| id != new);
            if !on_old {
                continue;
            }
            let id = connection.id;
            match renewal::renew(state, teams, connection).await {
                // The serving kehai is renewing it: its sweep moves it next.
                Ok(Upkeep::Elsewhere) => rotation.failed += 1,
                Ok(_) => rotation.moved += 1,
                Err(e) => {
                    tracing::warn!(connection = %id.0, error = %e, "a subscription stays on the old certificate for now");
                    rotation.failed += 1;
                }
            }
        }
    }
    remove_unused(state, &teams.keys).await;
    rotation.kept = state.store.certificates().await?.iter().filter(|(c, _)| c.retired_at.is_some()).count();
    Ok(rotation)
}

/// Deletes retired certificates once no subscription has used them for four hours: Graph can no
/// longer be retrying notifications encrypted for them (their parsed keys in `keys` go too). Runs
/// after every periodic reconciliation.
pub async fn remove_unused(state: &AppState, keys: &Keys) {
    match state.store.remove_unused_certificates(state.clock.now(), RETRY_WINDOW_MS).await {
        Ok(removed) if !removed.is_empty() => {
            keys.forget();
            tracing::info!(?removed, "retired encryption certificates deleted");
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "cannot delete retired encryption certificates"),
    }
}
