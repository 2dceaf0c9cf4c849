//! Graph's presence limit: 1,500 presence requests per app and tenant in 30 seconds, beyond which
//! it answers 429 (protocol doc §6). kehai keeps under it on its own side, a tenant at a time, so
//! that a burst (a reconciliation, a storm of basic notifications) waits instead of being
//! throttled.

use std::{num::NonZeroU32, time::Duration};

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

/// Graph's limit per app and tenant in [`WINDOW`].
pub const PRESENCE_REQUESTS: u32 = 1500;
const WINDOW: Duration = Duration::from_secs(30);

/// Presence requests per tenant, held under `per_window` in any 30 seconds: a burst of a third of
/// it, then the other two thirds spread evenly over the window.
#[derive(Debug)]
pub struct PresenceLimit(DefaultKeyedRateLimiter<String>);

impl PresenceLimit {
    pub fn new(per_window: u32) -> Self {
        let per_window = per_window.max(3);
        let burst = NonZeroU32::new(per_window / 3).unwrap_or(NonZeroU32::MIN);
        // One less than the rest: the window's two ends may both admit one.
        let steady = (per_window - burst.get() - 1).max(1);
        let quota = Quota::with_period(WINDOW / steady).unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN));
        PresenceLimit(RateLimiter::keyed(quota.allow_burst(burst)))
    }

    /// Waits until `tenant` may make one more presence request.
    pub async fn until_ready(&self, tenant: &str) {
        let key = tenant.to_owned();
        self.0.until_key_ready(&key).await;
        if self.0.len() > 1024 {
            self.0.retain_recent();
        }
    }
}

impl Default for PresenceLimit {
    fn default() -> Self {
        PresenceLimit::new(PRESENCE_REQUESTS)
    }
}
