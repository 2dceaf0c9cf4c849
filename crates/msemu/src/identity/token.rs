//! `POST /{tenant}/oauth2/v2.0/token`: the `authorization_code` grant (PKCE S256 and a client
//! secret required) and the `refresh_token` grant (rotating: every use returns a new refresh
//! token; older ones stay valid until revoked or idle too long).

use std::{collections::HashMap, sync::Arc};

use axum::{
    Extension, Form, Json,
    extract::{Path, State},
    http::{HeaderMap, header},
    response::{IntoResponse, Response},
};
use base64::{
    Engine,
    engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD},
};

use super::{errors::Aadsts, scopes, tokens};
use crate::{BaseUrl, Emulator, directory::App, world::now};

const CODE_LIFETIME: i64 = 600;

pub async fn token(
    State(emu): State<Arc<Emulator>>,
    Extension(base): Extension<BaseUrl>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let Some(authority) = super::Authority::parse(&emu.world.lock().directory, &tenant) else {
        return Aadsts::new("invalid_request", 90002, format!("Tenant '{tenant}' not found.")).json();
    };
    let field = |k: &str| form.get(k).map(String::as_str).filter(|v| !v.is_empty());
    // Client authentication: client_secret_post or client_secret_basic.
    let (client_id, secret) = match basic_auth(&headers) {
        Some((id, secret)) => (Some(id), Some(secret)),
        None => (field("client_id").map(str::to_owned), field("client_secret").map(str::to_owned)),
    };
    let world = emu.world.lock();
    let Some(app) = client_id.as_deref().and_then(|id| world.directory.app(id)).cloned() else {
        return Aadsts::new(
            "unauthorized_client",
            700016,
            format!("Application with identifier '{}' was not found in the directory.", client_id.unwrap_or_default()),
        )
        .json();
    };
    drop(world);
    match secret {
        None => {
            return Aadsts::new(
                "invalid_client",
                7000218,
                "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
            )
            .json();
        }
        Some(s) if s != app.client_secret => {
            return Aadsts::new(
                "invalid_client",
                7000215,
                "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app.",
            )
            .json();
        }
        Some(_) => {}
    }
    let result = match field("grant_type") {
        Some("authorization_code") => authorization_code(&emu, &base, authority, &app, &form),
        Some("refresh_token") => refresh(&emu, &base, authority, &app, &form),
        None => Err(Aadsts::new(
            "invalid_request",
            900144,
            "The request body must contain the following parameter: 'grant_type'.",
        )),
        Some(other) => Err(Aadsts::new(
            "unsupported_grant_type",
            70003,
            format!("The app requested an unsupported grant type '{other}'."),
        )),
    };
    match result {
        Ok(body) => ([(header::CACHE_CONTROL, "no-store")], Json(body)).into_response(),
        Err(e) => e.json(),
    }
}

fn basic_auth(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?.strip_prefix("Basic ")?;
    let decoded = String::from_utf8(STANDARD.decode(value).ok()?).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    let unescape =
        |s: &str| url::form_urlencoded::parse(format!("x={s}").as_bytes()).next().map(|(_, v)| v.into_owned());
    Some((unescape(id)?, unescape(secret)?))
}

fn invalid_grant(code: u32, message: impl Into<String>) -> Aadsts {
    Aadsts::new("invalid_grant", code, message)
}

fn authorization_code(
    emu: &Emulator,
    base: &BaseUrl,
    authority: super::Authority,
    app: &App,
    form: &HashMap<String, String>,
) -> Result<serde_json::Value, Aadsts> {
    let field = |k: &str| form.get(k).map(String::as_str).unwrap_or("");
    let mut world = emu.world.lock();
    let code = field("code");
    let Some(grant) = world.codes.get_mut(code) else {
        return Err(invalid_grant(70000, "The provided value for the 'code' parameter is not valid."));
    };
    if grant.redeemed {
        return Err(invalid_grant(
            54005,
            "OAuth2 Authorization code was already redeemed, please retry with a new valid code or use an existing refresh token.",
        ));
    }
    if now() - grant.created > CODE_LIFETIME {
        return Err(invalid_grant(
            70008,
            "The provided authorization code or refresh token has expired due to inactivity. Send a new interactive authorization request for this user and resource.",
        ));
    }
    if grant.flow.client_id != app.client_id {
        return Err(invalid_grant(70000, "The provided authorization code was issued to another client."));
    }
    if field("redirect_uri") != grant.flow.redirect_uri {
        return Err(invalid_grant(
            70000,
            "The provided value for the input parameter 'redirect_uri' is not valid: it does not match the one in the authorization request.",
        ));
    }
    let verifier = field("code_verifier");
    if verifier.is_empty() {
        return Err(Aadsts::new(
            "invalid_request",
            900144,
            "The request body must contain the following parameter: 'code_verifier'.",
        ));
    }
    let challenge = URL_SAFE_NO_PAD.encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, verifier.as_bytes()));
    if challenge != grant.flow.code_challenge {
        return Err(invalid_grant(
            501481,
            "The Code_Verifier does not match the code_challenge supplied in the authorization request.",
        ));
    }
    // A code is good once, even if what follows fails.
    grant.redeemed = true;
    let (flow, user_id) = (grant.flow.clone(), grant.user);
    let user =
        world.directory.user(user_id).cloned().ok_or_else(|| invalid_grant(70000, "The user no longer exists."))?;
    let tenant = world.directory.tenant_of(&user).clone();
    admits(authority, &tenant, &user.email)?;
    let grant = tokens::Grant {
        user: &user,
        tenant: &tenant,
        client_id: app.client_id,
        scopes: &flow.scopes,
        tenant_path: &flow.tenant_path,
        nonce: flow.nonce.as_deref(),
    };
    tokens::issue(emu, &mut world, base, grant).map_err(|e| Aadsts::new("server_error", 50000, e.to_string()))
}

