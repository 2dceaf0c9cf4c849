//! What can go wrong talking to Google, in the terms callers act on. Never holds a token.

use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GoogleError {
    /// The token or revocation endpoint refused: its `error` (`invalid_grant`, …) and
    /// description.
    #[error("Google sign-in: {error}: {description}")]
    OAuth { error: String, description: String },
    /// The Calendar API answered with an error: the HTTP status, the first `errors[].reason`
    /// (`rateLimitExceeded`, `insufficientPermissions`, …) or else the `status`, and the message.
    #[error("Google Calendar {status} {reason}: {message}")]
    Api { status: u16, reason: String, message: String, retry_after: Option<Duration> },
    /// An id token that must not be accepted.
    #[error("id token refused: {0}")]
    IdToken(String),
    /// Google could not be reached, or answered something unreadable.
    #[error("cannot talk to Google: {0}")]
    Transport(String),
}

impl GoogleError {
    /// The sign-in is dead for good (revoked, expired, a "testing" client's seven days over, an
    /// administrator's policy): only a new consent helps.
    pub fn is_invalid_grant(&self) -> bool {
        matches!(self, GoogleError::OAuth { error, .. } if error == "invalid_grant")
    }

    /// Google throttled the call (429, or 403 with a rate-limit reason).
    pub fn is_rate_limited(&self) -> bool {
        match self {
            GoogleError::Api { status: 429, .. } => true,
            GoogleError::Api { status: 403, reason, .. } => is_rate_limit_reason(reason),
            _ => false,
        }
    }

    /// How long Google asked to wait.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            GoogleError::Api { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

/// The reasons of a 403 that mean "slow down", not "forbidden" (google-protocol §3.8).
pub(crate) fn is_rate_limit_reason(reason: &str) -> bool {
    matches!(reason, "rateLimitExceeded" | "userRateLimitExceeded")
}

impl From<kehai_oauth::TransportError> for GoogleError {
    fn from(e: kehai_oauth::TransportError) -> Self {
        GoogleError::Transport(e.message().to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(status: u16, reason: &str) -> GoogleError {
        GoogleError::Api { status, reason: reason.into(), message: String::new(), retry_after: None }
    }

    #[test]
    fn rate_limits_are_told_from_refusals() {
        assert!(api(429, "rateLimitExceeded").is_rate_limited());
        assert!(api(403, "userRateLimitExceeded").is_rate_limited());
        assert!(api(403, "rateLimitExceeded").is_rate_limited());
        assert!(!api(403, "insufficientPermissions").is_rate_limited());
        assert!(!api(403, "quotaExceeded").is_rate_limited(), "a daily quota does not lift in seconds");
        let dead = GoogleError::OAuth { error: "invalid_grant".into(), description: "Token has been expired".into() };
        assert!(dead.is_invalid_grant() && !api(401, "authError").is_invalid_grant());
    }
}
