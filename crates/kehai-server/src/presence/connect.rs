//! Connecting a provider in the popup: `GET /integrations/{provider}/connect` starts the sign-in,
//! `GET /integrations/{provider}/callback` finishes it.
//!
//! Starting one needs the session's connect token in the link (`&connect=`, which the page's
//! Connect button adds; a token of its own, not the session's CSRF token, since links end up in
//! history and logs): a cross-site navigation cannot drop a member into a provider's account
//! picker for a space of the attacker's choosing. A session holds at most [`PENDING_PER_SESSION`]
//! sign-ins in progress; starting another drops the oldest.
//!
//! The sign-in's `state` is single-use, bound to the session, the space and the provider, lives
//! ten minutes, and is kept in the database (only its hash) so any instance can finish the flow;
//! its nonce and PKCE verifier are sealed. Every ending is a page in the visitor's language —
//! done, expired, admin approval needed (with the admin-consent link), cancelled, personal
//! account refused, or the provider's code — and nothing is stored unless the sign-in
//! succeeded. A member connects one account per provider; connecting again with another account
//! replaces the connection (its old subscription is ended).

use std::sync::Arc;

use askama::Template;
use axum::{
    extract::{Query, State, rejection::QueryRejection},
    http::StatusCode,
    response::Response,
};
use kehai_core::SpaceSlug;
use kehai_store::{
    Connection, ConnectionId, ConnectionState, OAuthState, Sealed, StoreError,
    secrets::{Place, SignInSecret},
};
use secrecy::{ExposeSecret, SecretString};

use super::{CallbackParams, Known, Outcome, Provider, SignInSecrets, SignedIn, apply, renewal, tokens};
use crate::{
    access,
    auth::Visitor,
    i18n::{Catalog, Lang},
    pages::{PageError, render, see_other},
    state::AppState,
};

/// A sign-in must come back within ten minutes.
const SIGN_IN_MS: i64 = 10 * 60 * 1000;
/// Sign-ins in progress one session may hold.
pub const PENDING_PER_SESSION: u32 = 5;

/// The sign-in routes of every provider kehai knows, each its own route (request metrics keep
/// their paths, `/integrations/msteams/connect`).
pub fn router(engine: &super::Engine) -> axum::Router<AppState> {
    let mut router = axum::Router::new();
    for known in engine.known() {
        let id = known.id;
        router = router
            .route(
                &format!("/integrations/{id}/connect"),
                axum::routing::get(move |state, lang, query, visitor| start(state, lang, id, query, visitor)),
            )
            .route(
                &format!("/integrations/{id}/callback"),
                axum::routing::get(move |state, lang, query, visitor| callback(state, lang, id, query, visitor)),
            );
    }
    router
}

#[derive(Template)]
#[template(path = "connect_result.html")]
struct ResultPage<'a> {
    t: &'a Catalog,
    provider: &'a str,
    outcome: &'a str,
    title_key: String,
    message_key: String,
    detail: Option<String>,
    admin_url: Option<String>,
}

