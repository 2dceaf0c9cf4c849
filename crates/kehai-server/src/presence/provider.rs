//! What the engine asks of a presence provider, and the provider-neutral values they exchange.
//!
//! A provider is an account service whose presence kehai mirrors onto avatars (Microsoft Teams,
//! `crate::providers::msteams`). It signs members in (OAuth 2.0 with PKCE, state and nonce:
//! the engine keeps those), refreshes tokens, keeps a subscription to the member's presence
//! alive, reads presences, and turns its webhook deliveries into [`Inbound`] items. The engine
//! ([`crate::presence`]) does everything else — connections, tokens at rest, claims, renewals on
//! time, the schedule, reconciliation, retries, the ordered apply path — knowing none of the
//! provider's types.

use std::{any::Any, collections::BTreeMap, fmt};

use async_trait::async_trait;
use kehai_core::{Millis, presence::Shown};
use kehai_store::{Claim, Connection, ConnectionId, SubscriptionRecord};
use secrecy::SecretString;

use super::Dropped;
use crate::state::AppState;

/// A presence provider (see the module's documentation). Methods that need the server's
/// services (the store, sealed secrets, the engine's tokens) get its state.
#[async_trait]
pub trait Provider: Any + Send + Sync + fmt::Debug {
    /// The provider's stable id: in URLs, the database and metrics (`msteams`).
    fn id(&self) -> &'static str;
    /// Its name in labels and pages ("Microsoft Teams").
    fn name(&self) -> &'static str;
    /// How long subscriptions are made for, in milliseconds; the engine renews them a sixth of
    /// that ahead of their end.
    fn subscription_ms(&self) -> Millis;
    /// How long a refresh token lasts unused, in milliseconds (recorded with it).
    fn refresh_token_ms(&self) -> Millis;
    /// Connections read at a time by [`Provider::read_many`] (the reconciliation's page).
    fn batch(&self) -> u32;

    /// Once, when the server starts (before it serves).
    async fn prepare(&self, _state: &AppState) -> anyhow::Result<()> {
        Ok(())
    }
    /// After every periodic reconciliation, for the provider's own housekeeping.
    async fn tidy(&self, _state: &AppState) {}

    // --- Signing in.

    /// A new sign-in: where to send the member's browser, and what to keep to finish it.
    async fn sign_in(&self) -> Result<SignIn, ProviderError>;
    /// An answer to the callback that is not a member's sign-in to finish (an administrator
    /// coming back from granting consent), looked at before the sign-in is.
    fn early_answer(&self, _params: &CallbackParams) -> Option<Outcome> {
        None
    }
    /// What a refused sign-in (the callback's `error`) means for the person.
    fn refusal(&self, params: &CallbackParams, state: &str) -> Outcome;
    /// Redeems the code of a sign-in that succeeded: the account, its tokens and its presence
    /// now — or how it ended, when it must not be connected.
    async fn finish(
        &self,
        state: &AppState,
        code: &str,
        sign_in: &SignInSecrets,
        state_param: &str,
    ) -> Result<SignedIn, Outcome>;
    /// New tokens for a refresh token.
    async fn refresh(&self, refresh_token: &SecretString) -> Result<Tokens, ProviderError>;
    /// Tells the provider to forget kehai's sign-in (the member disconnected), where it offers
    /// that (Google's revocation endpoint); kehai deletes the tokens whatever the answer.
    async fn revoke(&self, _refresh_token: &SecretString) -> Result<(), ProviderError> {
        Ok(())
    }

    // --- Subscriptions.

    /// Whether connections are subscribed to at all. A provider that cannot push here (Google
    /// without a public https URL) is read on its own schedule instead
    /// ([`Reading::next_change_at`]) and at every reconciliation.
    fn subscribes(&self) -> bool {
        true
    }
    /// Whether a connection is still followed without a subscription — read on the provider's
    /// own schedule ([`Reading::next_change_at`]) — when the provider refused one or could not
    /// be reached (the reconciliation tries again), rather than marked in error.
    fn reads_unsubscribed(&self) -> bool {
        false
    }

