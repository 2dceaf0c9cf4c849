//! `/{tenant}/v2.0/.well-known/openid-configuration` and the JWKS endpoints.

use std::sync::Arc;

use axum::{
    Extension, Json,
    extract::{Path, State},
    response::{IntoResponse, Response},
};
use serde_json::json;

use super::{Authority, errors::Aadsts};
use crate::{BaseUrl, Emulator};

fn unknown_tenant(tenant: &str) -> Response {
    let e = Aadsts::new("invalid_tenant", 90002, format!("Tenant '{tenant}' not found."));
    (axum::http::StatusCode::BAD_REQUEST, e.json()).into_response()
}

pub async fn openid_configuration(
    State(emu): State<Arc<Emulator>>,
    Extension(base): Extension<BaseUrl>,
    Path(tenant): Path<String>,
) -> Response {
    let Some(authority) = Authority::parse(&emu.world.lock().directory, &tenant) else {
        return unknown_tenant(&tenant);
    };
    let at = |path: &str| base.join(&format!("/{tenant}{path}"));
    Json(json!({
        "token_endpoint": at("/oauth2/v2.0/token"),
        // Only what msemu does (Microsoft also lists private_key_jwt, fragment, form_post, …).
        "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
        "jwks_uri": at("/discovery/v2.0/keys"),
        "response_modes_supported": ["query"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "response_types_supported": ["code"],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "issuer": authority.issuer_template(&base),
        "request_uri_parameter_supported": false,
        "authorization_endpoint": at("/oauth2/v2.0/authorize"),
        "claims_supported": ["sub", "iss", "cloud_instance_name", "cloud_instance_host_name", "cloud_graph_host_name",
            "msgraph_host", "aud", "exp", "iat", "auth_time", "acr", "nonce", "preferred_username", "name", "tid", "ver",
            "at_hash", "c_hash", "email"],
        "tenant_region_scope": null,
        "cloud_instance_name": "microsoftonline.com",
        "cloud_graph_host_name": "graph.windows.net",
        "msgraph_host": "graph.microsoft.com",
        "rbac_url": "https://pas.windows.net",
    }))
    .into_response()
}

/// The signing keys. Multi-tenant paths carry the `issuer` template on each key.
pub async fn keys(
    State(emu): State<Arc<Emulator>>,
    Extension(base): Extension<BaseUrl>,
    Path(tenant): Path<String>,
) -> Response {
    let Some(authority) = Authority::parse(&emu.world.lock().directory, &tenant) else {
        return unknown_tenant(&tenant);
    };
    let issuer = authority.issuer_template(&base);
    Json(emu.world.keys().jwks(Some(&issuer))).into_response()
}
