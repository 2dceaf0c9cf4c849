//! The static files pages load, compiled into the binary (no front-end build step).

use axum::{
    extract::Path,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};

pub async fn serve(Path(file): Path<String>) -> Response {
    let (body, content_type) = match file.as_str() {
        "app.css" => (include_str!("../../static/app.css"), "text/css; charset=utf-8"),
        "space.js" => (include_str!("../../static/space.js"), "text/javascript; charset=utf-8"),
        "popup.js" => (include_str!("../../static/popup.js"), "text/javascript; charset=utf-8"),
        _ => return crate::error::not_found().await.into_response(),
    };
    let mut response = (StatusCode::OK, body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    // Short: a new kehai version is picked up within minutes without versioned URLs.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=300"));
    response
}
