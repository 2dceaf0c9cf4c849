//! Keeping presence subscriptions alive: providers end them after a while (Graph: an hour at
//! most) and may ask for them to be renewed early.
//!
//! A sweep renews every subscription a sixth of its life before it lapses (10 minutes for
//! 59-minute subscriptions). Each connection's subscriptions are asked for a little shorter than
//! the provider's life — by up to a twelfth, the same for a connection every time — so that
//! subscriptions made or renewed at once (a restart, an outage, many people connecting at nine)
//! fall due spread over a twelfth of the life at their next renewal, and stay spread. A
//! 59-minute subscription is thus renewed about every 47 minutes: 1.3 requests per connected
//! member and hour (earlier renewals would buy nothing but requests). As the lead is the same for
//! all of a provider's connections, the sweep asks the database for exactly what is due (an
//! indexed range of expiries) however many connections there are. A renewal uses an access
//! token that lasts as long as the renewed subscription, so the provider has no reason to ask
//! for reauthorization; when it does anyway ([`super::Event::RenewalRequired`]) the
//! subscription is renewed at once. A subscription the provider no longer has
//! ([`super::ProviderError::NotFound`], [`super::Event::Removed`]) is made anew, and the
//! presence read again because changes may have been missed meanwhile.
//!
//! With several instances on one database, a connection's upkeep is claimed by one instance at
//! a time ([`Claims::claim_connection`](kehai_store::Claims::claim_connection)), for a twelfth
//! of a subscription's life at most: an instance that dies holding claims delays the renewals by
//! half the lead at most. When an instance dies, another one reconciles at once (its queued
//! notifications died with it; see [`crate::instance`]).

use std::time::Duration;

use kehai_store::{
    Claim, Connection, ConnectionId, Sealed, SubscriptionRecord,
    secrets::{ConnectionSecret, Place},
};
use secrecy::SecretString;

use super::{Dropped, Error, Provider, ProviderError, apply, tokens};
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
/// Bytes of a subscription's secret (Graph's clientState).
const SECRET_BYTES: usize = 32;

/// What one upkeep did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upkeep {
    Renewed,
    /// The provider had lost it: a new one was made and the presence read again.
    Recreated,
    /// Another instance holds the connection's upkeep claim: it is doing the work.
    Elsewhere,
}

