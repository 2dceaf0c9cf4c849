//! Group commit of presences: the notifications being processed at once write their presences in
//! one transaction ([`Store::apply_presences`]).
//!
//! Each presence joins a waiting list and starts a flush. One flush runs at a time: it writes
//! everything waiting (at most [`MOST`] per transaction, oldest first) and hands every write its
//! outcome; flushes that find the list empty end at once. A lone presence is written at once, so
//! quiet traffic waits for nothing; under a flood the single writer of SQLite (or the
//! PostgreSQL connection) does one transaction for tens of notifications instead of one each.
//! Flushes run in tasks of their own, so that a caller that goes away (a closed request) cannot
//! cut short a transaction others wait for.

use std::sync::{Arc, Mutex, PoisonError};

use kehai_store::{Applied, PresenceWrite, Store};
use tokio::sync::oneshot;

use crate::clock::Clock;

/// Writes per transaction at most (8 values each: well within both engines' limits on a
/// statement's parameters).
pub const MOST: usize = 256;

/// What a write is told: its outcome, or why the store failed (the message of the error).
type Outcome = Result<Applied, String>;

/// The presences waiting to be written, and the turn to write them.
#[derive(Debug, Default)]
pub struct GroupCommit {
    waiting: Mutex<Vec<(PresenceWrite, oneshot::Sender<Outcome>)>>,
    turn: tokio::sync::Mutex<()>,
}

impl GroupCommit {
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
        outcome.await.unwrap_or_else(|_| Err("the group commit stopped".to_owned()))
    }

    /// Writes what is waiting, [`MOST`] at a time, until nothing is.
    async fn flush(&self, store: &dyn Store, clock: &dyn Clock) {
        let _turn = self.turn.lock().await;
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
                    let e = e.to_string();
                    for tell in told {
                        let _ = tell.send(Err(e.clone()));
                    }
                }
            }
        }
    }
}
