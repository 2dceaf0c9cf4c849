//! Google's OAuth 2.0 / OpenID Connect endpoints: discovery and keys ([`discovery`]), the
//! authorization endpoint with its account chooser and consent pages ([`authorize`]), the token
//! endpoint ([`token`]), revocation ([`revoke`]) and userinfo ([`userinfo`]). [`tokens`] makes
//! what they hand out; [`errors`] holds Google's error shapes.

pub mod authorize;
pub mod discovery;
pub mod errors;
pub mod revoke;
pub mod token;
pub mod tokens;
pub mod userinfo;

use std::sync::Arc;

use axum::routing::{get, post};

use crate::Emulator;

/// Paths as Google's discovery document names them, all on googleemu's one host.
pub const AUTHORIZE_PATH: &str = "/o/oauth2/v2/auth";
pub const TOKEN_PATH: &str = "/token";
pub const REVOKE_PATH: &str = "/revoke";
pub const USERINFO_PATH: &str = "/v1/userinfo";
pub const JWKS_PATH: &str = "/oauth2/v3/certs";
pub const PEM_CERTS_PATH: &str = "/oauth2/v1/certs";

pub fn router() -> axum::Router<Arc<Emulator>> {
    axum::Router::new()
        .route("/.well-known/openid-configuration", get(discovery::openid_configuration))
        .route(JWKS_PATH, get(discovery::jwks))
        .route(PEM_CERTS_PATH, get(discovery::pem_certs))
        .route(AUTHORIZE_PATH, get(authorize::start))
        .route("/o/oauth2/v2/auth/signin", post(authorize::sign_in))
        .route("/o/oauth2/v2/auth/consent", post(authorize::consent))
        .route(TOKEN_PATH, post(token::token))
        .route(REVOKE_PATH, post(revoke::revoke))
        .route(USERINFO_PATH, get(userinfo::userinfo).post(userinfo::userinfo))
        .route("/oauth2/v3/userinfo", get(userinfo::userinfo).post(userinfo::userinfo))
}
