//! Microsoft Graph v1.0, the part kehai uses: presence and change-notification subscriptions,
//! behind bearer access tokens that msemu itself issued. Errors take Graph's envelope
//! (<https://learn.microsoft.com/graph/errors>):
//! `{"error":{"code","message","innerError":{"date","request-id","client-request-id"}}}`.

pub mod presence;
pub mod subscriptions;

use std::sync::Arc;

use axum::{
    Json,
    extract::FromRequestParts,
    http::{HeaderValue, StatusCode, request::Parts},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use serde_json::json;
use uuid::Uuid;

use crate::{Emulator, identity::tokens::AccessClaims, world::now};

pub fn router() -> axum::Router<Arc<Emulator>> {
    axum::Router::new()
        .route("/v1.0/me", get(presence::me))
        .route("/v1.0/me/presence", get(presence::my_presence))
        .route("/v1.0/users/{id}/presence", get(presence::user_presence))
        .route("/v1.0/communications/presences/{id}", get(presence::user_presence))
        .route("/v1.0/communications/getPresencesByUserId", post(presence::by_user_ids))
        .route("/v1.0/subscriptions", post(subscriptions::create).get(subscriptions::list))
        .route(
            "/v1.0/subscriptions/{id}",
            get(subscriptions::get_one).patch(subscriptions::update).delete(subscriptions::delete),
        )
        .route("/v1.0/subscriptions/{id}/reauthorize", post(subscriptions::reauthorize))
}

/// A Graph error answer.
#[derive(Debug)]
pub struct GraphError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// Seconds to wait, for 429 and 503.
    pub retry_after: Option<u64>,
}

impl GraphError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        GraphError { status, code, message: message.into(), retry_after: None }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "ValidationError", message)
    }

    pub fn forbidden() -> Self {
        Self::new(StatusCode::FORBIDDEN, "Forbidden", "Insufficient privileges to complete the operation.")
    }

    pub fn not_found(what: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, "ResourceNotFound", format!("The requested {what} was not found."))
    }

    pub fn throttled(retry_after: u64) -> Self {
        GraphError {
            retry_after: Some(retry_after),
            ..Self::new(StatusCode::TOO_MANY_REQUESTS, "TooManyRequests", "Please retry again later.")
        }
    }
}

impl IntoResponse for GraphError {
    fn into_response(self) -> Response {
        let date =
            time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339).unwrap_or_default();
        let mut inner = json!({ "date": date, "request-id": Uuid::new_v4(), "client-request-id": Uuid::new_v4() });
        if self.status == StatusCode::TOO_MANY_REQUESTS {
            inner["code"] = json!("429");
            inner["message"] = json!("Please retry after");
            inner["status"] = json!("429");
        }
        let body = json!({ "error": { "code": self.code, "message": self.message, "innerError": inner } });
        let mut response = (self.status, Json(body)).into_response();
        if let Some(secs) = self.retry_after
            && let Ok(v) = HeaderValue::from_str(&secs.to_string())
        {
            response.headers_mut().insert("retry-after", v);
        }
        response
    }
}

/// Who calls Graph: a user through an app, from a verified access token.
#[derive(Debug, Clone)]
pub struct Caller {
    pub user: Uuid,
    pub tenant: Uuid,
    pub app: Uuid,
    pub scopes: Vec<String>,
    /// When the access token expires.
    pub expires: i64,
}

impl Caller {
    pub fn has(&self, permission: &str) -> bool {
        self.scopes.iter().any(|s| s.eq_ignore_ascii_case(permission))
    }
}

pub(crate) fn unauthorized(message: &str) -> GraphError {
    GraphError::new(StatusCode::UNAUTHORIZED, "InvalidAuthenticationToken", message)
}

impl FromRequestParts<Arc<Emulator>> for Caller {
    type Rejection = GraphError;

    async fn from_request_parts(parts: &mut Parts, emu: &Arc<Emulator>) -> Result<Self, Self::Rejection> {
        let token = parts
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
            .filter(|t| !t.is_empty())
            .ok_or_else(|| unauthorized("Access token is empty."))?;
        let claims: AccessClaims = emu.world.keys().verify(token).map_err(|e| {
            if matches!(
                e.kind(),
                jsonwebtoken::errors::ErrorKind::ExpiredSignature | jsonwebtoken::errors::ErrorKind::ImmatureSignature
            ) {
                unauthorized("Lifetime validation failed, the token is expired.")
            } else {
                unauthorized("Invalid signature.")
            }
        })?;
        if claims.aud != crate::identity::scopes::GRAPH {
            return Err(unauthorized("Invalid audience."));
        }
        let parse = |s: &str| Uuid::parse_str(s).map_err(|_| unauthorized("Invalid token."));
        let (user, tenant, app) = (parse(&claims.oid)?, parse(&claims.tid)?, parse(&claims.appid)?);
        {
            let world = emu.world.lock();
            if world.revoked_access.contains(&claims.uti) {
                return Err(unauthorized("The access token has been revoked."));
            }
            // Graph serves presence to work and school accounts only, never personal ones.
            if world.directory.tenant(&tenant.to_string()).is_none_or(|t| t.personal) {
                return Err(GraphError::new(
                    StatusCode::FORBIDDEN,
                    "Forbidden",
                    "This API is not supported for personal Microsoft accounts.",
                ));
            }
        }
        Ok(Caller {
            user,
            tenant,
            app,
            scopes: claims.scp.split_whitespace().map(str::to_owned).collect(),
            expires: claims.exp,
        })
    }
}

/// Counts a presence request of the caller's (app, tenant); `Err` when over the limit
/// (Microsoft: 1,500 per 30 s per app per tenant,
/// <https://learn.microsoft.com/graph/throttling-limits>).
pub fn throttle_presence(emu: &Emulator, caller: &Caller) -> Result<(), GraphError> {
    const WINDOW: i64 = 30;
    let now = now();
    let mut world = emu.world.lock();
    let times = world.presence_requests.entry((caller.app, caller.tenant)).or_default();
    times.retain(|t| now - t < WINDOW);
    if times.len() >= emu.config.presence_requests_per_30s {
        let retry_after = times.first().map_or(1, |oldest| (WINDOW - (now - oldest)).max(1)) as u64;
        return Err(GraphError::throttled(retry_after));
    }
    times.push(now);
    Ok(())
}