    /// The id of the next subscription, where kehai chooses it (Google's channel ids): the
    /// engine stores the subscription under it before asking the provider, so that what the
    /// provider delivers before it answers (Google's `sync`, a change made meanwhile) is
    /// recognized. `None`: the provider chooses (Graph).
    fn new_subscription_id(&self) -> Option<String> {
        None
    }
    /// Subscribes to the connection's presence until `expires_at`, with `secret` in every
    /// notification, under `id` when [`Provider::new_subscription_id`] chose one.
    async fn subscribe(
        &self,
        state: &AppState,
        access: &SecretString,
        connection: &Connection,
        id: Option<&str>,
        secret: &SecretString,
        expires_at: Millis,
    ) -> Result<Subscribed, ProviderError>;
    /// Whether a subscription can be renewed ([`Provider::renew`]); if not (Google's channels),
    /// the engine renews one by making a successor, and ends the old one once the successor
    /// delivers (both are recognized meanwhile).
    fn renews_in_place(&self) -> bool {
        true
    }
    /// Renews the subscription until `expires_at` ([`ProviderError::NotFound`]: the provider
    /// no longer has it, and the engine makes a new one).
    async fn renew(
        &self,
        state: &AppState,
        access: &SecretString,
        subscription: &SubscriptionRecord,
        expires_at: Millis,
    ) -> Result<Subscribed, ProviderError>;
    /// Ends a subscription.
    async fn unsubscribe(&self, access: &SecretString, subscription: &SubscriptionRecord) -> Result<(), ProviderError>;
    /// Claims connections whose subscription is to be renewed now for the provider's own
    /// reasons (Graph: encrypted for a retired certificate), beside those about to lapse.
    async fn outdated(&self, _state: &AppState, _claim: Claim<'_>, _limit: u32) -> Vec<Connection> {
        Vec::new()
    }

    // --- Reading.

    /// The connection's presence, read with its access token.
    async fn read(&self, access: &SecretString, connection: &Connection) -> Result<Reading, ProviderError>;
    /// The presences of many connections (a page of the reconciliation), as cheaply as the
    /// provider allows; tokens come from the engine ([`crate::presence::tokens`]). Connections
    /// that could not be read are left out (and logged).
    async fn read_many(&self, state: &AppState, connections: &mut [Connection]) -> Vec<(ConnectionId, Reading)>;

    // --- Notifications (their webhook is the provider's [`Webhook`]).

    /// Whether a notification that carries no presence ([`Event::Changed`] without content) is
    /// read after a short wait, so that a burst of them (Google pings once per change, with
    /// nothing in it) costs one read, rather than at once.
    fn debounced(&self) -> bool {
        false
    }
    /// An admitted notification says the connection's presence changed: what the provider keeps
    /// of it is out of date (called before the presence is read).
    fn changed(&self, _connection: &Connection) {}

    // --- The card.

    /// What the member should know about the connection, as stable codes the card shows in
    /// the provider's words (`{id}.card.note_{code}`): Google Calendar read by polling, say.
    fn notes(&self, _connection: &Connection) -> Vec<&'static str> {
        Vec::new()
    }

    /// Checks the delivery's own proof ([`Inbound::proof`]) before the first item that needs
    /// it is opened, and says whose connections it vouches for: `Dropped::ValidationToken`
    /// (forged), or `Dropped::Unavailable` (the provider's keys could not be had: read the
    /// presence again later).
    async fn verify(&self, _state: &AppState, _inbound: &Inbound) -> Result<Proven, Dropped> {
        Ok(Proven::Everyone)
    }
    /// The presence an item carries ([`Event::Changed`] with content), for an admitted
    /// connection.
    async fn open(&self, state: &AppState, content: &Content, connection: &Connection) -> Result<Reading, Dropped>;
}

/// A presence as read or received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reading {
    /// Whose presence it is (an account at the provider).
    pub user: String,
    /// What the avatar shows; `None`: the member's own emoji.
    pub shown: Option<Observed>,
    /// The provider's ordering key: a reading with an older key (byte order) never replaces a
    /// newer one (Graph's `sequenceNumber`).
    pub order: Option<String>,
    /// When the presence changes next by the clock alone (a calendar's next boundary): the
    /// engine reads it again then, without a notification.
    pub next_change_at: Option<Millis>,
}

/// A presence that shows on the avatar, with the provider's own values (stored as received).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    pub availability: String,
    pub activity: String,
    pub shown: Shown,
}

/// Tokens from the provider. `Debug` shows none of them.
#[derive(Clone)]
pub struct Tokens {
    pub access_token: SecretString,
    /// A new refresh token, when the provider rotated it (store it; the old one may be dead).
    pub refresh_token: Option<SecretString>,
    /// Seconds the access token lives.
    pub expires_in: u64,
}

