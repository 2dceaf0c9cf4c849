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
}

#[derive(Debug, Default)]
pub struct Inner {
    pub directory: Directory,
    /// (user, app) pairs that consented.
    pub consents: HashSet<(Uuid, Uuid)>,
    pub flows: HashMap<String, Flow>,
    pub codes: HashMap<String, Code>,
    pub refresh_tokens: HashMap<String, Refresh>,
    /// msemu's own browser sessions (the "already signed in at Microsoft" state).
    pub sessions: HashMap<String, Uuid>,
    /// Tokens of a user issued before this time are revoked.
    pub revoked_before: HashMap<Uuid, i64>,
}

impl Inner {
    /// Whether a token of `user` issued at `issued` has been revoked since.
    pub fn is_revoked(&self, user: Uuid, issued: i64) -> bool {
        self.revoked_before.get(&user).is_some_and(|t| issued < *t)
    }
}

#[derive(Debug)]
pub struct World {
    inner: Mutex<Inner>,
    keys: RwLock<Keys>,
}

impl World {
    pub fn new(directory: Directory) -> anyhow::Result<World> {
        Ok(World {
            inner: Mutex::new(Inner {
                directory,
                ..Inner::default()
            }),
            keys: RwLock::new(Keys::generate()?),
        })
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
