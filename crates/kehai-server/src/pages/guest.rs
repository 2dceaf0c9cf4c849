//! `/s/{slug}/guest`: joining a space that allows guests, with a display name only.
//!
//! A space may take guests through its guest link only (`?link=<secret>`, which an admin makes
//! and rotates with `kehai space guests <slug> link`); then the open page says so. Joins are
//! limited per client network, per space each minute, and by the guests a space may hold at
//! once (`max_guests_per_space`).

use askama::Template;
use axum::{
    Form,
    extract::{
        Path, Query, State,
        rejection::{FormRejection, QueryRejection},
    },
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
    /// The guest link's secret the visitor came with (kept in the form).
    link: &'a str,
    display_name: String,
    error: Option<FormError<'a>>,
}

/// A space that takes guests, and the guest link's secret the visitor came with.
struct Door {
    space: Space,
    link: String,
}

/// The hash a guest link's secret is kept as.
pub fn link_hash(secret: &str) -> String {
    crate::opaque::hash(&[b"kehai-guest-link-v1:", secret.as_bytes()])
}

/// The space if it exists and takes guests — through the link the visitor came with, when it
/// takes them through its link only — else the page that says why not.
async fn open_door(state: &AppState, t: &Catalog, slug: &str, link: Option<String>) -> Result<Door, Response> {
    let space = match access::space(state, slug).await {
        Ok(Some(space)) if space.allow_guests => space,
        Ok(Some(_)) => return Err(PageError::GuestsNotAllowed.render(t)),
        Ok(None) => return Err(PageError::NoSpace.render(t)),
        Err(_) => return Err(PageError::Internal.render(t)),
    };
    let link = link.unwrap_or_default();
    match state.store.guest_link_hash(space.id).await {
        Ok(None) => Ok(Door { space, link: String::new() }),
        // Hashes compared: nothing to learn from the time it takes.
        Ok(Some(hash)) if !link.is_empty() && link_hash(&link) == hash => Ok(Door { space, link }),
        Ok(Some(_)) => Err(PageError::GuestLinkRequired.render(t)),
        Err(_) => Err(PageError::Internal.render(t)),
    }
}

fn page(
    state: &AppState,
    t: &Catalog,
    browser: Browser<'_>,
    door: &Door,
    status: StatusCode,
    name: String,
    error: Option<FormError<'_>>,
) -> Response {
    let (csrf, set_cookie) = browser.form_token(state);
    let mut response = render(
        status,
        &GuestPage {
            t,
            slug: door.space.slug.to_string(),
            space_name: door.space.name.as_str(),
            csrf,
            link: &door.link,
            display_name: name,
            error,
        },
    );
    if let Some(c) = set_cookie {
        response.headers_mut().append(header::SET_COOKIE, c);
    }
    response
}

#[derive(Debug, Deserialize)]
pub struct LinkQuery {
    link: Option<String>,
}

pub async fn form(
    State(state): State<AppState>,
    Lang(lang): Lang,
    Path(slug): Path<String>,
    query: Result<Query<LinkQuery>, QueryRejection>,
    client: ClientIp,
    headers: HeaderMap,
    visitor: Option<Visitor>,
) -> Response {
    let t = state.catalogs.get(lang);
    let browser = Browser { headers: &headers, client };
    let door = match open_door(&state, t, &slug, query.ok().and_then(|Query(q)| q.link)).await {
        Ok(door) => door,
        Err(page) => return page,
    };
    // Already in (a member of it, or this space's guest): straight to the space.
    if let Some(v) = visitor
        && access::admit(&state, &slug, v).await.is_ok()
    {
        return see_other(&format!("/s/{}", door.space.slug));
    }
    page(&state, t, browser, &door, StatusCode::OK, String::new(), None)
}

#[derive(Deserialize)]
pub struct GuestForm {
    #[serde(default)]
    display_name: String,
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    link: Option<String>,
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
    let door = match open_door(&state, t, &slug, form.link).await {
        Ok(door) => door,
        Err(page) => return page,
    };
    let refuse = |status, name, error| page(&state, t, browser, &door, status, name, Some(error));
    if !browser.sent_its_token(&state, &form.csrf) {
        let expired = FormError::new(t, "csrf_token_invalid", "login.expired");
        return refuse(StatusCode::FORBIDDEN, form.display_name, expired);
    }
    let Ok(name) = DisplayName::parse(&form.display_name) else {
        let invalid = FormError::new(t, "invalid_display_name", "guest.invalid_name");
        return refuse(StatusCode::UNPROCESSABLE_ENTITY, form.display_name, invalid);
    };
    // Someone already in this space has nothing to join.
    if let Some(v) = visitor.clone()
        && access::admit(&state, &slug, v).await.is_ok()
    {
        return see_other(&format!("/s/{}", door.space.slug));
    }
    if !state.login_limiter.allow_client(client) || !state.login_limiter.allow_guest_join(door.space.id) {
        let limited = FormError::new(t, "rate_limited", "login.rate_limited");
        return refuse(StatusCode::TOO_MANY_REQUESTS, form.display_name, limited);
    }
    let guest = PersonId::new();
    let joining = Guest { id: guest, space_id: door.space.id, display_name: name };
    match state.store.create_guest(&joining, state.clock.now(), state.config.max_guests_per_space).await {
        Ok(true) => {}
        Ok(false) => {
            let full = FormError::new(t, "guests_full", "guest.full");
            return refuse(StatusCode::CONFLICT, joining.display_name.as_str().to_owned(), full);
        }
        Err(e) => {
            tracing::error!(error = %e, "could not create a guest");
            return PageError::Internal.render(t);
        }
    }
    // Joining starts a new session: whatever session the browser had ends (only now that the
    // join went through).
    if let Some(old) = visitor {
        state.end_session(&old.session.id_hash).await;
    }
    match session::start(&state, guest, PersonKind::Guest, Some(door.space.id)).await {
        Ok((_, cookie)) => {
            let mut response = see_other(&format!("/s/{}", door.space.slug));
            response.headers_mut().append(header::SET_COOKIE, cookie);
            response
        }
        Err(_) => PageError::Internal.render(t),
    }
}
