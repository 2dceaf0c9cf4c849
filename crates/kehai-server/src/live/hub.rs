//! The hub numbers each space's events and fans them out to that space's open streams.
//!
//! Event ids are `{epoch}-{n}`: `n` counts per space, `epoch` is random per process start. A page
//! that reconnects with `Last-Event-ID` gets the events it missed from a short per-space history;
//! when they are no longer there (or the id is from another process) it gets a fresh snapshot.

use std::{
    collections::{HashMap, VecDeque},
    sync::{Arc, Mutex},
};

use axum::response::sse::Event;
use kehai_core::SpaceId;
use tokio::sync::broadcast;

use super::bus::SpaceEvent;

/// How many recent events per space are kept for reconnecting pages.
const HISTORY: usize = 256;

/// An event with its number in its space, and its SSE frame (rendered once, however many
/// streams receive it: with thousands of pages open, rendering per stream was the fan-out's
/// cost).
#[derive(Debug, Clone)]
pub struct Numbered {
    pub n: u64,
    pub event: Arc<SpaceEvent>,
    pub frame: Event,
}

/// What an open stream receives from the hub.
#[derive(Debug, Clone)]
pub enum Feed {
    Event(Numbered),
    /// Events were lost upstream: send a fresh snapshot.
    Resync,
}

/// Where a (re)connecting stream starts.
#[derive(Debug)]
pub enum Start {
    /// The events after the client's last one, in order.
    Replay(Vec<Numbered>),
    /// A snapshot, numbered as the last event already reflected in the database.
    Snapshot { n: u64 },
}

struct Channel {
    /// Number of the last event delivered (0: none yet).
    last: u64,
    recent: VecDeque<Numbered>,
    tx: broadcast::Sender<Feed>,
}

impl Channel {
    fn new() -> Self {
        Channel { last: 0, recent: VecDeque::with_capacity(16), tx: broadcast::channel(HISTORY).0 }
    }
}

pub struct Hub {
    epoch: String,
    spaces: Mutex<HashMap<SpaceId, Channel>>,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub").field("epoch", &self.epoch).finish_non_exhaustive()
    }
}

impl Default for Hub {
    fn default() -> Self {
        Hub { epoch: format!("{:08x}", rand::random::<u32>()), spaces: Mutex::default() }
    }
}

impl Hub {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<SpaceId, Channel>> {
        self.spaces.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Numbers an event from the bus and sends it to the space's streams.
    pub fn deliver(&self, space_id: SpaceId, event: SpaceEvent) {
        let mut spaces = self.lock();
        let channel = spaces.entry(space_id).or_insert_with(Channel::new);
        channel.last += 1;
        let frame = super::events::render(self.event_id(channel.last), &event);
        let numbered = Numbered { n: channel.last, event: Arc::new(event), frame };
        if channel.recent.len() == HISTORY {
            channel.recent.pop_front();
        }
        channel.recent.push_back(numbered.clone());
        let _ = channel.tx.send(Feed::Event(numbered));
    }

    /// Tells every stream to resynchronise (the bus lost messages).
    pub fn resync_all(&self) {
        for channel in self.lock().values_mut() {
            // The history no longer tells the whole story: a resync takes a number of its own,
            // so that every id given out before it leads to a snapshot.
            channel.recent.clear();
            // (With the history empty, any older id finds nothing to replay from.)
            channel.last += 1;
            let _ = channel.tx.send(Feed::Resync);
        }
    }

    /// Subscribes to a space. Atomic with respect to [`Hub::deliver`]: every event is either in
    /// the returned start or arrives on the receiver, never both, never neither.
    pub fn join(&self, space_id: SpaceId, last_event_id: Option<&str>) -> (Start, broadcast::Receiver<Feed>) {
        let mut spaces = self.lock();
        let channel = spaces.entry(space_id).or_insert_with(Channel::new);
        let rx = channel.tx.subscribe();
        let start = match last_event_id.and_then(|id| self.parse_id(id)) {
            Some(n) if n == channel.last => Start::Replay(Vec::new()),
            Some(n) if n < channel.last && channel.recent.front().is_some_and(|first| first.n <= n + 1) => {
                Start::Replay(channel.recent.iter().filter(|e| e.n > n).cloned().collect())
            }
            _ => Start::Snapshot { n: channel.last },
        };
        (start, rx)
    }

