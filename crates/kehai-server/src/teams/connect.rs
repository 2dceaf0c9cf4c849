//! Connecting Microsoft Teams (S5, S8, S12, S17, S20): `GET /integrations/msteams/connect`
//! starts a sign-in in the popup, `GET /integrations/msteams/callback` finishes it.
//!
//! The sign-in's `state` is single-use, bound to the session and the space, lives ten minutes,
//! and is kept in the database (only its hash) so any instance can finish the flow; its nonce
//! and PKCE verifier are sealed. Every ending is a page in the visitor's language — done,
//! expired, admin approval needed (with the admin-consent link), cancelled, personal account
//! refused, or Microsoft's AADSTS code — and nothing is stored unless the sign-in succeeded.

use askama::Template;
use axum::{
    extract::{Query, State, rejection::QueryRejection},
    http::StatusCode,
    response::Response,
};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use kehai_core::SpaceSlug;
use kehai_microsoft::{CONSUMER_TENANT, MicrosoftError};
use kehai_store::{Connection, ConnectionId, ConnectionState, OAuthState, Sealed, StoreError, secrets::row_label};
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::Teams;
use crate::{
    access,
    auth::Visitor,
    i18n::{Catalog, Lang},
    pages::{render, see_other},
    state::AppState,
};

/// A sign-in must come back within ten minutes.
const SIGN_IN_MS: i64 = 10 * 60 * 1000;

#[derive(Template)]
#[template(path = "teams_result.html")]
struct ResultPage<'a> {
    t: &'a Catalog,
    outcome: &'a str,
    title_key: &'a str,
    message_key: &'a str,
    detail: Option<String>,
    admin_url: Option<String>,
}

/// How a sign-in ended.
#[derive(Debug)]
enum Outcome {
    Connected,
    Expired,
    AdminApproval { admin_url: String },
    Approved,
    Cancelled,
    Personal,
    Taken,
    Failed { code: Option<u32>, error: String },
    Unavailable,
    MembersOnly,
    NotConfigured,
}

fn page(t: &Catalog, outcome: Outcome) -> Response {
    let (status, name, title_key, message_key, detail, admin_url) = match outcome {
        Outcome::Connected => (StatusCode::OK, "connected", "teams.done_title", "teams.done", None, None),
        Outcome::Expired => (StatusCode::BAD_REQUEST, "expired", "teams.expired_title", "teams.expired", None, None),
        Outcome::AdminApproval { admin_url } => {
            (StatusCode::OK, "admin-approval", "teams.admin_title", "teams.admin", None, Some(admin_url))
        }
        Outcome::Approved => (StatusCode::OK, "approved", "teams.approved_title", "teams.approved", None, None),
        Outcome::Cancelled => (StatusCode::OK, "cancelled", "teams.cancelled_title", "teams.cancelled", None, None),
        Outcome::Personal => (StatusCode::FORBIDDEN, "personal", "teams.personal_title", "teams.personal", None, None),
        Outcome::Taken => (StatusCode::CONFLICT, "taken", "teams.taken_title", "teams.taken", None, None),
        Outcome::Failed { code, error } => {
            let detail = code.map_or(error.clone(), |c| format!("AADSTS{c} ({error})"));
            (StatusCode::BAD_GATEWAY, "failed", "teams.failed_title", "teams.failed", Some(detail), None)
        }
        Outcome::Unavailable => {
            (StatusCode::BAD_GATEWAY, "failed", "teams.failed_title", "teams.unavailable", None, None)
        }
        Outcome::MembersOnly => {
            (StatusCode::FORBIDDEN, "members-only", "teams.members_only_title", "teams.members_only", None, None)
        }
        Outcome::NotConfigured => (
            StatusCode::NOT_FOUND,
            "not-configured",
            "teams.not_configured_title",
            "status.teams_not_configured",
            None,
            None,
        ),
    };
    render(status, &ResultPage { t, outcome: name, title_key, message_key, detail, admin_url })
}

fn hash(value: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(value.as_bytes()))
}

pub(super) fn random(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut buf);
    URL_SAFE_NO_PAD.encode(buf)
}

#[derive(Debug, Deserialize)]
pub struct StartQuery {
    space: Option<String>,
}

