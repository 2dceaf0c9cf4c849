//! Reading many presences at once (the reconciliation): per tenant, through one member's token
//! (`Presence.Read.All`), 650 ids per `POST /communications/getPresencesByUserId` — one by one
//! with each member's own token if that is refused.

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

use kehai_microsoft::Graph;
use kehai_store::{Connection, ConnectionId};
use secrecy::SecretString;

use super::{Teams, reading_of};
use crate::{
    presence::{Reading, ingest, tokens},
    state::AppState,
};

/// A tenant's reading token is used for this long before another is asked for (it is valid for
/// minutes more: tokens are refreshed well ahead of their expiry).
const TOKEN_REUSE: Duration = Duration::from_secs(60);

/// Each tenant's reading token (one member's), and when it was had.
#[derive(Debug, Default)]
pub(super) struct Readers(Mutex<HashMap<String, (SecretString, Instant)>>);

impl Readers {
    fn recent(&self, tenant: &str) -> Option<SecretString> {
        let readers = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        readers.get(tenant).filter(|(_, at)| at.elapsed() < TOKEN_REUSE).map(|(token, _)| token.clone())
    }

    fn remember(&self, tenant: &str, token: &SecretString) {
        let mut readers = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        readers.retain(|_, (_, at)| at.elapsed() < TOKEN_REUSE);
        readers.insert(tenant.to_owned(), (token.clone(), Instant::now()));
    }

    fn forget(&self, tenant: &str) {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(tenant);
    }
}

/// The presences of `connections`, by tenant.
pub(super) async fn many(
    teams: &Teams,
    state: &AppState,
    connections: &mut [Connection],
) -> Vec<(ConnectionId, Reading)> {
    connections.sort_by(|a, b| a.external_tenant.cmp(&b.external_tenant));
    let mut readings = Vec::with_capacity(connections.len());
    for tenant in connections.chunk_by_mut(|a, b| a.external_tenant == b.external_tenant) {
        readings.extend(tenant_presences(teams, state, tenant).await);
    }
    readings
}

/// A token to read the tenant's presences with: the one had less than [`TOKEN_REUSE`] ago, or
/// the first of `connections` that gives one.
async fn reader(teams: &Teams, state: &AppState, connections: &mut [Connection]) -> Option<SecretString> {
    let tenant = connections.first()?.external_tenant.clone();
    if let Some(token) = teams.readers.recent(&tenant) {
        return Some(token);
    }
    for connection in connections {
        if let Ok(token) = tokens::access_token(state, teams, connection).await {
            teams.readers.remember(&tenant, &token);
            return Some(token);
        }
    }
    None
}

/// The presences of one tenant's connections.
async fn tenant_presences(
    teams: &Teams,
    state: &AppState,
    connections: &mut [Connection],
) -> Vec<(ConnectionId, Reading)> {
    let Some(token) = reader(teams, state, connections).await else { return Vec::new() };
    let mut readings = Vec::with_capacity(connections.len());
    for chunk in connections.chunks_mut(Graph::PRESENCE_BATCH) {
        let tenant = chunk[0].external_tenant.clone();
        let ids: Vec<String> = chunk.iter().map(|c| c.external_user.clone()).collect();
        match teams.graph.presences_by_user_id(&token, &tenant, &ids).await {
            Ok(presences) => {
                let by_user: HashMap<&str, ConnectionId> =
                    chunk.iter().map(|c| (c.external_user.as_str(), c.id)).collect();
                readings
                    .extend(presences.iter().filter_map(|p| by_user.get(p.id.as_str()).map(|id| (*id, reading_of(p)))));
            }
            Err(e) => {
                tracing::info!(error = %e, "reconciliation: batch read refused, reading one by one");
                teams.readers.forget(&tenant);
                for connection in chunk {
                    match ingest::read(state, teams, connection).await {
                        Ok(reading) if reading.user == connection.external_user => {
                            readings.push((connection.id, reading));
                        }
                        Ok(_) => {}
                        Err(e) => {
                            tracing::warn!(connection = %connection.id.0, error = %e, "reconciliation: presence not read");
                        }
                    }
                }
            }
        }
    }
    readings
}
