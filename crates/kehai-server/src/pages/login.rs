//! `/login` and `/logout`.
//!
//! A failed login says only that the email or password is incorrect — never which — and takes as
//! long either way ([`password::verify`]). Attempts are limited per client and per email. A
//! successful login always starts a new session (the old one is ended): no session fixation.

use askama::Template;
use axum::{
    Form,
    extract::{Query, State, rejection::FormRejection},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
};
use kehai_core::{Email, PersonKind};
use serde::Deserialize;

use super::{FormError, PageError, render, safe_next, see_other};
use crate::{
    access,
    auth::{
        Visitor, cookies, csrf,
        limiter::ClientIp,
        password,
        session::{self, pre_session_seed},
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
    space.allow_guests.then(|| format!("/s/{}/guest", space.slug))
}

async fn page(
    state: &AppState,
    t: &Catalog,
    headers: &HeaderMap,
    status: StatusCode,
    next: String,
    email: String,
    error: Option<FormError<'_>>,
) -> Response {
    let (seed, set_cookie) = pre_session_seed(headers, state.config.secure_cookies());
    let guest_link = guest_link(state, &next).await;
    let mut response = render(
        status,
        &LoginPage {
            t,
            csrf: csrf::token_for(&seed),
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
    headers: HeaderMap,
    visitor: Option<Visitor>,
) -> Response {
    let next = safe_next(q.next.as_deref());
    if visitor.is_some_and(|v| !v.is_guest()) {
        return see_other(&next);
    }
    let t = state.catalogs.get(lang);
    page(&state, t, &headers, StatusCode::OK, next, String::new(), None).await
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
    ClientIp(client): ClientIp,
    headers: HeaderMap,
    visitor: Option<Visitor>,
    form: Result<Form<LoginForm>, FormRejection>,
) -> Response {
    let Form(form) = match form {
        Ok(form) => form,
        Err(rejection) => return ApiError::from(rejection).into_response(),
    };
    let t = state.catalogs.get(lang);
    let next = safe_next(form.next.as_deref());
    let seed = cookies::get(&headers, csrf::PRE_SESSION_COOKIE).unwrap_or_default();
    if !csrf::verify(&seed, &form.csrf) {
        let expired = FormError::new(t, "csrf_token_invalid", "login.expired");
        return page(&state, t, &headers, StatusCode::FORBIDDEN, next, form.email, Some(expired)).await;
    }
    let email_key = form.email.trim().to_lowercase();
    if !state.login_limiter.allow(client, &email_key) {
        tracing::warn!(client = %client, "login rate limit reached");
        let limited = FormError::new(t, "rate_limited", "login.rate_limited");
        return page(&state, t, &headers, StatusCode::TOO_MANY_REQUESTS, next, form.email, Some(limited)).await;
    }
    let account = match Email::parse(&form.email) {
        Ok(email) => match state.store.account_by_email(&email).await {
            Ok(found) => found,
            Err(e) => {
                tracing::error!(error = %e, "login lookup failed");
                return PageError::Internal.render(t);
            }
        },
        Err(_) => None,
    };
    let (account, hash) = account.map_or((None, None), |(a, h)| (Some(a), Some(h)));
    let ok = password::verify(hash, form.password).await;
    let Some(account) = account.filter(|_| ok) else {
        let failed = FormError::new(t, "login_failed", "login.failed");
        return page(&state, t, &headers, StatusCode::UNAUTHORIZED, next, form.email, Some(failed)).await;
    };
    // A new session id at every login; the previous one (member or guest) ends.
    if let Some(old) = visitor {
        state.end_session(&old.session.id_hash).await;
    }
    match session::start(&state, account.id, PersonKind::Member, None).await {
        Ok((_, cookie)) => {
            tracing::info!(account = %account.id, "logged in");
            let mut response = see_other(&next);
            response.headers_mut().append(header::SET_COOKIE, cookie);
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
    response.headers_mut().append(header::SET_COOKIE, cookies::clear(session::COOKIE, state.config.secure_cookies()));
    response
}