/// The popup's last page: the outcome's name (`data-outcome`), and its words from the provider's
/// catalog section.
fn page(t: &Catalog, provider: &str, outcome: Outcome) -> Response {
    let (status, name, title, message, detail, admin_url) = match outcome {
        Outcome::Connected => (StatusCode::OK, "connected", "done_title", "done", None, None),
        Outcome::Expired => (StatusCode::BAD_REQUEST, "expired", "expired_title", "expired", None, None),
        Outcome::AdminApproval { admin_url } => {
            (StatusCode::OK, "admin-approval", "admin_title", "admin", None, Some(admin_url))
        }
        Outcome::Approved => (StatusCode::OK, "approved", "approved_title", "approved", None, None),
        Outcome::Cancelled => (StatusCode::OK, "cancelled", "cancelled_title", "cancelled", None, None),
        Outcome::Personal => (StatusCode::FORBIDDEN, "personal", "personal_title", "personal", None, None),
        Outcome::OtherOrganization => {
            (StatusCode::FORBIDDEN, "other-organization", "other_organization_title", "other_organization", None, None)
        }
        Outcome::ScopeMissing => (StatusCode::FORBIDDEN, "scope-missing", "scope_title", "scope", None, None),
        Outcome::Taken => (StatusCode::CONFLICT, "taken", "taken_title", "taken", None, None),
        Outcome::Failed { detail } => (StatusCode::BAD_GATEWAY, "failed", "failed_title", "failed", Some(detail), None),
        Outcome::Unavailable => (StatusCode::BAD_GATEWAY, "failed", "failed_title", "unavailable", None, None),
        Outcome::MembersOnly => {
            (StatusCode::FORBIDDEN, "members-only", "members_only_title", "members_only", None, None)
        }
        Outcome::NotConfigured => {
            (StatusCode::NOT_FOUND, "not-configured", "not_configured_title", "not_configured", None, None)
        }
    };
    render(
        status,
        &ResultPage {
            t,
            provider,
            outcome: name,
            title_key: format!("{provider}.{title}"),
            message_key: format!("{provider}.{message}"),
            detail,
            admin_url,
        },
    )
}

/// The provider `id` as this server knows it: offered (`Ok(Some)`), known but not configured
/// (`Ok(None)`), or unknown (`Err`: no such page).
fn known(state: &AppState, id: &str) -> Result<Known, PageError> {
    state.presence.known().iter().find(|k| k.id == id).cloned().ok_or(PageError::NoPage)
}

/// `GET /integrations/{provider}/connect?space={slug}&connect={token}`: the popup's first page.
async fn start(
    State(state): State<AppState>,
    Lang(lang): Lang,
    provider: &'static str,
    q: Result<Query<Vec<(String, String)>>, QueryRejection>,
    visitor: Option<Visitor>,
) -> Response {
    let t = state.catalogs.get(lang);
    let known = match known(&state, provider) {
        Ok(known) => known,
        Err(e) => return e.render(t),
    };
    // A parameter given twice (or a query that does not decode) is not given.
    let pairs = q.map(|Query(pairs)| pairs).unwrap_or_default();
    let once = |name: &str| {
        let mut values = pairs.iter().filter(|(n, _)| n == name).map(|(_, v)| v.as_str());
        match (values.next(), values.next()) {
            (Some(value), None) => value,
            _ => "",
        }
    };
    let (slug, token) = (once("space").to_owned(), once("connect"));
    let Some(visitor) = visitor else {
        return see_other(&format!(
            "/login?next=/s/{}",
            SpaceSlug::parse(&slug).map(|s| s.to_string()).unwrap_or_default()
        ));
    };
    if visitor.is_guest() {
        return page(t, known.id, Outcome::MembersOnly);
    }
    // Not from kehai's own page (a link or a navigation from elsewhere): nothing is started.
    if !visitor.cookie.verify_connect(token) {
        return page(t, known.id, Outcome::Expired);
    }
    let Some(provider) = known.offered else {
        return page(t, known.id, Outcome::NotConfigured);
    };
    let admitted = match access::admit(&state, &slug, visitor).await {
        Ok(a) => a,
        Err(access::Refusal::NoSuchSpace) => return PageError::NoSpace.render(t),
        Err(access::Refusal::Forbidden) => return PageError::Forbidden.render(t),
        Err(access::Refusal::Failed(_)) => return PageError::Internal.render(t),
    };
    let sign_in = match provider.sign_in().await {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(provider = provider.id(), error = %e, "cannot build the sign-in");
            return page(t, provider.id(), Outcome::Unavailable);
        }
    };
    let state_hash = crate::opaque::hash(&[sign_in.state.expose_secret().as_bytes()]);
    let seal = |value: &SecretString, secret| state.secrets.seal(value, Place::SignIn(&state_hash, secret)).map(Sealed);
    let (Ok(nonce), Ok(verifier)) = (
        seal(&sign_in.secrets.nonce, SignInSecret::Nonce),
        seal(&sign_in.secrets.pkce_verifier, SignInSecret::PkceVerifier),
    ) else {
        return PageError::Internal.render(t);
    };
    let stored = OAuthState {
        state_hash: state_hash.clone(),
        provider: provider.id().to_owned(),
        session_hash: admitted.visitor.session.id_hash.clone(),
        space_id: admitted.space.id,
        nonce,
        pkce_verifier: verifier,
        expires_at: state.clock.now() + SIGN_IN_MS,
    };
    if let Err(e) = state.store.create_oauth_state(&stored, PENDING_PER_SESSION).await {
        tracing::error!(error = %e, "cannot store a sign-in");
        return PageError::Internal.render(t);
    }
    see_other(sign_in.url.as_str())
}

