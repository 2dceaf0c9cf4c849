//! Errors as the JSON API answers them: `{"error":{"code","message"}}` with a stable `code`.
//!
//! Internal failures are logged once, here, and reach the client only as `internal_error`.

use axum::{
    Json,
    extract::rejection::JsonRejection,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use kehai_core::Invalid;
use kehai_store::StoreError;
use serde::Serialize;

/// An error answer of the JSON API.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// Seconds after which to try again (`Retry-After`), when it is worth saying.
    pub retry_after: Option<u32>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// Stable machine-readable code, e.g. `invalid_emoji`.
    code: &'static str,
    /// Human-readable explanation.
    message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError { status, code, message: message.into(), retry_after: None }
    }

    /// The same, telling the client to try again after `seconds`.
    pub fn with_retry_after(self, seconds: u32) -> Self {
        ApiError { retry_after: Some(seconds), ..self }
    }

    pub fn unauthorized() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", "log in or join the space first")
    }

    pub fn forbidden() -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", "you have no access to this space")
    }

    pub fn space_not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "space_not_found", "there is no such space")
    }

    pub fn csrf() -> Self {
        Self::new(StatusCode::FORBIDDEN, "csrf_token_invalid", "missing or invalid X-CSRF-Token header")
    }

    /// A failure that is ours, not the client's: logged here, never detailed to the client.
    pub fn internal(err: impl std::fmt::Display) -> Self {
        tracing::error!(error = %err, "internal error");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal_error", "something went wrong on the server")
    }
}

impl From<Invalid> for ApiError {
    fn from(e: Invalid) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, e.code(), e.to_string())
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(what) => Self::new(StatusCode::CONFLICT, "conflict", format!("{what} already exists")),
            StoreError::NotFound(what) => Self::new(StatusCode::NOT_FOUND, "not_found", format!("{what} not found")),
            other => Self::internal(other),
        }
    }
}

impl From<crate::presence::Error> for ApiError {
    /// What the engine could not do while a handler asked: the database's own errors as the store
    /// maps them, anything else ours.
    fn from(e: crate::presence::Error) -> Self {
        match e {
            crate::presence::Error::Store(e) => e.into(),
            other => Self::internal(other),
        }
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        let status = r.status();
        let code = match &r {
            JsonRejection::MissingJsonContentType(_) => "unsupported_media_type",
            JsonRejection::JsonSyntaxError(_) => "invalid_json",
            JsonRejection::JsonDataError(_) => "invalid_body",
            _ if status == StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
            _ => "invalid_body",
        };
        Self::new(status, code, r.body_text())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody { error: ErrorDetail { code: self.code, message: self.message } };
        let mut response = (self.status, Json(body)).into_response();
        if let Some(seconds) = self.retry_after {
            response.headers_mut().insert(axum::http::header::RETRY_AFTER, seconds.into());
        }
        response
    }
}

/// The answer for a path no route matches.
pub async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "route_not_found", "no such page or endpoint")
}

/// The answer for a route that exists but not with this method.
pub async fn method_not_allowed() -> ApiError {
    ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "this endpoint does not take that method")
}

impl From<axum::extract::rejection::FormRejection> for ApiError {
    fn from(r: axum::extract::rejection::FormRejection) -> Self {
        use axum::extract::rejection::FormRejection;
        let status = r.status();
        let code = match &r {
            FormRejection::InvalidFormContentType(_) => "unsupported_media_type",
            _ if status == StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
            _ => "invalid_form",
        };
        Self::new(status, code, r.body_text())
    }
}

/// A panic caught in a handler: logged, answered as `internal_error`.
pub fn panicked(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    ApiError::internal("a request handler panicked").into_response()
}

/// The fallback route: an HTML page for browsers, the JSON error for programs.
pub async fn fallback(
    axum::extract::State(state): axum::extract::State<crate::state::AppState>,
    crate::i18n::Lang(lang): crate::i18n::Lang,
    uri: axum::http::Uri,
    headers: axum::http::HeaderMap,
) -> Response {
    let wants_html =
        headers.get(axum::http::header::ACCEPT).and_then(|v| v.to_str().ok()).is_some_and(|a| a.contains("text/html"));
    if wants_html && !uri.path().starts_with("/api/") {
        crate::pages::PageError::NoPage.render(state.catalogs.get(lang))
    } else {
        not_found().await.into_response()
    }
}
