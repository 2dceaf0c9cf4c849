//! Turning a provider's webhook deliveries into avatars: every item is checked — a known
//! subscription of a connected connection, its secret (constant-time), and, before any content is
//! opened, the delivery's own proof (Graph's validation tokens, which must be for the
//! connection's own organization, then the content's signature) —
//! and its presence applied in order to every space where the connection is ON.

use std::collections::HashMap;

use kehai_store::{
    Connection, ConnectionState,
    secrets::{ConnectionSecret, Place},
};
use secrecy::ExposeSecret;
use subtle::ConstantTimeEq;

use super::{Dropped, Event, Inbound, Item, Proven, Provider, Reading, apply, renewal, retry, tokens};
use crate::state::AppState;

/// Processes one delivery's items. The cheap checks come first — a known subscription of a
/// connected connection (the delivery's subscriptions looked up in one query), its secret — and
/// the delivery's proof only once an admitted item opens content: traffic the provider did not
/// send costs one lookup, no key fetch and no decryption.
pub async fn process(state: &AppState, provider: &dyn Provider, inbound: &Inbound) -> Vec<Result<(), Dropped>> {
    for _ in 0..inbound.malformed {
        state.metrics.notification_received(provider.id());
        state.metrics.notification_dropped(provider.id(), Dropped::UnknownSubscription.reason());
    }
    let known = known_subscriptions(state, provider, inbound).await;
    let mut proven: Option<Result<Proven, Dropped>> = None;
    let mut outcomes = Vec::with_capacity(inbound.items.len());
    for item in &inbound.items {
        state.metrics.notification_received(provider.id());
        let admitted = admit(state, item, known.as_ref());
        let admitted_id = admitted.as_ref().ok().map(|c| c.id);
        let outcome = match admitted {
            Err(why) => Err(why),
            Ok(connection) if item.opens_content() => {
                let proof = match &proven {
                    Some(proof) => proof,
                    None => {
                        let proof = provider.verify(state, inbound).await;
                        if proof == Err(Dropped::ValidationToken) {
                            state.metrics.validation_token_failure(provider.id());
                        }
                        proven.insert(proof)
                    }
                };
                let proof = match proof {
                    Ok(proven) if proven.covers(&connection) => Ok(()),
                    Ok(_) => {
                        state.metrics.validation_token_failure(provider.id());
                        tracing::warn!(
                            subscription = %item.subscription,
                            "a notification's validation tokens are for another organization than its connection's"
                        );
                        Err(Dropped::ValidationToken)
                    }
                    Err(why) => Err(*why),
                };
                match proof {
                    Ok(()) => act(state, provider, item, connection).await,
                    Err(why) => Err(why),
                }
            }
            Ok(connection) => act(state, provider, item, connection).await,
        };
        match outcome {
            Ok(()) => {
                state.metrics.notification_applied(provider.id());
            }
            // Anyone can post these: counted, logged only at debug level.
            Err(why @ (Dropped::UnknownSubscription | Dropped::ClientState)) => {
                state.metrics.notification_dropped(provider.id(), why.reason());
                tracing::debug!(?why, "notification not applied");
            }
            Err(why) => {
                state.metrics.notification_dropped(provider.id(), why.reason());
                if why == Dropped::Decryption {
                    state.metrics.decrypt_failure(provider.id());
                }
                // The provider or the database failed a change (or a missed-changes event) of a
                // subscription kehai knows: its presence is read again later. Only once it was
                // admitted: anyone can post made-up subscriptions. (Renewals the sweep redoes.)
                let presence = matches!(item.event, Event::Changed(_) | Event::Missed);
                if why == Dropped::Unavailable
                    && presence
                    && let Some(connection) = admitted_id
                {
                    retry::schedule(state, provider.id(), connection);
                }
                tracing::info!(?why, subscription = %item.subscription, "notification not applied");
            }
        };
        outcomes.push(outcome);
    }
    outcomes
}