/// `GET /integrations/{provider}/callback`: the provider sends the popup back here.
async fn callback(
    State(state): State<AppState>,
    Lang(lang): Lang,
    provider: &'static str,
    q: Result<Query<Vec<(String, String)>>, QueryRejection>,
    visitor: Option<Visitor>,
) -> Response {
    let t = state.catalogs.get(lang);
    let known = match known(&state, provider) {
        Ok(known) => known,
        Err(e) => return e.render(t),
    };
    // Not the provider's answer (a parameter twice, …): no sign-in to finish.
    let Some(params) = q.ok().and_then(|Query(pairs)| CallbackParams::new(pairs)) else {
        return page(t, known.id, Outcome::Expired);
    };
    let Some(provider) = known.offered else {
        return page(t, known.id, Outcome::NotConfigured);
    };
    if let Some(outcome) = provider.early_answer(&params) {
        return page(t, provider.id(), outcome);
    }
    let (Some(visitor), Some(state_param)) = (visitor, params.get("state")) else {
        return page(t, provider.id(), Outcome::Expired);
    };
    // Single use: taken (deleted) whatever happens next.
    let state_hash = crate::opaque::hash(&[state_param.as_bytes()]);
    let sign_in = match state.store.take_oauth_state(&state_hash, state.clock.now()).await {
        Ok(Some(s)) if s.session_hash == visitor.session.id_hash && s.provider == provider.id() => s,
        Ok(_) => return page(t, provider.id(), Outcome::Expired),
        Err(e) => {
            tracing::error!(error = %e, "cannot read a sign-in");
            return PageError::Internal.render(t);
        }
    };
    if params.get("error").is_some() {
        return page(t, provider.id(), provider.refusal(&params, state_param));
    }
    let Some(code) = params.get("code") else {
        return page(t, provider.id(), Outcome::Expired);
    };
    let outcome = match finish(&state, &provider, &visitor, &sign_in, code, state_param).await {
        Ok(()) => Outcome::Connected,
        Err(outcome) => outcome,
    };
    page(t, provider.id(), outcome)
}

