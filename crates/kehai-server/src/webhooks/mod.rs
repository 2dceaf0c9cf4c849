//! Microsoft Graph's webhooks: `POST /webhooks/msgraph` (change notifications) and
//! `POST /webhooks/msgraph/lifecycle` (lifecycle notifications).
//!
//! Both answer Graph's validation handshake (protocol doc §3.1): a POST with
//! `?validationToken=…` is answered within Graph's 10 s with 200, `text/plain` and the decoded
//! token. Processing the notifications themselves belongs to the sync engine.

use std::collections::HashMap;

use axum::{
    extract::Query,
    http::{StatusCode, header},
    response::{IntoResponse, Response},
    routing::post,
};

use crate::state::AppState;

pub fn router() -> axum::Router<AppState> {
    axum::Router::new()
        .route("/webhooks/msgraph", post(notification))
        .route("/webhooks/msgraph/lifecycle", post(notification))
}

/// The handshake; anything else is accepted (and, until the sync engine, ignored).
async fn notification(Query(query): Query<HashMap<String, String>>) -> Response {
    match query.get("validationToken") {
        // The query is already URL-decoded, as Graph requires of the answer. Plain text: the
        // token is echoed verbatim and must not be interpreted as markup.
        Some(token) => ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], token.clone()).into_response(),
        None => StatusCode::ACCEPTED.into_response(),
    }
}
