//! Who is here: a person is here in a space while at least one of their pages of that space
//! holds an open event stream.
//!
//! [`Attendance::enter`] returns a [`Presence`] guard; when the last guard of a person drops (the
//! page closed or the connection broke) a [`Departure`] is sent so that the others learn it.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use kehai_core::{PersonId, PersonKind, SpaceId};
use prometheus_client::metrics::gauge::Gauge;
use tokio::sync::mpsc;

/// The last page of a person in a space closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Departure {
    pub space_id: SpaceId,
    pub person_id: PersonId,
    pub kind: PersonKind,
}

type Key = (SpaceId, PersonId);

#[derive(Debug)]
pub struct Attendance {
    open: Mutex<HashMap<Key, usize>>,
    departures: mpsc::UnboundedSender<Departure>,
    here_gauge: Gauge,
}

impl Attendance {
    /// `here_gauge` follows the number of avatars here, across spaces.
    pub fn new(here_gauge: Gauge) -> (Arc<Self>, mpsc::UnboundedReceiver<Departure>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Arc::new(Attendance { open: Mutex::default(), departures: tx, here_gauge }), rx)
    }

    /// Counts one more open page; the flag says whether the person just arrived.
    pub fn enter(self: &Arc<Self>, space_id: SpaceId, person_id: PersonId, kind: PersonKind) -> (Presence, bool) {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let n = open.entry((space_id, person_id)).or_insert(0);
        *n += 1;
        let arrived = *n == 1;
        if arrived {
            self.here_gauge.inc();
        }
        (Presence { attendance: Arc::clone(self), space_id, person_id, kind }, arrived)
    }

    pub fn is_here(&self, space_id: SpaceId, person_id: PersonId) -> bool {
        self.open.lock().unwrap_or_else(|p| p.into_inner()).contains_key(&(space_id, person_id))
    }

    fn leave(&self, space_id: SpaceId, person_id: PersonId, kind: PersonKind) {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let key = (space_id, person_id);
        let Some(n) = open.get_mut(&key) else { return };
        *n -= 1;
        if *n == 0 {
            open.remove(&key);
            self.here_gauge.dec();
            let _ = self.departures.send(Departure { space_id, person_id, kind });
        }
    }
}

/// One open page of a person in a space; dropping it closes the page.
#[derive(Debug)]
pub struct Presence {
    attendance: Arc<Attendance>,
    space_id: SpaceId,
    person_id: PersonId,
    kind: PersonKind,
}

impl Drop for Presence {
    fn drop(&mut self) {
        self.attendance.leave(self.space_id, self.person_id, self.kind);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn here_while_any_page_is_open() {
        let gauge = Gauge::default();
        let (a, mut departures) = Attendance::new(gauge.clone());
        let (s, p) = (SpaceId::new(), PersonId::new());
        let (first, arrived) = a.enter(s, p, PersonKind::Member);
        assert!(arrived);
        let (second, arrived_again) = a.enter(s, p, PersonKind::Member);
        assert!(!arrived_again);
        assert!(a.is_here(s, p));
        assert_eq!(gauge.get(), 1);
        drop(first);
        assert!(a.is_here(s, p), "one page is still open");
        assert!(departures.try_recv().is_err());
        drop(second);
        assert!(!a.is_here(s, p));
        assert_eq!(gauge.get(), 0);
        assert_eq!(departures.try_recv().unwrap(), Departure { space_id: s, person_id: p, kind: PersonKind::Member });
    }
}