/// The sign-in succeeded at the provider: check the account, store the connection, subscribe,
/// show the current presence.
async fn finish(
    state: &AppState,
    provider: &Arc<dyn Provider>,
    visitor: &Visitor,
    sign_in: &OAuthState,
    code: &str,
    state_param: &str,
) -> Result<(), Outcome> {
    let open = |sealed: &Sealed, secret| {
        state.secrets.open(&sealed.0, Place::SignIn(&sign_in.state_hash, secret)).map_err(|_| Outcome::Expired)
    };
    let secrets = SignInSecrets {
        nonce: open(&sign_in.nonce, SignInSecret::Nonce)?,
        pkce_verifier: open(&sign_in.pkce_verifier, SignInSecret::PkceVerifier)?,
    };
    let SignedIn { tenant, user, tokens: issued, scope, reading } =
        provider.finish(state, code, &secrets, state_param).await?;

    let now = state.clock.now();
    let account = visitor.person_id();
    let existing = state.store.connection_of(account, provider.id()).await.map_err(|_| Outcome::Unavailable)?;
    // Still a member of the space the sign-in was for?
    if !matches!(state.store.role_in(sign_in.space_id, account).await, Ok(Some(_))) {
        return Err(Outcome::Expired);
    }
    // Connected before (another account, or the same one again): its old subscription goes
    // once the new connection is stored (best effort; an orphan lapses by itself and its
    // notifications are ignored). Its token is had now, before the new one replaces it.
    let mut old_subscriptions = None;
    if let Some(mut old) = existing.clone()
        && old.subscription.is_some()
        && let Ok(token) = tokens::access_token(state, &**provider, &mut old).await
    {
        old_subscriptions = Some((token, old));
    }
    let id = existing.as_ref().map_or_else(ConnectionId::new, |c| c.id);
    let sealed = tokens::sealed(state, &**provider, id, &issued, now).map_err(|_| Outcome::Unavailable)?;
    let mut connection = Connection {
        id,
        account_id: account,
        provider: provider.id().to_owned(),
        external_tenant: tenant,
        external_user: user.clone(),
        access_token: sealed.access_token,
        access_expires_at: sealed.access_expires_at,
        access_refresh_at: sealed.access_refresh_at,
        refresh_token: sealed.refresh_token,
        refresh_expires_at: sealed.refresh_expires_at,
        subscription: None,
        state: ConnectionState::Connected,
        last_error: None,
        last_sequence: reading.order.clone(),
        next_check_at: None,
        granted_scope: scope,
        previous_subscription: None,
        connected_at: existing.as_ref().filter(|c| c.external_user == user).map_or(now, |c| c.connected_at),
        updated_at: now,
    };
    match state.store.save_connection(&connection).await {
        Ok(()) => {}
        Err(StoreError::Conflict(_)) => return Err(Outcome::Taken),
        Err(e) => {
            tracing::error!(error = %e, "cannot store a connection");
            return Err(Outcome::Unavailable);
        }
    }
    state.store.set_connection_space(connection.id, sign_in.space_id, true).await.map_err(|_| Outcome::Unavailable)?;
    // Whatever the provider kept for this connection (another account's, or from before) is
    // out of date.
    provider.changed(&connection);
    if let Some((token, old)) = old_subscriptions {
        renewal::end_all(&**provider, &token, &old).await;
    }

    match renewal::subscribe_if_offered(state, &**provider, &issued.access_token, &connection).await {
        Ok(record) => connection.subscription = record,
        Err(e) if provider.reads_unsubscribed() => {
            tracing::info!(error = %e, provider = provider.id(), "no subscription: the connection is read on its schedule");
        }
        Err(e) => {
            tracing::warn!(error = %e, "could not subscribe to presence changes");
            connection.state = ConnectionState::Error;
            connection.last_error =
                Some(format!("{} did not accept kehai's subscription to presence changes.", provider.name()));
        }
    }
    // A change read and shown while the subscription was being made (it delivers from the
    // moment it is stored) is newer than the reading this sign-in began with: keep its order.
    if let Ok(Some(stored)) = state.store.connection(connection.id).await
        && stored.last_sequence.as_deref().map(str::as_bytes) > connection.last_sequence.as_deref().map(str::as_bytes)
    {
        connection.last_sequence = stored.last_sequence;
    }
    if state.store.save_connection(&connection).await.is_err() {
        // Not recorded: do not leave a subscription nobody knows about.
        if let Some(sub) = &connection.subscription {
            let _ = provider.unsubscribe(&issued.access_token, sub).await;
        }
        return Err(Outcome::Unavailable);
    }
    // Shown through the order check (what a notification showed meanwhile is newer); a failure
    // is logged where it happened, and the next notification shows it.
    let _ = apply::apply(state, &**provider, &connection, &reading, true).await;
    // A provider whose notifications carry nothing (Google) may have announced a change made
    // between the reading and the subscription's being stored to nobody: read once more
    // shortly, as for a notification.
    if provider.debounced() && connection.subscription.is_some() {
        super::retry::schedule(state, provider.id(), connection.id);
    }
    tracing::info!(account = %account, provider = provider.id(), "connected");
    Ok(())
}
