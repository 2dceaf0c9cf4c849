//! Everything googleemu remembers: the directory, sign-in flows, browser sessions, consents,
//! authorization codes, tokens, calendars, watch channels, faults and the logs tests read. One
//! mutex: googleemu serves tests and demos, not production traffic, and one lock keeps every
//! rule easy to read. Times are the emulator clock's milliseconds ([`crate::clock`]).

use std::{
    collections::{HashMap, HashSet},
    sync::{Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard},
};

use rand::{Rng, RngCore};
use serde::Serialize;

use crate::{calendar::event::Event, directory::Directory, faults::Fault, keys::Keys, scopes::Scopes};

/// Random characters from `alphabet`.
pub fn random_from(alphabet: &[u8], len: usize) -> String {
    let mut rng = rand::rng();
    (0..len).map(|_| char::from(alphabet[rng.random_range(0..alphabet.len())])).collect()
}

/// A random opaque value: base64url-like characters.
pub fn random_token(len: usize) -> String {
    random_from(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", len)
}

/// A random hex nonce (the forms' anti-CSRF value).
pub fn random_hex() -> String {
    let mut bytes = [0u8; 16];
    rand::rng().fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A validated authorization request, waiting for the person to choose an account and consent.
#[derive(Debug, Clone)]
pub struct Flow {
    pub client_id: String,
    pub redirect_uri: String,
    /// Normalized.
    pub scopes: Scopes,
    pub state: Option<String>,
    pub nonce: Option<String>,
    /// PKCE: the challenge and its method (`S256` or `plain`).
    pub challenge: Option<(String, String)>,
    pub offline: bool,
    /// The `prompt` values (`consent`, `select_account`, `none`).
    pub prompt: Vec<String>,
    pub include_granted_scopes: bool,
    pub login_hint: Option<String>,
    /// The `hd` hint: narrows the account chooser, never enforced.
    pub hd: Option<String>,
    /// Set once an account is chosen.
    pub user: Option<String>,
    /// The nonce the page on screen carries in its forms; a post must bring it back.
    pub csrf: String,
    pub created: i64,
}

impl Flow {
    pub fn prompts(&self, value: &str) -> bool {
        self.prompt.iter().any(|p| p == value)
    }
}

/// An authorization code.
#[derive(Debug, Clone)]
pub struct Code {
    pub client_id: String,
    pub redirect_uri: String,
    pub user: String,
    pub scopes: Scopes,
    pub nonce: Option<String>,
    pub challenge: Option<(String, String)>,
    /// Whether redeeming it yields a refresh token (offline access, and a consent given on the
    /// consent screen in this flow).
    pub refresh: bool,
    pub created: i64,
    pub used: bool,
}

/// Why a refresh token no longer works (all answer `invalid_grant`, as Google does).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Dead {
    Revoked,
    /// The 101st refresh token of the account for the client invalidated this, the oldest.
    Evicted,
}

#[derive(Debug, Clone)]
pub struct RefreshToken {
    pub user: String,
    pub client_id: String,
    pub scopes: Scopes,
    /// When the user consented (a testing client's tokens lapse 7 days later).
    pub consented: i64,
    pub last_used: i64,
    pub dead: Option<Dead>,
}

#[derive(Debug, Clone)]
pub struct AccessToken {
    pub user: String,
    pub client_id: String,
    pub scopes: Scopes,
    pub expires: i64,
    /// The refresh token it came from or with: revoking one revokes the other.
    pub refresh: Option<String>,
    pub revoked: bool,
}

/// A user's primary calendar.
#[derive(Debug, Clone, Default)]
pub struct Calendar {
    pub events: Vec<Event>,
    /// Increases with every change (sync tokens remember it).
    pub changes: u64,
}

/// A push-notification channel (`events.watch`).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Channel {
    pub id: String,
    pub resource_id: String,
    pub resource_uri: String,
    #[serde(skip)]
    pub token: Option<String>,
    pub address: String,
    /// Milliseconds since the epoch (emulator clock).
    pub expiration: i64,
    pub user: String,
    pub client_id: String,
    pub calendar_id: String,
    /// The `eventTypes` filter of the watch call; empty = all.
    pub event_types: Vec<String>,
    pub created: i64,
    pub stopped: bool,
    /// The last message number sent.
    pub message_number: u64,
}

