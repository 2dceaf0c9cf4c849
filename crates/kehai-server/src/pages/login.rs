//! `/login` and `/logout`.
//!
//! A failed login says only that the email or password is incorrect — never which — and takes as
//! long either way ([`crate::auth::password::verify`]). Attempts are limited per client network, failed
//! passwords per email ([`crate::auth::limiter`]), and password checks running at once
//! ([`crate::auth::password::Checker`]). A successful login always starts a new session (the old one is
//! ended): no session fixation; and makes the browser known to the account ([`device`]).

use askama::Template;
use axum::{
    Form,
    extract::{Query, State, rejection::FormRejection},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use kehai_core::{Email, PersonKind};
use serde::Deserialize;

use super::{FormError, PageError, render, safe_next, see_other};
use crate::{
    access,
    auth::{
        Visitor, cookies, device,
        limiter::ClientIp,
        session::{self, Browser},
    },
    error::ApiError,
    i18n::{Catalog, Lang},
    state::AppState,
};

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage<'a> {
    t: &'a Catalog,
    csrf: String,
    next: String,
    email: String,
    error: Option<FormError<'a>>,
    guest_link: Option<String>,
    /// The query the language switch keeps (`next=…&`).
    keep_query: String,
}

#[derive(Debug, Deserialize)]
pub struct NextQuery {
    next: Option<String>,
}

/// The guest-join link for a `next` that is a space accepting guests.
async fn guest_link(state: &AppState, next: &str) -> Option<String> {
    let slug = next.strip_prefix("/s/")?.split(['/', '?']).next()?;
    let space = access::space(state, slug).await.ok()??;
    // A space that takes guests through its link only has no open door to show.
    let open = space.allow_guests && matches!(state.store.guest_link_hash(space.id).await, Ok(None));
    open.then(|| format!("/s/{}/guest", space.slug))
}

async fn page(
    state: &AppState,
    t: &Catalog,
    browser: Browser<'_>,
    status: StatusCode,
    next: String,
    email: String,
    error: Option<FormError<'_>>,
) -> Response {
    let (csrf, set_cookie) = browser.form_token(state);
    let guest_link = guest_link(state, &next).await;
    let mut response = render(
        status,
        &LoginPage {
            t,
            csrf,
            keep_query: format!(
                "{}&",
                url::form_urlencoded::Serializer::new(String::new()).append_pair("next", &next).finish()
            ),
            next,
            email,
            error,
            guest_link,
        },
    );
    if let Some(c) = set_cookie {
        response.headers_mut().append(header::SET_COOKIE, c);
    }
    response
}

pub async fn form(
    State(state): State<AppState>,
    Lang(lang): Lang,
    Query(q): Query<NextQuery>,
    client: ClientIp,
    headers: HeaderMap,
    visitor: Option<Visitor>,
) -> Response {
    let next = safe_next(q.next.as_deref());
    if visitor.is_some_and(|v| !v.is_guest()) {
        return see_other(&next);
    }
    let t = state.catalogs.get(lang);
    let browser = Browser { headers: &headers, client };
    page(&state, t, browser, StatusCode::OK, next, String::new(), None).await
}

#[derive(Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    csrf: String,
    next: Option<String>,
}

