//! Login attempts are limited per client network and failed passwords per email address, so that
//! neither one machine nor a botnet against one account can guess passwords quickly.
//!
//! A client is its IPv4 address, or its IPv6 /64 (rotating addresses within one's allocation is
//! free). Its budget is checked first, and every attempt counts. An email's budget counts only
//! failed passwords, keyed by the parsed, normalised address (so an attacker's junk keeps
//! nothing), and is forgotten at a successful login. Anyone can fail a victim's password on
//! purpose; so that this cannot keep the victim out, a browser that logged into that account
//! before (its signed device cookie, [`crate::auth::device`]) is not held by the email's lock —
//! only by its own client budget, and by its own failures (counted like an email's). The
//! trade-off: an attacker holding the lock keeps out only the victim's *new* browsers, for as
//! long as they keep failing from enough networks. The counts live in each instance's memory:
//! with several instances behind a balancer, each counts what it sees.

use std::{
    collections::HashMap,
    net::IpAddr,
    num::NonZeroU32,
    sync::{Mutex, PoisonError},
};

use axum::{
    extract::{ConnectInfo, FromRequestParts},
    http::request::Parts,
};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use kehai_core::{Email, SpaceId};

use super::device::Device;

use crate::state::AppState;

/// The address of the client a request comes from: the TCP peer, or — when kehai is configured
/// to trust its reverse proxy — the last address that proxy appended to `X-Forwarded-For`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIp(pub IpAddr);

impl ClientIp {
    /// The network the client is on, as limits and bindings key it: an IPv4 address itself, an
    /// IPv6 address's /64 (one subscriber's usual allocation: rotating addresses within it is
    /// free, so it must count as one client).
    pub fn network(self) -> IpAddr {
        match self.0 {
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => IpAddr::V6(std::net::Ipv6Addr::from(u128::from(v6) & !((1u128 << 64) - 1))),
            },
            v4 => v4,
        }
    }
}

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

/// Emails (and device cookies) whose failures are kept at most: one entry per address that
/// failed recently, each at most 254 bytes. When they are all in their minute, a new one is not
/// counted (the locks held are never dropped to make room).
const EMAILS_KEPT: usize = 100_000;
/// The window failures are counted in.
const WINDOW_MS: i64 = 60_000;

/// Login attempts by client network, failed passwords by email (see the module's documentation).
pub struct LoginLimiter {
    by_client: DefaultKeyedRateLimiter<IpAddr>,
    /// Guest joins per space, from every client together.
    guest_joins: DefaultKeyedRateLimiter<SpaceId>,
    failures: Mutex<HashMap<String, Failures>>,
    per_minute: u32,
}

/// Failed passwords for one email in the window that started at `since`.
#[derive(Debug, Clone, Copy)]
struct Failures {
    since: i64,
    count: u32,
}

impl std::fmt::Debug for LoginLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LoginLimiter { .. }")
    }
}

impl LoginLimiter {
    pub fn new(per_minute: u32, guest_joins_per_minute: u32) -> Self {
        let quota = |n: u32| Quota::per_minute(NonZeroU32::new(n.max(1)).unwrap_or(NonZeroU32::MIN));
        LoginLimiter {
            by_client: RateLimiter::keyed(quota(per_minute)),
            guest_joins: RateLimiter::keyed(quota(guest_joins_per_minute)),
            failures: Mutex::default(),
            per_minute: per_minute.max(1),
        }
    }

    /// Counts a guest join of `space`; false when the space has taken its minute's worth.
    pub fn allow_guest_join(&self, space: SpaceId) -> bool {
        self.guest_joins.check_key(&space).is_ok()
    }

    /// Counts one attempt (a login or a guest join) from the client's network; false when its
    /// budget is spent. Checked first: a client over its limit costs nothing more.
    pub fn allow_client(&self, client: ClientIp) -> bool {
        self.by_client.check_key(&client.network()).is_ok()
    }

    /// Whether `email` has had its minute's worth of failed passwords (at `now`, ms).
    pub fn email_locked(&self, email: &Email, now: i64) -> bool {
        self.locked(&email.normalized(), now)
    }

