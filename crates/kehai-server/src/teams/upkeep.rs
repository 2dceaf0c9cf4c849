//! Keeping presence subscriptions alive (S1): Graph ends a presence subscription after at most an
//! hour, and asks for reauthorization before the access token it was made with lapses.
//!
//! A sweep renews every subscription well before it lapses — 20 to 30 minutes ahead, the exact
//! lead spread by connection so that a restart does not renew everything at once — and a
//! `reauthorizationRequired` lifecycle notification renews at once: a `PATCH` of the expiry both
//! renews and reauthorizes, so kehai never needs a separate `reauthorize` call. A subscription
//! Graph no longer knows (404, `subscriptionRemoved`) is created anew, and the presence re-read
//! because changes may have been missed meanwhile.

use std::time::Duration;

use kehai_microsoft::{MicrosoftError, NewSubscription};
use kehai_store::{Connection, ConnectionId, Sealed, SubscriptionRecord, secrets::row_label};
use secrecy::SecretString;
use time::{OffsetDateTime, format_description::well_known::Rfc3339};
use tokio_util::sync::CancellationToken;

use super::{Teams, tokens::CallError};
use crate::state::AppState;

/// Subscriptions are made and renewed for 59 minutes (Graph allows 60 for presence).
pub const SUBSCRIPTION_MS: i64 = 59 * 60 * 1000;
/// Renewal starts this long before a subscription lapses, plus a per-connection spread.
const LEAD_MS: i64 = 20 * 60 * 1000;
const SPREAD_MS: i64 = 10 * 60 * 1000;
/// How often the sweep looks for subscriptions to renew.
const SWEEP: Duration = Duration::from_secs(60);
/// Sweeps between reconciliations.
const RECONCILE_EVERY: u64 = 5;
/// Connections renewed per sweep at most (the rest wait for the next sweep).
const BATCH: u32 = 200;

/// What one upkeep did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upkeep {
    Renewed,
    /// Graph had lost it: a new one was made and the presence re-read.
    Recreated,
}

/// Creates the presence subscription (rich: encrypted for kehai's certificate). A 409 means
/// one exists already (after a crash, say): it is replaced, as its clientState is unknown.
pub async fn subscribe(
    state: &AppState,
    teams: &Teams,
    access: &SecretString,
    user: &str,
    connection: ConnectionId,
) -> Result<SubscriptionRecord, MicrosoftError> {
    let encryption_certificate = if teams.rich {
        let (id, cert) = super::certificates::current(state).await.map_err(|e| MicrosoftError::Transport(e.message))?;
        Some((cert, id))
    } else {
        None
    };
    let client_state = SecretString::from(super::connect::random(32));
    let requested = state.clock.now() + SUBSCRIPTION_MS;
    let new = NewSubscription {
        resource: format!("communications/presences/{user}"),
        notification_url: teams.notification_url.clone(),
        lifecycle_notification_url: Some(teams.lifecycle_url.clone()),
        expiration: rfc3339(requested),
        client_state: client_state.clone(),
        encryption_certificate,
    };
    let created = match teams.graph.create_subscription(access, &new).await {
        Err(MicrosoftError::Graph { status: 409, .. }) => {
            for old in teams.graph.subscriptions(access).await? {
                if old.resource.contains(user) {
                    teams.graph.delete_subscription(access, &old.id).await?;
                }
            }
            teams.graph.create_subscription(access, &new).await?
        }
        other => other?,
    };
    let sealed = state
        .secrets
        .seal(&client_state, &row_label("connection", &connection.0.to_string(), "client_state"))
        .map_err(|e| MicrosoftError::Transport(e.to_string()))?;
    let expires_at = millis(&created.expiration_date_time).unwrap_or(requested);
    Ok(SubscriptionRecord { id: created.id, expires_at, client_state: Sealed(sealed) })
}

/// Renews a connection's subscription (which also reauthorizes it), or makes a new one when
/// Graph no longer has it. Errors are described for the log (never a token).
pub async fn renew(state: &AppState, teams: &Teams, mut connection: Connection) -> Result<Upkeep, String> {
    let Some(current) = connection.subscription.clone() else {
        let token = super::tokens::access_token(state, teams, &mut connection).await.map_err(|e| e.to_string())?;
        return recreate(state, teams, &connection, &token).await;
    };
    let now = state.clock.now();
    let requested = now + SUBSCRIPTION_MS;
    let (expiry, id) = (&rfc3339(requested), &current.id);
    let renewal = super::tokens::authorized(state, teams, &mut connection, |token| async move {
        teams.graph.renew_subscription(&token, id, expiry).await.map(|renewed| (renewed, token))
    })
    .await;
    match renewal {
        Ok((renewed, token)) => {
            let record = SubscriptionRecord {
                expires_at: millis(&renewed.expiration_date_time).unwrap_or(requested),
                ..current.clone()
            };
            let stored = state
                .store
                .set_connection_subscription(connection.id, Some(&current.id), &record, now)
                .await
                .map_err(|e| e.to_string())?;
            if !stored && state.store.connection_by_subscription(&current.id).await.is_ok_and(|c| c.is_none()) {
                // Disconnected or replaced meanwhile: nobody needs it any more.
                let _ = teams.graph.delete_subscription(&token, &current.id).await;
                return Err("the subscription was replaced or removed meanwhile".into());
            }
            tracing::debug!(connection = %connection.id.0, "subscription renewed");
            Ok(Upkeep::Renewed)
        }
        Err(CallError::Graph(MicrosoftError::Graph { status: 404, .. })) => {
            let token = super::tokens::access_token(state, teams, &mut connection).await.map_err(|e| e.to_string())?;
            recreate(state, teams, &connection, &token).await
        }
        Err(e) => Err(e.to_string()),
    }
}

