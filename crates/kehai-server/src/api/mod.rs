//! The JSON API (`/api/…`) and its OpenAPI document (`/openapi.json`).
//!
//! Reads need a session cookie; mutations also the `X-CSRF-Token` header. Errors are
//! `{"error":{"code","message"}}` ([`crate::error::ApiError`]).

pub mod avatars;
pub mod openapi;

use axum::routing::get;

use crate::state::AppState;

pub fn router() -> axum::Router<AppState> {
    axum::Router::new()
        .route("/api/spaces/{slug}/avatars", get(avatars::list))
        .route(
            "/api/spaces/{slug}/me",
            axum::routing::put(avatars::update_me),
        )
        .route("/openapi.json", get(openapi::document))
}