fn refresh(
    emu: &Emulator,
    base: &BaseUrl,
    authority: super::Authority,
    app: &App,
    form: &HashMap<String, String>,
) -> Result<serde_json::Value, Aadsts> {
    let token = form.get("refresh_token").map(String::as_str).unwrap_or("");
    let mut world = emu.world.lock();
    let Some(grant) = world.refresh_tokens.get(token).cloned() else {
        return Err(invalid_grant(
            9002313,
            "Invalid request. Request is malformed or invalid: the refresh token is not valid.",
        ));
    };
    if grant.client_id != app.client_id {
        return Err(invalid_grant(70000, "The refresh token was issued to a different client."));
    }
    if grant.revoked {
        return Err(invalid_grant(
            50173,
            "The provided grant has expired due to it being revoked, a fresh auth token is needed. The user might have changed or reset their password.",
        ));
    }
    let idle_limit = emu.config.refresh_token_lifetime.as_secs() as i64;
    if now() - grant.last_used > idle_limit {
        return Err(invalid_grant(
            700082,
            format!(
                "The refresh token has expired due to inactivity. The token was issued on {} and was inactive for {} days.",
                grant.issued,
                idle_limit / 86400
            ),
        ));
    }
    let user =
        world.directory.user(grant.user).cloned().ok_or_else(|| invalid_grant(70000, "The user no longer exists."))?;
    let tenant = world.directory.tenant_of(&user).clone();
    admits(authority, &tenant, &user.email)?;
    let consent_kept = world.consented(
        user.id,
        app.client_id,
        &scopes::graph(&grant.scopes).iter().map(|s| (*s).to_owned()).collect::<Vec<_>>(),
    );
    if !consent_kept {
        return Err(invalid_grant(
            65001,
            format!(
                "The user or administrator has not consented to use the application with ID '{}'. Send an interactive authorization request for this user and resource.",
                app.client_id
            ),
        ));
    }
    // A narrower scope may be asked for; never a wider one.
    let scopes = match form.get("scope").filter(|s| !s.trim().is_empty()) {
        None => grant.scopes.clone(),
        Some(asked) => {
            let asked = scopes::parse(asked).map_err(|s| {
                Aadsts::new(
                    "invalid_scope",
                    70011,
                    format!("The provided value for the input parameter 'scope' is not valid: '{s}'."),
                )
            })?;
            if let Some(extra) =
                asked.iter().find(|s| !grant.scopes.contains(s) && *s != "offline_access" && *s != "openid")
            {
                return Err(invalid_grant(
                    65001,
                    format!("The user or administrator has not consented to use the application for '{extra}'."),
                ));
            }
            asked
        }
    };
    if let Some(used) = world.refresh_tokens.get_mut(token) {
        used.last_used = now();
    }
    let mut scopes = scopes;
    if !scopes.iter().any(|s| s == "offline_access") {
        // The refresh grant always returns a new refresh token.
        scopes.push("offline_access".to_owned());
    }
    let grant = tokens::Grant {
        user: &user,
        tenant: &tenant,
        client_id: app.client_id,
        scopes: &scopes,
        tenant_path: &grant.tenant_path,
        nonce: None,
    };
    tokens::issue(emu, &mut world, base, grant).map_err(|e| Aadsts::new("server_error", 50000, e.to_string()))
}

/// The token endpoint's URL decides whose tokens it gives, as `/authorize` does: `organizations`
/// admits only work and school accounts, `consumers` only personal ones, and a tenant's URL only
/// that tenant's users.
fn admits(authority: super::Authority, tenant: &crate::directory::Tenant, email: &str) -> Result<(), Aadsts> {
    authority.admits(tenant).map_err(|code| match code {
        500208 => Aadsts::new("invalid_grant", 500208, format!("The domain is not a valid login domain for the account type: '{email}' is a personal Microsoft account.")),
        _ => Aadsts::new("invalid_grant", 50020, format!("User account '{email}' does not exist in the tenant of this endpoint.")),
    })
}
