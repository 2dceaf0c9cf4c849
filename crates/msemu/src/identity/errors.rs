//! Errors in Microsoft's shapes: the token endpoint's JSON
//! (`error`, `error_description` beginning `AADSTS<code>:`, `error_codes`, `timestamp`,
//! `trace_id`, `correlation_id`, `error_uri`), the redirect back to the app
//! (`?error=…&error_description=…&state=…`), and Microsoft's own error page for requests that
//! cannot be sent back (unknown app, wrong redirect URI).

use askama::Template;
use axum::{
    Json,
    http::StatusCode,
    response::{Html, IntoResponse, Response},
};
use serde_json::json;

/// One AADSTS error.
#[derive(Debug, Clone)]
pub struct Aadsts {
    /// The OAuth `error` value (`invalid_grant`, `consent_required`, …).
    pub error: &'static str,
    pub code: u32,
    pub message: String,
}

impl Aadsts {
    pub fn new(error: &'static str, code: u32, message: impl Into<String>) -> Self {
        Aadsts { error, code, message: message.into() }
    }

    /// `AADSTS<code>: <message>`.
    pub fn description(&self) -> String {
        format!("AADSTS{}: {}", self.code, self.message)
    }

    /// The token endpoint's answer (HTTP 400, or 401 for client authentication failures).
    pub fn json(&self) -> Response {
        let trace_id = uuid::Uuid::new_v4();
        let correlation_id = uuid::Uuid::new_v4();
        let timestamp = timestamp();
        let status = if self.error == "invalid_client" { StatusCode::UNAUTHORIZED } else { StatusCode::BAD_REQUEST };
        let body = json!({
            "error": self.error,
            "error_description": format!(
                "{}\r\nTrace ID: {trace_id}\r\nCorrelation ID: {correlation_id}\r\nTimestamp: {timestamp}",
                self.description()
            ),
            "error_codes": [self.code],
            "timestamp": timestamp,
            "trace_id": trace_id,
            "correlation_id": correlation_id,
            "error_uri": format!("https://login.microsoftonline.com/error?code={}", self.code),
        });
        (status, Json(body)).into_response()
    }

    /// The redirect back to the app with the error.
    pub fn redirect(&self, redirect_uri: &str, state: Option<&str>) -> Response {
        let mut url = match url::Url::parse(redirect_uri) {
            Ok(url) => url,
            Err(_) => return self.page(),
        };
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("error", self.error);
            q.append_pair("error_description", &self.description());
            if let Some(state) = state {
                q.append_pair("state", state);
            }
        }
        found(url.as_str())
    }

    /// Microsoft's error page, for errors that must not be sent to an unverified redirect URI.
    pub fn page(&self) -> Response {
        let page = ErrorPage { code: self.code, message: &self.message };
        match page.render() {
            Ok(html) => (StatusCode::BAD_REQUEST, Html(html)).into_response(),
            Err(_) => (StatusCode::BAD_REQUEST, self.description()).into_response(),
        }
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    code: u32,
    message: &'a str,
}

/// Microsoft's timestamp format: `2016-01-09 02:02:12Z`.
pub fn timestamp() -> String {
    let now = time::OffsetDateTime::now_utc();
    let format = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]Z");
    now.format(&format).unwrap_or_default()
}

/// `302 Found` to `location`, as Microsoft redirects (a form post becomes a GET).
pub fn found(location: &str) -> Response {
    (StatusCode::FOUND, [(axum::http::header::LOCATION, location.to_owned())]).into_response()
}
