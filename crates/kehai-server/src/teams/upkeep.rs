//! Keeping presence subscriptions alive (S1): Graph ends a presence subscription after at most an
//! hour, and asks for reauthorization before the access token it was made with lapses.
//!
//! A sweep renews every subscription a sixth of its life before it lapses (10 minutes for
//! 59-minute subscriptions). Each connection's subscriptions are asked for a little shorter than
//! the configured life — by up to a twelfth, the same for a connection every time — so that
//! subscriptions made or renewed at once (a restart, an outage, many people connecting at nine)
//! fall due spread over five minutes at their next renewal, and stay spread. A subscription is
//! thus renewed about every 47 minutes: 1.3 Graph requests per connected member and hour, the
//! bulk of kehai's Graph cost (earlier renewals would buy nothing but requests). As the lead is
//! the same for all, the sweep asks the database for exactly what is due (an indexed range of
//! expiries) however many connections there are. A renewal uses an access token that lasts
//! as long as the renewed subscription, so Graph has no reason to ask for reauthorization; when
//! it does anyway, a `reauthorizationRequired` lifecycle notification renews at once: a `PATCH`
//! of the expiry both renews and reauthorizes, so kehai never needs a separate `reauthorize`
//! call. A subscription
//! Graph no longer knows (404, `subscriptionRemoved`) is created anew, and the presence re-read
//! because changes may have been missed meanwhile.
//!
//! With several instances on one database, a connection's upkeep is claimed by one instance at
//! a time ([`Store::claim_connection`](kehai_store::Store::claim_connection)), for a twelfth of
//! a subscription's life at most: an instance that dies holding claims delays the renewals by
//! half the lead at most. When an instance dies, another one reconciles at once (its queued
//! notifications died with it; see [`crate::instance`]).

use std::time::Duration;

use kehai_microsoft::{MicrosoftError, NewSubscription};
use kehai_store::{Claim, Connection, ConnectionId, Sealed, SubscriptionRecord, secrets::row_label};
use secrecy::SecretString;
use time::{OffsetDateTime, format_description::well_known::Rfc3339};
use tokio_util::sync::CancellationToken;

use super::{Teams, tokens::CallError};
use crate::state::AppState;

/// Renewal starts a sixth of a subscription's life before it lapses (10 minutes for 59-minute
/// subscriptions)…
const LEAD_SHARE: i64 = 6;
/// …and each connection's subscriptions are asked for up to a twelfth shorter than the life.
const SPREAD_SHARE: i64 = 12;
/// The sweep looks for subscriptions to renew every twentieth of their life, at most every
/// minute.
const SWEEP_SHARE: i64 = 20;
const SWEEP_MAX: Duration = Duration::from_secs(60);
/// Connections claimed at a time by a sweep.
const BATCH: u32 = 200;
/// How long one sweep may renew at most (and at most half a claim); the rest wait for the next
/// sweep.
const SWEEP_BUDGET: Duration = Duration::from_secs(120);
/// Claims last a twelfth of a subscription's life (half the lead), at most five minutes.
const CLAIM_SHARE: i64 = 12;
const CLAIM_MAX_MS: i64 = 5 * 60 * 1000;

/// What one upkeep did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upkeep {
    Renewed,
    /// Graph had lost it: a new one was made and the presence re-read.
    Recreated,
    /// Another instance holds the connection's upkeep claim: it is doing the work.
    Elsewhere,
}

/// How long a claim on upkeep lasts, for subscriptions living `life_ms`.
pub fn claim_ms(life_ms: i64) -> i64 {
    (life_ms / CLAIM_SHARE).clamp(1, CLAIM_MAX_MS)
}

/// Claims the connection's upkeep for this instance; false when another instance holds it.
async fn claim(state: &AppState, teams: &Teams, id: ConnectionId) -> Result<bool, String> {
    let now = state.clock.now();
    let claim = Claim { holder: &state.instance, now, until: now + claim_ms(teams.subscription_ms) };
    state.store.claim_connection(id, claim).await.map_err(|e| e.to_string())
}

async fn release(state: &AppState, id: ConnectionId) {
    if let Err(e) = state.store.release_connection(id, &state.instance).await {
        // It lapses by itself.
        tracing::warn!(connection = %id.0, error = %e, "could not let go of a claim");
    }
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
    let encryption_certificate = if teams.rich { Some(current_certificate(state).await?) } else { None };
    let certificate_id = encryption_certificate.as_ref().map(|(_, id)| id.clone());
    let client_state = SecretString::from(super::connect::random(32));
    let requested = state.clock.now() + life_of(teams.subscription_ms, connection);
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
    Ok(SubscriptionRecord { id: created.id, expires_at, client_state: Sealed(sealed), certificate_id })
}

