//! What can go wrong talking to Microsoft, in the terms callers act on. Never holds a token.

use std::time::Duration;

#[derive(Debug, Clone, thiserror::Error)]
pub enum MicrosoftError {
    /// The identity platform refused: its `error`, the AADSTS code, and the description.
    #[error("Microsoft identity platform: {error} (AADSTS{}): {description}", code.map(|c| c.to_string()).unwrap_or_default())]
    Identity { error: String, code: Option<u32>, description: String },
    /// Graph answered with an error.
    #[error("Microsoft Graph {status} {code}: {message}")]
    Graph { status: u16, code: String, message: String, retry_after: Option<Duration> },
    /// An id token that must not be accepted.
    #[error("id token refused: {0}")]
    IdToken(String),
    /// Microsoft could not be reached, or answered something unreadable.
    #[error("cannot talk to Microsoft: {0}")]
    Transport(String),
}

impl MicrosoftError {
    /// The AADSTS code of an identity-platform error.
    pub fn aadsts(&self) -> Option<u32> {
        match self {
            MicrosoftError::Identity { code, .. } => *code,
            _ => None,
        }
    }

    /// The identity platform's `error` (`invalid_grant`, …), if it is one of its errors.
    pub fn identity_error(&self) -> Option<&str> {
        match self {
            MicrosoftError::Identity { error, .. } => Some(error),
            _ => None,
        }
    }

    /// How long Microsoft asked to wait (429/503 with `Retry-After`).
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            MicrosoftError::Graph { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// The AADSTS code at the start of an `error_description` (`AADSTS50173: …`).
    pub fn identity_code(description: &str) -> Option<u32> {
        description
            .strip_prefix("AADSTS")
            .and_then(|rest| rest.split(':').next())
            .and_then(|digits| digits.parse().ok())
    }

    /// An identity error from Microsoft's `error` and `error_description`.
    pub(crate) fn identity(error: &str, description: &str) -> Self {
        let code = Self::identity_code(description);
        // Microsoft appends trace and correlation ids after the first line.
        let description = description.lines().next().unwrap_or("").to_owned();
        MicrosoftError::Identity { error: error.to_owned(), code, description }
    }
}

impl From<kehai_oauth::TransportError> for MicrosoftError {
    fn from(e: kehai_oauth::TransportError) -> Self {
        MicrosoftError::Transport(e.message().to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aadsts_codes_are_read_from_the_description() {
        let e =
            MicrosoftError::identity("invalid_grant", "AADSTS50173: The provided grant has expired.\r\nTrace ID: x");
        assert_eq!(e.aadsts(), Some(50173));
        assert_eq!(e.identity_error(), Some("invalid_grant"));
        assert!(!e.to_string().contains("Trace ID"));
        assert_eq!(MicrosoftError::identity("access_denied", "no code here").aadsts(), None);
    }
}
