//! Everything msemu remembers: the directory, consents, sign-in flows, authorization codes,
//! refresh tokens, browser sessions and signing keys. One mutex: msemu serves tests and demos,
//! not production traffic, and one lock keeps every rule easy to read.

use std::{
    collections::{HashMap, HashSet},
    sync::{Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard},
};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use rand::RngCore;
use uuid::Uuid;

use crate::{directory::Directory, keys::Keys};

/// Seconds since the Unix epoch.
pub fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// A random opaque value (codes, tokens, flow ids): 32 bytes, base64url.
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A validated `/authorize` request, waiting for the person to sign in and consent.
#[derive(Debug, Clone)]
pub struct Flow {
    /// The `{tenant}` of the authorize URL (`organizations`, `common`, a tenant id…).
    pub tenant_path: String,
    pub client_id: Uuid,
    pub redirect_uri: String,
    /// Normalised: OIDC scopes as is, Graph permissions as their short names.
    pub scopes: Vec<String>,
    pub state: Option<String>,
    pub nonce: Option<String>,
    pub code_challenge: String,
    pub prompt: Option<String>,
    pub login_hint: Option<String>,
    /// Narrows the account picker to one organization's accounts.
    pub domain_hint: Option<String>,
    /// Set once the person has signed in.
    pub user: Option<Uuid>,
    pub created: i64,
}

/// An authorization code.
#[derive(Debug, Clone)]
pub struct Code {
    pub flow: Flow,
    pub user: Uuid,
    pub created: i64,
    pub redeemed: bool,
}

/// A refresh token: it rotates on every use, and older ones stay valid until revoked.
#[derive(Debug, Clone)]
pub struct Refresh {
    pub user: Uuid,
    pub client_id: Uuid,
    pub scopes: Vec<String>,
    pub tenant_path: String,
    pub issued: i64,
    pub last_used: i64,
    /// Revoked (the user's sessions were revoked, or their password reset).
    pub revoked: bool,
}

/// A user's presence as Graph reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Presence {
    pub availability: String,
    pub activity: String,
    /// Strictly increasing and lexicographically sortable (zero-padded), like Graph's.
    pub sequence: String,
    pub out_of_office: bool,
    /// When the user last did something (for idle: Available becomes Away).
    pub last_activity: i64,
    /// Away because idle (activity makes the user Available again).
    pub idle: bool,
}

/// A change-notification subscription.
#[derive(Debug, Clone)]
pub struct Subscription {
    pub id: Uuid,
    /// As the client gave it.
    pub resource: String,
    /// The users it covers.
    pub users: Vec<Uuid>,
    pub change_type: String,
    pub notification_url: String,
    pub lifecycle_notification_url: Option<String>,
    /// Seconds since the epoch.
    pub expiration: i64,
    pub client_state: Option<String>,
    pub include_resource_data: bool,
    /// DER of the encryption certificate (rich notifications).
    pub encryption_certificate: Option<Vec<u8>>,
    pub encryption_certificate_id: Option<String>,
    pub application_id: Uuid,
    pub creator_id: Uuid,
    pub tenant_id: Uuid,
    /// Until when the access token the subscription was (re)authorized with is valid.
    pub authorized_until: i64,
    pub created: i64,
    /// Times of renewals (PATCH of the expiration) and reauthorizations, for the control API.
    pub renewals: Vec<i64>,
    pub reauthorizations: Vec<i64>,
    pub delivered: u64,
    pub failed_attempts: u64,
    /// Notifications held back because the subscription's authorization lapsed; delivered
    /// once it is reauthorized.
    pub withheld: Vec<serde_json::Value>,
    /// Whether `reauthorizationRequired` was sent since the last (re)authorization.
    pub lifecycle_sent: bool,
    pub lifecycle_notifications: u64,
    pub lifecycle_delivered: u64,
    /// The base URL the subscription was made through: its validation tokens name it as issuer.
    pub base: crate::BaseUrl,
}

