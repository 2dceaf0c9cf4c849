//! The members' calendars as last read ([`Day`]), in this instance's memory only — never in the
//! database — and when each must be read from Google again: after a push said it changed, when
//! the safety interval has passed, or when the 24-hour window runs out. Between those, a read is
//! answered from memory at no cost, which is what lets the avatar flip exactly at each boundary
//! with no call to Google. After a restart each calendar is read once.
//!
//! A push that arrives while the calendar is being read must not be lost to that read: each
//! connection counts the changes announced, and a day read is kept with the count it began at,
//! so a change announced meanwhile leaves it out of date.

use std::{collections::HashMap, sync::Mutex};

use kehai_core::Millis;
use kehai_store::ConnectionId;

use super::status::Day;

/// How far ahead a read looks.
pub const WINDOW_MS: Millis = 24 * 3600 * 1000;
/// A calendar is read again this long before its window runs out.
pub const RENEW_WINDOW_MS: Millis = 3600 * 1000;

#[derive(Default)]
struct Kept {
    day: Option<Day>,
    /// Changes announced (pushes) so far.
    changes: u64,
    /// `changes` when the kept day's read began.
    read_at_change: u64,
}

/// The calendars as last read, by connection. `Debug` shows how many, never what they say.
#[derive(Default)]
pub struct Days(Mutex<HashMap<ConnectionId, Kept>>);

impl std::fmt::Debug for Days {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Days").field("kept", &self.kept().len()).finish()
    }
}

impl Days {
    fn kept(&self) -> std::sync::MutexGuard<'_, HashMap<ConnectionId, Kept>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The connection's calendar, if it may be used at `now` without reading Google: no change
    /// announced since it was read, younger than `poll_ms`, its window not about to run out.
    pub fn usable(&self, connection: ConnectionId, now: Millis, poll_ms: Millis) -> Option<Day> {
        let kept = self.kept();
        let k = kept.get(&connection)?;
        let day = k.day.as_ref()?;
        (k.changes == k.read_at_change && now < day.read_at + poll_ms && now < day.until - RENEW_WINDOW_MS)
            .then(|| day.clone())
    }

    /// The calendar as last read, if no change was announced since (a safety read may then
    /// trust what it says about kinds of events).
    pub fn unchanged(&self, connection: ConnectionId) -> Option<Day> {
        let kept = self.kept();
        let k = kept.get(&connection)?;
        k.day.clone().filter(|_| k.changes == k.read_at_change)
    }

    /// A read of the connection's calendar begins: what to give [`Days::keep`] with its result.
    pub fn ticket(&self, connection: ConnectionId) -> u64 {
        self.kept().get(&connection).map_or(0, |k| k.changes)
    }

    /// Keeps a calendar read that began with `ticket` (unless a newer read was kept already).
    pub fn keep(&self, connection: ConnectionId, day: Day, ticket: u64) {
        let mut kept = self.kept();
        let k = kept.entry(connection).or_default();
        if k.day.as_ref().is_some_and(|d| d.read_at > day.read_at) {
            return;
        }
        k.day = Some(day);
        k.read_at_change = ticket;
    }

    /// Whether Google shared the event types at the connection's last read.
    pub fn event_types(&self, connection: ConnectionId) -> Option<bool> {
        self.kept().get(&connection).and_then(|k| k.day.as_ref()).map(|d| d.event_types)
    }

    /// A push said the calendar changed (or it may have unseen): the next read goes to Google.
    pub fn changed(&self, connection: ConnectionId) {
        self.kept().entry(connection).or_default().changes += 1;
    }

    /// When the calendar kept must be read again at the latest (the safety interval, or the
    /// end of its window).
    pub fn due(day: &Day, poll_ms: Millis) -> Millis {
        (day.read_at + poll_ms).min(day.until - RENEW_WINDOW_MS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kept_until_a_push_the_safety_interval_or_the_window_says_otherwise() {
        let days = Days::default();
        let c = ConnectionId::new();
        let day = Day { read_at: 1_000, until: 1_000 + WINDOW_MS, ..Day::default() };
        assert_eq!(days.usable(c, 1_000, 60_000), None, "never read");
        days.keep(c, day.clone(), days.ticket(c));
        assert_eq!(days.usable(c, 30_000, 60_000), Some(day.clone()));
        assert_eq!(days.usable(c, 61_000, 60_000), None, "the safety interval passed");
        let long = WINDOW_MS;
        assert!(days.usable(c, 1_000 + WINDOW_MS - RENEW_WINDOW_MS - 1, long).is_some());
        assert_eq!(days.usable(c, 1_000 + WINDOW_MS - RENEW_WINDOW_MS, long), None, "the window runs out");
        days.changed(c);
        assert_eq!(days.usable(c, 30_000, 60_000), None, "a push came");
        assert_eq!(days.unchanged(c), None);
        days.keep(c, day.clone(), days.ticket(c));
        assert!(days.usable(c, 30_000, 60_000).is_some(), "read again");
        assert_eq!(Days::due(&day, 60_000), 61_000);
        assert_eq!(Days::due(&day, long), 1_000 + WINDOW_MS - RENEW_WINDOW_MS);
        assert!(!format!("{days:?}").contains("busy"), "Debug says nothing of the calendars");
    }

    #[test]
    fn a_push_during_a_read_leaves_that_read_out_of_date() {
        let days = Days::default();
        let c = ConnectionId::new();
        let ticket = days.ticket(c);
        // The read is under way when the push comes.
        days.changed(c);
        days.keep(c, Day { read_at: 1_000, until: 1_000 + WINDOW_MS, ..Day::default() }, ticket);
        assert_eq!(days.usable(c, 2_000, 60_000), None, "the next read goes to Google");
        let older = Day { read_at: 500, until: 500 + WINDOW_MS, ..Day::default() };
        days.keep(c, older, days.ticket(c));
        assert_eq!(days.usable(c, 2_000, 60_000), None, "an older read finishing last is not kept");
    }
}
