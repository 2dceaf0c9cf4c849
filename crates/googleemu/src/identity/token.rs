//! `POST /token` (form-encoded): the `authorization_code` grant (single-use codes living ten
//! minutes, exact `redirect_uri`, PKCE `S256` or `plain`) and the `refresh_token` grant (the
//! same refresh token keeps working: Google does not rotate them). Clients authenticate with
//! `client_secret_post` or HTTP Basic (`client_secret_basic`), both accepted, as Google
//! advertises — requests-oauthlib sends Basic, google-auth the body.

use std::sync::Arc;

use axum::{
    Extension, Json,
    body::Bytes,
    extract::State,
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
};
use base64::{
    Engine,
    engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD},
};

use super::{
    authorize::CODE_LIFETIME_MS,
    errors::{expired_or_revoked, invalid_client, invalid_grant, oauth_json},
    tokens,
};
use crate::{
    BaseUrl, Emulator,
    directory::Client,
    faults::{self, Kind, Target},
    scopes,
};

type Fields = Vec<(String, String)>;

fn field<'a>(fields: &'a Fields, name: &str) -> Option<&'a str> {
    fields.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str()).filter(|v| !v.is_empty())
}

pub async fn token(
    State(emu): State<Arc<Emulator>>,
    Extension(base): Extension<BaseUrl>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let fault = faults::take(&mut emu.world.lock(), Target::Token, None, &[]);
    if let Some(fault) = fault {
        return injected(&fault);
    }
    let fields: Fields = url::form_urlencoded::parse(&body).into_owned().collect();
    let (client_id, secret) = match basic_auth(&headers) {
        Some((id, secret)) => (Some(id), Some(secret)),
        None => (field(&fields, "client_id").map(str::to_owned), field(&fields, "client_secret").map(str::to_owned)),
    };
    let Some(client_id) = client_id else {
        return oauth_json(StatusCode::BAD_REQUEST, "invalid_request", "Could not determine client ID from request.");
    };
    let Some(client) = emu.world.lock().directory.client(&client_id).cloned() else {
        return invalid_client("The OAuth client was not found.");
    };
    if secret.as_deref() != Some(client.client_secret.as_str()) {
        return invalid_client("Unauthorized");
    }
    match field(&fields, "grant_type") {
        Some("authorization_code") => authorization_code(&emu, &base, &client, &fields),
        Some("refresh_token") => refresh(&emu, &base, &client, &fields),
        other => oauth_json(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            &format!("Invalid grant_type: {}", other.unwrap_or("")),
        ),
    }
}

/// A token-endpoint fault: 500 `internal_failure` or 503 `temporarily_unavailable`, the
/// answers google-auth retries.
fn injected(fault: &faults::Fault) -> Response {
    let mut response = match fault.kind {
        Kind::ServerError => oauth_json(StatusCode::INTERNAL_SERVER_ERROR, "internal_failure", "Internal error."),
        _ => oauth_json(
            StatusCode::SERVICE_UNAVAILABLE,
            "temporarily_unavailable",
            "The service is currently unavailable.",
        ),
    };
    if let Some(v) = fault.retry_after.and_then(|s| header::HeaderValue::from_str(&s.to_string()).ok()) {
        response.headers_mut().insert(header::RETRY_AFTER, v);
    }
    response
}

/// `Authorization: Basic base64(urlencode(id):urlencode(secret))` (RFC 6749 §2.3.1).
fn basic_auth(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(STANDARD.decode(encoded.trim()).ok()?).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    let unescape =
        |s: &str| url::form_urlencoded::parse(format!("x={s}").as_bytes()).next().map(|(_, v)| v.into_owned());
    Some((unescape(id)?, unescape(secret)?))
}

fn success(result: anyhow::Result<serde_json::Value>) -> Response {
    match result {
        Ok(body) => (
            [(header::CACHE_CONTROL, "no-cache, no-store, max-age=0, must-revalidate"), (header::PRAGMA, "no-cache")],
            Json(body),
        )
            .into_response(),
        Err(e) => {
            tracing::error!(error = %e, "cannot issue tokens");
            oauth_json(StatusCode::INTERNAL_SERVER_ERROR, "internal_failure", "Internal error.")
        }
    }
}