pub async fn submit(
    State(state): State<AppState>,
    Lang(lang): Lang,
    client: ClientIp,
    headers: HeaderMap,
    visitor: Option<Visitor>,
    form: Result<Form<LoginForm>, FormRejection>,
) -> Response {
    let Form(form) = match form {
        Ok(form) => form,
        Err(rejection) => return ApiError::from(rejection).into_response(),
    };
    let t = state.catalogs.get(lang);
    let browser = Browser { headers: &headers, client };
    let next = safe_next(form.next.as_deref());
    if !browser.sent_its_token(&state, &form.csrf) {
        let expired = FormError::new(t, "csrf_token_invalid", "login.expired");
        return page(&state, t, browser, StatusCode::FORBIDDEN, next, form.email, Some(expired)).await;
    }
    let limited = |t| FormError::new(t, "rate_limited", "login.rate_limited");
    if !state.login_limiter.allow_client(client) {
        tracing::warn!(client = %client.0, "login rate limit reached");
        return page(&state, t, browser, StatusCode::TOO_MANY_REQUESTS, next, form.email, Some(limited(t))).await;
    }
    let email = Email::parse(&form.email).ok();
    let now = state.clock.now();
    let account = match &email {
        Some(email) => match state.store.account_by_email(email).await {
            Ok(found) => found,
            Err(e) => {
                tracing::error!(error = %e, "login lookup failed");
                return PageError::Internal.render(t);
            }
        },
        None => None,
    };
    let (account, hash) = account.map_or((None, None), |(a, h)| (Some(a), Some(h)));
    // A browser that logged into this account before (its password unchanged since) is not held
    // by the email's lock — unless it failed as often itself.
    let device = match (&email, &hash) {
        (Some(email), Some(hash)) => device::known(&state, &headers, email, hash),
        _ => None,
    };
    let vouched = device.as_ref().is_some_and(|d| !state.login_limiter.device_locked(d, now));
    if let Some(email) = &email
        && state.login_limiter.email_locked(email, now)
        && !vouched
    {
        tracing::warn!(client = %client.0, "login rate limit reached for an email");
        return page(&state, t, browser, StatusCode::TOO_MANY_REQUESTS, next, form.email, Some(limited(t))).await;
    }
    let Ok(ok) = state.passwords.verify(hash.clone(), form.password).await else {
        tracing::warn!("every password check is running: a login was asked to come again");
        let busy = FormError::new(t, "login_busy", "login.busy");
        let mut response = page(&state, t, browser, StatusCode::TOO_MANY_REQUESTS, next, form.email, Some(busy)).await;
        response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        return response;
    };
    let (Some(account), Some(email), Some(hash)) = (account.filter(|_| ok), email.as_ref(), hash.as_deref()) else {
        if let Some(email) = &email {
            state.login_limiter.failed(email, now);
        }
        if let Some(device) = &device {
            state.login_limiter.device_failed(device, now);
        }
        let failed = FormError::new(t, "login_failed", "login.failed");
        return page(&state, t, browser, StatusCode::UNAUTHORIZED, next, form.email, Some(failed)).await;
    };
    state.login_limiter.succeeded(email);
    // A new session id at every login; the previous one (member or guest) ends.
    if let Some(old) = visitor {
        state.end_session(&old.session.id_hash).await;
    }
    match session::start(&state, account.id, PersonKind::Member, None).await {
        Ok((_, cookie)) => {
            tracing::info!(account = %account.id, "logged in");
            let mut response = see_other(&next);
            response.headers_mut().append(header::SET_COOKIE, cookie);
            response.headers_mut().append(header::SET_COOKIE, device::cookie_for(&state, email, hash));
            response
        }
        Err(_) => PageError::Internal.render(t),
    }
}

#[derive(Deserialize)]
pub struct LogoutForm {
    #[serde(default)]
    csrf: String,
}

pub async fn logout(
    State(state): State<AppState>,
    visitor: Option<Visitor>,
    form: Result<Form<LogoutForm>, FormRejection>,
) -> Response {
    let Form(form) = match form {
        Ok(form) => form,
        Err(rejection) => return ApiError::from(rejection).into_response(),
    };
    let Some(visitor) = visitor else {
        return see_other("/login");
    };
    if !visitor.cookie.verify_csrf(&form.csrf) {
        return ApiError::csrf().into_response();
    }
    state.end_session(&visitor.session.id_hash).await;
    let mut response = see_other("/login");
    let secure = state.config.secure_cookies();
    response.headers_mut().append(header::SET_COOKIE, cookies::clear(&cookies::name(session::COOKIE, secure), secure));
    response
}