/// One Calendar API request, as the control API reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CalendarRequest {
    /// Emulator time, milliseconds since the epoch.
    pub at: i64,
    pub method: String,
    pub path: String,
    /// The method id (`calendar.freebusy.query`, `calendar.events.list`, …), `None` for a path
    /// googleemu does not serve.
    pub operation: Option<String>,
    /// The caller's email, when the access token was known.
    pub user: Option<String>,
    pub client_id: Option<String>,
    /// The query string as sent, with an `access_token` value replaced by `REDACTED`.
    pub query: String,
    /// The decoded `fields` parameter, if any.
    pub fields: Option<String>,
    pub status: u16,
}

/// One delivery attempt of a push notification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PushRecord {
    /// Emulator time, milliseconds since the epoch.
    pub at: i64,
    pub channel_id: String,
    pub user: String,
    /// `sync` or `exists`.
    pub state: String,
    pub message_number: u64,
    /// 1 for the first attempt, then retries.
    pub attempt: u32,
    /// The receiver's answer; `None` when there was none (refused connection, timeout).
    pub status: Option<u16>,
    /// Whether Google would count this as delivered (102, 200, 201, 202 or 204).
    pub delivered: bool,
}

#[derive(Debug, Default)]
pub struct Inner {
    pub directory: Directory,
    pub flows: HashMap<String, Flow>,
    /// Browser sessions ("signed in at Google"): cookie value → email.
    pub sessions: HashMap<String, String>,
    /// Scopes each user granted each client: (email, client id) → scopes.
    pub consents: HashMap<(String, String), Scopes>,
    pub codes: HashMap<String, Code>,
    pub refresh_tokens: HashMap<String, RefreshToken>,
    pub access_tokens: HashMap<String, AccessToken>,
    /// `admin_policy_enforced` set through the control API: (email, client id or `None` for
    /// every client).
    pub admin_blocked: HashSet<(String, Option<String>)>,
    /// Primary calendars by lowercase email.
    pub calendars: HashMap<String, Calendar>,
    pub channels: Vec<Channel>,
    pub requests: Vec<CalendarRequest>,
    pub pushes: Vec<PushRecord>,
    pub faults: Vec<Fault>,
}

impl Inner {
    pub fn calendar(&mut self, email: &str) -> &mut Calendar {
        self.calendars.entry(email.to_lowercase()).or_default()
    }

    /// Revokes a grant as the revocation endpoint and the account page do: every refresh and
    /// access token of (user, client) stops working and the consent is forgotten, so the next
    /// authorization asks again.
    pub fn revoke_grant(&mut self, user: &str, client_id: &str) {
        let same = |u: &str, c: &str| u.eq_ignore_ascii_case(user) && c == client_id;
        for r in self.refresh_tokens.values_mut().filter(|r| same(&r.user, &r.client_id)) {
            r.dead.get_or_insert(Dead::Revoked);
        }
        for a in self.access_tokens.values_mut().filter(|a| same(&a.user, &a.client_id)) {
            a.revoked = true;
        }
        self.consents.retain(|(u, c), _| !same(u, c));
    }

    /// Whether the organization's administrator blocks `client_id` for `user`.
    pub fn admin_policy_enforced(&self, user: &str, client_id: &str) -> bool {
        let user = user.to_lowercase();
        self.directory.user(&user).is_some_and(|u| u.admin_policy_enforced)
            || self.admin_blocked.contains(&(user.clone(), None))
            || self.admin_blocked.contains(&(user, Some(client_id.to_owned())))
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
