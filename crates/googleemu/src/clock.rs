//! The emulator's clock: real time plus an offset that the control API moves forward
//! ([`Clock::advance`]). Everything that expires at the emulated Google — authorization codes,
//! access and refresh tokens, the 7-day lapse of a testing client, watch channels — reads this
//! clock, so a test can make a week pass in a second.
//!
//! What a *client* checks against its own clock is stamped in real time instead: id tokens'
//! `iat`/`exp` (a verifier would refuse a token "issued in the future") and the times of events
//! made through the control API ("a meeting starting in 5 minutes" is 5 real minutes away).

use std::sync::atomic::{AtomicI64, Ordering};

use time::OffsetDateTime;

#[derive(Debug, Default)]
pub struct Clock {
    /// Milliseconds added to real time.
    offset_ms: AtomicI64,
}

impl Clock {
    /// The emulator's now.
    pub fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc() + time::Duration::milliseconds(self.offset_ms.load(Ordering::SeqCst))
    }

    /// The emulator's now, in milliseconds since the Unix epoch.
    pub fn now_ms(&self) -> i64 {
        unix_ms(self.now())
    }

    /// Moves the clock forward (never back: what expired stays expired).
    pub fn advance(&self, by: std::time::Duration) {
        let ms = i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
        self.offset_ms.fetch_add(ms, Ordering::SeqCst);
    }

    /// How far ahead of real time the clock is.
    pub fn offset(&self) -> std::time::Duration {
        std::time::Duration::from_millis(u64::try_from(self.offset_ms.load(Ordering::SeqCst)).unwrap_or(0))
    }

    /// Back to real time.
    pub fn reset(&self) {
        self.offset_ms.store(0, Ordering::SeqCst);
    }
}

/// Real time, for what clients check with their own clocks.
pub fn real_now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

pub fn unix_ms(t: OffsetDateTime) -> i64 {
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

pub fn from_unix_ms(ms: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advancing_moves_now_forward_and_reset_brings_it_back() {
        let clock = Clock::default();
        let before = clock.now_ms();
        clock.advance(std::time::Duration::from_secs(7 * 86_400));
        let after = clock.now_ms();
        assert!(after - before >= 7 * 86_400_000, "{before} → {after}");
        assert!(after - before < 7 * 86_400_000 + 5_000);
        assert_eq!(clock.offset().as_secs(), 7 * 86_400);
        clock.reset();
        assert!(clock.now_ms() - before < 5_000);
    }
}
