//! Who is here: a person is here in a space while at least one of their pages of that space
//! holds an open event stream — on this instance or on another one.
//!
//! [`Attendance::enter`] returns a [`Presence`] guard; when the last guard of a person drops (the
//! page closed or the connection broke) a [`Departure`] is sent so that the others learn it.
//! Other instances' pages are learnt from their notes on the bus ([`Attendance::note`]), and
//! forgotten when that instance dies ([`Attendance::forget`]).

use std::{
    collections::{HashMap, HashSet},
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
    /// Pages open on this instance, and whose.
    open: Mutex<HashMap<Key, (usize, PersonKind)>>,
    /// People here through other instances: which ones.
    elsewhere: Mutex<HashMap<Key, (HashSet<String>, PersonKind)>>,
    departures: mpsc::UnboundedSender<Departure>,
    here_gauge: Gauge,
}

impl Attendance {
    /// `here_gauge` follows the number of avatars here, across spaces.
    pub fn new(here_gauge: Gauge) -> (Arc<Self>, mpsc::UnboundedReceiver<Departure>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let attendance = Attendance { open: Mutex::default(), elsewhere: Mutex::default(), departures: tx, here_gauge };
        (Arc::new(attendance), rx)
    }

    /// Counts one more open page; the flag says whether the person just arrived.
    pub fn enter(self: &Arc<Self>, space_id: SpaceId, person_id: PersonId, kind: PersonKind) -> (Presence, bool) {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let (n, _) = open.entry((space_id, person_id)).or_insert((0, kind));
        *n += 1;
        let arrived = *n == 1;
        if arrived {
            self.here_gauge.inc();
        }
        (Presence { attendance: Arc::clone(self), space_id, person_id, kind }, arrived)
    }

    /// Whether the person has a page of the space open on any instance.
    pub fn is_here(&self, space_id: SpaceId, person_id: PersonId) -> bool {
        self.is_here_locally(space_id, person_id) || self.lock_elsewhere().contains_key(&(space_id, person_id))
    }

    /// Whether the person has a page of the space open on this instance.
    pub fn is_here_locally(&self, space_id: SpaceId, person_id: PersonId) -> bool {
        self.open.lock().unwrap_or_else(|p| p.into_inner()).contains_key(&(space_id, person_id))
    }

    /// Everyone here through this instance (for another instance's roll call).
    pub fn here_locally(&self) -> Vec<(SpaceId, PersonId, PersonKind)> {
        let open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        open.iter().map(|((s, p), (_, kind))| (*s, *p, *kind)).collect()
    }

    /// Notes that the person is (or is no longer) here through `instance`.
    pub fn note(&self, space_id: SpaceId, person_id: PersonId, kind: PersonKind, instance: &str, here: bool) {
        let mut elsewhere = self.lock_elsewhere();
        let key = (space_id, person_id);
        if here {
            elsewhere.entry(key).or_insert_with(|| (HashSet::new(), kind)).0.insert(instance.to_owned());
        } else if let Some((instances, _)) = elsewhere.get_mut(&key) {
            instances.remove(instance);
            if instances.is_empty() {
                elsewhere.remove(&key);
            }
        }
    }

    /// Forgets everyone here through `instance` (it died); returns those who are here no more.
    pub fn forget(&self, instance: &str) -> Vec<Departure> {
        let mut elsewhere = self.lock_elsewhere();
        let mut gone = Vec::new();
        elsewhere.retain(|(space_id, person_id), (instances, kind)| {
            instances.remove(instance);
            if instances.is_empty() {
                gone.push(Departure { space_id: *space_id, person_id: *person_id, kind: *kind });
            }
            !instances.is_empty()
        });
        drop(elsewhere);
        gone.retain(|d| !self.is_here_locally(d.space_id, d.person_id));
        gone
    }

    /// Announces a departure as if the person's last page here had closed.
    pub fn depart(&self, departure: Departure) {
        let _ = self.departures.send(departure);
    }

    /// Forgets every other instance's notes (messages were lost: a roll call follows).
    pub fn forget_all_elsewhere(&self) {
        self.lock_elsewhere().clear();
    }

    fn lock_elsewhere(&self) -> std::sync::MutexGuard<'_, HashMap<Key, (HashSet<String>, PersonKind)>> {
        self.elsewhere.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn leave(&self, space_id: SpaceId, person_id: PersonId, kind: PersonKind) {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let key = (space_id, person_id);
        let Some((n, _)) = open.get_mut(&key) else { return };
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

    #[test]
    fn here_through_other_instances_until_they_say_otherwise_or_die() {
        let (a, _departures) = Attendance::new(Gauge::default());
        let (s, p, q) = (SpaceId::new(), PersonId::new(), PersonId::new());
        a.note(s, p, PersonKind::Member, "i1", true);
        a.note(s, p, PersonKind::Member, "i2", true);
        a.note(s, q, PersonKind::Guest, "i2", true);
        assert!(a.is_here(s, p) && !a.is_here_locally(s, p));
        a.note(s, p, PersonKind::Member, "i1", false);
        assert!(a.is_here(s, p), "still open on i2");
        let (_page, _) = a.enter(s, q, PersonKind::Guest);
        assert_eq!(a.here_locally(), [(s, q, PersonKind::Guest)]);
        // i2 dies: p has left; q is still here (a page here).
        assert_eq!(a.forget("i2"), [Departure { space_id: s, person_id: p, kind: PersonKind::Member }]);
        assert!(!a.is_here(s, p) && a.is_here(s, q));
        a.note(s, p, PersonKind::Member, "i3", true);
        a.forget_all_elsewhere();
        assert!(!a.is_here(s, p));
    }
}
