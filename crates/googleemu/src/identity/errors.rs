//! Google's error shapes on the identity side: the token and revocation endpoints' JSON
//! (`{"error","error_description"}`, google-protocol §1.5), the redirect back to the app
//! (`?error=access_denied&state=…`), and the error screen Google shows instead of redirecting
//! when the app must not be trusted with the answer (unknown client, unregistered redirect URI,
//! a malformed request) or the account may not go on (`org_internal`,
//! `admin_policy_enforced`).

use askama::Template;
use axum::{
    Json,
    http::{StatusCode, header},
    response::{Html, IntoResponse, Response},
};
use serde_json::json;

/// A JSON error of the token or revocation endpoint.
pub fn oauth_json(status: StatusCode, error: &str, description: &str) -> Response {
    let body = json!({ "error": error, "error_description": description });
    (status, [(header::CACHE_CONTROL, "no-cache, no-store, max-age=0, must-revalidate")], Json(body)).into_response()
}

pub fn invalid_grant(description: &str) -> Response {
    oauth_json(StatusCode::BAD_REQUEST, "invalid_grant", description)
}

/// A dead refresh token: revoked, lapsed, idle, evicted.
pub fn expired_or_revoked() -> Response {
    invalid_grant("Token has been expired or revoked.")
}

pub fn invalid_client(description: &str) -> Response {
    oauth_json(StatusCode::UNAUTHORIZED, "invalid_client", description)
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    status: u16,
    error: &'a str,
    headline: &'a str,
    message: &'a str,
}

/// Google's error screen: "Error 400: redirect_uri_mismatch" and an explanation.
pub fn page(status: StatusCode, error: &str, headline: &str, message: &str) -> Response {
    let page = ErrorPage { status: status.as_u16(), error, headline, message };
    match page.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(_) => (status, format!("Error {}: {error}\n{message}", status.as_u16())).into_response(),
    }
}

/// `302 Found` to `location`.
pub fn found(location: &str) -> Response {
    (StatusCode::FOUND, [(header::LOCATION, location.to_owned())]).into_response()
}

/// The redirect back to the app with `pairs` added to the redirect URI's query.
pub fn redirect_with(redirect_uri: &str, pairs: &[(&str, &str)]) -> Response {
    match url::Url::parse(redirect_uri) {
        Ok(mut url) => {
            url.query_pairs_mut().extend_pairs(pairs);
            found(url.as_str())
        }
        Err(_) => page(StatusCode::BAD_REQUEST, "invalid_request", "Invalid redirect_uri", redirect_uri),
    }
}

/// An authorization error for the app: `?error=…&state=…`.
pub fn redirect_error(redirect_uri: &str, error: &str, state: Option<&str>) -> Response {
    let mut pairs = vec![("error", error)];
    if let Some(state) = state {
        pairs.push(("state", state));
    }
    redirect_with(redirect_uri, &pairs)
}
