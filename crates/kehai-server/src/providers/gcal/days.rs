//! The members' calendars as last read ([`Day`]), in this instance's memory only — never in the
//! database — and when each must be read from Google again: after a push said it changed, when
//! the safety interval has passed, or when the 24-hour window runs out. Between those, a read is
//! answered from memory at no cost, which is what lets the avatar flip exactly at each boundary
//! with no call to Google. After a restart each calendar is read once.
//!
//! A push that arrives while the calendar is being read must not be lost to that read: each
//! connection counts the changes announced, and a day read is kept with the count it began at,
//! so a change announced meanwhile leaves it out of date.
//!
//! With several instances, a push reaches one of them, and the calendar it reads shows there;
//! another instance may later wake the connection at a boundary with its own older copy. What is
//! shown is ordered by the read it comes from ([`order`]: its time, then when it was looked at),
//! and the connection records the order last shown, so a copy older than the read shown is not
//! used — it is read again — and a reading from an older read never replaces one from a newer
//! read, whichever instance made it (as far as the instances' clocks agree).

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
    /// announced since it was read, not older than the read shown (`shown`, see [`shown_read`]),
    /// younger than `poll_ms`, its window not about to run out.
    pub fn usable(&self, connection: ConnectionId, now: Millis, poll_ms: Millis, shown: Option<Millis>) -> Option<Day> {
        self.unchanged(connection, shown).filter(|day| now < day.read_at + poll_ms && now < day.until - RENEW_WINDOW_MS)
    }

    /// The calendar as last read, if no change was announced since and no newer read was shown
    /// (a safety read may then trust what it says about kinds of events).
    pub fn unchanged(&self, connection: ConnectionId, shown: Option<Millis>) -> Option<Day> {
        let kept = self.kept();
        let k = kept.get(&connection)?;
        let current = k.changes == k.read_at_change;
        k.day.clone().filter(|day| current && shown.is_none_or(|shown| day.read_at >= shown))
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

/// The ordering key of what `day` shows at `at`: the time of the read, then `at` (fixed-width
/// hex, so that byte order is time order).
pub fn order(day: &Day, at: Millis) -> String {
    format!("{:016x}{:016x}", day.read_at.max(0), at.max(0))
}

/// The time of the read the presence last shown came from, from its ordering key ([`order`]).
pub fn shown_read(last_order: Option<&str>) -> Option<Millis> {
    let read = last_order.filter(|o| o.len() == 32)?.get(..16)?;
    Millis::from_str_radix(read, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kept_until_a_push_the_safety_interval_or_the_window_says_otherwise() {
        let days = Days::default();
        let c = ConnectionId::new();
        let day = Day { read_at: 1_000, until: 1_000 + WINDOW_MS, ..Day::default() };
        assert_eq!(days.usable(c, 1_000, 60_000, None), None, "never read");
        days.keep(c, day.clone(), days.ticket(c));
        assert_eq!(days.usable(c, 30_000, 60_000, None), Some(day.clone()));
        assert_eq!(days.usable(c, 61_000, 60_000, None), None, "the safety interval passed");
        let long = WINDOW_MS;
        assert!(days.usable(c, 1_000 + WINDOW_MS - RENEW_WINDOW_MS - 1, long, None).is_some());
        assert_eq!(days.usable(c, 1_000 + WINDOW_MS - RENEW_WINDOW_MS, long, None), None, "the window runs out");
        days.changed(c);
        assert_eq!(days.usable(c, 30_000, 60_000, None), None, "a push came");
        assert_eq!(days.unchanged(c, None), None);
        days.keep(c, day.clone(), days.ticket(c));
        assert!(days.usable(c, 30_000, 60_000, None).is_some(), "read again");
        assert_eq!(Days::due(&day, 60_000), 61_000);
        assert_eq!(Days::due(&day, long), 1_000 + WINDOW_MS - RENEW_WINDOW_MS);
        assert!(!format!("{days:?}").contains("busy"), "Debug says nothing of the calendars");
    }

    #[test]
    fn a_copy_older_than_the_read_shown_is_not_used() {
        let days = Days::default();
        let c = ConnectionId::new();
        let day = Day { read_at: 1_000, until: 1_000 + WINDOW_MS, ..Day::default() };
        days.keep(c, day.clone(), days.ticket(c));
        // This instance showed it at a boundary; another one then read the calendar after a push.
        let here = order(&day, 5_000);
        assert_eq!(shown_read(Some(&here)), Some(1_000));
        assert!(days.usable(c, 6_000, 60_000, shown_read(Some(&here))).is_some(), "its own read");
        let elsewhere = order(&Day { read_at: 3_000, ..day.clone() }, 3_000);
        assert!(here < elsewhere, "a newer read orders after any look at an older one");
        assert_eq!(days.usable(c, 6_000, 60_000, shown_read(Some(&elsewhere))), None);
        assert_eq!(days.unchanged(c, shown_read(Some(&elsewhere))), None);
        assert!(order(&day, 5_000) < order(&day, 5_001), "later looks at one read order after");
        assert_eq!(shown_read(Some("1234")), None, "another provider's key");
        assert_eq!(shown_read(None), None);
    }

    #[test]
    fn a_push_during_a_read_leaves_that_read_out_of_date() {
        let days = Days::default();
        let c = ConnectionId::new();
        let ticket = days.ticket(c);
        // The read is under way when the push comes.
        days.changed(c);
        days.keep(c, Day { read_at: 1_000, until: 1_000 + WINDOW_MS, ..Day::default() }, ticket);
        assert_eq!(days.usable(c, 2_000, 60_000, None), None, "the next read goes to Google");
        let older = Day { read_at: 500, until: 500 + WINDOW_MS, ..Day::default() };
        days.keep(c, older, days.ticket(c));
        assert_eq!(days.usable(c, 2_000, 60_000, None), None, "an older read finishing last is not kept");
    }
}
