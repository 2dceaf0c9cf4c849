//! Graph's change notifications. A POST to `/webhooks/msgraph[/lifecycle]` is a validation
//! handshake (`?validationToken=…`, answered with the token as plain text) or a collection of
//! notifications: each names its subscription, carries its clientState and either a presence
//! encrypted for kehai's certificate (rich), nothing (basic: the presence is read) or a
//! lifecycle event. Before any encrypted content is opened, every validation token of the POST
//! must verify (signed by Microsoft for kehai's app); then the content's HMAC is checked, and
//! only then is it decrypted.

use axum::http::StatusCode;
use kehai_microsoft::{
    MicrosoftError, Presence,
    notifications::{BatchError, ChangeNotification, EncryptedContent, NotificationBatch, decrypt_with},
};

use super::{Teams, certificates::KeyError, reading_of};
use crate::{
    presence::{Content, Dropped, Event, Inbound, Item, Proven, Reading, WebhookRefusal, WebhookRequest},
    state::AppState,
};

/// Graph's validation handshake: the token (the last one, if given twice), already URL-decoded as
/// Graph requires.
pub(super) fn handshake(request: &WebhookRequest<'_>) -> Option<String> {
    request.query.iter().rev().find(|(name, _)| name == "validationToken").map(|(_, token)| token.clone())
}

pub(super) fn parse(request: &WebhookRequest<'_>) -> Result<Inbound, WebhookRefusal> {
    NotificationBatch::parse(request.body).map(inbound).map_err(|e| match e {
        BatchError::TooMany => WebhookRefusal {
            status: StatusCode::PAYLOAD_TOO_LARGE,
            code: "too_many_notifications",
            message: "more notifications in one POST than Graph sends",
        },
        BatchError::Invalid(_) => WebhookRefusal {
            status: StatusCode::BAD_REQUEST,
            code: "invalid_notification",
            message: "not a change-notification collection",
        },
    })
}

/// A parsed collection as the engine's items; its validation tokens are the delivery's proof.
/// Graph's subscription ids are GUIDs: an item naming anything else is left out, counted.
pub fn inbound(batch: NotificationBatch) -> Inbound {
    let total = batch.value.len();
    let items: Vec<Item> =
        batch.value.into_iter().filter(|n| uuid::Uuid::try_parse(&n.subscription_id).is_ok()).map(item).collect();
    Inbound { malformed: total - items.len(), items, proof: batch.validation_tokens.map(Content::new) }
}

fn item(n: ChangeNotification) -> Item {
    let event = match n.lifecycle_event.as_deref() {
        None => Event::Changed(n.encrypted_content.map(Content::new)),
        Some("reauthorizationRequired") => Event::RenewalRequired,
        Some("subscriptionRemoved") => Event::Removed,
        Some("missed") => Event::Missed,
        Some(other) => Event::Other(other.to_owned()),
    };
    Item { subscription: n.subscription_id, secret: n.client_state, resource: None, event }
}

/// Every validation token must verify (one per app and tenant in the POST): else
/// `ValidationToken`, or `Unavailable` when Microsoft's signing keys could not be had (then the
/// presences are read again later). They vouch for their tenants' connections only.
pub(super) async fn verify(teams: &Teams, _state: &AppState, delivery: &Inbound) -> Result<Proven, Dropped> {
    let tokens = delivery.proof.as_ref().and_then(Content::get::<Vec<String>>);
    let Some(tokens) = tokens.filter(|t| !t.is_empty()) else { return Err(Dropped::ValidationToken) };
    let mut tenants = Vec::with_capacity(tokens.len());
    for token in tokens {
        match teams.validation_tokens.verify(token).await {
            Ok(tenant) => tenants.push(tenant),
            Err(e @ MicrosoftError::Transport(_)) => {
                tracing::warn!(error = %e, "Microsoft's signing keys could not be fetched");
                return Err(Dropped::Unavailable);
            }
            Err(e) => {
                tracing::warn!(error = %e, "a validation token was refused");
                return Err(Dropped::ValidationToken);
            }
        }
    }
    Ok(Proven::Tenants(tenants))
}

/// The presence a rich notification carries: its certificate's private key, the HMAC, then the
/// decryption.
pub(super) async fn open(teams: &Teams, state: &AppState, content: &Content) -> Result<Reading, Dropped> {
    let content = content.get::<EncryptedContent>().ok_or(Dropped::Decryption)?;
    let key = teams.keys.get(state, &content.encryption_certificate_id).await.map_err(|e| match e {
        KeyError::Unknown => Dropped::Decryption,
        KeyError::Unavailable => Dropped::Unavailable,
    })?;
    // RSA-OAEP takes a few hundred microseconds of CPU: off the async workers, so that the tasks
    // between them (answering webhooks, committing presences) are not held up behind it.
    let content = content.clone();
    let _core = teams.decrypting.acquire().await.map_err(|_| Dropped::Unavailable)?;
    let plain = tokio::task::spawn_blocking(move || decrypt_with(&key, &content))
        .await
        .map_err(|_| Dropped::Decryption)?
        .map_err(|_| Dropped::Decryption)?;
    let presence: Presence = serde_json::from_slice(&plain).map_err(|_| Dropped::Decryption)?;
    Ok(reading_of(&presence))
}
