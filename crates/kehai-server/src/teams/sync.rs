//! Turning Graph's change notifications into avatars (S1, S21): every notification is checked —
//! a known subscription, its clientState (constant-time), for rich ones the validation tokens
//! and then the HMAC before anything is decrypted — and its presence applied in order
//! (`sequenceNumber`) to every space where the connection is ON.

use base64::{Engine, engine::general_purpose::STANDARD};
use kehai_microsoft::{
    Presence,
    notifications::{ChangeNotification, NotificationBatch, decrypt},
};
use kehai_store::secrets::row_label;
use secrecy::ExposeSecret;
use subtle::ConstantTimeEq;

use super::Teams;
use crate::state::AppState;

/// Why a notification was not applied (logged; metrics later).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dropped {
    UnknownSubscription,
    ClientState,
    ValidationToken,
    Decryption,
    Stale,
    Unavailable,
}

/// Processes one POST's notifications.
pub async fn process(state: &AppState, teams: &Teams, batch: NotificationBatch) -> Vec<Result<(), Dropped>> {
    // Validation tokens first: no RSA private-key work for a batch Microsoft did not send.
    let rich = batch.value.iter().any(|n| n.encrypted_content.is_some());
    let tokens_ok = if rich { verified(teams, batch.validation_tokens.as_deref()).await } else { true };
    let mut outcomes = Vec::with_capacity(batch.value.len());
    for notification in batch.value {
        let outcome = one(state, teams, &notification, tokens_ok).await;
        if let Err(why) = outcome {
            tracing::info!(?why, subscription = %notification.subscription_id, "notification not applied");
        }
        outcomes.push(outcome);
    }
    outcomes
}

/// Every validation token must verify (one per app and tenant in the batch).
async fn verified(teams: &Teams, tokens: Option<&[String]>) -> bool {
    let Some(tokens) = tokens.filter(|t| !t.is_empty()) else { return false };
    for token in tokens {
        if let Err(e) = teams.validation_tokens.verify(token).await {
            tracing::warn!(error = %e, "a validation token was refused");
            return false;
        }
    }
    true
}

async fn one(state: &AppState, teams: &Teams, n: &ChangeNotification, tokens_ok: bool) -> Result<(), Dropped> {
    let mut connection = state
        .store
        .connection_by_subscription(&n.subscription_id)
        .await
        .map_err(|_| Dropped::Unavailable)?
        .ok_or(Dropped::UnknownSubscription)?;
    let subscription = connection.subscription.clone().ok_or(Dropped::UnknownSubscription)?;
    let expected = state
        .secrets
        .open(&subscription.client_state.0, &row_label("connection", &connection.id.0.to_string(), "client_state"))
        .map_err(|_| Dropped::ClientState)?;
    let given = n.client_state.as_deref().unwrap_or("");
    if !bool::from(given.as_bytes().ct_eq(expected.expose_secret().as_bytes())) {
        return Err(Dropped::ClientState);
    }
    if n.lifecycle_event.is_some() {
        // Lifecycle events (reauthorization) are the subscription upkeep's.
        return Ok(());
    }
    let presence: Presence = match &n.encrypted_content {
        Some(content) => {
            if !tokens_ok {
                return Err(Dropped::ValidationToken);
            }
            let cert = state
                .store
                .certificate(&content.encryption_certificate_id)
                .await
                .map_err(|_| Dropped::Unavailable)?
                .ok_or(Dropped::Decryption)?;
            let key = state
                .secrets
                .open(&cert.private_key.0, &row_label("certificate", &cert.id, "private_key"))
                .map_err(|_| Dropped::Decryption)?;
            let der = STANDARD.decode(key.expose_secret()).map_err(|_| Dropped::Decryption)?;
            let plain = decrypt(&der, content).map_err(|_| Dropped::Decryption)?;
            serde_json::from_slice(&plain).map_err(|_| Dropped::Decryption)?
        }
        // Basic notifications carry no presence (§0.4): read it.
        None => {
            let token =
                super::tokens::access_token(state, teams, &mut connection).await.map_err(|_| Dropped::Unavailable)?;
            let user = n.user_id().unwrap_or(&connection.ms_user_id).to_owned();
            teams.graph.presence_of(&token, &user).await.map_err(|_| Dropped::Unavailable)?
        }
    };
    if presence.id != connection.ms_user_id {
        return Err(Dropped::UnknownSubscription);
    }
    // Newer than what was applied, or nothing (duplicates and late re-deliveries change nothing).
    if let Some(sequence) = &presence.sequence_number
        && !state.store.advance_sequence(connection.id, sequence).await.map_err(|_| Dropped::Unavailable)?
    {
        return Err(Dropped::Stale);
    }
    super::show_presence(state, connection.id, connection.account_id, &presence).await;
    Ok(())
}
