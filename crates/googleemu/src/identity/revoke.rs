//! `POST /revoke` with `token=` in the form body or the query: an access or refresh token.
//! Revoking ends the whole grant of that user to that client — its refresh and access tokens
//! ("If the token is an access token and it has a corresponding refresh token, the refresh
//! token will also be revoked") — and the consent, so the next authorization asks again.

use std::{collections::HashMap, sync::Arc};

use axum::{
    Json,
    body::Bytes,
    extract::{Query, State},
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde_json::json;

use super::{errors::oauth_json, tokens};
use crate::Emulator;

pub async fn revoke(
    State(emu): State<Arc<Emulator>>,
    Query(query): Query<HashMap<String, String>>,
    body: Bytes,
) -> Response {
    let from_body = url::form_urlencoded::parse(&body).find(|(k, _)| k == "token").map(|(_, v)| v.into_owned());
    let Some(token) = from_body.or_else(|| query.get("token").cloned()).filter(|t| !t.is_empty()) else {
        return oauth_json(StatusCode::BAD_REQUEST, "invalid_request", "Missing required parameter: token");
    };
    let now = emu.clock.now_ms();
    let mut world = emu.world.lock();
    let owner = if let Some(a) = tokens::access(&world, now, &token) {
        Some((a.user, a.client_id))
    } else {
        world
            .refresh_tokens
            .get(&token)
            .filter(|r| tokens::refresh_problem(&world, now, r).is_none())
            .map(|r| (r.user.clone(), r.client_id.clone()))
    };
    match owner {
        Some((user, client_id)) => {
            world.revoke_grant(&user, &client_id);
            (StatusCode::OK, Json(json!({}))).into_response()
        }
        None => oauth_json(StatusCode::BAD_REQUEST, "invalid_token", "Token expired or revoked"),
    }
}