    /// Counts a failed password for `email`.
    pub fn failed(&self, email: &Email, now: i64) {
        self.count_failure(email.normalized(), now);
    }

    /// Whether a device cookie has failed its minute's worth itself: then it vouches for nothing.
    pub fn device_locked(&self, device: &Device, now: i64) -> bool {
        self.locked(&device_key(device), now)
    }

    /// Counts a failed password from a browser with a device cookie.
    pub fn device_failed(&self, device: &Device, now: i64) {
        self.count_failure(device_key(device), now);
    }

    fn locked(&self, key: &str, now: i64) -> bool {
        let failures = self.failures.lock().unwrap_or_else(PoisonError::into_inner);
        failures.get(key).is_some_and(|f| now - f.since < WINDOW_MS && f.count >= self.per_minute)
    }

    fn count_failure(&self, key: String, now: i64) {
        let mut failures = self.failures.lock().unwrap_or_else(PoisonError::into_inner);
        if failures.len() >= EMAILS_KEPT && !failures.contains_key(&key) {
            failures.retain(|_, f| now - f.since < WINDOW_MS);
            if failures.len() >= EMAILS_KEPT {
                return;
            }
        }
        let entry = failures.entry(key).or_insert(Failures { since: now, count: 0 });
        if now - entry.since >= WINDOW_MS {
            *entry = Failures { since: now, count: 0 };
        }
        entry.count += 1;
    }

    /// A successful login: the email's failures are forgotten.
    pub fn succeeded(&self, email: &Email) {
        self.failures.lock().unwrap_or_else(PoisonError::into_inner).remove(&email.normalized());
    }

    /// Forgets idle keys (called periodically).
    pub fn shrink(&self, now: i64) {
        self.by_client.retain_recent();
        self.guest_joins.retain_recent();
        self.failures.lock().unwrap_or_else(PoisonError::into_inner).retain(|_, f| now - f.since < WINDOW_MS);
    }
}

/// Device cookies' failures are kept beside emails' (an email always has an `@`, a signature
/// never does).
fn device_key(device: &Device) -> String {
    format!("device:{}", device.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> ClientIp {
        ClientIp(s.parse().unwrap())
    }

    #[test]
    fn clients_are_limited_by_network_an_ipv6_slash_64_being_one() {
        let l = LoginLimiter::new(3, 3);
        for a in ["2001:db8:1:2::1", "2001:db8:1:2::2", "2001:db8:1:2:ffff::9"] {
            assert!(l.allow_client(ip(a)), "{a}");
        }
        assert!(!l.allow_client(ip("2001:db8:1:2:abcd::1")), "the same /64 rotated");
        assert!(l.allow_client(ip("2001:db8:1:3::1")), "the next /64 is another client");
        for _ in 0..3 {
            assert!(l.allow_client(ip("192.0.2.1")));
        }
        assert!(!l.allow_client(ip("::ffff:192.0.2.1")), "IPv4 mapped into IPv6 is the same client");
        assert!(l.allow_client(ip("192.0.2.2")), "each IPv4 address its own");
        assert_eq!(ip("2001:db8:1:2:3:4:5:6").network(), ip("2001:db8:1:2::").0);
    }

    #[test]
    fn failed_passwords_lock_an_email_for_the_rest_of_the_minute_by_its_normalized_form() {
        let l = LoginLimiter::new(3, 3);
        let alice = Email::parse("alice@example.com").unwrap();
        let shouting = Email::parse("  ALICE@Example.COM ").unwrap();
        l.failed(&alice, 0);
        l.failed(&shouting, 1);
        assert!(!l.email_locked(&alice, 2));
        l.failed(&alice, 3);
        assert!(l.email_locked(&alice, 4) && l.email_locked(&shouting, 4), "one key for every spelling");
        assert!(!l.email_locked(&Email::parse("bob@example.com").unwrap(), 4));
        assert!(!l.email_locked(&alice, WINDOW_MS), "the minute is over");
        l.failed(&alice, 10);
        l.succeeded(&alice);
        assert!(!l.email_locked(&alice, 11));
        l.failed(&alice, 20);
        l.shrink(WINDOW_MS + 20);
        assert!(l.failures.lock().unwrap().is_empty(), "idle windows are forgotten");
    }
}