/// The connections of the subscriptions a delivery's items name, by subscription id, read in
/// one query; `None` when the database could not be read.
async fn known_subscriptions(
    state: &AppState,
    provider: &dyn Provider,
    inbound: &Inbound,
) -> Option<HashMap<String, Connection>> {
    let mut ids: Vec<&str> = inbound.items.iter().map(|i| i.subscription.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    match state.store.connections_by_subscriptions(provider.id(), &ids).await {
        // Under the id of each of its subscriptions: the current one, and one being replaced.
        Ok(found) => Some(
            found
                .into_iter()
                .flat_map(|c| c.subscriptions().map(|s| (s.id.clone(), c.clone())).collect::<Vec<_>>())
                .collect(),
        ),
        Err(e) => {
            tracing::warn!(error = %e, "cannot look up a delivery's subscriptions");
            None
        }
    }
}

/// The connection an item is for, if it names a connected connection's subscription (or the one
/// it is replacing) with that subscription's secret (compared in constant time).
fn admit(state: &AppState, item: &Item, known: Option<&HashMap<String, Connection>>) -> Result<Connection, Dropped> {
    let connection =
        known.ok_or(Dropped::Unavailable)?.get(&item.subscription).cloned().ok_or(Dropped::UnknownSubscription)?;
    let subscription = connection.subscription_named(&item.subscription).ok_or(Dropped::UnknownSubscription)?;
    let expected = state
        .secrets
        .open(&subscription.client_state.0, Place::Connection(connection.id, ConnectionSecret::ClientState))
        .map_err(|_| Dropped::ClientState)?;
    let given = item.secret.as_deref().unwrap_or("");
    if !bool::from(given.as_bytes().ct_eq(expected.expose_secret().as_bytes())) {
        return Err(Dropped::ClientState);
    }
    // A subscription that watches a resource is notified of that one only.
    if let Some(watched) = &subscription.resource
        && item.resource.as_deref() != Some(watched.as_str())
    {
        return Err(Dropped::ClientState);
    }
    // Needs reconnect or Error: its presence was taken off and must not come back (nor a
    // refresh be tried again with a refused token).
    if connection.state != ConnectionState::Connected {
        return Err(Dropped::NotConnected);
    }
    Ok(connection)
}

/// Does what an admitted item says.
async fn act(
    state: &AppState,
    provider: &dyn Provider,
    item: &Item,
    mut connection: Connection,
) -> Result<(), Dropped> {
    let unavailable = |e: super::Error| {
        tracing::warn!(error = %e, event = ?item.event, "a notification could not be acted on");
        Dropped::Unavailable
    };
    if matches!(item.event, Event::Changed(_) | Event::Missed) {
        provider.changed(&connection);
    }
    // The successor of a subscription being replaced delivers: the old one can end.
    if connection.previous_subscription.is_some()
        && connection.subscription.as_ref().is_some_and(|s| s.id == item.subscription)
    {
        let (state, connection, id) = (state.clone(), connection.clone(), provider.id());
        tokio::spawn(async move {
            let Some(provider) = state.presence.provider(id) else { return };
            if let Err(e) = renewal::successor_confirmed(&state, &**provider, connection).await {
                tracing::info!(error = %e, "a replaced subscription could not be ended yet");
            }
        });
    }
    let reading = match &item.event {
        Event::Changed(Some(content)) => provider.open(state, content, &connection).await?,
        // A ping: read after a short wait, once for however many arrive meanwhile.
        Event::Changed(None) if provider.debounced() => {
            retry::schedule(state, provider.id(), connection.id);
            return Ok(());
        }
        // The item carries no presence: read it.
        Event::Changed(None) => read(state, provider, &mut connection).await.map_err(|_| Dropped::Unavailable)?,
        Event::Missed => read(state, provider, &mut connection).await.map_err(unavailable)?,
        Event::RenewalRequired => {
            return renewal::renew(state, provider, connection).await.map(|_| ()).map_err(unavailable);
        }
        Event::Removed => {
            return renewal::resubscribe(state, provider, connection).await.map(|_| ()).map_err(unavailable);
        }
        Event::Started => return Ok(()),
        Event::Other(event) => {
            tracing::info!(event, "an unknown lifecycle event: ignored");
            return Ok(());
        }
    };
    if matches!(item.event, Event::Changed(_)) && reading.user != connection.external_user {
        return Err(Dropped::UnknownSubscription);
    }
    apply::apply(state, provider, &connection, &reading, false).await
}

/// The connection's presence, read with its own (refreshed if need be) token.
pub async fn read(
    state: &AppState,
    provider: &dyn Provider,
    connection: &mut Connection,
) -> Result<Reading, super::Error> {
    let current = connection.clone();
    tokens::authorized(state, provider, connection, |token| {
        let current = &current;
        async move { provider.read(&token, current).await }
    })
    .await
}
