//! Calendar's error answers, in the two shapes Google uses: the "backend" envelope
//! (`{"error":{"errors":[{domain,reason,message}],"code","message"}}`, the Calendar errors
//! guide) for request problems and quota, and the newer "front-end" envelope with `status`
//! (and `details` for scope problems) that Google's front end answers for authentication.

use axum::{
    Json,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde_json::{Value, json};

use crate::scopes::Method;

/// One Calendar error answer.
#[derive(Debug, Clone)]
pub struct CalendarError {
    pub status: StatusCode,
    body: Value,
    /// `WWW-Authenticate`, for 401 and scope 403s.
    authenticate: Option<String>,
    retry_after: Option<u64>,
}

impl CalendarError {
    /// The backend envelope: one `errors[]` item; `location` names the parameter at fault.
    pub fn backend(status: StatusCode, domain: &str, reason: &str, message: &str) -> Self {
        let body = json!({ "error": {
            "errors": [{ "domain": domain, "reason": reason, "message": message }],
            "code": status.as_u16(),
            "message": message,
        }});
        CalendarError { status, body, authenticate: None, retry_after: None }
    }

    /// A parameter problem (400 `invalid` or `required`) with `location`.
    pub fn parameter(reason: &str, message: &str, location: &str) -> Self {
        let mut e = Self::backend(StatusCode::BAD_REQUEST, "global", reason, message);
        e.body["error"]["errors"][0]["locationType"] = json!("parameter");
        e.body["error"]["errors"][0]["location"] = json!(location);
        e
    }

    pub fn bad_request(message: &str) -> Self {
        Self::backend(StatusCode::BAD_REQUEST, "global", "badRequest", message)
    }

    pub fn not_found() -> Self {
        Self::backend(StatusCode::NOT_FOUND, "global", "notFound", "Not Found")
    }

    pub fn time_range_empty() -> Self {
        Self::backend(StatusCode::BAD_REQUEST, "calendar", "timeRangeEmpty", "The specified time range is empty.")
    }

    /// 410 for a sync token googleemu did not give out or no longer honours.
    pub fn full_sync_required() -> Self {
        let mut e = Self::backend(
            StatusCode::GONE,
            "calendar",
            "fullSyncRequired",
            "Sync token is no longer valid, a full sync is required.",
        );
        e.body["error"]["errors"][0]["locationType"] = json!("parameter");
        e.body["error"]["errors"][0]["location"] = json!("syncToken");
        e
    }

    /// 401 for a missing, unknown, expired or revoked access token.
    pub fn unauthorized(missing: bool) -> Self {
        let (message, reason, item_message) = if missing {
            (
                "Request is missing required authentication credential. Expected OAuth 2 access token, login cookie or other valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project.",
                "required",
                "Login Required.",
            )
        } else {
            (
                "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project.",
                "authError",
                "Invalid Credentials",
            )
        };
        let body = json!({ "error": {
            "code": 401,
            "message": message,
            "errors": [{ "message": item_message, "domain": "global", "reason": reason,
                         "location": "Authorization", "locationType": "header" }],
            "status": "UNAUTHENTICATED",
        }});
        let authenticate = if missing {
            "Bearer realm=\"https://accounts.google.com/\"".to_owned()
        } else {
            "Bearer realm=\"https://accounts.google.com/\", error=\"invalid_token\"".to_owned()
        };
        CalendarError { status: StatusCode::UNAUTHORIZED, body, authenticate: Some(authenticate), retry_after: None }
    }

    /// 403 for a token whose scopes do not open `method` (google-protocol §2.2).
    pub fn insufficient_scopes(method: Method) -> Self {
        let body = json!({ "error": {
            "code": 403,
            "message": "Request had insufficient authentication scopes.",
            "errors": [{ "message": "Insufficient Permission", "domain": "global", "reason": "insufficientPermissions" }],
            "status": "PERMISSION_DENIED",
            "details": [{
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": "ACCESS_TOKEN_SCOPE_INSUFFICIENT",
                "domain": "googleapis.com",
                "metadata": { "service": "calendar-json.googleapis.com", "method": method.rpc_name() },
            }],
        }});
        let authenticate = "Bearer realm=\"https://accounts.google.com/\", error=\"insufficient_scope\"".to_owned();
        CalendarError { status: StatusCode::FORBIDDEN, body, authenticate: Some(authenticate), retry_after: None }
    }

    /// googleemu's `forbidden` visibility mode: events at free/busy level are not listed.
    pub fn insufficient_permissions() -> Self {
        Self::backend(StatusCode::FORBIDDEN, "global", "insufficientPermissions", "Insufficient Permission")
    }

    pub fn with_retry_after(mut self, seconds: Option<u64>) -> Self {
        self.retry_after = seconds;
        self
    }

    /// The error body (for tests and the fault module).
    pub fn body(&self) -> &Value {
        &self.body
    }
}

impl IntoResponse for CalendarError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(self.body)).into_response();
        let headers = response.headers_mut();
        if let Some(v) = self.authenticate.and_then(|a| HeaderValue::from_str(&a).ok()) {
            headers.insert(header::WWW_AUTHENTICATE, v);
        }
        if let Some(v) = self.retry_after.and_then(|s| HeaderValue::from_str(&s.to_string()).ok()) {
            headers.insert(header::RETRY_AFTER, v);
        }
        response
    }
}
