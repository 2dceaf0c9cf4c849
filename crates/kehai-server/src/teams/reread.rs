//! Presences read again later. When a change notification cannot be applied because Microsoft
//! throttled or failed past the retries of one call, or the database did not answer, the
//! connection's presence is read again after a while instead of staying wrong until the next
//! reconciliation (five minutes): one pending read per subscription however many of its
//! notifications failed — a storm of them costs no more requests — after 2 s, then twice as long
//! each time, six times at most (about two minutes; the reconciliation catches up after that).

use std::{collections::HashSet, sync::Mutex, time::Duration};

use kehai_store::ConnectionState;

use crate::state::AppState;

/// The wait before the first read again.
const FIRST: Duration = Duration::from_secs(2);
/// Reads tried at most.
const ATTEMPTS: u32 = 6;

/// The subscriptions whose presence waits to be read again.
#[derive(Debug, Default)]
pub(crate) struct Rereads(Mutex<HashSet<String>>);

impl Rereads {
    /// Takes the subscription's pending read; `false` if one is pending already.
    fn take(&self, subscription: &str) -> bool {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).insert(subscription.to_owned())
    }

    fn done(&self, subscription: &str) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).remove(subscription);
    }
}

/// Reads the presence of `subscription`'s connection again later, unless that is pending
/// already.
pub(crate) fn schedule(state: &AppState, subscription: &str) {
    let Some(teams) = state.teams.clone() else { return };
    if !teams.rereads.take(subscription) {
        return;
    }
    let (state, subscription) = (state.clone(), subscription.to_owned());
    tokio::spawn(async move {
        let mut wait = FIRST;
        for attempt in 1..=ATTEMPTS {
            tokio::time::sleep(wait).await;
            wait *= 2;
            let mut connection = match state.store.connection_by_subscription(&subscription).await {
                Ok(Some(c)) if c.state == ConnectionState::Connected => c,
                // Gone, disconnected or needing a new sign-in: nothing to read.
                Ok(_) => break,
                Err(e) => {
                    tracing::debug!(error = %e, attempt, "a presence to read again: the database did not answer");
                    continue;
                }
            };
            match super::read_presence(&state, &teams, &mut connection).await {
                Ok(presence) => {
                    if presence.id == connection.ms_user_id {
                        let _ = super::sync::apply(&state, &teams, &connection, &presence).await;
                    }
                    break;
                }
                Err(e) => tracing::debug!(error = %e, attempt, "a presence to read again: not yet"),
            }
        }
        teams.rereads.done(&subscription);
    });
}
