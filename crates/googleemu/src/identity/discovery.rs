//! `/.well-known/openid-configuration` and the keys: the JWKS (`/oauth2/v3/certs`) and the PEM
//! map (`/oauth2/v1/certs`). The discovery document has every field of the example Google
//! publishes ("copied from a recent version of the actual Google Discovery document", OpenID
//! Connect guide), pointing at googleemu.

use std::sync::Arc;

use axum::{
    Extension, Json,
    extract::State,
    http::header,
    response::{IntoResponse, Response},
};
use serde_json::json;

use super::{AUTHORIZE_PATH, JWKS_PATH, REVOKE_PATH, TOKEN_PATH, USERINFO_PATH};
use crate::{BaseUrl, Emulator};

/// Google lets caches keep its keys for a few hours; googleemu's rotate in tests, so a few
/// minutes (retired keys stay published meanwhile).
const KEYS_CACHE: &str = "public, max-age=300, must-revalidate, no-transform";

pub async fn openid_configuration(State(emu): State<Arc<Emulator>>, Extension(base): Extension<BaseUrl>) -> Response {
    Json(json!({
        "issuer": emu.issuer(&base),
        "authorization_endpoint": base.join(AUTHORIZE_PATH),
        "device_authorization_endpoint": base.join("/device/code"),
        "token_endpoint": base.join(TOKEN_PATH),
        "userinfo_endpoint": base.join(USERINFO_PATH),
        "revocation_endpoint": base.join(REVOKE_PATH),
        "jwks_uri": base.join(JWKS_PATH),
        "response_types_supported": [
            "code", "token", "id_token", "code token", "code id_token", "token id_token",
            "code token id_token", "none"
        ],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "scopes_supported": ["openid", "email", "profile"],
        "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
        "claims_supported": [
            "aud", "email", "email_verified", "exp", "family_name", "given_name", "iat", "iss", "locale",
            "name", "picture", "sub"
        ],
        "code_challenge_methods_supported": ["plain", "S256"],
        "grant_types_supported": [
            "authorization_code", "refresh_token", "urn:ietf:params:oauth:grant-type:device_code",
            "urn:ietf:params:oauth:grant-type:jwt-bearer"
        ],
    }))
    .into_response()
}

pub async fn jwks(State(emu): State<Arc<Emulator>>) -> Response {
    ([(header::CACHE_CONTROL, KEYS_CACHE)], Json(emu.world.keys().jwks())).into_response()
}

pub async fn pem_certs(State(emu): State<Arc<Emulator>>) -> Response {
    ([(header::CACHE_CONTROL, KEYS_CACHE)], Json(emu.world.keys().pem_map())).into_response()
}