#[derive(Debug, Default)]
pub struct Inner {
    pub directory: Directory,
    /// The scopes each user consented to, per app.
    pub consents: HashMap<(Uuid, Uuid), HashSet<String>>,
    /// The scopes an administrator consented to for a whole tenant, per app.
    pub admin_consents: HashMap<(Uuid, Uuid), HashSet<String>>,
    pub flows: HashMap<String, Flow>,
    pub codes: HashMap<String, Code>,
    pub refresh_tokens: HashMap<String, Refresh>,
    /// msemu's own browser sessions (the "already signed in at Microsoft" state).
    pub sessions: HashMap<String, Uuid>,
    /// Access tokens issued and not yet expired, by `uti`: their user and expiry.
    pub access_tokens: HashMap<String, (Uuid, i64)>,
    /// Access tokens revoked before their expiry (by `uti`).
    pub revoked_access: HashSet<String>,
    pub presences: HashMap<Uuid, Presence>,
    /// The last presence sequence number given out.
    pub sequence: u64,
    pub subscriptions: HashMap<Uuid, Subscription>,
    /// Presence requests per (app, tenant): their times in the current window, for throttling.
    pub presence_requests: HashMap<(Uuid, Uuid), Vec<i64>>,
    /// Requests per endpoint (method and route pattern), for the control API.
    pub requests: HashMap<String, u64>,
    /// Faults to inject, consumed in order.
    pub faults: Vec<crate::faults::Fault>,
    /// Notifications a "reorder" fault holds back until the next one is sent.
    pub reordered: Vec<(Uuid, String, serde_json::Value)>,
}

impl Inner {
    /// The next presence sequence number.
    pub fn next_sequence(&mut self) -> String {
        self.sequence += 1;
        format!("C{:019}", self.sequence)
    }

    /// A user's presence; users nobody has set yet are Offline.
    pub fn presence(&mut self, user: Uuid) -> Presence {
        if !self.presences.contains_key(&user) {
            let sequence = self.next_sequence();
            let initial = Presence {
                availability: "Offline".into(),
                activity: "Offline".into(),
                sequence,
                out_of_office: false,
                last_activity: now(),
                idle: false,
            };
            self.presences.insert(user, initial);
        }
        self.presences[&user].clone()
    }

    /// Whether `scopes` were consented to for `app`: by the user, or by an administrator for
    /// the user's whole tenant (or the directory says the tenant granted everything).
    pub fn consented(&self, user: Uuid, app: Uuid, scopes: &[String]) -> bool {
        let Some(u) = self.directory.user(user) else {
            return false;
        };
        let tenant = self.directory.tenant_of(u);
        if tenant.admin_consent_granted {
            return true;
        }
        let covers = |granted: Option<&HashSet<String>>| granted.is_some_and(|g| scopes.iter().all(|s| g.contains(s)));
        covers(self.consents.get(&(user, app))) || covers(self.admin_consents.get(&(tenant.id, app)))
    }

    /// Revokes everything issued to `user`: refresh tokens, access tokens, browser sessions.
    pub fn revoke_user(&mut self, user: Uuid) {
        self.refresh_tokens.values_mut().filter(|r| r.user == user).for_each(|r| r.revoked = true);
        let utis: Vec<String> =
            self.access_tokens.iter().filter(|(_, (u, _))| *u == user).map(|(k, _)| k.clone()).collect();
        self.revoked_access.extend(utis);
        self.sessions.retain(|_, u| *u != user);
    }
}

#[derive(Debug)]
pub struct World {
    inner: Mutex<Inner>,
    keys: RwLock<Keys>,
}

impl World {
    pub fn new(directory: Directory) -> anyhow::Result<World> {
        Ok(World { inner: Mutex::new(Inner { directory, ..Inner::default() }), keys: RwLock::new(Keys::generate()?) })
    }

    /// Forgets everything: back to `directory` with new keys.
    pub fn reset(&self, directory: Directory) -> anyhow::Result<()> {
        *self.keys_mut() = Keys::generate()?;
        *self.lock() = Inner { directory, ..Inner::default() };
        Ok(())
    }

    pub fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn keys(&self) -> RwLockReadGuard<'_, Keys> {
        self.keys.read().unwrap_or_else(|p| p.into_inner())
    }

    pub fn keys_mut(&self) -> RwLockWriteGuard<'_, Keys> {
        self.keys.write().unwrap_or_else(|p| p.into_inner())
    }
}
