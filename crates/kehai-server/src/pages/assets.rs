//! The static files pages load, compiled into the binary (no front-end build step).

use axum::{
    extract::Path,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};

/// The space page's script: ES modules, loaded by the browser as they are.
pub const SPACE_MODULES: &[(&str, &str)] = &[
    ("main.js", include_str!("../../static/space/main.js")),
    ("page.js", include_str!("../../static/space/page.js")),
    ("api.js", include_str!("../../static/space/api.js")),
    ("avatars.js", include_str!("../../static/space/avatars.js")),
    ("profile.js", include_str!("../../static/space/profile.js")),
    ("integrations.js", include_str!("../../static/space/integrations.js")),
    ("live.js", include_str!("../../static/space/live.js")),
];

const JS: &str = "text/javascript; charset=utf-8";

/// `/static/{file}`.
pub async fn serve(Path(file): Path<String>) -> Response {
    let (body, content_type) = match file.as_str() {
        "app.css" => (include_str!("../../static/app.css"), "text/css; charset=utf-8"),
        "popup.js" => (include_str!("../../static/popup.js"), JS),
        _ => return crate::error::not_found().await.into_response(),
    };
    asset(body, content_type)
}

/// `/static/space/{module}`.
pub async fn space_module(Path(module): Path<String>) -> Response {
    match SPACE_MODULES.iter().find(|(name, _)| *name == module) {
        Some((_, body)) => asset(body, JS),
        None => crate::error::not_found().await.into_response(),
    }
}

fn asset(body: &'static str, content_type: &'static str) -> Response {
    let mut response = (StatusCode::OK, body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    // Short: a new kehai version is picked up within minutes without versioned URLs.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=300"));
    response
}