/// A new subscription for a connection whose old one is gone, and the presence read again.
pub async fn recreate(
    state: &AppState,
    teams: &Teams,
    connection: &Connection,
    token: &SecretString,
) -> Result<Upkeep, String> {
    let record =
        subscribe(state, teams, token, &connection.ms_user_id, connection.id).await.map_err(|e| e.to_string())?;
    let replacing = connection.subscription.as_ref().map(|s| s.id.as_str());
    let stored = state
        .store
        .set_connection_subscription(connection.id, replacing, &record, state.clock.now())
        .await
        .map_err(|e| e.to_string())?;
    if !stored {
        // Disconnected, or recreated by someone else meanwhile: leave nothing behind.
        let _ = teams.graph.delete_subscription(token, &record.id).await;
        return Err("the connection was removed or resubscribed meanwhile".into());
    }
    tracing::info!(connection = %connection.id.0, "subscription recreated");
    let presence = teams.graph.presence_of(token, &connection.ms_user_id).await.map_err(|e| e.to_string())?;
    // Through the sequence check, like every other presence.
    match super::sync::apply(state, teams, connection, &presence).await {
        Ok(()) | Err(super::sync::Dropped::Stale) => Ok(Upkeep::Recreated),
        Err(why) => Err(format!("presence not shown: {}", why.reason())),
    }
}

/// How long before its subscription lapses a connection is renewed: spread over ten minutes by
/// connection id, the same at every start.
fn lead(id: ConnectionId) -> i64 {
    LEAD_MS + i64::try_from(id.0.as_u128() % SPREAD_MS as u128).unwrap_or(0)
}

/// Renews what is due now; returns how many subscriptions were renewed or recreated.
pub async fn sweep(state: &AppState, teams: &Teams) -> usize {
    let now = state.clock.now();
    let due = match state.store.subscriptions_expiring(now + LEAD_MS + SPREAD_MS, BATCH).await {
        Ok(due) => due,
        Err(e) => {
            tracing::warn!(error = %e, "cannot list subscriptions to renew");
            return 0;
        }
    };
    let mut done = 0;
    for connection in due {
        let lapses = connection.subscription.as_ref().map_or(now, |s| s.expires_at);
        if lapses - now > lead(connection.id) {
            continue;
        }
        let id = connection.id;
        match renew(state, teams, connection).await {
            Ok(_) => done += 1,
            Err(e) => tracing::warn!(connection = %id.0, error = %e, "could not renew a subscription"),
        }
    }
    done
}

/// Until `stop`: a reconciliation and a sweep at once (presences changed while kehai was down,
/// subscriptions about to lapse), then the renewal sweep every minute and a reconciliation every fifth minute — one task, so the two
/// never renew or recreate the same subscription at once.
pub fn spawn(state: AppState, stop: CancellationToken) {
    let Some(teams) = state.teams.clone() else { return };
    tokio::spawn(async move {
        super::heal::reconcile(&state, &teams).await;
        sweep(&state, &teams).await;
        for minute in 1u64.. {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tokio::time::sleep(SWEEP) => {}
            }
            sweep(&state, &teams).await;
            if minute % RECONCILE_EVERY == 0 {
                super::heal::reconcile(&state, &teams).await;
            }
        }
    });
}

/// Graph's expiry format.
fn rfc3339(at_ms: i64) -> String {
    OffsetDateTime::from_unix_timestamp(at_ms / 1000).ok().and_then(|t| t.format(&Rfc3339).ok()).unwrap_or_default()
}

fn millis(rfc3339: &str) -> Option<i64> {
    let t = OffsetDateTime::parse(rfc3339, &Rfc3339).ok()?;
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiries_round_trip_and_leads_are_spread_within_ten_minutes() {
        let at = 1_790_000_000_000;
        assert_eq!(millis(&rfc3339(at)), Some(at));
        assert_eq!(millis("2026-11-26T10:00:00.1234567Z"), Some(1_795_687_200_123));
        assert_eq!(millis("tomorrow"), None);
        let leads: Vec<i64> = (0..50).map(|_| lead(ConnectionId::new())).collect();
        assert!(leads.iter().all(|l| (LEAD_MS..LEAD_MS + SPREAD_MS).contains(l)));
        assert!(leads.iter().any(|l| *l != leads[0]), "spread");
    }
}
