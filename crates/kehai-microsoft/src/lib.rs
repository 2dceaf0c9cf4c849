//! kehai's client of Microsoft: the identity platform (OAuth 2.0 authorization code with PKCE,
//! OpenID Connect id tokens) and Microsoft Graph presence and subscriptions.
//!
//! It knows nothing of spaces or members: the server decides what to do with a connection. It
//! talks to Microsoft only through the two configured base URLs ([`MicrosoftConfig`]), so the
//! same code runs against login.microsoftonline.com / graph.microsoft.com and against msemu.
//! Secrets (client secret, tokens) are `SecretString`s and never appear in errors or `Debug`.

mod error;
mod graph;
mod id_token;
mod identity;
mod limit;
pub mod notifications;
mod observe;

use secrecy::SecretString;
use url::Url;

pub use error::MicrosoftError;
pub use graph::{Graph, NewSubscription, Presence, Subscription};
pub use id_token::{IdClaims, IdExpectations, IdTokenValidator, check_id_token, key_id};
pub use identity::Identity;
pub use kehai_oauth::{AuthorizationRequest, Tokens};
pub use limit::{PRESENCE_REQUESTS, PresenceLimit};
pub use observe::{Observer, Unobserved};

/// The tenant id of personal Microsoft accounts, which kehai refuses.
pub const CONSUMER_TENANT: &str = "9188040d-6c67-4c5b-b112-36a304b66dad";

/// The permissions kehai asks for, and no others: sign-in with the email address, a refresh
/// token, and reading presence.
pub const SCOPES: &[&str] = &["openid", "email", "offline_access", "https://graph.microsoft.com/Presence.Read.All"];

/// Where Microsoft is and who kehai is there.
#[derive(Clone)]
pub struct MicrosoftConfig {
    /// `https://login.microsoftonline.com` (or msemu).
    pub login_url: Url,
    /// `https://graph.microsoft.com` (or msemu).
    pub graph_url: Url,
    /// `organizations` (work and school accounts), `common`, or a tenant.
    pub tenant: String,
    pub client_id: String,
    pub client_secret: SecretString,
}

impl std::fmt::Debug for MicrosoftConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MicrosoftConfig")
            .field("login_url", &self.login_url.as_str())
            .field("graph_url", &self.graph_url.as_str())
            .field("tenant", &self.tenant)
            .field("client_id", &self.client_id)
            .field("client_secret", &"<redacted>")
            .finish()
    }
}

impl MicrosoftConfig {
    /// `login_url` + `path` (path starting with `/`).
    fn login(&self, path: &str) -> String {
        format!("{}{path}", self.login_url.as_str().trim_end_matches('/'))
    }

    fn graph(&self, path: &str) -> String {
        format!("{}{path}", self.graph_url.as_str().trim_end_matches('/'))
    }
}