fn authorization_code(emu: &Emulator, base: &BaseUrl, client: &Client, fields: &Fields) -> Response {
    let now = emu.clock.now_ms();
    let mut world = emu.world.lock();
    let Some(code) = field(fields, "code").and_then(|c| world.codes.get(c)).cloned() else {
        return invalid_grant("Bad Request");
    };
    if code.used || now - code.created >= CODE_LIFETIME_MS || code.client_id != client.client_id {
        return invalid_grant("Bad Request");
    }
    if field(fields, "redirect_uri") != Some(code.redirect_uri.as_str()) {
        return oauth_json(StatusCode::BAD_REQUEST, "redirect_uri_mismatch", "Bad Request");
    }
    if let Some((challenge, method)) = &code.challenge {
        let Some(verifier) = field(fields, "code_verifier") else {
            return invalid_grant("Missing code verifier.");
        };
        let derived = match method.as_str() {
            "S256" => {
                URL_SAFE_NO_PAD.encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, verifier.as_bytes()))
            }
            _ => verifier.to_owned(),
        };
        if &derived != challenge {
            return invalid_grant("Invalid code verifier.");
        }
    }
    // Good once.
    if let Some(c) = field(fields, "code").and_then(|c| world.codes.get_mut(c)) {
        c.used = true;
    }
    let Some(user) = world.directory.user(&code.user).cloned() else {
        return invalid_grant("Bad Request");
    };
    let refresh =
        code.refresh.then(|| tokens::new_refresh_token(&mut world, now, &code.user, &client.client_id, &code.scopes));
    let grant = tokens::Grant {
        user: &user,
        client_id: &client.client_id,
        scopes: &code.scopes,
        nonce: code.nonce.as_deref(),
        refresh: refresh.as_deref(),
        new_refresh: true,
    };
    success(tokens::respond(emu, &mut world, base, grant))
}

fn refresh(emu: &Emulator, base: &BaseUrl, client: &Client, fields: &Fields) -> Response {
    let now = emu.clock.now_ms();
    let mut world = emu.world.lock();
    let Some(token) = field(fields, "refresh_token") else {
        return oauth_json(StatusCode::BAD_REQUEST, "invalid_request", "Missing required parameter: refresh_token");
    };
    let Some(grant) = world.refresh_tokens.get(token).cloned() else {
        return invalid_grant("Bad Request");
    };
    if grant.client_id != client.client_id {
        return oauth_json(StatusCode::UNAUTHORIZED, "unauthorized_client", "Unauthorized");
    }
    if let Some(why) = tokens::refresh_problem(&world, now, &grant) {
        tracing::debug!(user = %grant.user, why, "refresh refused");
        return expired_or_revoked();
    }
    // A narrower scope may be asked for (google-auth sends the Credentials' scopes, with the
    // `email` alias); never a wider one.
    let scopes = match field(fields, "scope") {
        None => grant.scopes.clone(),
        Some(asked) => match scopes::parse(asked) {
            Ok(asked) if asked.is_subset(&grant.scopes) => asked,
            Ok(_) => {
                return oauth_json(
                    StatusCode::BAD_REQUEST,
                    "invalid_scope",
                    "Some requested scopes were not granted by the user.",
                );
            }
            Err(unknown) => {
                return oauth_json(
                    StatusCode::BAD_REQUEST,
                    "invalid_scope",
                    &format!("Some requested scopes were invalid. {{invalid=[{}]}}", unknown.join(", ")),
                );
            }
        },
    };
    if let Some(r) = world.refresh_tokens.get_mut(token) {
        r.last_used = now;
    }
    let Some(user) = world.directory.user(&grant.user).cloned() else {
        return expired_or_revoked();
    };
    let grant = tokens::Grant {
        user: &user,
        client_id: &client.client_id,
        scopes: &scopes,
        nonce: None,
        refresh: Some(token),
        new_refresh: false,
    };
    success(tokens::respond(emu, &mut world, base, grant))
}
