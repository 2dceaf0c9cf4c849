//! Graph's presence limit: 1,500 presence requests per app and tenant in 30 seconds, beyond which
//! it answers 429 (<https://learn.microsoft.com/graph/throttling-limits>). kehai keeps under it
//! on its own side, a tenant at a time, so that a burst (a reconciliation, a storm of basic
//! notifications) waits instead of being throttled. When Graph throttles a tenant anyway, its
//! `Retry-After` holds every presence read of that tenant, not only the one that was answered 429.

use std::{
    collections::HashMap,
    num::NonZeroU32,
    sync::Mutex,
    time::{Duration, Instant},
};

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

/// Graph's limit per app and tenant in [`WINDOW`].
pub const PRESENCE_REQUESTS: u32 = 1500;
const WINDOW: Duration = Duration::from_secs(30);
/// The longest a tenant's presence reads are held for one 429.
const MAX_HOLD: Duration = Duration::from_secs(600);

/// Presence requests per tenant, held under `per_window` in any 30 seconds: a burst of a third of
/// it, then the other two thirds spread evenly over the window.
#[derive(Debug)]
pub struct PresenceLimit {
    limiter: DefaultKeyedRateLimiter<String>,
    /// Tenants Graph asked to wait, until when.
    throttled: Mutex<HashMap<String, Instant>>,
}

impl PresenceLimit {
    pub fn new(per_window: u32) -> Self {
        let per_window = per_window.max(3);
        let burst = NonZeroU32::new(per_window / 3).unwrap_or(NonZeroU32::MIN);
        // One less than the rest: the window's two ends may both admit one.
        let steady = (per_window - burst.get() - 1).max(1);
        let quota = Quota::with_period(WINDOW / steady).unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN));
        PresenceLimit { limiter: RateLimiter::keyed(quota.allow_burst(burst)), throttled: Mutex::default() }
    }

    /// Waits until `tenant` may make one more presence request — at most `max_wait` for a
    /// `Retry-After` Graph gave; a longer one is returned (the caller gives up for now).
    pub async fn until_ready(&self, tenant: &str, max_wait: Duration) -> Result<(), Duration> {
        let held = {
            let mut throttled = self.throttled.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let now = Instant::now();
            throttled.retain(|_, until| *until > now);
            throttled.get(tenant).map(|until| *until - now)
        };
        match held {
            Some(wait) if wait > max_wait => return Err(wait),
            Some(wait) => tokio::time::sleep(wait).await,
            None => {}
        }
        let key = tenant.to_owned();
        self.limiter.until_key_ready(&key).await;
        if self.limiter.len() > 1024 {
            self.limiter.retain_recent();
        }
        Ok(())
    }

    /// Graph answered 429 for `tenant`, asking to wait `retry_after` (held for ten minutes at
    /// most, whatever Graph asks).
    pub fn throttled(&self, tenant: &str, retry_after: Duration) {
        let until = Instant::now() + retry_after.min(MAX_HOLD);
        let mut throttled = self.throttled.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let entry = throttled.entry(tenant.to_owned()).or_insert(until);
        *entry = (*entry).max(until);
    }
}

impl Default for PresenceLimit {
    fn default() -> Self {
        PresenceLimit::new(PRESENCE_REQUESTS)
    }
}
