//! The engine's timetable, until the server stops:
//!
//! - the upkeep task reconciles and sweeps at once when it starts (presences changed while kehai
//!   was down, subscriptions about to lapse); then it sweeps every provider's subscriptions due
//!   for renewal ([`renewal::sweep`]) at fixed intervals — a twentieth of the shortest
//!   subscription life, at most a minute — however long each sweep takes, so that renewals fall
//!   evenly per minute; and it reconciles every `reconcile_seconds` (five minutes), by one
//!   instance of several: the job is claimed while it runs and for a period after it ended, so
//!   one reconciliation runs at a time across instances, a period apart. Sweeps and
//!   reconciliations run one after the other, so that they never work on the same subscription
//!   at once (when another instance dies, [`crate::instance::spawn_heartbeat`] reconciles at
//!   once in a task of its own: the presences it applies are ordered whatever runs beside it).
//! - the wake-up task, beside it so that a slow sweep never makes a boundary late, looks every
//!   second for connections whose presence is due to change by the clock alone
//!   ([`Reading::next_change_at`](super::Reading::next_change_at)), claims them (only those no
//!   instance holds, this one included: a renewal under way keeps its claim) and reads and
//!   applies their presence, several at once.

use std::time::Duration;

use futures::StreamExt;
use kehai_store::{Claim, Connection};
use tokio_util::sync::CancellationToken;

use super::{apply, ingest, reconcile, renewal};
use crate::state::AppState;

/// The periodic reconciliation's claim…
const RECONCILE_JOB: &str = "job/reconcile";
/// …held while it runs for this long beyond a period at most (a reconciliation of 100,000
/// connections takes about 20 s here): should its instance die meanwhile, the takeover
/// reconciliation covers it.
const RECONCILE_RUN_MAX: Duration = Duration::from_secs(600);
/// How often due wake-ups are looked for: a presence that changes with the clock (a calendar's
/// meeting starting) shows well within a second of its time. One indexed query that nearly
/// always finds nothing.
pub const WAKE_EVERY: Duration = Duration::from_millis(250);
/// Connections claimed at a time for waking, how many are read at once, and how long each is
/// claimed while it is read.
const WAKE_BATCH: u32 = 100;
const WAKE_AT_ONCE: usize = 16;
const WAKE_CLAIM_MS: i64 = 60_000;
/// A wake-up whose read failed is tried again this much later.
const WAKE_RETRY_MS: i64 = 30_000;

/// Starts the timetable's tasks (nothing to do without a provider).
pub fn spawn(state: AppState, stop: CancellationToken) {
    let Some(shortest) = state.presence.shortest_subscription_ms() else { return };
    let every = renewal::sweep_every(shortest);
    let (upkeep, upkeep_stop) = (state.clone(), stop.clone());
    tokio::spawn(async move {
        let state = upkeep;
        let mut sweeps = tokio::time::interval(every);
        sweeps.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut reconciliations = tokio::time::interval(state.presence.reconcile_every);
        reconciliations.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // The intervals tick at once first: the start's reconciliation and sweep.
        sweeps.tick().await;
        reconciliations.tick().await;
        reconcile::all(&state).await;
        sweep(&state).await;
        loop {
            tokio::select! {
                _ = upkeep_stop.cancelled() => break,
                _ = sweeps.tick() => {
                    sweep(&state).await;
                }
                _ = reconciliations.tick() => {
                    reconcile_once(&state).await;
                    // The next one a period after this one ended, however long it took.
                    reconciliations.reset();
                }
            }
        }
    });
    tokio::spawn(async move {
        let mut wake_ups = tokio::time::interval(WAKE_EVERY);
        wake_ups.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = wake_ups.tick() => {
                    wake_due(&state).await;
                }
            }
        }
    });
}

/// One sweep of every offered provider.
async fn sweep(state: &AppState) -> usize {
    let mut renewed = 0;
    for provider in state.presence.offered() {
        renewed += renewal::sweep(state, &**provider).await;
    }
    renewed
}

/// The periodic reconciliation, if this instance claims it. The claim is held while it runs (for
/// [`RECONCILE_RUN_MAX`] more than a period at most), then for a period after it ended, and not
/// let go: one reconciliation at a time across instances, a period apart.
async fn reconcile_once(state: &AppState) {
    let period = i64::try_from(state.presence.reconcile_every.as_millis()).unwrap_or(i64::MAX);
    let run_max = i64::try_from(RECONCILE_RUN_MAX.as_millis()).unwrap_or(i64::MAX);
    let now = state.clock.now();
    let holder = &state.instance;
    let until = now.saturating_add(period).saturating_add(run_max);
    match state.store.claim(RECONCILE_JOB, Claim { holder, now, until }).await {
        Ok(true) => {
            reconcile::all(state).await;
            for provider in state.presence.offered() {
                provider.tidy(state).await;
            }
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

/// Reads and applies the presence of every connection due to be woken now, a batch at a time;
/// returns how many were woken.
pub async fn wake_due(state: &AppState) -> usize {
    let mut woken = 0;
    loop {
        let now = state.clock.now();
        let claim = Claim { holder: &state.instance, now, until: now + WAKE_CLAIM_MS };
        let due = match state.store.claim_due(claim, WAKE_BATCH).await {
            Ok(due) => due,
            Err(e) => {
                tracing::warn!(error = %e, "cannot claim the connections due to be read");
                return woken;
            }
        };
        if due.is_empty() {
            return woken;
        }
        woken += due.len();
        futures::stream::iter(due).for_each_concurrent(WAKE_AT_ONCE, |connection| wake(state, connection)).await;
    }
}

/// Reads and applies one woken connection's presence (which records when to wake it next), or
/// puts it off for a while; then lets go of its claim.
async fn wake(state: &AppState, mut connection: Connection) {
    let id = connection.id;
    let shown = match state.presence.provider(&connection.provider) {
        Some(provider) => match ingest::read(state, &**provider, &mut connection).await {
            // Shown even with the ordering key already recorded: the clock, not a new version of
            // the data, is what changed.
            Ok(reading) => apply::apply(state, &**provider, &connection, &reading, true).await.is_ok(),
            Err(e) => {
                tracing::info!(connection = %id.0, error = %e, "a presence due to change could not be read");
                false
            }
        },
        // Its provider is no longer offered: nothing to read until it is.
        None => false,
    };
    if !shown {
        let later = state.clock.now() + WAKE_RETRY_MS;
        if let Err(e) = state.store.set_next_check(id, Some(later)).await {
            tracing::warn!(connection = %id.0, error = %e, "cannot put off a wake-up");
        }
    }
    if let Err(e) = state.store.release_connection(id, &state.instance).await {
        tracing::warn!(connection = %id.0, error = %e, "could not let go of a claim");
    }
}
