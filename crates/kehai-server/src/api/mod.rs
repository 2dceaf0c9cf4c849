//! The JSON API (`/api/…`) and its OpenAPI document (`/openapi.json`).
//!
//! Reads need a session cookie; mutations also the `X-CSRF-Token` header. Errors are
//! `{"error":{"code","message"}}` ([`crate::error::ApiError`]).

pub mod avatars;
pub mod integrations;
pub mod openapi;

use std::sync::Arc;

use axum::routing::get;
use utoipa::OpenApi;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::state::AppState;

/// The API routes, and the OpenAPI document made from the very same handlers: a route cannot
/// be added without being documented.
pub fn router() -> axum::Router<AppState> {
    let (router, document) = OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .routes(routes!(avatars::list))
        .routes(routes!(avatars::update_me))
        .routes(routes!(integrations::status, integrations::toggle, integrations::disconnect))
        .split_for_parts();
    let document = Arc::new(document);
    router.route("/openapi.json", get(move || openapi::serve(Arc::clone(&document))))
}
