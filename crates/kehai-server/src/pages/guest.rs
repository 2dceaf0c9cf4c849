//! `/s/{slug}/guest`: joining a space that allows guests, with a display name only.

use askama::Template;
use axum::{
    Form,
    extract::{Path, State, rejection::FormRejection},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
};
use kehai_core::{DisplayName, Guest, PersonId, PersonKind, Space};
use serde::Deserialize;

use super::{FormError, PageError, render, see_other};
use crate::{
    access,
    auth::{
        Visitor,
        limiter::ClientIp,
        session::{self, Browser},
    },
    error::ApiError,
    i18n::{Catalog, Lang},
    state::AppState,
};

#[derive(Template)]
#[template(path = "guest.html")]
struct GuestPage<'a> {
    t: &'a Catalog,
    slug: String,
    space_name: &'a str,
    csrf: String,
    display_name: String,
    error: Option<FormError<'a>>,
}

/// The space if it exists and takes guests, else the page that says why not.
async fn open_space(state: &AppState, t: &Catalog, slug: &str) -> Result<Space, Response> {
    match access::space(state, slug).await {
        Ok(Some(space)) if space.allow_guests => Ok(space),
        Ok(Some(_)) => Err(PageError::GuestsNotAllowed.render(t)),
        Ok(None) => Err(PageError::NoSpace.render(t)),
        Err(_) => Err(PageError::Internal.render(t)),
    }
}

fn page(
    state: &AppState,
    t: &Catalog,
    browser: Browser<'_>,
    space: &Space,
    status: StatusCode,
    name: String,
    error: Option<FormError<'_>>,
) -> Response {
    let (csrf, set_cookie) = browser.form_token(state);
    let mut response = render(
        status,
        &GuestPage {
            t,
            slug: space.slug.to_string(),
            space_name: space.name.as_str(),
            csrf,
            display_name: name,
            error,
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
    Path(slug): Path<String>,
    client: ClientIp,
    headers: HeaderMap,
    visitor: Option<Visitor>,
) -> Response {
    let t = state.catalogs.get(lang);
    let browser = Browser { headers: &headers, client };
    let space = match open_space(&state, t, &slug).await {
        Ok(space) => space,
        Err(page) => return page,
    };
    // Already in (a member of it, or this space's guest): straight to the space.
    if let Some(v) = visitor
        && access::admit(&state, &slug, v).await.is_ok()
    {
        return see_other(&format!("/s/{}", space.slug));
    }
    page(&state, t, browser, &space, StatusCode::OK, String::new(), None)
}

#[derive(Deserialize)]
pub struct GuestForm {
    #[serde(default)]
    display_name: String,
    #[serde(default)]
    csrf: String,
}

pub async fn join(
    State(state): State<AppState>,
    Lang(lang): Lang,
    Path(slug): Path<String>,
    client: ClientIp,
    headers: HeaderMap,
    visitor: Option<Visitor>,
    form: Result<Form<GuestForm>, FormRejection>,
) -> Response {
    let Form(form) = match form {
        Ok(form) => form,
        Err(rejection) => return ApiError::from(rejection).into_response(),
    };
    let t = state.catalogs.get(lang);
    let browser = Browser { headers: &headers, client };
    let space = match open_space(&state, t, &slug).await {
        Ok(space) => space,
        Err(page) => return page,
    };
    if !browser.sent_its_token(&state, &form.csrf) {
        return page(
            &state,
            t,
            browser,
            &space,
            StatusCode::FORBIDDEN,
            form.display_name,
            Some(FormError::new(t, "csrf_token_invalid", "login.expired")),
        );
    }
    let Ok(name) = DisplayName::parse(&form.display_name) else {
        let invalid = FormError::new(t, "invalid_display_name", "guest.invalid_name");
        return page(&state, t, browser, &space, StatusCode::UNPROCESSABLE_ENTITY, form.display_name, Some(invalid));
    };
    // Someone already in this space has nothing to join.
    if let Some(v) = visitor.clone()
        && access::admit(&state, &slug, v).await.is_ok()
    {
        return see_other(&format!("/s/{}", space.slug));
    }
    if !state.login_limiter.allow_client(client) {
        let limited = FormError::new(t, "rate_limited", "login.rate_limited");
        return page(&state, t, browser, &space, StatusCode::TOO_MANY_REQUESTS, form.display_name, Some(limited));
    }
    // Joining starts a new session: whatever session the browser had ends.
    if let Some(old) = visitor {
        state.end_session(&old.session.id_hash).await;
    }
    let guest = PersonId::new();
    if let Err(e) =
        state.store.create_guest(&Guest { id: guest, space_id: space.id, display_name: name }, state.clock.now()).await
    {
        tracing::error!(error = %e, "could not create a guest");
        return PageError::Internal.render(t);
    }
    match session::start(&state, guest, PersonKind::Guest, Some(space.id)).await {
        Ok((_, cookie)) => {
            let mut response = see_other(&format!("/s/{}", space.slug));
            response.headers_mut().append(header::SET_COOKIE, cookie);
            response
        }
        Err(_) => PageError::Internal.render(t),
    }
}
