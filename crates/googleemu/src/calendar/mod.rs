//! The Google Calendar API v3, the part kehai uses, under `/calendar/v3/`: `freeBusy`
//! ([`freebusy`]), `events.list` and `events.get` ([`events`]), `events.watch` and
//! `channels.stop` ([`watch`]). Every call needs an access token googleemu issued (`Authorization:
//! Bearer …` or `access_token=`), whose scopes must open the method (the discovery document's
//! lists, [`crate::scopes::Method`]). `fields` masks every answer ([`fields`]); `alt=json` and
//! the other standard parameters are accepted and ignored.
//!
//! A middleware ([`observe`]) records every request for the control API and injects Calendar
//! faults.

pub mod errors;
pub mod event;
pub mod events;
pub mod fields;
pub mod freebusy;
pub mod time;
pub mod watch;

use std::sync::Arc;

use axum::{
    Json,
    extract::{FromRequestParts, MatchedPath, Request, State},
    http::{Method as HttpMethod, StatusCode, request::Parts},
    middleware::Next,
    response::{IntoResponse, Response},
    routing::{get, post},
};
pub use errors::CalendarError;
use serde_json::Value;

use crate::{
    Emulator,
    directory::User,
    faults::{self, Kind, Target},
    identity::tokens,
    scopes::{Method, Scopes},
    world::CalendarRequest,
};

pub fn router(emulator: Arc<Emulator>) -> axum::Router<Arc<Emulator>> {
    axum::Router::new()
        .route("/calendar/v3/freeBusy", post(freebusy::query))
        .route("/calendar/v3/calendars/{calendar_id}/events", get(events::list))
        .route("/calendar/v3/calendars/{calendar_id}/events/watch", post(watch::watch))
        .route("/calendar/v3/calendars/{calendar_id}/events/{event_id}", get(events::get))
        .route("/calendar/v3/channels/stop", post(watch::stop))
        .route("/calendar/v3/{*rest}", axum::routing::any(not_served))
        .route_layer(axum::middleware::from_fn_with_state(emulator, observe))
}

async fn not_served() -> CalendarError {
    CalendarError::not_found()
}

/// The method a request calls, from its route.
fn operation(method: &HttpMethod, route: &str) -> Option<Method> {
    match (method.as_str(), route) {
        ("POST", "/calendar/v3/freeBusy") => Some(Method::FreebusyQuery),
        ("GET", "/calendar/v3/calendars/{calendar_id}/events") => Some(Method::EventsList),
        ("GET", "/calendar/v3/calendars/{calendar_id}/events/{event_id}") => Some(Method::EventsGet),
        ("POST", "/calendar/v3/calendars/{calendar_id}/events/watch") => Some(Method::EventsWatch),
        ("POST", "/calendar/v3/channels/stop") => Some(Method::ChannelsStop),
        _ => None,
    }
}

