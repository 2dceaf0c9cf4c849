//! kehai's client of Google: sign-in with OAuth 2.0 / OpenID Connect (the authorization code
//! with PKCE, id tokens, refresh, revocation) and the Calendar API v3 — free/busy, the status
//! events (out of office, focus time) without their content, and push channels.
//!
//! It knows nothing of spaces or members: the server decides what to do with a connection. It
//! reaches Google only through the configured issuer (every OAuth endpoint is taken from the
//! issuer's discovery document) and Calendar base URL ([`GoogleConfig`]), so the same code runs
//! against accounts.google.com / www.googleapis.com and against googleemu. Secrets (client
//! secret, tokens, channel tokens) are `SecretString`s and never appear in errors or `Debug`.

mod calendar;
mod discovery;
mod error;
mod id_token;
mod identity;
mod observe;
pub mod scopes;

use secrecy::SecretString;
use url::Url;

pub use calendar::{BusyInterval, Calendar, Channel, NewChannel, STATUS_EVENT_FIELDS, StatusEvent, StatusKind};
pub use error::GoogleError;
pub use id_token::{GoogleClaims, IdExpectations, check_id_token};
pub use identity::Identity;
pub use kehai_oauth::{AuthorizationRequest, Tokens};
pub use observe::{Observer, Unobserved};

/// Google's own issuer: its id tokens may also say `accounts.google.com`, without the scheme.
pub const GOOGLE_ISSUER: &str = "https://accounts.google.com";

/// Where Google is and who kehai is there.
#[derive(Clone)]
pub struct GoogleConfig {
    /// `https://accounts.google.com` (or googleemu): its discovery document names every OAuth
    /// endpoint.
    pub issuer: Url,
    /// `https://www.googleapis.com/calendar/v3` (or googleemu's).
    pub calendar_url: Url,
    pub client_id: String,
    pub client_secret: SecretString,
}

impl std::fmt::Debug for GoogleConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GoogleConfig")
            .field("issuer", &self.issuer.as_str())
            .field("calendar_url", &self.calendar_url.as_str())
            .field("client_id", &self.client_id)
            .field("client_secret", &"<redacted>")
            .finish()
    }
}

impl GoogleConfig {
    /// The issuer as its id tokens and discovery document spell it (no trailing slash).
    fn issuer(&self) -> &str {
        self.issuer.as_str().trim_end_matches('/')
    }

    /// `calendar_url` + `path` (path starting with `/`).
    fn calendar(&self, path: &str) -> String {
        format!("{}{path}", self.calendar_url.as_str().trim_end_matches('/'))
    }
}
