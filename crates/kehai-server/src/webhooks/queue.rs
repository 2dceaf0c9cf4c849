//! The bounded queue between the webhooks and the workers: at most [`BATCHES`] deliveries and
//! [`BYTES`] bytes of parsed notifications wait at once (a delivery weighs its body plus its
//! items' own structures: [`crate::presence::Inbound::weight`]) — without that bound, 1,024
//! bodies of up to 1 MiB each could hold a gigabyte. Beyond either bound the webhook answers 503
//! and the provider retries later.

use std::{
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};

/// Batches waiting at most.
pub const BATCHES: usize = 1024;
/// Bytes of waiting parsed notifications at most.
pub const BYTES: usize = 32 * 1024 * 1024;

/// A delivery taken from the queue; its bytes count against the bound until it is dropped.
#[derive(Debug)]
pub struct Queued<T> {
    pub delivery: T,
    _bytes: OwnedSemaphorePermit,
}

/// Why a delivery was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Too much waits already: the provider should retry later.
    Full,
    /// The workers have stopped (shutting down).
    Closed,
}

/// The webhooks' side of the queue of deliveries `T`.
#[derive(Debug)]
pub struct NotificationQueue<T> {
    sender: mpsc::Sender<Queued<T>>,
    bytes: Arc<Semaphore>,
    refusals: Arc<Refusals>,
}

/// How often a full queue is worth a warning: under a flood Graph is refused hundreds of times
/// a second, and one line per refusal would bury everything else.
const WARN_EVERY: Duration = Duration::from_secs(10);

/// Refusals since the last warning about them.
#[derive(Debug, Default)]
struct Refusals {
    unreported: AtomicU64,
    warned: Mutex<Option<Instant>>,
}

impl<T> Clone for NotificationQueue<T> {
    fn clone(&self) -> Self {
        NotificationQueue {
            sender: self.sender.clone(),
            bytes: Arc::clone(&self.bytes),
            refusals: Arc::clone(&self.refusals),
        }
    }
}

impl<T> NotificationQueue<T> {
    /// The queue and the workers' receiving end.
    pub fn new() -> (NotificationQueue<T>, mpsc::Receiver<Queued<T>>) {
        let (sender, receiver) = mpsc::channel(BATCHES);
        (NotificationQueue { sender, bytes: Arc::new(Semaphore::new(BYTES)), refusals: Arc::default() }, receiver)
    }

    /// Counts a refusal because the queue was full; the number of them to warn about now (the
    /// first one, then at most one warning every [`WARN_EVERY`]), if any.
    pub fn refused(&self) -> Option<u64> {
        self.refusals.unreported.fetch_add(1, Ordering::Relaxed);
        let mut warned = self.refusals.warned.lock().unwrap_or_else(PoisonError::into_inner);
        if warned.is_some_and(|at| at.elapsed() < WARN_EVERY) {
            return None;
        }
        *warned = Some(Instant::now());
        Some(self.refusals.unreported.swap(0, Ordering::Relaxed))
    }

    /// Queues a delivery that holds `size` bytes.
    pub fn push(&self, delivery: T, size: usize) -> Result<(), Refused> {
        let size = u32::try_from(size.max(1)).map_err(|_| Refused::Full)?;
        let permit = Arc::clone(&self.bytes).try_acquire_many_owned(size).map_err(|e| match e {
            tokio::sync::TryAcquireError::NoPermits => Refused::Full,
            tokio::sync::TryAcquireError::Closed => Refused::Closed,
        })?;
        self.sender.try_send(Queued { delivery, _bytes: permit }).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => Refused::Full,
            mpsc::error::TrySendError::Closed(_) => Refused::Closed,
        })
    }

    /// Whether a body of `size` bytes would be refused now: then it is answered at once, without
    /// parsing it (a flood is answered as cheaply as it can be).
    pub fn is_full(&self, size: usize) -> bool {
        self.sender.capacity() == 0 || self.bytes.available_permits() < size.max(1)
    }

    /// Deliveries waiting now.
    pub fn depth(&self) -> usize {
        self.sender.max_capacity() - self.sender.capacity()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_queue_is_bounded_by_batches_and_by_bytes() {
        let (queue, mut receiver) = NotificationQueue::<()>::new();
        assert_eq!(queue.push((), BYTES - 10), Ok(()));
        assert_eq!(queue.push((), 11), Err(Refused::Full), "the bytes are taken");
        assert_eq!(queue.push((), 10), Ok(()));
        assert_eq!(queue.depth(), 2);
        // Processing the big one frees its bytes.
        drop(receiver.try_recv().unwrap_or_else(|e| panic!("{e}")));
        assert_eq!(queue.push((), 1024), Ok(()));
        drop(receiver.try_recv());
        drop(receiver.try_recv());
        for _ in 0..BATCHES {
            assert_eq!(queue.push((), 1), Ok(()));
        }
        assert_eq!(queue.push((), 1), Err(Refused::Full), "the batches are taken");
        drop(receiver);
        assert_eq!(queue.push((), 1), Err(Refused::Closed), "the workers are gone");
    }

    #[test]
    fn a_full_queue_is_warned_about_once_then_at_most_every_ten_seconds_with_the_count() {
        let (queue, _workers) = NotificationQueue::<()>::new();
        assert_eq!(queue.refused(), Some(1), "the first refusal is told at once");
        assert_eq!((0..99).filter_map(|_| queue.refused()).count(), 0, "the next ones wait");
        *queue.refusals.warned.lock().unwrap_or_else(PoisonError::into_inner) = Instant::now().checked_sub(WARN_EVERY);
        assert_eq!(queue.refused(), Some(100), "then all of them, counted");
    }
}