impl fmt::Debug for Tokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tokens").field("expires_in", &self.expires_in).finish_non_exhaustive()
    }
}

/// A sign-in about to start: the URL to send the browser to, and what the engine keeps (sealed)
/// to finish it. `Debug` shows only the URL's host.
pub struct SignIn {
    pub url: url::Url,
    pub state: SecretString,
    pub secrets: SignInSecrets,
}

impl fmt::Debug for SignIn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SignIn").field("host", &self.url.host_str()).finish_non_exhaustive()
    }
}

/// What finishing a sign-in needs: the id token's nonce and the PKCE verifier.
pub struct SignInSecrets {
    pub nonce: SecretString,
    pub pkce_verifier: SecretString,
}

/// A sign-in that succeeded and may be connected.
#[derive(Debug)]
pub struct SignedIn {
    /// The organization at the provider.
    pub tenant: String,
    /// The account at the provider.
    pub user: String,
    pub tokens: Tokens,
    /// The permissions granted, where the member may grant fewer than asked (stored).
    pub scope: Option<String>,
    /// The presence now (shown at once).
    pub reading: Reading,
}

/// A subscription as the provider made or renewed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscribed {
    pub id: String,
    /// When it lapses, if the provider says (else as asked).
    pub expires_at: Option<Millis>,
    /// The certificate its notifications are encrypted for, if any.
    pub certificate_id: Option<String>,
    /// The resource its notifications name, which they are checked against (a Google channel's
    /// `resourceId`), if any.
    pub resource: Option<String>,
}

/// The callback's query parameters, each given once. `Debug` shows only their names (a code and
/// a state are in there).
pub struct CallbackParams(BTreeMap<String, String>);

impl CallbackParams {
    /// The parameters, or `None` when one is given twice (not the provider's answer).
    pub fn new(pairs: Vec<(String, String)>) -> Option<CallbackParams> {
        let mut params = BTreeMap::new();
        for (name, value) in pairs {
            if params.insert(name, value).is_some() {
                return None;
            }
        }
        Some(CallbackParams(params))
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }
}

impl fmt::Debug for CallbackParams {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

/// How a sign-in ended, as the popup's last page shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Connected,
    /// Not a sign-in this visitor started in the last ten minutes (or used already).
    Expired,
    /// The organization lets only administrators approve apps: the link to send them.
    AdminApproval {
        admin_url: String,
    },
    /// An administrator came back from approving kehai.
    Approved,
    Cancelled,
    /// A personal account where only work or school accounts may connect.
    Personal,
    /// An account of an organization this server does not take (Google's `hd` not among
    /// `KEHAI_GOOGLE_HOSTED_DOMAINS`).
    OtherOrganization,
    /// The member unticked a permission kehai needs on the provider's consent page.
    ScopeMissing,
    /// Another member connected this account already.
    Taken,
    /// The provider refused; `detail` is its code for the administrator.
    Failed {
        detail: String,
    },
    /// The provider (or kehai's database) could not be reached.
    Unavailable,
    MembersOnly,
    NotConfigured,
}

/// Why a call to the provider failed, in the terms the engine acts on. Never holds a token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProviderError {
    /// No answer, or throttled or failing past one call's retries: try again later.
    #[error("the provider is unavailable: {0}")]
    Unavailable(String),
    /// The access token was refused before its expiry (revoked): refresh it and try once more.
    #[error("the provider refused the access token")]
    Unauthorized,
    /// The sign-in is refused for good (revoked, expired, consent withdrawn): only a new
    /// sign-in helps.
    #[error("the provider no longer accepts the sign-in: {0}")]
    SignInRefused(String),
    /// kehai's own registration with the provider was refused (its client secret, its app id):
    /// for the operator to fix.
    #[error("the provider refused kehai's app registration: {0}")]
    AppRefused(String),
    /// What was asked for does not exist (any more): a subscription the provider lost.
    #[error("the provider does not know it")]
    NotFound,
    /// Anything else the provider refused, with its code.
    #[error("the provider refused: {0}")]
    Refused(String),
}