    /// The number a snapshot taken now is as recent as (the last event delivered to the space).
    pub fn last(&self, space_id: SpaceId) -> u64 {
        self.lock().get(&space_id).map_or(0, |c| c.last)
    }

    /// The SSE id of event `n`.
    pub fn event_id(&self, n: u64) -> String {
        format!("{}-{n}", self.epoch)
    }

    fn parse_id(&self, id: &str) -> Option<u64> {
        let (epoch, n) = id.split_once('-')?;
        if epoch != self.epoch {
            return None;
        }
        n.parse().ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::live::bus::SpaceEvent;

    fn left(i: u32) -> SpaceEvent {
        SpaceEvent::Left { person_id: i.to_string() }
    }

    #[test]
    fn reconnect_replays_what_was_missed_or_snapshots() {
        let hub = Hub::default();
        let s = SpaceId::new();
        let (start, _rx) = hub.join(s, None);
        assert!(matches!(start, Start::Snapshot { n: 0 }));
        for i in 1..=3 {
            hub.deliver(s, left(i));
        }
        let (start, _) = hub.join(s, Some(&hub.event_id(1)));
        let Start::Replay(events) = start else { panic!("expected a replay") };
        assert_eq!(events.iter().map(|e| e.n).collect::<Vec<_>>(), vec![2, 3]);
        assert!(matches!(hub.join(s, Some(&hub.event_id(3))).0, Start::Replay(v) if v.is_empty()));
        assert!(matches!(hub.join(s, Some("deadbeef-2")).0, Start::Snapshot { n: 3 }), "another process's id");
        assert!(matches!(hub.join(s, Some(&hub.event_id(9))).0, Start::Snapshot { n: 3 }), "an id from the future");
        assert!(matches!(hub.join(s, Some("garbage")).0, Start::Snapshot { n: 3 }));
    }

    #[test]
    fn old_ids_fall_back_to_a_snapshot() {
        let hub = Hub::default();
        let s = SpaceId::new();
        for i in 0..(HISTORY as u32 + 10) {
            hub.deliver(s, left(i));
        }
        assert!(matches!(hub.join(s, Some(&hub.event_id(2))).0, Start::Snapshot { .. }));
        let recent = HISTORY as u64;
        assert!(matches!(hub.join(s, Some(&hub.event_id(recent))).0, Start::Replay(v) if v.len() == 10));
    }

    #[test]
    fn ids_from_before_a_resync_lead_to_a_snapshot() {
        let hub = Hub::default();
        let s = SpaceId::new();
        hub.deliver(s, left(1));
        let before = hub.event_id(1);
        hub.resync_all();
        assert!(matches!(hub.join(s, Some(&before)).0, Start::Snapshot { n: 2 }));
        // A page that took the snapshot after the resync is current.
        assert!(matches!(hub.join(s, Some(&hub.event_id(2))).0, Start::Replay(v) if v.is_empty()));
        hub.deliver(s, left(3));
        assert!(matches!(hub.join(s, Some(&hub.event_id(2))).0, Start::Replay(v) if v.len() == 1));
        assert!(matches!(hub.join(s, Some(&before)).0, Start::Snapshot { n: 3 }));
    }

    #[tokio::test]
    async fn streams_receive_numbered_events() {
        let hub = Hub::default();
        let s = SpaceId::new();
        let (_, mut rx) = hub.join(s, None);
        hub.deliver(s, left(7));
        let Feed::Event(e) = rx.recv().await.unwrap() else { panic!("expected an event") };
        assert_eq!(e.n, 1);
        assert_eq!(*e.event, left(7));
        hub.resync_all();
        assert!(matches!(rx.recv().await.unwrap(), Feed::Resync));
    }
}
