//! Self-healing (S1): notifications can be missed — kehai was down, Graph gave up retrying, a
//! subscription vanished. At start-up and every five minutes a reconciliation checks that every
//! connected connection has a live subscription (making a new one where not) and reads every
//! presence again, a tenant at a time in batches of 650 through one member's token, applying
//! only what is newer than what was shown. After a downtime every avatar is right within a
//! minute of the start. It runs in the upkeep task ([`super::upkeep::spawn`]), so that it and
//! the renewal sweep never work on the same subscription at once.

use std::collections::HashMap;

use kehai_microsoft::{Graph, Presence};
use kehai_store::Connection;

use super::{
    Teams,
    upkeep::{self, Upkeep},
};
use crate::state::AppState;

/// Connections read from the database at a time.
const PAGE: u32 = 500;

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

/// One reconciliation over every connected connection.
pub async fn reconcile(state: &AppState, teams: &Teams) -> Healed {
    let mut healed = Healed::default();
    let mut tenants: HashMap<String, Vec<Connection>> = HashMap::new();
    let mut after = None;
    loop {
        let page = match state.store.connected_connections(after, PAGE).await {
            Ok(page) => page,
            Err(e) => {
                tracing::warn!(error = %e, "reconciliation: cannot list connections");
                return healed;
            }
        };
        let Some(last) = page.last() else { break };
        after = Some(last.id);
        for connection in page {
            tenants.entry(connection.ms_tenant_id.clone()).or_default().push(connection);
        }
    }
    let now = state.clock.now();
    for (tenant, connections) in tenants {
        healed.checked += connections.len();
        let lapsed: Vec<Connection> = connections
            .iter()
            .filter(|c| c.subscription.as_ref().is_none_or(|s| s.expires_at <= now))
            .cloned()
            .collect();
        // Every presence first, in batches: after a long downtime the avatars are right before
        // the (one-by-one) resubscriptions start.
        healed.corrected += reread(state, teams, &tenant, connections).await;
        for connection in lapsed {
            // Renewing finds it gone at Graph and makes a new one.
            let id = connection.id;
            match upkeep::renew(state, teams, connection).await {
                Ok(Upkeep::Recreated) => healed.resubscribed += 1,
                Ok(Upkeep::Renewed | Upkeep::Elsewhere) => {}
                Err(e) => tracing::warn!(connection = %id.0, error = %e, "reconciliation: no subscription"),
            }
        }
    }
    state.metrics.subscription_repairs.inc_by(healed.resubscribed as u64);
    state.metrics.presence_repairs.inc_by(healed.corrected as u64);
    if healed.resubscribed + healed.corrected > 0 {
        tracing::info!(?healed, "reconciliation repaired");
    }
    healed
}

/// Reads the presences of one tenant's connections again; returns how many had changed.
async fn reread(state: &AppState, teams: &Teams, tenant: &str, mut connections: Vec<Connection>) -> usize {
    // One member's token reads the tenant's presences (Presence.Read.All), 650 at a time.
    let mut token = None;
    for connection in &mut connections {
        if let Ok(t) = super::tokens::access_token(state, teams, connection).await {
            token = Some(t);
            break;
        }
    }
    let Some(token) = token else { return 0 };
    let mut corrected = 0;
    for chunk in connections.chunks_mut(Graph::PRESENCE_BATCH) {
        let ids: Vec<String> = chunk.iter().map(|c| c.ms_user_id.clone()).collect();
        let presences = match teams.graph.presences_by_user_id(&token, tenant, &ids).await {
            Ok(presences) => presences,
            Err(e) => {
                tracing::info!(error = %e, "reconciliation: batch read refused, reading one by one");
                one_by_one(state, teams, chunk).await
            }
        };
        let by_user: HashMap<&str, &Connection> = chunk.iter().map(|c| (c.ms_user_id.as_str(), c)).collect();
        for presence in &presences {
            if let Some(connection) = by_user.get(presence.id.as_str())
                && super::sync::apply(state, teams, connection, presence).await.is_ok()
            {
                corrected += 1;
            }
        }
    }
    corrected
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
