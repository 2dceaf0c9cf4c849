//! The one path by which a presence is shown on, or taken off, a member's avatars.
//!
//! A reading is shown in every space where its connection is ON, and only if it is newer than the
//! one shown (the provider's ordering key, byte order) and the connection is still connected to
//! the same account — checked in the transaction that writes the avatars and the key together
//! (group commit, `presence::commit`), so that duplicates and late re-deliveries change nothing
//! and a crash between the two cannot make the next reading of the same presence look stale.
//! One reading at a time per connection (its gate): of two applied at once, the older is never
//! shown last. Taking a presence off — a connection that can no longer be followed, a space
//! where it is turned OFF — happens under the same gate ([`Held`]), so that a reading being
//! applied meanwhile cannot land after it.

use kehai_core::{PresenceOverride, SpaceId};
use kehai_store::{Applied, Connection, ConnectionId, PresenceWrite};

use super::{Dropped, Error, Provider, Reading};
use crate::state::AppState;

/// A connection's gate, held: no reading of it is applied meanwhile.
#[derive(Debug)]
pub struct Held {
    connection: ConnectionId,
    _gate: tokio::sync::OwnedMutexGuard<()>,
}

/// Waits for and holds `connection`'s gate.
pub async fn hold(state: &AppState, connection: ConnectionId) -> Held {
    let gate = state.presence.applying.of(connection).lock_owned().await;
    Held { connection, _gate: gate }
}

/// The avatar override a reading gives (`None`: the own emoji shows), labelled by its provider.
pub fn override_for(provider: &dyn Provider, reading: &Reading, since: i64) -> Option<PresenceOverride> {
    reading.shown.as_ref().map(|observed| PresenceOverride {
        provider: provider.id().to_owned(),
        availability: observed.availability.clone(),
        activity: observed.activity.clone(),
        label: observed.shown.label(provider.name()),
        emoji: observed.shown.emoji.clone(),
        kind: observed.shown.kind,
        since,
    })
}

/// Shows `reading` if it is newer than the one shown; with `again`, also if it is the one shown
/// (a space turning the connection ON shows the current presence there).
pub async fn apply(
    state: &AppState,
    provider: &dyn Provider,
    connection: &Connection,
    reading: &Reading,
    again: bool,
) -> Result<(), Dropped> {
    let _held = hold(state, connection.id).await;
    let now = state.clock.now();
    // Never sooner than the next wake-up round: a time already past (a clock a little ahead of
    // the provider's) would otherwise have it read again and again.
    let soonest = now + i64::try_from(super::schedule::WAKE_EVERY.as_millis()).unwrap_or(1_000);
    let write = PresenceWrite {
        connection: connection.id,
        external_user: connection.external_user.clone(),
        sequence: reading.order.clone(),
        again,
        presence: override_for(provider, reading, now),
        next_check_at: reading.next_change_at.map(|at| at.max(soonest)),
    };
    // With the presences being applied meanwhile, in one transaction.
    match state.presence.presences.apply(&state.store, &state.clock, write).await {
        Ok(Applied::Shown(avatars)) => {
            avatars.iter().for_each(|a| state.live.publish_avatar(a));
            Ok(())
        }
        Ok(Applied::Stale) => Err(Dropped::Stale),
        Ok(Applied::NotConnected) => Err(Dropped::NotConnected),
        Err(_) => Err(Dropped::Unavailable),
    }
}

/// Takes the connection's presence off its member's avatars in every space where it is ON,
/// whatever was shown (a connection kehai can no longer follow would soon be wrong).
pub async fn clear_everywhere(state: &AppState, held: &Held, connection: &Connection) -> Result<(), Error> {
    let spaces = state.store.connection_spaces(connection.id).await?;
    let mut failed = None;
    for (space, _) in spaces.into_iter().filter(|(_, on)| *on) {
        if let Err(e) = clear_in(state, held, connection, space).await {
            failed = Some(e);
        }
    }
    failed.map_or(Ok(()), Err)
}

/// Takes the connection's presence off its member's avatar in one space (the connection is
/// turned OFF or disconnected there). Another provider's presence stays.
pub async fn clear_in(state: &AppState, held: &Held, connection: &Connection, space: SpaceId) -> Result<(), Error> {
    debug_assert_eq!(held.connection, connection.id);
    let cleared = state.store.clear_presence(space, connection.account_id, &connection.provider, state.clock.now());
    if let Some(avatar) = cleared.await? {
        state.live.publish_avatar(&avatar);
    }
    Ok(())
}
