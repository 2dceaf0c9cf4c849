//! Self-healing: notifications can be missed — kehai was down, the provider gave up retrying, a
//! subscription vanished. At start-up, every `reconcile_seconds` (five minutes) and when another
//! instance dies, a reconciliation checks that every connected connection has a live
//! subscription (making a new one where not) and reads every presence again — a page of
//! connections at a time, through [`Provider::read_many`] (Graph: one batch read per tenant and
//! page), so that its memory does not grow with the number of connections — applying only what
//! is newer than what was shown. After a downtime every avatar is right within a minute of the
//! start. The start-up and periodic ones run in the schedule's task ([`super::schedule`]), so
//! that they and the renewal sweep never work on the same subscription at once; a subscription
//! is made anew under the connection's claim, which the sweep takes too.

use std::collections::HashMap;

use kehai_core::PersonId;
use kehai_store::{Connection, ConnectionId, ConnectionState};

use super::{
    Provider, Reading, apply,
    renewal::{self, Upkeep},
};
use crate::state::AppState;

/// What one reconciliation found and repaired.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Healed {
    /// Connected connections looked at.
    pub checked: usize,
    /// Subscriptions made anew (their presence read with them).
    pub resubscribed: usize,
    /// Avatars whose presence had changed unnoticed.
    pub corrected: usize,
}

impl std::ops::AddAssign for Healed {
    fn add_assign(&mut self, other: Healed) {
        self.checked += other.checked;
        self.resubscribed += other.resubscribed;
        self.corrected += other.corrected;
    }
}

/// One reconciliation of every offered provider's connections.
pub async fn all(state: &AppState) -> Healed {
    let mut healed = Healed::default();
    for provider in state.presence.offered() {
        healed += reconcile(state, &**provider).await;
    }
    healed
}

/// One reconciliation over every connected connection of `provider`, a page at a time.
pub async fn reconcile(state: &AppState, provider: &dyn Provider) -> Healed {
    reconcile_in_pages(state, provider, provider.batch()).await
}

/// [`reconcile`] with pages of `size` connections (tests page through a few).
pub async fn reconcile_in_pages(state: &AppState, provider: &dyn Provider, size: u32) -> Healed {
    let mut healed = Healed::default();
    // Every presence first: after a long downtime the avatars are right before the (one-by-one)
    // resubscriptions start. Only the accounts of the lapsed are kept meanwhile.
    let mut lapsed: Vec<PersonId> = Vec::new();
    let mut after = None;
    loop {
        let mut page = match state.store.connected_connections(provider.id(), after, size).await {
            Ok(page) => page,
            Err(e) => {
                tracing::warn!(error = %e, "reconciliation: cannot list connections");
                return healed;
            }
        };
        let Some(last) = page.last() else { break };
        after = Some(last.id);
        let now = state.clock.now();
        healed.checked += page.len();
        if provider.subscribes() {
            lapsed.extend(
                page.iter()
                    .filter(|c| c.subscription.as_ref().is_none_or(|s| s.expires_at <= now))
                    .map(|c| c.account_id),
            );
        }
        let readings = provider.read_many(state, &mut page).await;
        let by_id: HashMap<ConnectionId, &Connection> = page.iter().map(|c| (c.id, c)).collect();
        for (id, reading) in readings {
            if let Some(connection) = by_id.get(&id)
                && !already_shown(connection, &reading)
                && apply::apply(state, provider, connection, &reading, false).await.is_ok()
            {
                healed.corrected += 1;
            }
        }
    }
    for account in lapsed {
        // Read again: a page may have renewed or dropped it meanwhile.
        let Ok(Some(connection)) = state.store.connection_of(account, provider.id()).await else { continue };
        if connection.state != ConnectionState::Connected
            || connection.subscription.as_ref().is_some_and(|s| s.expires_at > state.clock.now())
        {
            continue;
        }
        // Paused in every space: its subscription was ended on purpose.
        if connection.subscription.is_none()
            && !state.store.connection_spaces(connection.id).await.is_ok_and(|spaces| spaces.iter().any(|(_, on)| *on))
        {
            continue;
        }
        // Renewing finds it gone at the provider and makes a new one.
        let id = connection.id;
        match renewal::renew(state, provider, connection).await {
            Ok(Upkeep::Recreated) => healed.resubscribed += 1,
            Ok(Upkeep::Renewed | Upkeep::Elsewhere) => {}
            Err(e) => tracing::warn!(connection = %id.0, error = %e, "reconciliation: no subscription"),
        }
    }
    state.metrics.repairs(provider.id(), healed.resubscribed as u64, healed.corrected as u64);
    if healed.resubscribed + healed.corrected > 0 {
        tracing::info!(provider = provider.id(), ?healed, "reconciliation repaired");
    }
    healed
}

/// Whether the connection, as just read, has shown this presence or a newer one already: then
/// applying it would find it stale, and the transaction is spared (nearly every presence, in a
/// reconciliation that finds nothing missed). Byte order, as the store compares.
fn already_shown(connection: &Connection, reading: &Reading) -> bool {
    match (&connection.last_sequence, &reading.order) {
        (Some(last), Some(order)) => last.as_bytes() >= order.as_bytes(),
        _ => false,
    }
}