/// Renews a connection's subscription (which also reauthorizes it), or makes a new one when
/// Graph no longer has it. Errors are described for the log (never a token).
pub async fn renew(state: &AppState, teams: &Teams, connection: Connection) -> Result<Upkeep, String> {
    if !claim(state, teams, connection.id).await? {
        return Ok(Upkeep::Elsewhere);
    }
    renew_held(state, teams, connection).await
}

/// [`renew`] of a connection whose claim this instance holds already; lets go of it after.
async fn renew_held(state: &AppState, teams: &Teams, connection: Connection) -> Result<Upkeep, String> {
    let id = connection.id;
    let outcome = renew_or_recreate(state, teams, connection).await;
    release_unless_stored(state, id, &outcome).await;
    state.metrics.subscription_upkeep(match outcome {
        Ok(Upkeep::Recreated) => "recreated",
        Ok(_) => "renewed",
        Err(_) => "failed",
    });
    outcome
}

/// A new subscription for a connection Graph says it removed (`subscriptionRemoved`), under
/// the connection's claim.
pub async fn resubscribe(state: &AppState, teams: &Teams, mut connection: Connection) -> Result<Upkeep, String> {
    let id = connection.id;
    if !claim(state, teams, id).await? {
        return Ok(Upkeep::Elsewhere);
    }
    let outcome = match super::tokens::access_token(state, teams, &mut connection).await {
        Ok(token) => recreate(state, teams, &connection, &token).await,
        Err(e) => Err(e.to_string()),
    };
    release_unless_stored(state, id, &outcome).await;
    outcome
}

/// Lets go of the connection's claim after its upkeep, unless storing the new subscription let
/// go of it already (it did when the upkeep succeeded).
async fn release_unless_stored(state: &AppState, id: ConnectionId, outcome: &Result<Upkeep, String>) {
    if !matches!(outcome, Ok(Upkeep::Renewed | Upkeep::Recreated)) {
        release(state, id).await;
    }
}