/// How long a claim on upkeep lasts, for subscriptions living `life_ms`.
pub fn claim_ms(life_ms: i64) -> i64 {
    (life_ms / CLAIM_SHARE).clamp(1, CLAIM_MAX_MS)
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

/// How often to sweep for subscriptions living `life_ms`: a twentieth of their life, at most a
/// minute apart (and at least a tenth of a second).
pub fn sweep_every(life_ms: i64) -> Duration {
    let every = u64::try_from(life_ms / SWEEP_SHARE).map_or(SWEEP_MAX, Duration::from_millis);
    every.clamp(Duration::from_millis(100), SWEEP_MAX)
}

/// Claims the connection's upkeep for this instance; false when another instance holds it.
async fn claim(state: &AppState, provider: &dyn Provider, id: ConnectionId) -> Result<bool, Error> {
    let now = state.clock.now();
    let claim = Claim { holder: &state.instance, now, until: now + claim_ms(provider.subscription_ms()) };
    Ok(state.store.claim_connection(id, claim).await?)
}

async fn release(state: &AppState, id: ConnectionId) {
    if let Err(e) = state.store.release_connection(id, &state.instance).await {
        // It lapses by itself.
        tracing::warn!(connection = %id.0, error = %e, "could not let go of a claim");
    }
}

/// Subscribes to the connection's presence with a fresh secret (sealed for its row); a
/// subscription the provider had for it already is the provider's to replace. Where kehai
/// chooses the subscription's id ([`Provider::new_subscription_id`]) and `store_first`, the
/// subscription is stored before the provider is asked (in place of the connection's current
/// one), so that what it delivers before answering is recognized; forgotten again if it fails.
/// Returns the subscription, and the id stored first if it was.
pub async fn subscribe(
    state: &AppState,
    provider: &dyn Provider,
    access: &SecretString,
    connection: &Connection,
    store_first: bool,
) -> Result<(SubscriptionRecord, Option<String>), Error> {
    let secret = crate::opaque::random(SECRET_BYTES);
    let requested = state.clock.now() + life_of(provider.subscription_ms(), connection.id);
    let place = Place::Connection(connection.id, ConnectionSecret::ClientState);
    let sealed = state
        .secrets
        .seal(&secret, place)
        .map_err(|_| Error::Unavailable("a subscription secret could not be sealed"))?;
    let id = provider.new_subscription_id();
    let early = match &id {
        Some(id) if store_first => {
            let record = SubscriptionRecord {
                id: id.clone(),
                expires_at: requested,
                client_state: Sealed(sealed.clone()),
                certificate_id: None,
                resource: None,
            };
            let replacing = connection.subscription.as_ref().map(|s| s.id.as_str());
            if !state
                .store
                .set_connection_subscription(connection.id, replacing, &record, state.clock.now(), None)
                .await?
            {
                return Err(Error::Gone);
            }
            Some(record)
        }
        _ => None,
    };
    let made = match provider.subscribe(state, access, connection, id.as_deref(), &secret, requested).await {
        Ok(made) => made,
        Err(e) => {
            if let Some(early) = &early
                && let Err(forget) =
                    state.store.clear_connection_subscription(connection.id, &early.id, state.clock.now()).await
            {
                tracing::warn!(error = %forget, "a subscription the provider refused could not be forgotten");
            }
            return Err(e.into());
        }
    };
    let record = SubscriptionRecord {
        id: made.id,
        expires_at: made.expires_at.unwrap_or(requested),
        client_state: Sealed(sealed),
        certificate_id: made.certificate_id,
        resource: made.resource,
    };
    Ok((record, early.map(|e| e.id)))
}

/// [`subscribe`], for a provider that subscribes here ([`Provider::subscribes`]); `None` for one
/// that does not (its connections are read on its own schedule).
pub async fn subscribe_if_offered(
    state: &AppState,
    provider: &dyn Provider,
    access: &SecretString,
    connection: &Connection,
) -> Result<Option<SubscriptionRecord>, Error> {
    if !provider.subscribes() {
        return Ok(None);
    }
    subscribe(state, provider, access, connection, true).await.map(|(record, _)| Some(record))
}

/// Renews a connection's subscription (which also reauthorizes it), or makes a new one when the
/// provider no longer has it.
pub async fn renew(state: &AppState, provider: &dyn Provider, connection: Connection) -> Result<Upkeep, Error> {
    if !claim(state, provider, connection.id).await? {
        return Ok(Upkeep::Elsewhere);
    }
    renew_held(state, provider, connection).await
}

/// [`renew`] of a connection whose claim this instance holds already; lets go of it after.
async fn renew_held(state: &AppState, provider: &dyn Provider, connection: Connection) -> Result<Upkeep, Error> {
    let id = connection.id;
    let outcome = renew_or_recreate(state, provider, connection).await;
    release_unless_stored(state, id, &outcome).await;
    state.metrics.subscription_upkeep(
        provider.id(),
        match outcome {
            Ok(Upkeep::Recreated) => "recreated",
            Ok(_) => "renewed",
            Err(_) => "failed",
        },
    );
    outcome
}

/// A new subscription for a connection the provider says it removed, under the connection's
/// claim.
pub async fn resubscribe(
    state: &AppState,
    provider: &dyn Provider,
    mut connection: Connection,
) -> Result<Upkeep, Error> {
    let id = connection.id;
    if !claim(state, provider, id).await? {
        return Ok(Upkeep::Elsewhere);
    }
    let outcome = match tokens::access_token(state, provider, &mut connection).await {
        Ok(token) => recreate(state, provider, &connection, &token).await,
        Err(e) => Err(e),
    };
    release_unless_stored(state, id, &outcome).await;
    outcome
}

/// Lets go of the connection's claim after its upkeep, unless storing the new subscription let
/// go of it already (it did when the upkeep succeeded).
async fn release_unless_stored(state: &AppState, id: ConnectionId, outcome: &Result<Upkeep, Error>) {
    if !matches!(outcome, Ok(Upkeep::Renewed | Upkeep::Recreated)) {
        release(state, id).await;
    }
}

async fn renew_or_recreate(
    state: &AppState,
    provider: &dyn Provider,
    mut connection: Connection,
) -> Result<Upkeep, Error> {
    let Some(current) = connection.subscription.clone() else {
        let token = tokens::access_token(state, provider, &mut connection).await?;
        return recreate(state, provider, &connection, &token).await;
    };
    if !provider.renews_in_place() {
        return replace(state, provider, connection, current).await;
    }
    let now = state.clock.now();
    let requested = now + life_of(provider.subscription_ms(), connection.id);
    let subscription = &current;
    // With a token that lasts as long as the renewed subscription: the subscription's
    // authorization then lasts as long as the subscription itself.
    let renewal = tokens::authorized_until(state, provider, &mut connection, requested, |token| async move {
        provider.renew(state, &token, subscription, requested).await.map(|renewed| (renewed, token))
    })
    .await;
    match renewal {
        Ok((renewed, token)) => {
            let record = SubscriptionRecord {
                id: renewed.id,
                expires_at: renewed.expires_at.unwrap_or(requested),
                certificate_id: renewed.certificate_id,
                resource: renewed.resource,
                client_state: current.client_state.clone(),
            };
            let stored = state
                .store
                .set_connection_subscription(connection.id, Some(&current.id), &record, now, Some(&state.instance))
                .await?;
            if !stored {
                if state.store.connection_by_subscription(provider.id(), &current.id).await.is_ok_and(|c| c.is_none()) {
                    // Disconnected or replaced meanwhile: nobody needs it any more.
                    let _ = provider.unsubscribe(&token, &current).await;
                }
                return Err(Error::Gone);
            }
            tracing::debug!(connection = %connection.id.0, "subscription renewed");
            Ok(Upkeep::Renewed)
        }
        Err(Error::Provider(ProviderError::NotFound)) => {
            let token = tokens::access_token(state, provider, &mut connection).await?;
            recreate(state, provider, &connection, &token).await
        }
        Err(e) => Err(e),
    }
}

/// Renewal by replacement, for a provider whose subscriptions cannot be extended (Google's
/// channels). The successor is stored first, as the connection's subscription, with the current
/// one kept beside it as the one being replaced (both with the same secret), and only then made
/// at the provider: what either delivers is recognized. The one replaced is ended when its
/// successor first delivers ([`end_previous`]; Google's `sync` comes at once), so that no change
/// falls between the two; one whose successor never delivers lapses by itself, or is ended at
/// the next replacement. A successor the provider refuses to make is forgotten, and the current
/// one stays.
async fn replace(
    state: &AppState,
    provider: &dyn Provider,
    mut connection: Connection,
    current: SubscriptionRecord,
) -> Result<Upkeep, Error> {
    let token = tokens::access_token(state, provider, &mut connection).await?;
    if let Some(older) = connection.previous_subscription.clone() {
        // Still kept from the last replacement, whose successor never delivered.
        end_previous(state, provider, &connection, &older, &token).await?;
    }
    let place = Place::Connection(connection.id, ConnectionSecret::ClientState);
    let secret = state
        .secrets
        .open(&current.client_state.0, place)
        .map_err(|_| Error::Unavailable("a subscription secret could not be opened"))?;
    let requested = state.clock.now() + life_of(provider.subscription_ms(), connection.id);
    let id = provider.new_subscription_id().unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let successor = SubscriptionRecord {
        id: id.clone(),
        expires_at: requested,
        client_state: current.client_state.clone(),
        certificate_id: None,
        resource: None,
    };
    let now = state.clock.now();
    if !state.store.keep_previous_subscription(connection.id, &current.id, &successor, now).await? {
        // Disconnected or replaced meanwhile.
        return Err(Error::Gone);
    }
    let made = match provider.subscribe(state, &token, &connection, Some(&id), &secret, requested).await {
        Ok(made) => made,
        Err(e) => {
            match state.store.restore_previous_subscription(connection.id, &id, state.clock.now()).await {
                Ok(true) => {}
                // The successor delivered already (so the provider made it after all, and the
                // old one was ended): without its answer it cannot be checked nor ended, so it
                // is forgotten — it lapses by itself — and the connection subscribes anew at
                // its next reconciliation, read on its schedule meanwhile.
                Ok(false) => {
                    tracing::info!(connection = %connection.id.0, "a successor the provider did not confirm is dropped");
                    if let Err(forget) = state.store.clear_connection_subscription(connection.id, &id, now).await {
                        tracing::warn!(error = %forget, "an unconfirmed subscription could not be forgotten");
                    }
                }
                Err(restore) => {
                    tracing::warn!(error = %restore, "a subscription the provider refused could not be forgotten")
                }
            }
            return Err(e.into());
        }
    };
    let record = SubscriptionRecord {
        id: made.id,
        expires_at: made.expires_at.unwrap_or(requested),
        client_state: current.client_state.clone(),
        certificate_id: made.certificate_id,
        resource: made.resource,
    };
    let stored = state
        .store
        .set_connection_subscription(connection.id, Some(&id), &record, state.clock.now(), Some(&state.instance))
        .await?;
    if !stored {
        // Disconnected, paused or recreated meanwhile: leave nothing behind.
        let _ = provider.unsubscribe(&token, &record).await;
        return Err(Error::Gone);
    }
    tracing::debug!(connection = %connection.id.0, "subscription replaced; the old one ends when the new one delivers");
    Ok(Upkeep::Renewed)
}

/// Ends `previous`, the subscription `connection` was replacing: forgotten here first (of two
/// deliveries confirming the successor at once, one ends it), then at the provider (a failure
/// there is logged: it lapses by itself, and what it still delivers is unknown).
pub async fn end_previous(
    state: &AppState,
    provider: &dyn Provider,
    connection: &Connection,
    previous: &SubscriptionRecord,
    token: &SecretString,
) -> Result<(), Error> {
    if !state.store.end_previous_subscription(connection.id, &previous.id, state.clock.now()).await? {
        return Ok(());
    }
    match provider.unsubscribe(token, previous).await {
        Ok(()) => tracing::debug!(connection = %connection.id.0, "a replaced subscription ended"),
        Err(e) => {
            tracing::info!(connection = %connection.id.0, error = %e, "a replaced subscription could not be ended")
        }
    }
    Ok(())
}

/// The successor of the subscription `connection` was replacing delivered: the old one ends
/// ([`end_previous`]), with the connection's own token.
pub async fn successor_confirmed(
    state: &AppState,
    provider: &dyn Provider,
    mut connection: Connection,
) -> Result<(), Error> {
    let Some(previous) = connection.previous_subscription.clone() else { return Ok(()) };
    let token = tokens::access_token(state, provider, &mut connection).await?;
    end_previous(state, provider, &connection, &previous, &token).await
}

/// Ends all of the connection's subscriptions at the provider (the current one and any being
/// replaced) with `token`: it is paused, disconnected or connected anew. A failure is logged:
/// they lapse by themselves, and what they still deliver is unknown once forgotten here.
pub async fn end_all(provider: &dyn Provider, token: &SecretString, connection: &Connection) {
    for subscription in connection.subscriptions() {
        if let Err(e) = provider.unsubscribe(token, subscription).await {
            tracing::info!(connection = %connection.id.0, error = %e, "a subscription could not be ended; it lapses by itself");
        }
    }
}

/// A new subscription for a connection whose old one is gone, and the presence read again
/// (under the connection's claim, which storing the subscription lets go of).
pub async fn recreate(
    state: &AppState,
    provider: &dyn Provider,
    connection: &Connection,
    token: &SecretString,
) -> Result<Upkeep, Error> {
    let (record, stored_first) = subscribe(state, provider, token, connection, true).await?;
    // In place of what was stored first, if it was.
    let replacing = stored_first.as_deref().or(connection.subscription.as_ref().map(|s| s.id.as_str()));
    let stored = state
        .store
        .set_connection_subscription(connection.id, replacing, &record, state.clock.now(), Some(&state.instance))
        .await?;
    if !stored {
        // Disconnected, or recreated by someone else meanwhile: leave nothing behind.
        let _ = provider.unsubscribe(token, &record).await;
        return Err(Error::Gone);
    }
    tracing::info!(connection = %connection.id.0, "subscription recreated");
    // Changes may have been missed meanwhile: what the provider kept is out of date too.
    provider.changed(connection);
    let reading = provider.read(token, connection).await?;
    // Through the order check, like every other presence.
    match apply::apply(state, provider, connection, &reading, false).await {
        Ok(()) | Err(Dropped::Stale) => Ok(Upkeep::Recreated),
        Err(why) => Err(Error::NotShown(why)),
    }
}

/// Renews what of `provider`'s is due now; returns how many subscriptions were renewed or
/// recreated. The connections are claimed a batch at a time, so that instances sweeping at once
/// share the work.
pub async fn sweep(state: &AppState, provider: &dyn Provider) -> usize {
    let life = provider.subscription_ms();
    let hold = claim_ms(life);
    let budget = SWEEP_BUDGET.min(Duration::from_millis(u64::try_from(hold / 2).unwrap_or(0)));
    let started = tokio::time::Instant::now();
    let mut seen = std::collections::HashSet::new();
    let mut done = 0;
    loop {
        let now = state.clock.now();
        let claim = Claim { holder: &state.instance, now, until: now + hold };
        let batch = match state.store.claim_expiring(provider.id(), now + lead(life), claim, BATCH).await {
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
        let (renewed, finished) = renew_all(state, provider, due, started, budget).await;
        done += renewed;
        if !finished {
            return done;
        }
    }
    // Those the provider wants renewed for its own reasons (after `kehai keys rotate-cert`, the
    // subscriptions still encrypted for a retired certificate move as they renew).
    let now = state.clock.now();
    let claim = Claim { holder: &state.instance, now, until: now + hold };
    let outdated = provider.outdated(state, claim, BATCH).await;
    done + renew_all(state, provider, outdated, started, budget).await.0
}

/// Renews claimed connections one by one until `budget` from `started` is spent (the rest are
/// let go for the next sweep). Returns how many were renewed, and whether all were tried.
async fn renew_all(
    state: &AppState,
    provider: &dyn Provider,
    claimed: Vec<Connection>,
    started: tokio::time::Instant,
    budget: Duration,
) -> (usize, bool) {
    let mut done = 0;
    let mut claimed = claimed.into_iter();
    for connection in claimed.by_ref() {
        if started.elapsed() >= budget {
            // The provider is slow or down (each call has already retried): the next sweep goes
            // on, rather than this one outliving its claims.
            tracing::warn!("the renewal sweep ran out of time: the rest wait for the next sweep");
            release(state, connection.id).await;
            for rest in claimed {
                release(state, rest.id).await;
            }
            return (done, false);
        }
        let id = connection.id;
        // Claimed with the batch already.
        match renew_held(state, provider, connection).await {
            Ok(Upkeep::Renewed | Upkeep::Recreated) => done += 1,
            Ok(Upkeep::Elsewhere) => {}
            Err(e) => tracing::warn!(connection = %id.0, error = %e, "could not renew a subscription"),
        }
    }
    (done, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lead_is_a_sixth_of_the_life_and_lives_are_spread_by_a_twelfth() {
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
        assert_eq!(sweep_every(hour), Duration::from_secs(60));
        assert_eq!(sweep_every(20_000), Duration::from_secs(1));
    }
}
