//! Server-rendered pages (askama templates in `templates/`) and the static assets they load.
//!
//! Every page is rendered in the request's language ([`crate::i18n::Lang`]); forms carry a CSRF
//! token in a hidden `csrf` field.

pub mod assets;
pub mod guest;
pub mod home;
pub mod login;
pub mod space;

use askama::Template;
use axum::{
    http::{StatusCode, header},
    response::{Html, IntoResponse, Redirect, Response},
    routing::{get, post},
};

use crate::{
    i18n::{self, Catalog},
    state::AppState,
};

pub fn router() -> axum::Router<AppState> {
    axum::Router::new()
        .route("/", get(home::show))
        .route("/login", get(login::form).post(login::submit))
        .route("/logout", post(login::logout))
        .route("/s/{slug}", get(space::show))
        .route("/s/{slug}/guest", get(guest::form).post(guest::join))
        .route("/static/{file}", get(assets::serve))
        .route("/static/space/{module}", get(assets::space_module))
}

/// Renders a template as an HTML response with `status`.
pub fn render(status: StatusCode, template: &impl Template) -> Response {
    match template.render() {
        Ok(html) => {
            let mut response = (status, Html(html)).into_response();
            i18n::vary(response.headers_mut());
            response.headers_mut().insert(header::CACHE_CONTROL, header::HeaderValue::from_static("no-store"));
            response
        }
        Err(e) => {
            tracing::error!(error = %e, "template failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response()
        }
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    t: &'a Catalog,
    /// The stable code (`data-error-code`), the same as the JSON API's for the same refusal.
    code: &'static str,
    title_key: &'a str,
    message_key: &'a str,
    link: &'a str,
    link_key: &'a str,
}

/// Why a form was refused: the stable code (`data-error-code`, the JSON API's code for the same
/// refusal) and the message shown, in the visitor's language.
pub struct FormError<'a> {
    pub code: &'static str,
    pub message: &'a str,
}

impl<'a> FormError<'a> {
    /// The refusal `code` with the catalog's message `key`.
    pub fn new(t: &'a Catalog, code: &'static str, key: &'a str) -> Self {
        FormError { code, message: t.get(key) }
    }
}

/// The error pages a visitor can meet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageError {
    NoPage,
    NoSpace,
    Forbidden,
    GuestsNotAllowed,
    /// The space takes guests through its guest link only, and this was not it.
    GuestLinkRequired,
    Internal,
}

impl PageError {
    pub fn render(self, t: &Catalog) -> Response {
        let (status, code, title_key, message_key, link, link_key) = match self {
            PageError::NoPage => {
                (StatusCode::NOT_FOUND, "route_not_found", "error.not_found_title", "error.no_page", "/", "error.home")
            }
            PageError::NoSpace => {
                (StatusCode::NOT_FOUND, "space_not_found", "error.not_found_title", "error.no_space", "/", "error.home")
            }
            PageError::Forbidden => {
                (StatusCode::FORBIDDEN, "forbidden", "error.forbidden_title", "error.forbidden", "/", "error.home")
            }
            PageError::GuestsNotAllowed => (
                StatusCode::FORBIDDEN,
                "guests_not_allowed",
                "error.forbidden_title",
                "error.guests_not_allowed",
                "/login",
                "error.login",
            ),
            PageError::GuestLinkRequired => (
                StatusCode::FORBIDDEN,
                "guest_link_required",
                "error.forbidden_title",
                "error.guest_link_required",
                "/login",
                "error.login",
            ),
            PageError::Internal => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal_error",
                "error.title",
                "error.internal",
                "/",
                "error.home",
            ),
        };
        render(status, &ErrorPage { t, code, title_key, message_key, link, link_key })
    }
}

/// A `next` target that stays on this site: a path starting with one `/` (no `//host`, no
/// scheme), else the start page. Prevents open redirects.
pub fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n)
            if n.starts_with('/') && !n.starts_with("//") && !n.contains('\\') && !n.chars().any(char::is_control) =>
        {
            n.to_owned()
        }
        _ => "/".to_owned(),
    }
}

/// 303 See Other to `to`, as after a form post.
pub fn see_other(to: &str) -> Response {
    Redirect::to(to).into_response()
}

#[cfg(test)]
mod tests {
    use super::safe_next;

    #[test]
    fn next_stays_on_site() {
        assert_eq!(safe_next(Some("/s/demo")), "/s/demo");
        for bad in ["//evil.example", "https://evil.example", "/\\evil.example", "evil", "/\nx", ""] {
            assert_eq!(safe_next(Some(bad)), "/", "{bad:?}");
        }
        assert_eq!(safe_next(None), "/");
    }
}
