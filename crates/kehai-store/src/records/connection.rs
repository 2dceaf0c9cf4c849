//! Records of the presence integrations: connections to a provider (Microsoft Teams, …), the
//! sign-ins in progress that make them, and encryption certificates. Secret fields are [`Sealed`]: the store
//! keeps them as given and never sees them in clear.

use kehai_core::{Millis, PersonId, SpaceId};

/// A value sealed by [`crate::secrets::SecretBox`]. `Debug` prints nothing of it.
#[derive(Clone, PartialEq, Eq)]
pub struct Sealed(pub String);

impl std::fmt::Debug for Sealed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealed(..)")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConnectionId(pub uuid::Uuid);

impl ConnectionId {
    pub fn new() -> Self {
        ConnectionId(uuid::Uuid::new_v4())
    }
}

impl Default for ConnectionId {
    fn default() -> Self {
        Self::new()
    }
}

/// How a connection is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionState {
    Connected,
    /// Microsoft refused the refresh token: the member must sign in again.
    NeedsReconnect,
    /// Something else failed; `last_error` says what.
    Error,
}

impl ConnectionState {
    pub fn as_str(self) -> &'static str {
        match self {
            ConnectionState::Connected => "connected",
            ConnectionState::NeedsReconnect => "needs_reconnect",
            ConnectionState::Error => "error",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "connected" => Some(ConnectionState::Connected),
            "needs_reconnect" => Some(ConnectionState::NeedsReconnect),
            "error" => Some(ConnectionState::Error),
            _ => None,
        }
    }
}

/// A connection's subscription to its presence at the provider (a Graph subscription, a Google
/// Calendar push channel).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionRecord {
    pub id: String,
    pub expires_at: Millis,
    /// The secret the provider's notifications carry (Graph's `clientState`).
    pub client_state: Sealed,
    /// The encryption certificate the provider encrypts notifications for (`None`: they are not).
    pub certificate_id: Option<String>,
    /// The resource the provider says it watches, which its notifications name (a Google
    /// channel's `resourceId`); `None` where notifications are not checked against one.
    pub resource: Option<String>,
}

/// A member's connection to their account at a presence provider: one per member and provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connection {
    pub id: ConnectionId,
    pub account_id: PersonId,
    /// The provider's id (`msteams`, …).
    pub provider: String,
    /// The organization at the provider (Microsoft's tenant id).
    pub external_tenant: String,
    /// The account at the provider (Graph's user object id): presences read or pushed must be
    /// this account's.
    pub external_user: String,
    pub access_token: Sealed,
    pub access_expires_at: Millis,
    /// When to refresh the access token (ahead of its expiry).
    pub access_refresh_at: Millis,
    pub refresh_token: Option<Sealed>,
    pub refresh_expires_at: Option<Millis>,
    pub subscription: Option<SubscriptionRecord>,
    /// The subscription `subscription` is replacing, where the provider's cannot be extended
    /// (Google's channels): it still delivers, with the same secret, until the new one is
    /// confirmed and it is ended.
    pub previous_subscription: Option<SubscriptionRecord>,
    pub state: ConnectionState,
    pub last_error: Option<String>,
    /// The ordering key of the presence last applied (the provider's, compared byte-wise: Graph's
    /// sortable `sequenceNumber`; for Google Calendar, the time of the read it came from and of
    /// the look at it).
    pub last_sequence: Option<String>,
    /// When the presence is to be read again without a notification (a provider whose presence
    /// changes with the clock); `None`: when a notification says so.
    pub next_check_at: Option<Millis>,
    /// The permissions the member granted at the provider, as it names them (space-separated),
    /// where the provider lets a member grant fewer than asked (Google); `None` elsewhere.
    pub granted_scope: Option<String>,
    pub connected_at: Millis,
    pub updated_at: Millis,
}

impl Connection {
    /// The connection's subscriptions at the provider: the current one, and the one it is
    /// replacing.
    pub fn subscriptions(&self) -> impl Iterator<Item = &SubscriptionRecord> {
        [&self.subscription, &self.previous_subscription].into_iter().flatten()
    }

    /// The connection's subscription with this id: the current one, or the one it is replacing.
    pub fn subscription_named(&self, id: &str) -> Option<&SubscriptionRecord> {
        self.subscriptions().find(|s| s.id == id)
    }
}

/// A sign-in in progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthState {
    /// SHA-256 of the `state` parameter.
    pub state_hash: String,
    /// The provider signed in at: only its callback may finish it.
    pub provider: String,
    /// The session that started it: only that session may finish it.
    pub session_hash: String,
    pub space_id: SpaceId,
    pub nonce: Sealed,
    pub pkce_verifier: Sealed,
    pub expires_at: Millis,
}

/// A certificate Graph encrypts rich notifications for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncryptionCertificate {
    pub id: String,
    /// Base64 DER.
    pub certificate: String,
    /// Sealed PKCS#8.
    pub private_key: Sealed,
    pub created_at: Millis,
    pub retired_at: Option<Millis>,
}

/// Tokens from a refresh: the new access token and the rotated refresh token, written together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenUpdate {
    pub access_token: Sealed,
    pub access_expires_at: Millis,
    pub access_refresh_at: Millis,
    pub refresh_token: Option<Sealed>,
    pub refresh_expires_at: Option<Millis>,
    pub updated_at: Millis,
}