/// A provider's webhooks, `/webhooks/{segment}` and `/webhooks/{segment}/lifecycle`, and how
/// their deliveries read: known whether or not the provider is configured (a handshake is
/// answered all the same), and cheap (they run on the request, with no I/O).
#[derive(Debug, Clone, Copy)]
pub struct Webhook {
    /// `msgraph`.
    pub segment: &'static str,
    /// The answer to a handshake (Graph's validation token, answered as plain text), if the
    /// delivery is one; asked first.
    pub handshake: fn(&WebhookRequest<'_>) -> Option<String>,
    /// The items a delivery carries.
    pub parse: fn(&WebhookRequest<'_>) -> Result<Inbound, WebhookRefusal>,
}

/// A webhook delivery.
#[derive(Debug)]
pub struct WebhookRequest<'a> {
    /// `true` for `/webhooks/{webhook}/lifecycle`.
    pub lifecycle: bool,
    pub query: &'a [(String, String)],
    pub headers: &'a axum::http::HeaderMap,
    pub body: &'a [u8],
}

/// A delivery the provider could not have sent: answered with this status (400, or 413 for one
/// carrying more items than the provider ever batches) and stable code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookRefusal {
    pub status: axum::http::StatusCode,
    pub code: &'static str,
    pub message: &'static str,
}

/// One delivery's items, queued for the engine.
#[derive(Debug)]
pub struct Inbound {
    pub items: Vec<Item>,
    /// What proves the whole delivery genuine, checked once by [`Provider::verify`] before the
    /// first item whose content is opened (Graph's validation tokens).
    pub proof: Option<Content>,
    /// Items left out because they could name no subscription of the provider's (not its
    /// shape of id): counted as dropped, never looked up.
    pub malformed: usize,
}

/// What a queued item is counted as beside its share of the body: the parsed item's own
/// structures (its strings' and boxes' headers, the allocator's rounding).
const ITEM_WEIGHT: usize = 256;

impl Inbound {
    /// About how much memory the delivery holds once parsed, for a POST of `body` bytes: what
    /// the queue is bounded by.
    pub fn weight(&self, body: usize) -> usize {
        body.saturating_add(self.items.len().saturating_mul(ITEM_WEIGHT))
    }
}

/// Whose connections a verified proof vouches for: an item opened under it must be for one of
/// them (a token genuinely signed for another organization proves nothing about this one's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Proven {
    /// Any connection: the provider proves deliveries some other way (or not at all).
    Everyone,
    /// Connections of these organizations ([`Connection::external_tenant`]) only.
    Tenants(Vec<String>),
}

impl Proven {
    pub fn covers(&self, connection: &Connection) -> bool {
        match self {
            Proven::Everyone => true,
            Proven::Tenants(tenants) => tenants.iter().any(|t| t.eq_ignore_ascii_case(&connection.external_tenant)),
        }
    }
}

/// One item of a delivery.
#[derive(Debug)]
pub struct Item {
    /// The subscription it names: only a connected connection's subscription is admitted.
    pub subscription: String,
    /// The secret it carries, compared in constant time with the subscription's.
    pub secret: Option<String>,
    /// The resource it names, which must be the subscription's where the subscription records
    /// one (a Google channel's `resourceId`).
    pub resource: Option<String>,
    pub event: Event,
}

/// What an item says.
#[derive(Debug)]
pub enum Event {
    /// The presence changed: here it is ([`Provider::open`]), or (`None`) read it.
    Changed(Option<Content>),
    /// Changes may have been missed: read the presence again.
    Missed,
    /// The subscription began delivering (Google's `sync`): nothing to read.
    Started,
    /// The subscription must be renewed now (reauthorized).
    RenewalRequired,
    /// The provider removed the subscription: make a new one.
    Removed,
    /// Something the engine does not act on (logged).
    Other(String),
}

impl Item {
    /// Whether acting on it opens content, so that the delivery's proof must hold first.
    pub fn opens_content(&self) -> bool {
        matches!(self.event, Event::Changed(Some(_)))
    }
}

/// A provider's own data in an item or a delivery, opaque to the engine.
pub struct Content(Box<dyn Any + Send + Sync>);

impl Content {
    pub fn new<T: Any + Send + Sync>(value: T) -> Content {
        Content(Box::new(value))
    }

    /// The provider's value, if it is a `T`.
    pub fn get<T: Any>(&self) -> Option<&T> {
        self.0.downcast_ref()
    }
}

impl fmt::Debug for Content {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Content(..)")
    }
}
