//! The open event streams, by session: ending a session (logout, expiry, a new login) closes its
//! open pages at once instead of leaving a live feed behind, and the streams one session — and
//! the whole instance — may hold open are bounded.
//!
//! A stream costs a file descriptor, a task, buffers and a snapshot query. One session opening
//! more than its share closes its own oldest page (which tells the person why); beyond the
//! instance's total, a new stream is refused (503) and the page tries again later.

use std::{
    collections::{HashMap, VecDeque},
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicU64, Ordering},
    },
};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

#[derive(Debug)]
pub struct SessionStreams {
    by_session: Mutex<HashMap<String, Streams>>,
    per_session: usize,
    total: Arc<Semaphore>,
    next: AtomicU64,
}

/// One session's open streams, oldest first.
#[derive(Debug, Default)]
struct Streams {
    ended: CancellationToken,
    open: VecDeque<(u64, CancellationToken)>,
}

/// The instance holds as many streams as it may.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Full;

/// One open stream of a session; dropping it (the stream ended) gives its place back.
#[derive(Debug)]
pub struct SessionStream {
    /// Cancelled when the session ends.
    pub ended: CancellationToken,
    /// Cancelled when the session opened more streams than it may hold and this is the oldest.
    pub superseded: CancellationToken,
    id: u64,
    session: String,
    streams: Arc<SessionStreams>,
    _slot: OwnedSemaphorePermit,
}

impl Drop for SessionStream {
    fn drop(&mut self) {
        let mut map = self.streams.by_session.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(streams) = map.get_mut(&self.session) {
            streams.open.retain(|(id, _)| *id != self.id);
            if streams.open.is_empty() {
                map.remove(&self.session);
            }
        }
    }
}

impl SessionStreams {
    /// At most `total` streams on this instance, `per_session` of them for one session.
    pub fn new(total: usize, per_session: usize) -> SessionStreams {
        SessionStreams {
            by_session: Mutex::default(),
            per_session: per_session.max(1),
            total: Arc::new(Semaphore::new(total.max(1))),
            next: AtomicU64::new(0),
        }
    }

    /// Opens a stream of the session with this id hash: the session's oldest stream is
    /// superseded when it holds as many as it may; [`Full`] when the instance does.
    pub fn open(self: &Arc<Self>, id_hash: &str) -> Result<SessionStream, Full> {
        let slot = Arc::clone(&self.total).try_acquire_owned().map_err(|_| Full)?;
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let superseded = CancellationToken::new();
        let mut map = self.by_session.lock().unwrap_or_else(PoisonError::into_inner);
        let streams = map.entry(id_hash.to_owned()).or_default();
        while streams.open.len() >= self.per_session {
            if let Some((_, oldest)) = streams.open.pop_front() {
                oldest.cancel();
            }
        }
        streams.open.push_back((id, superseded.clone()));
        Ok(SessionStream {
            ended: streams.ended.child_token(),
            superseded,
            id,
            session: id_hash.to_owned(),
            streams: Arc::clone(self),
            _slot: slot,
        })
    }

    /// Closes every stream of the session.
    pub fn end(&self, id_hash: &str) {
        let removed = self.by_session.lock().unwrap_or_else(PoisonError::into_inner).remove(id_hash);
        if let Some(streams) = removed {
            streams.ended.cancel();
        }
    }
}

impl Default for SessionStreams {
    fn default() -> Self {
        SessionStreams::new(20_000, 8)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ending_a_session_cancels_its_streams_only() {
        let s = Arc::new(SessionStreams::default());
        let (a1, a2, b) = (s.open("a").unwrap(), s.open("a").unwrap(), s.open("b").unwrap());
        s.end("a");
        assert!(a1.ended.is_cancelled() && a2.ended.is_cancelled());
        assert!(!b.ended.is_cancelled());
        assert!(!s.open("a").unwrap().ended.is_cancelled(), "a later session with the same hash starts afresh");
    }

    #[test]
    fn a_session_over_its_share_supersedes_its_oldest_and_the_instance_refuses_beyond_its_total() {
        let s = Arc::new(SessionStreams::new(3, 2));
        let first = s.open("a").unwrap();
        let second = s.open("a").unwrap();
        let third = s.open("a").unwrap();
        assert!(first.superseded.is_cancelled(), "the oldest makes room");
        assert!(!second.superseded.is_cancelled() && !third.superseded.is_cancelled());
        drop(first);
        let other = s.open("b").unwrap();
        assert_eq!(s.open("c").map(|_| ()), Err(Full), "three are open");
        drop(other);
        assert!(s.open("c").is_ok(), "a closed stream gives its place back");
        drop((second, third));
        assert!(s.by_session.lock().unwrap().is_empty(), "nothing kept for sessions without streams");
    }
}
