//! Turning Graph's change notifications into avatars (S1, S21): every notification is checked —
//! a known subscription, its clientState (constant-time), for rich ones the validation tokens
//! and then the HMAC before anything is decrypted — and its presence applied in order
//! (`sequenceNumber`) to every space where the connection is ON.

use kehai_microsoft::{
    Presence,
    notifications::{ChangeNotification, NotificationBatch, decrypt_with},
};
use kehai_store::{Applied, Connection, ConnectionState, PresenceWrite, secrets::row_label};
use secrecy::ExposeSecret;
use subtle::ConstantTimeEq;

use super::{Teams, certificates::KeyError, upkeep};
use crate::state::AppState;

/// Why a notification was not applied (logged, and counted in `kehai_notifications_dropped`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dropped {
    /// No connection has this subscription (or the presence is someone else's).
    UnknownSubscription,
    /// The clientState does not match the subscription's.
    ClientState,
    /// A rich notification without valid validation tokens from Graph.
    ValidationToken,
    /// The HMAC or the decryption failed, or the certificate is unknown.
    Decryption,
    /// Not newer than the presence already applied (a duplicate or a late re-delivery).
    Stale,
    /// The connection needs a new sign-in (or is in error): nothing is shown until it is fixed.
    NotConnected,
    /// kehai's database or Microsoft could not be reached.
    Unavailable,
}

impl Dropped {
    /// The stable name used as the metric's `reason` label.
    pub fn reason(self) -> &'static str {
        match self {
            Dropped::UnknownSubscription => "unknown_subscription",
            Dropped::ClientState => "client_state",
            Dropped::ValidationToken => "validation_token",
            Dropped::Decryption => "decryption",
            Dropped::Stale => "stale",
            Dropped::NotConnected => "not_connected",
            Dropped::Unavailable => "unavailable",
        }
    }
}

/// Processes one POST's notifications. The cheap checks come first — a known subscription of a
/// connected connection, its clientState — and the validation tokens only once an admitted item
/// is rich: traffic Microsoft did not send costs no key fetch and no RSA work.
pub async fn process(state: &AppState, teams: &Teams, batch: NotificationBatch) -> Vec<Result<(), Dropped>> {
    let mut tokens_ok: Option<Result<(), Dropped>> = None;
    let mut outcomes = Vec::with_capacity(batch.value.len());
    for notification in &batch.value {
        state.metrics.notifications_received.inc();
        let admitted = admit(state, notification).await;
        let was_admitted = admitted.is_ok();
        let outcome = match admitted {
            Err(why) => Err(why),
            Ok(connection) if notification.encrypted_content.is_some() && notification.lifecycle_event.is_none() => {
                let ok = match tokens_ok {
                    Some(ok) => ok,
                    None => {
                        let ok = verified(teams, batch.validation_tokens.as_deref()).await;
                        if ok == Err(Dropped::ValidationToken) {
                            state.metrics.validation_token_failures.inc();
                        }
                        *tokens_ok.insert(ok)
                    }
                };
                match ok {
                    Ok(()) => one(state, teams, notification, connection).await,
                    Err(why) => Err(why),
                }
            }
            Ok(connection) => one(state, teams, notification, connection).await,
        };
        match outcome {
            Ok(()) => {
                state.metrics.notifications_applied.inc();
            }
            // Anyone can post these: counted, logged only at debug level.
            Err(why @ (Dropped::UnknownSubscription | Dropped::ClientState)) => {
                state.metrics.notification_dropped(why.reason());
                tracing::debug!(?why, "notification not applied");
            }
            Err(why) => {
                state.metrics.notification_dropped(why.reason());
                if why == Dropped::Decryption {
                    state.metrics.decrypt_failures.inc();
                }
                // Microsoft or the database failed a change notification (or a `missed` event)
                // of a subscription kehai knows: its presence is read again later. Only once it
                // was admitted: anyone can post made-up subscriptions. (Other lifecycle events
                // renew or re-create subscriptions: the renewal sweep redoes those.)
                let presence = notification.lifecycle_event.as_deref().is_none_or(|e| e == "missed");
                if why == Dropped::Unavailable && was_admitted && presence {
                    super::reread::schedule(state, &notification.subscription_id);
                }
                tracing::info!(?why, subscription = %notification.subscription_id, "notification not applied");
            }
        };
        outcomes.push(outcome);
    }
    outcomes
}

/// Every validation token must verify (one per app and tenant in the batch): else
/// `ValidationToken`, or `Unavailable` when Microsoft's signing keys could not be had (then the
/// presences are read again later).
async fn verified(teams: &Teams, tokens: Option<&[String]>) -> Result<(), Dropped> {
    let Some(tokens) = tokens.filter(|t| !t.is_empty()) else { return Err(Dropped::ValidationToken) };
    for token in tokens {
        match teams.validation_tokens.verify(token).await {
            Ok(_) => {}
            Err(e @ kehai_microsoft::MicrosoftError::Transport(_)) => {
                tracing::warn!(error = %e, "Microsoft's signing keys could not be fetched");
                return Err(Dropped::Unavailable);
            }
            Err(e) => {
                tracing::warn!(error = %e, "a validation token was refused");
                return Err(Dropped::ValidationToken);
            }
        }
    }
    Ok(())
}

