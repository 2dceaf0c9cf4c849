//! Group commit of presences: the notifications being processed at once write their presences in
//! one transaction ([`Presences::apply_presences`](kehai_store::Presences::apply_presences)).
//!
//! Each presence joins a waiting list and starts a flush. A flush writes everything waiting (at
//! most [`MOST`] per transaction, oldest first) and hands every write its outcome; flushes that
//! find the list empty end at once. A lone presence is written at once, so quiet traffic waits
//! for nothing; under a flood the database does one transaction for tens of notifications
//! instead of one each. On SQLite one flush runs at a time (it has one writer); on PostgreSQL a
//! few, each on its own connection, so that one transaction's commit (a WAL flush) does not hold
//! up the next batch ([`flushes_for`]).
//! Flushes run in tasks of their own, so that a caller that goes away (a closed request) cannot
//! cut short a transaction others wait for.

use std::sync::{Arc, Mutex, PoisonError};

use kehai_store::{Applied, PresenceWrite, Store};
use tokio::sync::oneshot;

use super::Error;
use crate::clock::Clock;

/// Writes per transaction at most (8 values each: well within both engines' limits on a
/// statement's parameters).
pub const MOST: usize = 256;

/// What a write is told: its outcome, or that the database failed (logged once, by the flush).
type Outcome = Result<Applied, Error>;

/// How many flushes may run at once on `database`: one on SQLite (one writer), a few on
/// PostgreSQL (writes to different connections' rows do not wait on each other; the rows are
/// locked in id order, so transactions never wait in a circle).
pub fn flushes_for(database: Option<&kehai_store::Database>) -> usize {
    match database {
        Some(kehai_store::Database::Postgres(_)) => 4,
        _ => 1,
    }
}

/// The presences waiting to be written, and the turns to write them.
#[derive(Debug)]
pub struct GroupCommit {
    waiting: Mutex<Vec<(PresenceWrite, oneshot::Sender<Outcome>)>>,
    turns: tokio::sync::Semaphore,
}

impl GroupCommit {
    /// A group commit with up to `flushes` transactions at once.
    pub fn new(flushes: usize) -> GroupCommit {
        GroupCommit { waiting: Mutex::default(), turns: tokio::sync::Semaphore::new(flushes.max(1)) }
    }

    /// Writes `write` with whatever else is waiting; its outcome as applying it alone would give.
    pub async fn apply(
        self: &Arc<Self>,
        store: &Arc<dyn Store>,
        clock: &Arc<dyn Clock>,
        write: PresenceWrite,
    ) -> Outcome {
        let (told, outcome) = oneshot::channel();
        self.waiting.lock().unwrap_or_else(PoisonError::into_inner).push((write, told));
        let (commit, store, clock) = (Arc::clone(self), Arc::clone(store), Arc::clone(clock));
        tokio::spawn(async move { commit.flush(&*store, &*clock).await });
        outcome.await.unwrap_or(Err(Error::Unavailable("the group commit stopped")))
    }

    /// Writes what is waiting, [`MOST`] at a time, until nothing is.
    async fn flush(&self, store: &dyn Store, clock: &dyn Clock) {
        let Ok(_turn) = self.turns.acquire().await else { return };
        loop {
            let batch: Vec<_> = {
                let mut waiting = self.waiting.lock().unwrap_or_else(PoisonError::into_inner);
                let n = waiting.len().min(MOST);
                waiting.drain(..n).collect()
            };
            if batch.is_empty() {
                return;
            }
            let (writes, told): (Vec<PresenceWrite>, Vec<_>) = batch.into_iter().unzip();
            match store.apply_presences(&writes, clock.now()).await {
                Ok(applied) => {
                    for (tell, outcome) in told.into_iter().zip(applied) {
                        let _ = tell.send(Ok(outcome));
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, writes = told.len(), "could not write presences");
                    for tell in told {
                        let _ = tell.send(Err(Error::Unavailable("the database did not answer")));
                    }
                }
            }
        }
    }
}