async fn renew_or_recreate(state: &AppState, teams: &Teams, mut connection: Connection) -> Result<Upkeep, String> {
    let Some(current) = connection.subscription.clone() else {
        let token = super::tokens::access_token(state, teams, &mut connection).await.map_err(|e| e.to_string())?;
        return recreate(state, teams, &connection, &token).await;
    };
    let now = state.clock.now();
    let requested = now + life_of(teams.subscription_ms, connection.id);
    // A subscription encrypted for a retired certificate moves to the current one as it renews.
    let moving = match &current.certificate_id {
        Some(on) if teams.rich => {
            Some(current_certificate(state).await.map_err(|e| e.to_string())?).filter(|(_, id)| id != on)
        }
        _ => None,
    };
    let (expiry, id, moving_to) = (&rfc3339(requested), &current.id, &moving);
    // With a token that lasts as long as the renewed subscription: the subscription's
    // authorization then lasts as long as the subscription itself.
    let renewal = super::tokens::authorized_until(state, teams, &mut connection, requested, |token| async move {
        let renewed = match moving_to {
            Some((cert, cert_id)) => teams.graph.move_subscription(&token, id, expiry, (cert, cert_id)).await,
            None => teams.graph.renew_subscription(&token, id, expiry).await,
        };
        renewed.map(|renewed| (renewed, token))
    })
    .await;
    match renewal {
        Ok((renewed, token)) => {
            let record = SubscriptionRecord {
                expires_at: millis(&renewed.expiration_date_time).unwrap_or(requested),
                certificate_id: moving.map(|(_, id)| id).or_else(|| current.certificate_id.clone()),
                ..current.clone()
            };
            let stored = state
                .store
                .set_connection_subscription(connection.id, Some(&current.id), &record, now, Some(&state.instance))
                .await
                .map_err(|e| e.to_string())?;
            if !stored {
                if state.store.connection_by_subscription("msteams", &current.id).await.is_ok_and(|c| c.is_none()) {
                    // Disconnected or replaced meanwhile: nobody needs it any more.
                    let _ = teams.graph.delete_subscription(&token, &current.id).await;
                }
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

/// The current encryption certificate as Graph takes it: (base64 DER, id).
async fn current_certificate(state: &AppState) -> Result<(String, String), MicrosoftError> {
    let (id, cert) = super::certificates::current(state).await.map_err(|e| MicrosoftError::Transport(e.message))?;
    Ok((cert, id))
}

/// A new subscription for a connection whose old one is gone, and the presence read again
/// (under the connection's claim, which storing the subscription lets go of).
pub async fn recreate(
    state: &AppState,
    teams: &Teams,
    connection: &Connection,
    token: &SecretString,
) -> Result<Upkeep, String> {
    let record =
        subscribe(state, teams, token, &connection.external_user, connection.id).await.map_err(|e| e.to_string())?;
    let replacing = connection.subscription.as_ref().map(|s| s.id.as_str());
    let stored = state
        .store
        .set_connection_subscription(connection.id, replacing, &record, state.clock.now(), Some(&state.instance))
        .await
        .map_err(|e| e.to_string())?;
    if !stored {
        // Disconnected, or recreated by someone else meanwhile: leave nothing behind.
        let _ = teams.graph.delete_subscription(token, &record.id).await;
        return Err("the connection was removed or resubscribed meanwhile".into());
    }
    tracing::info!(connection = %connection.id.0, "subscription recreated");
    let presence = teams
        .graph
        .presence_of(token, &connection.external_tenant, &connection.external_user)
        .await
        .map_err(|e| e.to_string())?;
    // Through the sequence check, like every other presence.
    match super::sync::apply(state, teams, connection, &presence).await {
        Ok(()) | Err(super::sync::Dropped::Stale) => Ok(Upkeep::Recreated),
        Err(why) => Err(format!("presence not shown: {}", why.reason())),
    }
}

/// How long before its subscription lapses a connection is renewed.
pub fn lead(life_ms: i64) -> i64 {
    life_ms / LEAD_SHARE
}

/// How long a connection's subscriptions are asked for: the life, less a spread by connection id
/// of up to a twelfth of it, the same at every renewal and every start.
pub fn life_of(life_ms: i64, id: ConnectionId) -> i64 {
    let spread = (life_ms / SPREAD_SHARE).max(1);
    life_ms - i64::try_from(id.0.as_u128() % spread as u128).unwrap_or(0)
}

/// Renews what is due now; returns how many subscriptions were renewed or recreated. The
/// connections are claimed a batch at a time, so that instances sweeping at once share the work.
pub async fn sweep(state: &AppState, teams: &Teams) -> usize {
    let life = teams.subscription_ms;
    let hold = claim_ms(life);
    let budget = SWEEP_BUDGET.min(Duration::from_millis(u64::try_from(hold / 2).unwrap_or(0)));
    let started = tokio::time::Instant::now();
    let mut seen = std::collections::HashSet::new();
    let mut done = 0;
    loop {
        let now = state.clock.now();
        let claim = Claim { holder: &state.instance, now, until: now + hold };
        let batch = match state.store.claim_expiring("msteams", now + lead(life), claim, BATCH).await {
            Ok(batch) => batch,
            Err(e) => {
                tracing::warn!(error = %e, "cannot claim subscriptions to renew");
                break;
            }
        };
        // Not tried in this sweep already: a failed one waits for the next sweep.
        let (due, tried): (Vec<Connection>, Vec<Connection>) = batch.into_iter().partition(|c| !seen.contains(&c.id));
        for c in &tried {
            release(state, c.id).await;
        }
        if due.is_empty() {
            break;
        }
        seen.extend(due.iter().map(|c| c.id));
        let (renewed, finished) = renew_all(state, teams, due, started, budget).await;
        done += renewed;
        if !finished {
            return done;
        }
    }
    // After `kehai keys rotate-cert`, the subscriptions it could not move (or all of them, when it
    // ran while kehai was stopped) move now: a renewal moves them to the current certificate.
    if teams.rich
        && let Ok(Some(current)) = state.store.current_certificate().await
    {
        let now = state.clock.now();
        let claim = Claim { holder: &state.instance, now, until: now + hold };
        match state.store.claim_on_other_certificates(&current.id, claim, BATCH).await {
            Ok(on_old) => done += renew_all(state, teams, on_old, started, budget).await.0,
            Err(e) => tracing::warn!(error = %e, "cannot claim subscriptions on retired certificates"),
        }
    }
    done
}

/// Renews claimed connections one by one until `budget` from `started` is spent (the rest are
/// let go for the next sweep). Returns how many were renewed, and whether all were tried.
async fn renew_all(
    state: &AppState,
    teams: &Teams,
    claimed: Vec<Connection>,
    started: tokio::time::Instant,
    budget: Duration,
) -> (usize, bool) {
    let mut done = 0;
    let mut claimed = claimed.into_iter();
    for connection in claimed.by_ref() {
        if started.elapsed() >= budget {
            // Microsoft is slow or down (each call has already retried): the next sweep goes on,
            // rather than this one outliving its claims.
            tracing::warn!("the renewal sweep ran out of time: the rest wait for the next sweep");
            release(state, connection.id).await;
            for rest in claimed {
                release(state, rest.id).await;
            }
            return (done, false);
        }
        let id = connection.id;
        // Claimed with the batch already.
        match renew_held(state, teams, connection).await {
            Ok(Upkeep::Renewed | Upkeep::Recreated) => done += 1,
            Ok(Upkeep::Elsewhere) => {}
            Err(e) => tracing::warn!(connection = %id.0, error = %e, "could not renew a subscription"),
        }
    }
    (done, true)
}

/// Until `stop`: a reconciliation and a sweep at once (presences changed while kehai was down,
/// subscriptions about to lapse), then the renewal sweep every twentieth of a subscription's
/// life (at most a minute apart) and a reconciliation every `ms_reconcile_seconds` (five
/// minutes) by one instance of several (the job is claimed), a period after the last one ended.
/// One task does both, so that the periodic reconciliation and the sweep never run at once (when
/// another instance dies, [`crate::instance::spawn_heartbeat`] reconciles at once, in a task of
/// its own: the presences it applies are ordered by sequence number whatever runs beside it).
pub fn spawn(state: AppState, stop: CancellationToken) {
    let Some(teams) = state.teams.clone() else { return };
    let every = u64::try_from(teams.subscription_ms / SWEEP_SHARE).map_or(SWEEP_MAX, Duration::from_millis);
    let every = every.clamp(Duration::from_millis(100), SWEEP_MAX);
    tokio::spawn(async move {
        // Sweeps start `every` apart however long each takes (a slow one delays the next one,
        // never two at once), so that renewals fall evenly per minute.
        let mut sweeps = tokio::time::interval(every);
        sweeps.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut reconciliations = tokio::time::interval(teams.reconcile_every);
        reconciliations.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Both intervals tick at once first: the start's reconciliation and sweep.
        sweeps.tick().await;
        reconciliations.tick().await;
        super::heal::reconcile(&state, &teams).await;
        sweep(&state, &teams).await;
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = sweeps.tick() => {
                    sweep(&state, &teams).await;
                }
                _ = reconciliations.tick() => {
                    reconcile_once(&state, &teams).await;
                    // The next one a period after this one ended, however long it took.
                    reconciliations.reset();
                }
            }
        }
    });
}

/// The periodic reconciliation, if this instance claims it. The claim is held while it runs (for
/// [`RECONCILE_RUN_MAX`] more than a period at most), then for a period after it ended, and not
/// let go: one reconciliation at a time across instances, a period apart.
async fn reconcile_once(state: &AppState, teams: &Teams) {
    let period = i64::try_from(teams.reconcile_every.as_millis()).unwrap_or(i64::MAX);
    let run_max = i64::try_from(RECONCILE_RUN_MAX.as_millis()).unwrap_or(i64::MAX);
    let now = state.clock.now();
    let holder = &state.instance;
    let until = now.saturating_add(period).saturating_add(run_max);
    match state.store.claim(RECONCILE_JOB, Claim { holder, now, until }).await {
        Ok(true) => {
            super::heal::reconcile(state, teams).await;
            super::certificates::remove_unused(state).await;
            let now = state.clock.now();
            let until = now.saturating_add(period);
            if let Err(e) = state.store.claim(RECONCILE_JOB, Claim { holder, now, until }).await {
                tracing::warn!(error = %e, "cannot keep the reconciliation's claim: another instance may start one early");
            }
        }
        Ok(false) => tracing::debug!("another instance reconciles this time"),
        Err(e) => tracing::warn!(error = %e, "cannot claim the reconciliation"),
    }
}

/// The periodic reconciliation's claim…
const RECONCILE_JOB: &str = "job/reconcile";
/// …held while it runs for this long beyond a period at most (a reconciliation of 100,000
/// connections takes about 20 s here): should its instance die meanwhile, the takeover
/// reconciliation covers it.
const RECONCILE_RUN_MAX: Duration = Duration::from_secs(600);

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
    fn expiries_round_trip_the_lead_is_a_sixth_of_the_life_and_lives_are_spread_by_a_twelfth() {
        let at = 1_790_000_000_000;
        assert_eq!(millis(&rfc3339(at)), Some(at));
        assert_eq!(millis("2026-11-26T10:00:00.1234567Z"), Some(1_795_687_200_123));
        assert_eq!(millis("tomorrow"), None);
        let hour = 3_540_000;
        assert_eq!(lead(hour), 590_000);
        let ids: Vec<ConnectionId> = (0..200).map(|_| ConnectionId::new()).collect();
        let lives: Vec<i64> = ids.iter().map(|id| life_of(hour, *id)).collect();
        assert!(lives.iter().all(|l| (hour - 295_000 + 1..=hour).contains(l)), "{lives:?}");
        // The same for a connection every time; spread over the whole twelfth across connections.
        assert!(ids.iter().zip(&lives).all(|(id, l)| life_of(hour, *id) == *l));
        let (shortest, longest) = (lives.iter().min().unwrap(), lives.iter().max().unwrap());
        assert!(longest - shortest > 250_000, "spread: {shortest}..{longest}");
        // Claims lapse within half the lead.
        assert!(claim_ms(hour) * 2 <= lead(hour) && claim_ms(30_000) * 2 <= lead(30_000));
    }
}