/// The connection a notification is for, if it names a connected connection's subscription with
/// that subscription's clientState (compared in constant time).
async fn admit(state: &AppState, n: &ChangeNotification) -> Result<Connection, Dropped> {
    let connection = state
        .store
        .connection_by_subscription("msteams", &n.subscription_id)
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
    // Needs reconnect or Error: its override was removed and must not come back (nor a refresh
    // be tried again with a refused token).
    if connection.state != ConnectionState::Connected {
        return Err(Dropped::NotConnected);
    }
    Ok(connection)
}

async fn one(
    state: &AppState,
    teams: &Teams,
    n: &ChangeNotification,
    mut connection: Connection,
) -> Result<(), Dropped> {
    if let Some(event) = &n.lifecycle_event {
        return lifecycle(state, teams, connection, event).await;
    }
    let presence: Presence = match &n.encrypted_content {
        Some(content) => {
            let key = teams.keys.get(state, &content.encryption_certificate_id).await.map_err(|e| match e {
                KeyError::Unknown => Dropped::Decryption,
                KeyError::Unavailable => Dropped::Unavailable,
            })?;
            // RSA-OAEP takes a few hundred microseconds of CPU: off the async workers, so that
            // the tasks between them (answering webhooks, committing presences) are not held
            // up behind it.
            let content = content.clone();
            let _core = teams.decrypting.acquire().await.map_err(|_| Dropped::Unavailable)?;
            let plain = tokio::task::spawn_blocking(move || decrypt_with(&key, &content))
                .await
                .map_err(|_| Dropped::Decryption)?
                .map_err(|_| Dropped::Decryption)?;
            serde_json::from_slice(&plain).map_err(|_| Dropped::Decryption)?
        }
        // Basic notifications carry no presence (§0.4): read it.
        None => super::read_presence(state, teams, &mut connection).await.map_err(|_| Dropped::Unavailable)?,
    };
    if presence.id != connection.external_user {
        return Err(Dropped::UnknownSubscription);
    }
    apply(state, teams, &connection, &presence).await
}

/// Shows a presence if it is newer than the one applied. One at a time per connection: of two
/// presences applied at once, the older must not be shown last.
pub(super) async fn apply(
    state: &AppState,
    teams: &Teams,
    connection: &Connection,
    presence: &Presence,
) -> Result<(), Dropped> {
    apply_as(state, teams, connection, presence, false).await
}

/// Shows the presence just read when a space turns the connection ON: like [`apply`], but the
/// presence already applied elsewhere (the same sequence number) is shown too.
pub(crate) async fn show_current(
    state: &AppState,
    teams: &Teams,
    connection: &Connection,
    presence: &Presence,
) -> Result<(), Dropped> {
    apply_as(state, teams, connection, presence, true).await
}

async fn apply_as(
    state: &AppState,
    teams: &Teams,
    connection: &Connection,
    presence: &Presence,
    again: bool,
) -> Result<(), Dropped> {
    let gate = teams.applying.of(connection.id);
    let _applying = gate.lock().await;
    // Still connected to the same account (not marked Needs reconnect, removed or reconnected to
    // another account since it was admitted), and newer than what was applied (duplicates and
    // late re-deliveries change nothing) — checked in the transaction that writes the avatars
    // and the sequence together, so that a crash between the two cannot make the next reading
    // of the same presence look stale.
    let write = PresenceWrite {
        connection: connection.id,
        external_user: connection.external_user.clone(),
        sequence: presence.sequence_number.clone(),
        again,
        presence: super::override_for(presence, state.clock.now()),
        next_check_at: None,
    };
    // With the presences being applied meanwhile, in one transaction.
    match teams.presences.apply(&state.store, &state.clock, write).await {
        Ok(Applied::Shown(avatars)) => {
            avatars.iter().for_each(|a| state.live.publish_avatar(a));
            Ok(())
        }
        Ok(Applied::Stale) => Err(Dropped::Stale),
        Ok(Applied::NotConnected) => Err(Dropped::NotConnected),
        Err(e) => {
            tracing::warn!(error = %e, "could not show a presence");
            Err(Dropped::Unavailable)
        }
    }
}

/// Lifecycle notifications (protocol doc §5): `reauthorizationRequired` renews (a `PATCH`
/// reauthorizes too), `subscriptionRemoved` subscribes anew, `missed` re-reads the presence.
async fn lifecycle(state: &AppState, teams: &Teams, mut connection: Connection, event: &str) -> Result<(), Dropped> {
    let unavailable = |e: String| {
        tracing::warn!(error = %e, event, "a lifecycle notification could not be acted on");
        Dropped::Unavailable
    };
    match event {
        "reauthorizationRequired" => upkeep::renew(state, teams, connection).await.map(|_| ()).map_err(unavailable),
        "subscriptionRemoved" => upkeep::resubscribe(state, teams, connection).await.map(|_| ()).map_err(unavailable),
        "missed" => {
            let presence = super::read_presence(state, teams, &mut connection).await.map_err(unavailable)?;
            apply(state, teams, &connection, &presence).await
        }
        other => {
            tracing::info!(event = other, "an unknown lifecycle event: ignored");
            Ok(())
        }
    }
}
