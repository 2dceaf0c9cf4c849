//! Sessions: who a request comes from, found through the `kehai_session` cookie.

use axum::{
    extract::{FromRequestParts, OptionalFromRequestParts},
    http::{HeaderMap, HeaderValue, request::Parts},
};
use kehai_core::{Millis, PersonId, PersonKind, SpaceId};
use kehai_store::Session;
use secrecy::{ExposeSecret, SecretString};

use super::{cookies, csrf, limiter::ClientIp};
use crate::{error::ApiError, state::AppState};

/// The session cookie's name (`__Host-kehai_session` over https: [`cookies::name`]).
pub const COOKIE: &str = "kehai_session";
/// A member stays logged in for two weeks.
pub const MEMBER_TTL_MS: Millis = 14 * 24 * 3600 * 1000;
/// A guest's stay (and the guest) ends after a day at most, or when the browser closes.
pub const GUEST_TTL_MS: Millis = 24 * 3600 * 1000;

/// The secret value of a session cookie. Never logged: `Debug` is redacted.
#[derive(Clone)]
pub struct SessionCookie(SecretString);

impl SessionCookie {
    fn generate() -> Self {
        SessionCookie(crate::opaque::random(32))
    }

    /// What the database stores: the SHA-256 of the cookie value.
    pub fn id_hash(&self) -> String {
        hash_cookie(self.0.expose_secret())
    }

    /// The CSRF token that mutations under this session must carry.
    pub fn csrf_token(&self) -> String {
        csrf::token_for(self.0.expose_secret())
    }

    pub fn verify_csrf(&self, given: &str) -> bool {
        csrf::verify(self.0.expose_secret(), given)
    }

    /// The token a connect link (`/integrations/{provider}/connect?…&connect=`) must carry: its
    /// own, not the session's CSRF token — a link can end up in history and proxy logs, and
    /// this one starts a sign-in and does nothing else.
    pub fn connect_token(&self) -> String {
        csrf::connect_token_for(self.0.expose_secret())
    }

    pub fn verify_connect(&self, given: &str) -> bool {
        bool::from(subtle::ConstantTimeEq::ct_eq(self.connect_token().as_bytes(), given.as_bytes()))
    }
}

impl std::fmt::Debug for SessionCookie {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionCookie(<redacted>)")
    }
}

fn hash_cookie(value: &str) -> String {
    crate::opaque::hash(&[value.as_bytes()])
}

/// The person behind a request: a logged-in member or a guest.
#[derive(Debug, Clone)]
pub struct Visitor {
    pub session: Session,
    pub cookie: SessionCookie,
}

impl Visitor {
    pub fn person_id(&self) -> PersonId {
        self.session.person_id
    }

    pub fn is_guest(&self) -> bool {
        self.session.kind == PersonKind::Guest
    }
}

/// Starts a session for a person; returns it with the `Set-Cookie` header value.
/// Members get a persistent cookie, guests one that ends with the browser.
pub async fn start(
    state: &AppState,
    person_id: PersonId,
    kind: PersonKind,
    space_id: Option<SpaceId>,
) -> Result<(Visitor, HeaderValue), ApiError> {
    let cookie = SessionCookie::generate();
    let now = state.clock.now();
    let ttl = match kind {
        PersonKind::Member => MEMBER_TTL_MS,
        PersonKind::Guest => GUEST_TTL_MS,
    };
    let session =
        Session { id_hash: cookie.id_hash(), person_id, kind, space_id, created_at: now, expires_at: now + ttl };
    state.store.create_session(&session).await?;
    let max_age = (kind == PersonKind::Member).then_some(ttl / 1000);
    let secure = state.config.secure_cookies();
    let header = cookies::set(&cookies::name(COOKIE, secure), cookie.0.expose_secret(), max_age, secure);
    Ok((Visitor { session, cookie }, header))
}

/// The session named by this request's cookie, if it exists and has not expired.
async fn find(parts: &Parts, state: &AppState) -> Result<Option<Visitor>, ApiError> {
    let Some(value) = cookies::get(&parts.headers, &cookies::name(COOKIE, state.config.secure_cookies())) else {
        return Ok(None);
    };
    let session = state.store.session(&hash_cookie(&value), state.clock.now()).await?;
    Ok(session.map(|session| Visitor { session, cookie: SessionCookie(SecretString::from(value)) }))
}

impl FromRequestParts<AppState> for Visitor {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        find(parts, state).await?.ok_or_else(ApiError::unauthorized)
    }
}

impl OptionalFromRequestParts<AppState> for Visitor {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Option<Self>, Self::Rejection> {
        find(parts, state).await
    }
}

/// The extractor for mutations of the JSON API: the visitor, with a valid `X-CSRF-Token`.
#[derive(Debug, Clone)]
pub struct CsrfChecked(pub Visitor);

impl FromRequestParts<AppState> for CsrfChecked {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let visitor = <Visitor as FromRequestParts<AppState>>::from_request_parts(parts, state).await?;
        let given = parts.headers.get(csrf::HEADER).and_then(|v| v.to_str().ok()).unwrap_or("");
        if visitor.cookie.verify_csrf(given) { Ok(CsrfChecked(visitor)) } else { Err(ApiError::csrf()) }
    }
}

/// A browser before login, as the pre-login CSRF token binds it: its cookies and its network.
#[derive(Debug, Clone, Copy)]
pub struct Browser<'a> {
    pub headers: &'a HeaderMap,
    pub client: ClientIp,
}

impl Browser<'_> {
    /// The pre-login form's CSRF token, and the `kehai_csrf` cookie to set when the browser has
    /// no seed yet.
    pub fn form_token(self, state: &AppState) -> (String, Option<HeaderValue>) {
        pre_session_form(state, self.headers, self.client)
    }

    /// Whether a pre-login form came back with the token kehai gave this browser.
    pub fn sent_its_token(self, state: &AppState, given: &str) -> bool {
        pre_session_verified(state, self.headers, self.client, given)
    }
}

fn pre_session_form(state: &AppState, headers: &HeaderMap, client: ClientIp) -> (String, Option<HeaderValue>) {
    let secure = state.config.secure_cookies();
    let name = cookies::name(csrf::PRE_SESSION_COOKIE, secure);
    let (seed, set) = match cookies::get(headers, &name).filter(|v| v.len() >= 32) {
        Some(seed) => (seed, None),
        None => {
            let seed = crate::opaque::random(32).expose_secret().to_owned();
            let header = cookies::set(&name, &seed, None, secure);
            (seed, Some(header))
        }
    };
    let network = client.network().to_string();
    (csrf::pre_session_token(&state.signer, &seed, &network, state.clock.now() / 1000), set)
}

fn pre_session_verified(state: &AppState, headers: &HeaderMap, client: ClientIp, given: &str) -> bool {
    let seed = cookies::get(headers, &cookies::name(csrf::PRE_SESSION_COOKIE, state.config.secure_cookies()));
    let network = client.network().to_string();
    csrf::verify_pre_session(&state.signer, &seed.unwrap_or_default(), &network, given, state.clock.now() / 1000)
}
