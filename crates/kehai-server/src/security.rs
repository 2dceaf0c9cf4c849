//! The layers every response passes through: request ids and tracing, panics caught, body size
//! limit, HTTP metrics, the remembered language and security headers (HSTS when kehai is reached
//! over https).

use axum::{
    Router,
    extract::DefaultBodyLimit,
    http::{HeaderName, HeaderValue, Request, header},
    middleware,
};
use tower_http::{
    catch_panic::CatchPanicLayer,
    request_id::{MakeRequestUuid, PropagateRequestIdLayer, RequestId, SetRequestIdLayer},
    set_header::SetResponseHeaderLayer,
    trace::{DefaultOnFailure, DefaultOnResponse, TraceLayer},
};

use crate::{i18n, ops, state::AppState};

/// No inline script or style anywhere, no framing, nothing loaded from elsewhere.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; \
     form-action 'self'; frame-ancestors 'none'";

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

pub fn layers(router: Router<AppState>, state: &AppState) -> Router<AppState> {
    let header = |name: HeaderName, value: &'static str| {
        SetResponseHeaderLayer::if_not_present(name, HeaderValue::from_static(value))
    };
    let hsts = state.config.strict_transport_security().and_then(|v| HeaderValue::from_str(&v).ok());
    router
        .layer(middleware::from_fn_with_state(state.clone(), ops::track_http))
        .layer(middleware::from_fn_with_state(state.clone(), i18n::remember_language))
        .layer(DefaultBodyLimit::max(state.config.max_body_bytes))
        .layer(header(header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY))
        .layer(header(header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .layer(header(header::REFERRER_POLICY, "same-origin"))
        .layer(header(header::X_FRAME_OPTIONS, "DENY"))
        .layer(SetResponseHeaderLayer::if_not_present(header::STRICT_TRANSPORT_SECURITY, move |_: &_| hsts.clone()))
        .layer(CatchPanicLayer::custom(crate::error::panicked))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|req: &Request<_>| {
                    let id = req
                        .extensions()
                        .get::<RequestId>()
                        .and_then(|id| id.header_value().to_str().ok())
                        .unwrap_or("-");
                    tracing::info_span!("request", method = %req.method(), path = %req.uri().path(), request_id = %id)
                })
                // One line per answered request (status, latency) at the default level; 5xx
                // answers add no line of their own: internal errors and panics are logged at
                // ERROR where they happen, and a full notification queue (503, Graph retries)
                // is back-pressure, warned about where it is decided.
                .on_response(DefaultOnResponse::new().level(tracing::Level::INFO))
                .on_failure(DefaultOnFailure::new().level(tracing::Level::DEBUG)),
        )
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
}
