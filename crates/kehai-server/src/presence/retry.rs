//! Presences read again later. When a change notification (or a missed-changes event) of a
//! connected subscription cannot be applied because the provider throttled or failed past the
//! retries of one call, its signing keys could not be had, or the database did not answer, the
//! connection's presence is read again after a while instead of staying wrong until the next
//! reconciliation (every `reconcile_seconds`, five minutes by default): one pending read per
//! connection however many of its notifications failed — a storm of them costs no more
//! requests — after 2 s, then twice as long each time, six times at most (about two minutes;
//! the reconciliation catches up after that). A failure while a read is under way makes it read
//! once more when done, so that the newest presence is not missed.
//!
//! The same pending read debounces the notifications of a provider whose notifications carry
//! nothing ([`super::Provider::debounced`]: Google's pushes): each one schedules it, so a burst of
//! changes is read once, 2 s after the first — also when it comes through both a channel being
//! replaced and its successor.

use std::{collections::HashMap, sync::Mutex, time::Duration};

use kehai_store::{ConnectionId, ConnectionState};

use super::{Dropped, apply, ingest};
use crate::state::AppState;

/// The wait before the first read again.
const FIRST: Duration = Duration::from_secs(2);
/// Reads tried at most.
const ATTEMPTS: u32 = 6;

/// The connections (by provider) whose presence waits to be read again, each with whether
/// another failure came since its read began.
#[derive(Debug, Default)]
pub(crate) struct Rereads(Mutex<HashMap<(&'static str, ConnectionId), bool>>);

impl Rereads {
    fn pending(&self) -> std::sync::MutexGuard<'_, HashMap<(&'static str, ConnectionId), bool>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes the connection's pending read: `true` to start one; `false` if one is pending
    /// already (which then reads once more).
    fn take(&self, key: &(&'static str, ConnectionId)) -> bool {
        let mut pending = self.pending();
        match pending.get_mut(key) {
            Some(again) => {
                *again = true;
                false
            }
            None => {
                pending.insert(*key, false);
                true
            }
        }
    }

    /// A read begins: failures from now on need another one.
    fn reading(&self, key: &(&'static str, ConnectionId)) {
        if let Some(again) = self.pending().get_mut(key) {
            *again = false;
        }
    }

    /// The read is over; `false` (and still pending) when another failure came meanwhile.
    fn done(&self, key: &(&'static str, ConnectionId)) -> bool {
        let mut pending = self.pending();
        if pending.get(key) == Some(&true) {
            return false;
        }
        pending.remove(key);
        true
    }

    fn give_up(&self, key: &(&'static str, ConnectionId)) {
        self.pending().remove(key);
    }
}

/// Reads the presence of `provider`'s `connection` again later, unless that is pending already
/// (then the pending read reads once more).
pub(crate) fn schedule(state: &AppState, provider: &'static str, connection: ConnectionId) {
    let key = (provider, connection);
    if !state.presence.rereads.take(&key) {
        return;
    }
    let state = state.clone();
    tokio::spawn(async move {
        let rereads = &state.presence.rereads;
        let mut wait = FIRST;
        let mut attempts = 0;
        while attempts < ATTEMPTS {
            tokio::select! {
                _ = state.shutdown.cancelled() => break,
                _ = tokio::time::sleep(wait) => {}
            }
            attempts += 1;
            rereads.reading(&key);
            match read(&state, &key).await {
                Ok(()) if rereads.done(&key) => return,
                // Another failure came meanwhile: once more, at once.
                Ok(()) => wait = Duration::ZERO,
                Err(Unavailable) => wait = (wait * 2).max(FIRST),
            }
        }
        rereads.give_up(&key);
    });
}

/// The provider or the database failed: read again later.
struct Unavailable;

/// Reads and shows the connection's presence.
async fn read(state: &AppState, (provider, connection): &(&'static str, ConnectionId)) -> Result<(), Unavailable> {
    let Some(provider) = state.presence.provider(provider) else { return Ok(()) };
    let mut connection = match state.store.connection(*connection).await {
        Ok(Some(c)) if c.state == ConnectionState::Connected && c.provider == provider.id() => c,
        // Gone, disconnected or needing a new sign-in: nothing to read.
        Ok(_) => return Ok(()),
        Err(e) => {
            tracing::debug!(error = %e, "a presence to read again: the database did not answer");
            return Err(Unavailable);
        }
    };
    let reading = ingest::read(state, &**provider, &mut connection).await.map_err(|e| {
        tracing::debug!(error = %e, "a presence to read again: not yet");
        Unavailable
    })?;
    if reading.user != connection.external_user {
        return Ok(());
    }
    match apply::apply(state, &**provider, &connection, &reading, false).await {
        Err(Dropped::Unavailable) => Err(Unavailable),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One pending read per connection; a failure during a read makes it read once more.
    #[test]
    fn one_read_per_connection_and_once_more_after_a_failure_meanwhile() {
        let rereads = Rereads::default();
        let (c1, c2) = (ConnectionId::new(), ConnectionId::new());
        let (s1, s2) = (("p", c1), ("p", c2));
        assert!(rereads.take(&s1), "the first failure starts a read");
        assert!(!rereads.take(&s1), "the next ones do not");
        assert!(rereads.take(&s2), "another connection has its own");
        assert!(rereads.take(&("q", c1)), "so has another provider's");
        rereads.reading(&s1);
        assert!(rereads.done(&s1), "nothing came meanwhile: done");
        assert!(rereads.take(&s1), "done: a new failure starts a new read");
        rereads.reading(&s1);
        assert!(!rereads.take(&s1));
        assert!(!rereads.done(&s1), "a failure came during the read: read once more");
        rereads.reading(&s1);
        assert!(rereads.done(&s1));
        rereads.give_up(&s2);
        assert!(rereads.take(&s2), "given up: a new failure starts a new read");
    }
}
