//! The members' calendars as last read ([`Day`]), in this instance's memory only — never in the
//! database — and when each must be read from Google again: after a push said it changed, when
//! the safety interval (`google_poll_seconds`) has passed, or when the 24-hour window runs out.
//! Between those, a read is answered from memory at no cost, which is what lets the avatar flip
//! exactly at each boundary with no call to Google. After a restart each calendar is read once.

use std::{collections::HashMap, sync::Mutex};

use kehai_core::Millis;
use kehai_store::ConnectionId;

use super::status::Day;

/// How far ahead a read looks.
pub const WINDOW_MS: Millis = 24 * 3600 * 1000;
/// A calendar is read again this long before its window runs out.
pub const RENEW_WINDOW_MS: Millis = 3600 * 1000;

#[derive(Debug)]
struct Kept {
    day: Day,
    /// A push said the calendar changed since.
    stale: bool,
}

/// The calendars as last read, by connection.
#[derive(Debug, Default)]
pub struct Days(Mutex<HashMap<ConnectionId, Kept>>);

impl Days {
    fn kept(&self) -> std::sync::MutexGuard<'_, HashMap<ConnectionId, Kept>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The connection's calendar, if it may be used at `now` without reading Google.
    pub fn usable(&self, connection: ConnectionId, now: Millis, poll_ms: Millis) -> Option<Day> {
        let kept = self.kept();
        let k = kept.get(&connection)?;
        (!k.stale && now < k.day.read_at + poll_ms && now < k.day.until - RENEW_WINDOW_MS).then(|| k.day.clone())
    }

    pub fn keep(&self, connection: ConnectionId, day: Day) {
        self.kept().insert(connection, Kept { day, stale: false });
    }

    /// The calendar as last read, fresh or not.
    pub fn last(&self, connection: ConnectionId) -> Option<Day> {
        self.kept().get(&connection).map(|k| k.day.clone())
    }

    /// Whether Google shared the event types at the connection's last read.
    pub fn event_types(&self, connection: ConnectionId) -> Option<bool> {
        self.kept().get(&connection).map(|k| k.day.event_types)
    }

    /// A push said the calendar changed: the next read goes to Google.
    pub fn changed(&self, connection: ConnectionId) {
        if let Some(k) = self.kept().get_mut(&connection) {
            k.stale = true;
        }
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
        days.keep(c, day.clone());
        assert_eq!(days.usable(c, 30_000, 60_000), Some(day.clone()));
        assert_eq!(days.usable(c, 61_000, 60_000), None, "the safety interval passed");
        let long = WINDOW_MS;
        assert!(days.usable(c, 1_000 + WINDOW_MS - RENEW_WINDOW_MS - 1, long).is_some());
        assert_eq!(days.usable(c, 1_000 + WINDOW_MS - RENEW_WINDOW_MS, long), None, "the window runs out");
        days.changed(c);
        assert_eq!(days.usable(c, 30_000, 60_000), None, "a push came");
        days.keep(c, day.clone());
        assert!(days.usable(c, 30_000, 60_000).is_some(), "read again");
        assert_eq!(Days::due(&day, 60_000), 61_000);
        assert_eq!(Days::due(&day, long), 1_000 + WINDOW_MS - RENEW_WINDOW_MS);
    }
}
