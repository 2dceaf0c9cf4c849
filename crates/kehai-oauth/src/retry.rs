//! How calls to a provider are retried when it throttles (429), fails for a moment (500,
//! 502–504) or the answer is lost: after `Retry-After` when the provider gives one, else after an
//! exponential backoff with jitter, a few times. A longer `Retry-After` than kehai waits in place
//! ends the call (the caller tries again later: the next sweep, reconciliation or notification).
//! Which answers are worth retrying is the caller's to say beyond [`transient`] (Google's 403
//! `rateLimitExceeded` is one).

use std::time::Duration;

/// Retries after the first attempt.
const RETRIES: u32 = 3;
/// The first backoff without `Retry-After` (then 2×, 4×, plus up to half again as jitter).
const BACKOFF: Duration = Duration::from_millis(500);
/// The longest `Retry-After` honoured in place.
pub const MAX_WAIT: Duration = Duration::from_secs(30);

/// Whether an HTTP status is worth another attempt.
pub fn transient(status: u16) -> bool {
    matches!(status, 429 | 500 | 502 | 503 | 504)
}

/// How long to wait before the attempt after `attempt` (0 for the first), given the provider's
/// `Retry-After`; `None`: give up.
pub fn wait(attempt: u32, retry_after: Option<Duration>) -> Option<Duration> {
    if attempt >= RETRIES {
        return None;
    }
    match retry_after {
        Some(asked) if asked > MAX_WAIT => None,
        Some(asked) => Some(asked),
        None => {
            let backoff = BACKOFF * 2u32.pow(attempt);
            let half = u64::try_from(backoff.as_millis() / 2).unwrap_or(0);
            Some(backoff + Duration::from_millis(rand::random_range(0..=half)))
        }
    }
}

/// `Retry-After` in seconds; any other form is ignored (the backoff applies).
pub fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    headers
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<f64>().ok())
        .and_then(|s| Duration::try_from_secs_f64(s).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_is_honoured_backoff_grows_and_the_retries_end() {
        assert_eq!(wait(0, Some(Duration::from_secs(2))), Some(Duration::from_secs(2)));
        assert_eq!(wait(0, Some(Duration::from_secs(31))), None, "too long to wait in place");
        for attempt in 0..RETRIES {
            let w = wait(attempt, None).unwrap();
            let base = BACKOFF * 2u32.pow(attempt);
            assert!(w >= base && w <= base + base / 2, "{w:?} after attempt {attempt}");
        }
        assert_eq!(wait(RETRIES, None), None);
        assert_eq!(wait(RETRIES, Some(Duration::from_secs(1))), None);
    }

    #[test]
    fn retry_after_is_read_in_seconds_and_nonsense_is_ignored() {
        let header = |v: &str| {
            let mut h = reqwest::header::HeaderMap::new();
            h.insert(reqwest::header::RETRY_AFTER, v.parse().unwrap_or_else(|_| panic!("{v}")));
            retry_after(&h)
        };
        assert_eq!(header("120"), Some(Duration::from_secs(120)));
        assert_eq!(header(" 1.5 "), Some(Duration::from_millis(1500)));
        for nonsense in ["-1", "NaN", "inf", "1e30", "Wed, 21 Oct 2015 07:28:00 GMT"] {
            assert_eq!(header(nonsense), None, "{nonsense}");
        }
    }
}
