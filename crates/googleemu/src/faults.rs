//! Injected faults (control API `/_emu/api/faults`): the next N Calendar calls (optionally of
//! one method) answer a quota or server error, the next N token requests fail, and pushes are
//! dropped (the next N, or a share of them), duplicated, delayed, or delivered to a channel
//! after it was stopped — the misbehaviours Google documents ("Notifications are not 100%
//! reliable", quota errors, stopped channels that still deliver for a while).

use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::world::Inner;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Target {
    /// Calendar v3 requests (`/calendar/v3/…`).
    Calendar,
    /// The token endpoint.
    Token,
    /// Push notifications googleemu sends.
    Pushes,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Kind {
    /// Calendar: 403 `usageLimits`/`rateLimitExceeded`.
    RateLimitExceeded,
    /// Calendar: 403 `usageLimits`/`userRateLimitExceeded`.
    UserRateLimitExceeded,
    /// Calendar: 429 `usageLimits`/`rateLimitExceeded` (Google: "functionally similar" to the 403).
    TooManyRequests,
    /// Calendar: 500 `backendError`.
    BackendError,
    /// Calendar: 503; token endpoint: 503 `temporarily_unavailable`.
    ServiceUnavailable,
    /// Token endpoint: 500 `internal_failure` (google-auth retries both).
    ServerError,
    /// Pushes: not sent.
    Drop,
    /// Pushes: sent twice.
    Duplicate,
    /// Pushes: sent after `delayMs`.
    Delay,
    /// Pushes: a channel stopped before a change still gets its notification.
    LateAfterStop,
}

/// One fault, for the next `count` requests or pushes of its target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Fault {
    pub target: Target,
    pub kind: Kind,
    #[serde(default = "one")]
    pub count: u32,
    /// Calendar only: the method it hits (`calendar.freebusy.query`, `calendar.events.list`,
    /// `calendar.events.get`, `calendar.events.watch`, `calendar.channels.stop`); any when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation: Option<String>,
    /// Seconds for a `Retry-After` header (Calendar 429/403/503 and token 503).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<u64>,
    /// Milliseconds, for `delay` (default 5,000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay_ms: Option<u64>,
    /// 1–100: the fault hits each request or push with this probability and stays until the
    /// faults are cleared (`count` is then ignored). "Drop 10% of pushes."
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percent: Option<u8>,
}

fn one() -> u32 {
    1
}

impl Fault {
    pub fn new(target: Target, kind: Kind) -> Fault {
        Fault { target, kind, count: 1, operation: None, retry_after: None, delay_ms: None, percent: None }
    }

    pub fn times(mut self, count: u32) -> Fault {
        self.count = count;
        self
    }

    /// Why the fault cannot be injected, if it cannot.
    pub fn problem(&self) -> Option<&'static str> {
        let suits = match self.target {
            Target::Calendar => matches!(
                self.kind,
                Kind::RateLimitExceeded
                    | Kind::UserRateLimitExceeded
                    | Kind::TooManyRequests
                    | Kind::BackendError
                    | Kind::ServiceUnavailable
            ),
            Target::Token => matches!(self.kind, Kind::ServerError | Kind::ServiceUnavailable),
            Target::Pushes => matches!(self.kind, Kind::Drop | Kind::Duplicate | Kind::Delay | Kind::LateAfterStop),
        };
        if !suits {
            return Some(
                "calendar takes rateLimitExceeded, userRateLimitExceeded, tooManyRequests, backendError or serviceUnavailable; token takes serverError or serviceUnavailable; pushes take drop, duplicate, delay or lateAfterStop",
            );
        }
        if self.count == 0 && self.percent.is_none() {
            return Some("count must be at least 1");
        }
        if self.percent.is_some_and(|p| p == 0 || p > 100) {
            return Some("percent is 1 to 100");
        }
        if self.operation.is_some() && self.target != Target::Calendar {
            return Some("operation applies to calendar faults only");
        }
        None
    }
}

/// Takes one use of the first pending fault for `target` that matches (`operation`, for
/// Calendar; `kinds`, to pick among push faults).
pub fn take(world: &mut Inner, target: Target, operation: Option<&str>, kinds: &[Kind]) -> Option<Fault> {
    let i = world.faults.iter().position(|f| {
        f.target == target
            && (kinds.is_empty() || kinds.contains(&f.kind))
            && f.operation.as_deref().is_none_or(|op| Some(op) == operation)
    })?;
    let fault = world.faults[i].clone();
    if let Some(percent) = fault.percent {
        return (rand::rng().random_range(1..=100u8) <= percent).then_some(fault);
    }
    world.faults[i].count -= 1;
    if world.faults[i].count == 0 {
        world.faults.remove(i);
    }
    Some(fault)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_are_used_up_in_order_and_match_their_operation() {
        let mut world = Inner::default();
        let mut list_only = Fault::new(Target::Calendar, Kind::BackendError);
        list_only.operation = Some("calendar.events.list".into());
        world.faults.push(list_only);
        world.faults.push(Fault::new(Target::Calendar, Kind::TooManyRequests).times(2));
        let kind = |w: &mut Inner, op| take(w, Target::Calendar, Some(op), &[]).map(|f| f.kind);
        assert_eq!(kind(&mut world, "calendar.freebusy.query"), Some(Kind::TooManyRequests));
        assert_eq!(kind(&mut world, "calendar.events.list"), Some(Kind::BackendError));
        assert_eq!(kind(&mut world, "calendar.events.list"), Some(Kind::TooManyRequests));
        assert_eq!(kind(&mut world, "calendar.events.list"), None);
        assert!(take(&mut world, Target::Token, None, &[]).is_none());
    }

    #[test]
    fn a_percentage_fault_stays_until_cleared() {
        let mut world = Inner::default();
        let mut always = Fault::new(Target::Pushes, Kind::Drop);
        always.percent = Some(100);
        world.faults.push(always);
        for _ in 0..5 {
            assert!(take(&mut world, Target::Pushes, None, &[Kind::Drop]).is_some());
        }
        assert!(take(&mut world, Target::Pushes, None, &[Kind::Delay]).is_none());
    }

    #[test]
    fn unsuitable_faults_are_named() {
        assert!(Fault::new(Target::Token, Kind::Drop).problem().is_some());
        assert!(Fault::new(Target::Pushes, Kind::Drop).times(0).problem().is_some());
        assert!(Fault::new(Target::Calendar, Kind::ServiceUnavailable).problem().is_none());
    }
}