/// `GET /integrations/msteams/connect?space={slug}`: the popup's first page.
pub async fn start(
    State(state): State<AppState>,
    Lang(lang): Lang,
    q: Result<Query<StartQuery>, QueryRejection>,
    visitor: Option<Visitor>,
) -> Response {
    let t = state.catalogs.get(lang);
    // A query that does not decode (`space` twice, …) names no space.
    let slug = q.ok().and_then(|Query(q)| q.space).unwrap_or_default();
    let Some(visitor) = visitor else {
        return see_other(&format!(
            "/login?next=/s/{}",
            SpaceSlug::parse(&slug).map(|s| s.to_string()).unwrap_or_default()
        ));
    };
    if visitor.is_guest() {
        return page(t, Outcome::MembersOnly);
    }
    let Some(teams) = state.teams.clone() else {
        return page(t, Outcome::NotConfigured);
    };
    let admitted = match access::admit(&state, &slug, visitor).await {
        Ok(a) => a,
        Err(access::Refusal::NoSuchSpace) => return crate::pages::PageError::NoSpace.render(t),
        Err(access::Refusal::Forbidden) => return crate::pages::PageError::Forbidden.render(t),
        Err(access::Refusal::Failed(_)) => return crate::pages::PageError::Internal.render(t),
    };
    let request = match teams.identity.authorization_request(&teams.redirect_uri) {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "cannot build the Microsoft sign-in");
            return page(t, Outcome::Unavailable);
        }
    };
    let state_hash = hash(request.state.expose_secret());
    let seal = |value: &SecretString, what: &str| {
        state.secrets.seal(value, &row_label("oauth", &state_hash, what)).map(Sealed)
    };
    let (Ok(nonce), Ok(verifier)) = (seal(&request.nonce, "nonce"), seal(&request.pkce_verifier, "pkce_verifier"))
    else {
        return crate::pages::PageError::Internal.render(t);
    };
    let sign_in = OAuthState {
        state_hash: state_hash.clone(),
        provider: "msteams".to_owned(),
        session_hash: admitted.visitor.session.id_hash.clone(),
        space_id: admitted.space.id,
        nonce,
        pkce_verifier: verifier,
        expires_at: state.clock.now() + SIGN_IN_MS,
    };
    if let Err(e) = state.store.create_oauth_state(&sign_in).await {
        tracing::error!(error = %e, "cannot store a sign-in");
        return crate::pages::PageError::Internal.render(t);
    }
    see_other(request.url.as_str())
}

/// Microsoft's answer. No `Debug`: it holds the code and the state.
#[derive(Deserialize)]
pub struct CallbackQuery {
    state: Option<String>,
    code: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
    error_subcode: Option<String>,
    admin_consent: Option<String>,
}

/// `GET /integrations/msteams/callback`: Microsoft sends the popup back here.
pub async fn callback(
    State(state): State<AppState>,
    Lang(lang): Lang,
    q: Result<Query<CallbackQuery>, QueryRejection>,
    visitor: Option<Visitor>,
) -> Response {
    let t = state.catalogs.get(lang);
    // Not Microsoft's answer (a parameter twice, …): no sign-in to finish.
    let Ok(Query(q)) = q else {
        return page(t, Outcome::Expired);
    };
    let Some(teams) = state.teams.clone() else {
        return page(t, Outcome::NotConfigured);
    };
    // An administrator coming back from the admin-consent page (S17).
    if q.admin_consent.is_some() {
        return page(t, if q.error.is_none() { Outcome::Approved } else { Outcome::Cancelled });
    }
    let (Some(visitor), Some(state_param)) = (visitor, q.state.as_deref()) else {
        return page(t, Outcome::Expired);
    };
    // Single use: taken (deleted) whatever happens next.
    let sign_in = match state.store.take_oauth_state(&hash(state_param), state.clock.now()).await {
        Ok(Some(s)) if s.session_hash == visitor.session.id_hash => s,
        Ok(_) => return page(t, Outcome::Expired),
        Err(e) => {
            tracing::error!(error = %e, "cannot read a sign-in");
            return crate::pages::PageError::Internal.render(t);
        }
    };
    if let Some(error) = q.error.as_deref() {
        return page(
            t,
            refusal(
                &teams,
                error,
                q.error_description.as_deref().unwrap_or(""),
                q.error_subcode.as_deref(),
                state_param,
            ),
        );
    }
    let Some(code) = q.code.as_deref() else {
        return page(t, Outcome::Expired);
    };
    match finish(&state, &teams, &visitor, &sign_in, code).await {
        Ok(()) => page(t, Outcome::Connected),
        Err(outcome) => page(t, outcome),
    }
}

/// What Microsoft's `error` means for the person (S12, S17).
fn refusal(teams: &Teams, error: &str, description: &str, subcode: Option<&str>, state: &str) -> Outcome {
    let code = MicrosoftError::identity_code(description);
    match (error, code) {
        (_, Some(90094 | 65001 | 900941 | 90095)) | ("consent_required", _) => {
            Outcome::AdminApproval { admin_url: teams.identity.admin_consent_url(&teams.redirect_uri, state) }
        }
        (_, Some(500208 | 50020)) => Outcome::Personal,
        ("access_denied", Some(65004)) | ("access_denied", None)
            if subcode == Some("cancel") || code == Some(65004) =>
        {
            Outcome::Cancelled
        }
        _ => Outcome::Failed { code, error: error.to_owned() },
    }
}

