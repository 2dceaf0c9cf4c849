//! Login attempts are limited per client address and per email address, so that neither one
//! machine nor a botnet against one account can guess passwords quickly.

use std::{net::IpAddr, num::NonZeroU32};

use axum::{
    extract::{ConnectInfo, FromRequestParts},
    http::request::Parts,
};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::state::AppState;

/// The address of the client a request comes from: the TCP peer, or — when kehai is configured
/// to trust its reverse proxy — the last address that proxy appended to `X-Forwarded-For`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIp(pub IpAddr);

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<std::net::SocketAddr>>()
            .map_or(IpAddr::from([0, 0, 0, 0]), |c| c.0.ip());
        if !state.config.trust_forwarded_for {
            return Ok(ClientIp(peer));
        }
        // Our proxy appends the address it saw: the rightmost entry. Earlier ones are the
        // client's own words.
        let forwarded = parts
            .headers
            .get_all("x-forwarded-for")
            .iter()
            .next_back()
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.rsplit(',').next())
            .and_then(|a| a.trim().parse::<IpAddr>().ok());
        Ok(ClientIp(forwarded.unwrap_or(peer)))
    }
}

pub struct LoginLimiter {
    by_client: DefaultKeyedRateLimiter<IpAddr>,
    by_email: DefaultKeyedRateLimiter<String>,
}

impl std::fmt::Debug for LoginLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LoginLimiter { .. }")
    }
}

impl LoginLimiter {
    pub fn new(per_minute: u32) -> Self {
        let quota = Quota::per_minute(NonZeroU32::new(per_minute.max(1)).unwrap_or(NonZeroU32::MIN));
        LoginLimiter { by_client: RateLimiter::keyed(quota), by_email: RateLimiter::keyed(quota) }
    }

    /// Counts one attempt; false when either limit is exhausted.
    pub fn allow(&self, client: IpAddr, email_key: &str) -> bool {
        // Check both so that each counts the attempt.
        let client_ok = self.by_client.check_key(&client).is_ok();
        let email_ok = self.by_email.check_key(&email_key.to_owned()).is_ok();
        client_ok && email_ok
    }

    /// Counts one attempt of a client that names no account (joining as a guest).
    pub fn allow_client(&self, client: IpAddr) -> bool {
        self.by_client.check_key(&client).is_ok()
    }

    /// Forgets idle keys (called periodically).
    pub fn shrink(&self) {
        self.by_client.retain_recent();
        self.by_email.retain_recent();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_per_client_and_per_email() {
        let l = LoginLimiter::new(3);
        let a: IpAddr = [10, 0, 0, 1].into();
        let b: IpAddr = [10, 0, 0, 2].into();
        for _ in 0..3 {
            assert!(l.allow(a, "x@example.com"));
        }
        assert!(!l.allow(a, "y@example.com"), "client a is out of attempts");
        assert!(!l.allow(b, "x@example.com"), "x@example.com is out of attempts");
        assert!(l.allow(b, "z@example.com"));
    }
}