/// The query string with the value of `access_token` hidden: the log never holds a secret.
fn redacted(query: &str) -> String {
    query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some(("access_token", _)) => "access_token=REDACTED".to_owned(),
            _ => pair.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// Records the request (method, path, caller, query, `fields`, status) and answers an injected
/// fault instead of the method when one is pending.
pub async fn observe(State(emu): State<Arc<Emulator>>, req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let query = req.uri().query().unwrap_or("").to_owned();
    let route = req.extensions().get::<MatchedPath>().map(|m| m.as_str().to_owned()).unwrap_or_default();
    let operation = operation(&method, &route);
    let params = Params::from_query(&query);
    let (caller, fault) = {
        let mut world = emu.world.lock();
        let caller = bearer_token(req.headers(), &params)
            .and_then(|t| tokens::access(&world, emu.clock.now_ms(), &t))
            .map(|a| (a.user, a.client_id));
        let fault = operation.and_then(|op| faults::take(&mut world, Target::Calendar, Some(op.id()), &[]));
        (caller, fault)
    };
    let response = match fault {
        Some(fault) => injected(&fault).into_response(),
        None => next.run(req).await,
    };
    let (user, client_id) = caller.map_or((None, None), |(u, c)| (Some(u), Some(c)));
    let record = CalendarRequest {
        at: emu.clock.now_ms(),
        method: method.to_string(),
        path,
        operation: operation.map(|op| op.id().to_owned()),
        user,
        client_id,
        query: redacted(&query),
        fields: params.get("fields").map(str::to_owned),
        status: response.status().as_u16(),
    };
    emu.world.lock().requests.push(record);
    response
}

/// A Calendar fault's answer (the errors guide's table).
fn injected(fault: &faults::Fault) -> CalendarError {
    let e = match fault.kind {
        Kind::RateLimitExceeded => {
            CalendarError::backend(StatusCode::FORBIDDEN, "usageLimits", "rateLimitExceeded", "Rate Limit Exceeded")
        }
        Kind::UserRateLimitExceeded => CalendarError::backend(
            StatusCode::FORBIDDEN,
            "usageLimits",
            "userRateLimitExceeded",
            "User Rate Limit Exceeded",
        ),
        Kind::TooManyRequests => CalendarError::backend(
            StatusCode::TOO_MANY_REQUESTS,
            "usageLimits",
            "rateLimitExceeded",
            "Rate Limit Exceeded",
        ),
        Kind::ServiceUnavailable => CalendarError::backend(
            StatusCode::SERVICE_UNAVAILABLE,
            "global",
            "backendError",
            "The service is currently unavailable.",
        ),
        _ => CalendarError::backend(StatusCode::INTERNAL_SERVER_ERROR, "global", "backendError", "Backend Error"),
    };
    e.with_retry_after(fault.retry_after)
}

/// The query parameters in order, repeated ones included (`eventTypes`).
#[derive(Debug, Clone, Default)]
pub struct Params(pub Vec<(String, String)>);

impl Params {
    pub fn from_query(query: &str) -> Params {
        Params(url::form_urlencoded::parse(query.as_bytes()).into_owned().collect())
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    pub fn all(&self, name: &str) -> Vec<&str> {
        self.0.iter().filter(|(k, _)| k == name).map(|(_, v)| v.as_str()).collect()
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Params {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Params::from_query(parts.uri.query().unwrap_or("")))
    }
}

fn bearer_token(headers: &axum::http::HeaderMap, params: &Params) -> Option<String> {
    let query: std::collections::HashMap<String, String> =
        params.get("access_token").map(|t| ("access_token".to_owned(), t.to_owned())).into_iter().collect();
    crate::identity::userinfo::bearer(headers, &query)
}

/// Who calls: a user through a client, with the access token's scopes.
#[derive(Debug, Clone)]
pub struct Caller {
    pub user: User,
    pub client_id: String,
    pub scopes: Scopes,
}

impl Caller {
    /// The 403 unless the token's scopes open `method`.
    pub fn may(&self, method: Method) -> Result<(), CalendarError> {
        if method.allowed(&self.scopes) { Ok(()) } else { Err(CalendarError::insufficient_scopes(method)) }
    }

    /// Whose calendar `calendar_id` is: `primary` and the caller's own address name the
    /// caller's primary calendar; googleemu has no other calendars.
    pub fn owns(&self, calendar_id: &str) -> bool {
        calendar_id == "primary" || calendar_id.eq_ignore_ascii_case(&self.user.email)
    }
}

impl FromRequestParts<Arc<Emulator>> for Caller {
    type Rejection = CalendarError;

    async fn from_request_parts(parts: &mut Parts, emu: &Arc<Emulator>) -> Result<Self, Self::Rejection> {
        let params = Params::from_query(parts.uri.query().unwrap_or(""));
        let token = bearer_token(&parts.headers, &params).ok_or_else(|| CalendarError::unauthorized(true))?;
        let world = emu.world.lock();
        let access =
            tokens::access(&world, emu.clock.now_ms(), &token).ok_or_else(|| CalendarError::unauthorized(false))?;
        let user = world.directory.user(&access.user).cloned().ok_or_else(|| CalendarError::unauthorized(false))?;
        Ok(Caller { user, client_id: access.client_id, scopes: access.scopes })
    }
}

/// A JSON answer with the `fields` mask applied (a malformed mask: 400).
pub fn answer(params: &Params, body: Value) -> Response {
    match params.get("fields") {
        None => Json(body).into_response(),
        Some(mask) => match fields::Selection::parse(mask) {
            Ok(selection) => Json(selection.apply(&body)).into_response(),
            Err(problem) => CalendarError::parameter(
                "invalidParameter",
                &format!("Invalid field selection {mask}: {problem}"),
                "fields",
            )
            .into_response(),
        },
    }
}

/// The calendar's time zone name and offset (the directory only admits zones googleemu knows).
pub fn zone(user: &User) -> (String, ::time::UtcOffset) {
    let offset = time::zone_offset(&user.time_zone).unwrap_or(::time::UtcOffset::UTC);
    (user.time_zone.clone(), offset)
}