/// The sign-in succeeded at Microsoft: check the identity, store the connection, subscribe,
/// show the current presence.
async fn finish(
    state: &AppState,
    teams: &Teams,
    visitor: &Visitor,
    sign_in: &OAuthState,
    code: &str,
) -> Result<(), Outcome> {
    let open = |sealed: &Sealed, what: &str| {
        state.secrets.open(&sealed.0, &row_label("oauth", &sign_in.state_hash, what)).map_err(|_| Outcome::Expired)
    };
    let verifier = open(&sign_in.pkce_verifier, "pkce_verifier")?;
    let nonce = open(&sign_in.nonce, "nonce")?;
    let failed = |e: MicrosoftError| match e {
        MicrosoftError::Transport(_) => Outcome::Unavailable,
        // The token endpoint's refusals mean what the authorize endpoint's do.
        MicrosoftError::Identity { error, description, .. } => {
            refusal(teams, &error, &description, None, &sign_in.state_hash)
        }
        other => Outcome::Failed { code: other.aadsts(), error: error_name(&other) },
    };
    let tokens = teams.identity.exchange_code(code, &verifier, &teams.redirect_uri).await.map_err(failed)?;
    let id_token = tokens.id_token.as_deref().ok_or(Outcome::Failed { code: None, error: "no id token".into() })?;
    let claims = teams.id_tokens.validate(id_token, &nonce).await.map_err(failed)?;
    if claims.tid == CONSUMER_TENANT {
        return Err(Outcome::Personal);
    }
    // The seed's scopes give no `oid`: the presence's `id` is the user's object id.
    let presence = teams.graph.my_presence(&tokens.access_token, &claims.tid).await.map_err(failed)?;

    let now = state.clock.now();
    let account = visitor.person_id();
    let existing = state.store.connection_of(account, "msteams").await.map_err(|_| Outcome::Unavailable)?;
    // Still a member of the space the sign-in was for?
    if !matches!(state.store.role_in(sign_in.space_id, account).await, Ok(Some(_))) {
        return Err(Outcome::Expired);
    }
    // Another Microsoft account than before (S8): its old subscription goes once the new
    // connection is stored (best effort; an orphan lapses within the hour and its notifications
    // are ignored). Its token is fetched now, before the new one replaces it.
    let mut old_subscription = None;
    if let Some(mut old) = existing.clone().filter(|c| c.external_user != presence.id)
        && let Some(sub) = old.subscription.clone()
        && let Ok(token) = super::tokens::access_token(state, teams, &mut old).await
    {
        old_subscription = Some((token, sub.id));
    }
    let id = existing.as_ref().map_or_else(ConnectionId::new, |c| c.id);
    let sealed = super::tokens::sealed(state, id, &tokens, now).map_err(|_| Outcome::Unavailable)?;
    let mut connection = Connection {
        id,
        account_id: account,
        provider: "msteams".to_owned(),
        external_tenant: claims.tid.clone(),
        external_user: presence.id.clone(),
        access_token: sealed.access_token,
        access_expires_at: sealed.access_expires_at,
        access_refresh_at: sealed.access_refresh_at,
        refresh_token: sealed.refresh_token,
        refresh_expires_at: sealed.refresh_expires_at,
        subscription: None,
        state: ConnectionState::Connected,
        last_error: None,
        last_sequence: presence.sequence_number.clone(),
        next_check_at: None,
        connected_at: existing.as_ref().filter(|c| c.external_user == presence.id).map_or(now, |c| c.connected_at),
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
    if let Some((token, id)) = old_subscription
        && let Err(e) = teams.graph.delete_subscription(&token, &id).await
    {
        tracing::warn!(error = %e, "the previous account's subscription could not be deleted");
    }

    match super::upkeep::subscribe(state, teams, &tokens.access_token, &presence.id, connection.id).await {
        Ok(record) => connection.subscription = Some(record),
        Err(e) => {
            tracing::warn!(error = %e, "could not subscribe to presence changes");
            connection.state = ConnectionState::Error;
            connection.last_error = Some("Microsoft did not accept kehai's subscription to presence changes.".into());
        }
    }
    if state.store.save_connection(&connection).await.is_err() {
        // Not recorded: do not leave a subscription nobody knows about.
        if let Some(sub) = &connection.subscription {
            let _ = teams.graph.delete_subscription(&tokens.access_token, &sub.id).await;
        }
        return Err(Outcome::Unavailable);
    }
    // Logged where it failed; the next notification shows it.
    let _ = super::show_presence(state, connection.id, account, &presence).await;
    tracing::info!(account = %account, "Microsoft Teams connected");
    Ok(())
}

/// The error's name for the page (never a token).
fn error_name(e: &MicrosoftError) -> String {
    match e {
        MicrosoftError::Identity { error, .. } => error.clone(),
        MicrosoftError::Graph { code, .. } => code.clone(),
        MicrosoftError::IdToken(_) => "invalid_id_token".into(),
        MicrosoftError::Transport(_) => "unavailable".into(),
    }
}
