//! Self-healing (S1): notifications can be missed — kehai was down, Graph gave up retrying, a
//! subscription vanished. At start-up, every `ms_reconcile_seconds` (five minutes) and when
//! another instance dies, a reconciliation checks that every connected connection has a live
//! subscription (making a new one where not) and reads every presence again — 650 connections
//! at a time, in one batch read per tenant through one member's token, so that its memory does
//! not grow with the number of connections — applying only what is newer than what was shown.
//! After a downtime every avatar is right within a minute of the start. The start-up and
//! periodic ones run in the upkeep task ([`super::upkeep::spawn`]), so that they and the renewal
//! sweep never work on the same subscription at once; a subscription is made anew under the
//! connection's claim, which the sweep takes too.

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use kehai_core::PersonId;
use kehai_microsoft::{Graph, Presence};
use kehai_store::{Connection, ConnectionState};
use secrecy::SecretString;

use super::{
    Teams,
    upkeep::{self, Upkeep},
};
use crate::state::AppState;

/// Connections read from the database at a time: one batch read per tenant and page, and the
/// memory of one page, however many connections there are.
const PAGE: u32 = Graph::PRESENCE_BATCH as u32;
/// A tenant's reading token is used for this long before another is asked for (it is valid for
/// minutes more: tokens are refreshed well ahead of their expiry).
const TOKEN_REUSE: Duration = Duration::from_secs(60);

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

/// One reconciliation over every connected connection, a page at a time.
pub async fn reconcile(state: &AppState, teams: &Teams) -> Healed {
    reconcile_in_pages(state, teams, PAGE).await
}

/// [`reconcile`] with pages of `size` connections (tests page through a few).
pub async fn reconcile_in_pages(state: &AppState, teams: &Teams, size: u32) -> Healed {
    let mut healed = Healed::default();
    let mut readers = Readers::default();
    // Every presence first: after a long downtime the avatars are right before the (one-by-one)
    // resubscriptions start. Only the accounts of the lapsed are kept meanwhile.
    let mut lapsed: Vec<PersonId> = Vec::new();
    let mut after = None;
    loop {
        let page = match state.store.connected_connections("msteams", after, size).await {
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
        lapsed.extend(
            page.iter().filter(|c| c.subscription.as_ref().is_none_or(|s| s.expires_at <= now)).map(|c| c.account_id),
        );
        let mut tenants: HashMap<String, Vec<Connection>> = HashMap::new();
        for connection in page {
            tenants.entry(connection.external_tenant.clone()).or_default().push(connection);
        }
        for (tenant, connections) in tenants {
            healed.corrected += reread(state, teams, &mut readers, &tenant, connections).await;
        }
    }
    for account in lapsed {
        // Read again: a page may have renewed or dropped it meanwhile.
        let Ok(Some(connection)) = state.store.connection_of(account, "msteams").await else { continue };
        if connection.state != ConnectionState::Connected
            || connection.subscription.as_ref().is_some_and(|s| s.expires_at > state.clock.now())
        {
            continue;
        }
        // Renewing finds it gone at Graph and makes a new one.
        let id = connection.id;
        match upkeep::renew(state, teams, connection).await {
            Ok(Upkeep::Recreated) => healed.resubscribed += 1,
            Ok(Upkeep::Renewed | Upkeep::Elsewhere) => {}
            Err(e) => tracing::warn!(connection = %id.0, error = %e, "reconciliation: no subscription"),
        }
    }
    state.metrics.subscription_repairs.inc_by(healed.resubscribed as u64);
    state.metrics.presence_repairs.inc_by(healed.corrected as u64);
    if healed.resubscribed + healed.corrected > 0 {
        tracing::info!(?healed, "reconciliation repaired");
    }
    healed
}

/// Each tenant's reading token (one member's), and when it was had.
#[derive(Default)]
struct Readers(HashMap<String, (SecretString, Instant)>);

impl Readers {
    /// A token to read `tenant`'s presences with: the one had less than [`TOKEN_REUSE`] ago, or
    /// the first of `connections` that gives one.
    async fn token(
        &mut self,
        state: &AppState,
        teams: &Teams,
        tenant: &str,
        connections: &mut [Connection],
    ) -> Option<SecretString> {
        if let Some((token, at)) = self.0.get(tenant)
            && at.elapsed() < TOKEN_REUSE
        {
            return Some(token.clone());
        }
        for connection in connections {
            if let Ok(token) = super::tokens::access_token(state, teams, connection).await {
                self.0.insert(tenant.to_owned(), (token.clone(), Instant::now()));
                return Some(token);
            }
        }
        None
    }
}

/// Reads the presences of one tenant's connections again; returns how many had changed.
async fn reread(
    state: &AppState,
    teams: &Teams,
    readers: &mut Readers,
    tenant: &str,
    mut connections: Vec<Connection>,
) -> usize {
    // One member's token reads the tenant's presences (Presence.Read.All), 650 at a time.
    let Some(token) = readers.token(state, teams, tenant, &mut connections).await else { return 0 };
    let mut corrected = 0;
    for chunk in connections.chunks_mut(Graph::PRESENCE_BATCH) {
        let ids: Vec<String> = chunk.iter().map(|c| c.external_user.clone()).collect();
        let presences = match teams.graph.presences_by_user_id(&token, tenant, &ids).await {
            Ok(presences) => presences,
            Err(e) => {
                tracing::info!(error = %e, "reconciliation: batch read refused, reading one by one");
                readers.0.remove(tenant);
                one_by_one(state, teams, chunk).await
            }
        };
        let by_user: HashMap<&str, &Connection> = chunk.iter().map(|c| (c.external_user.as_str(), c)).collect();
        for presence in &presences {
            if let Some(connection) = by_user.get(presence.id.as_str())
                && !already_shown(connection, presence)
                && super::sync::apply(state, teams, connection, presence).await.is_ok()
            {
                corrected += 1;
            }
        }
    }
    corrected
}

/// Whether the connection, as just read, has shown this presence or a newer one already: then
/// applying it would find it stale, and the transaction is spared (nearly every presence, in a
/// reconciliation that finds nothing missed). Byte order, as the store compares.
fn already_shown(connection: &Connection, presence: &Presence) -> bool {
    match (&connection.last_sequence, &presence.sequence_number) {
        (Some(last), Some(sequence)) => last.as_bytes() >= sequence.as_bytes(),
        _ => false,
    }
}

/// Each connection's presence with its own token (when the batch read is not allowed).
async fn one_by_one(state: &AppState, teams: &Teams, connections: &mut [Connection]) -> Vec<Presence> {
    let mut presences = Vec::with_capacity(connections.len());
    for connection in connections {
        match super::read_presence(state, teams, connection).await {
            Ok(presence) => presences.push(presence),
            Err(e) => tracing::warn!(connection = %connection.id.0, error = %e, "reconciliation: presence not read"),
        }
    }
    presences
}
