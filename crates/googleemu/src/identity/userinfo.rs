//! `GET /v1/userinfo` (the OpenID Connect userinfo endpoint of Google's discovery document;
//! also at `/oauth2/v3/userinfo`): the claims the access token's scopes allow.

use std::{collections::HashMap, sync::Arc};

use axum::{
    Json,
    extract::{Query, State},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde_json::json;

use super::tokens;
use crate::{Emulator, scopes};

/// The bearer token of a request: `Authorization: Bearer …` or `access_token=`.
pub fn bearer(headers: &HeaderMap, query: &HashMap<String, String>) -> Option<String> {
    let from_header = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim().to_owned());
    from_header.or_else(|| query.get("access_token").cloned()).filter(|t| !t.is_empty())
}

pub async fn userinfo(
    State(emu): State<Arc<Emulator>>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let now = emu.clock.now_ms();
    let world = emu.world.lock();
    let token = bearer(&headers, &query).and_then(|t| tokens::access(&world, now, &t));
    let Some(user) = token.as_ref().and_then(|t| world.directory.user(&t.user)) else {
        let body = json!({ "error": "invalid_request", "error_description": "Invalid Credentials" });
        return (StatusCode::UNAUTHORIZED, [(header::WWW_AUTHENTICATE, "Bearer error=\"invalid_token\"")], Json(body))
            .into_response();
    };
    let granted = token.map(|t| t.scopes).unwrap_or_default();
    let mut info = json!({ "sub": user.sub() });
    if granted.contains(scopes::PROFILE) {
        info["name"] = json!(user.name);
        info["given_name"] = json!(user.given_name());
        if let Some((_, family)) = user.name.split_once(' ') {
            info["family_name"] = json!(family);
        }
    }
    if granted.contains(scopes::EMAIL) {
        info["email"] = json!(user.email);
        info["email_verified"] = json!(true);
    }
    if let Some(hd) = &user.hd {
        info["hd"] = json!(hd);
    }
    Json(info).into_response()
}
