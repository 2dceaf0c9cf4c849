//! `POST /calendar/v3/calendars/{calendarId}/events/watch` and `POST /calendar/v3/channels/stop`
//! (the push guide and the `events.watch` reference): a channel `id` of at most 64 characters,
//! unique among the client's live channels; `type` `web_hook` (or `webhook`); an HTTPS
//! `address` (plain HTTP only with `--allow-http-push`); an optional `token` of at most 256
//! characters; a lifetime from `params.ttl` (seconds, default 604,800) and/or `expiration`
//! (milliseconds since the epoch), the earlier winning. The `sync` message goes out at once,
//! concurrently with the answer — it may arrive first, as Google warns. Only the user and client
//! that made a channel may stop it.

use std::{collections::HashMap, sync::Arc};

use axum::{
    Extension,
    body::Bytes,
    extract::{Path, State},
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{CalendarError, Caller, Params, answer};
use crate::{BaseUrl, Emulator, push, scopes::Method, world::Channel};

const MAX_ID: usize = 64;
const MAX_TOKEN: usize = 256;
/// `params.ttl`'s default: a week.
const DEFAULT_TTL_SECONDS: i64 = 604_800;
const EVENT_TYPES: &[&str] = &["birthday", "default", "focusTime", "fromGmail", "outOfOffice", "workingLocation"];

#[derive(Debug, Deserialize)]
struct WatchRequest {
    id: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    address: Option<String>,
    token: Option<String>,
    #[serde(default)]
    params: HashMap<String, Value>,
    expiration: Option<Value>,
}

/// A number Google's JSON carries as a string (int64) or a number.
fn int64(value: &Value) -> Option<i64> {
    value.as_i64().or_else(|| value.as_str().and_then(|s| s.trim().parse().ok()))
}

fn parse_error() -> CalendarError {
    CalendarError::backend(StatusCode::BAD_REQUEST, "global", "parseError", "Parse Error")
}

fn required(what: &str) -> CalendarError {
    CalendarError::backend(StatusCode::BAD_REQUEST, "global", "required", &format!("Required: {what}"))
}

fn invalid(message: &str) -> CalendarError {
    CalendarError::backend(StatusCode::BAD_REQUEST, "global", "invalid", message)
}

/// The resource id of a user's calendar: opaque, lowercase, stable (Google's: "stable across
/// API versions").
pub fn resource_id(sub: &str, calendar: &str) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, format!("{sub}/{calendar}").as_bytes());
    const ALPHABET: &[u8] = b"0123456789abcdefghijklmnopqrstuv";
    digest.as_ref().iter().take(19).map(|b| char::from(ALPHABET[usize::from(b % 32)])).collect()
}

pub async fn watch(
    State(emu): State<Arc<Emulator>>,
    Extension(base): Extension<BaseUrl>,
    Path(calendar_id): Path<String>,
    params: Params,
    caller: Caller,
    body: Bytes,
) -> Response {
    match create(&emu, &base, &calendar_id, &params, &caller, &body) {
        Ok(channel) => {
            push::sync(&emu, &channel);
            let mut answer_body = json!({
                "kind": "api#channel",
                "id": channel.id,
                "resourceId": channel.resource_id,
                "resourceUri": channel.resource_uri,
                "expiration": channel.expiration.to_string(),
            });
            if let Some(token) = &channel.token {
                answer_body["token"] = json!(token);
            }
            answer(&params, answer_body)
        }
        Err(e) => e.into_response(),
    }
}

fn create(
    emu: &Emulator,
    base: &BaseUrl,
    calendar_id: &str,
    params: &Params,
    caller: &Caller,
    body: &[u8],
) -> Result<Channel, CalendarError> {
    caller.may(Method::EventsWatch)?;
    if !caller.owns(calendar_id) {
        return Err(CalendarError::not_found());
    }
    let request: WatchRequest = serde_json::from_slice(body).map_err(|_| parse_error())?;
    let id = request.id.filter(|i| !i.is_empty()).ok_or_else(|| required("id"))?;
    if id.chars().count() > MAX_ID {
        return Err(invalid(&format!("Channel id must be at most {MAX_ID} characters: {id}")));
    }
    match request.kind.as_deref() {
        Some("web_hook" | "webhook") => {}
        None => return Err(required("type")),
        Some(other) => return Err(invalid(&format!("Invalid channel type: {other}"))),
    }
    let address = request.address.filter(|a| !a.is_empty()).ok_or_else(|| required("address"))?;
    let scheme = url::Url::parse(&address)
        .map(|u| u.scheme().to_owned())
        .map_err(|_| invalid(&format!("Invalid address: {address}")))?;
    if scheme != "https" && !(scheme == "http" && emu.config.allow_http_push) {
        return Err(CalendarError::backend(
            StatusCode::BAD_REQUEST,
            "global",
            "push.webhookUrlNotHttps",
            &format!("WebHook callback must be HTTPS: {address}"),
        ));
    }
    if request.token.as_ref().is_some_and(|t| t.chars().count() > MAX_TOKEN) {
        return Err(invalid(&format!("Channel token must be at most {MAX_TOKEN} characters.")));
    }
    let types: Vec<String> = params.all("eventTypes").into_iter().map(str::to_owned).collect();
    if let Some(bad) = types.iter().find(|ty| !EVENT_TYPES.contains(&ty.as_str())) {
        return Err(CalendarError::parameter("invalid", &format!("Invalid event type: {bad}"), "eventTypes"));
    }
    let now = emu.clock.now_ms();
    let ttl = match request.params.get("ttl") {
        None => DEFAULT_TTL_SECONDS,
        Some(v) => int64(v).filter(|s| *s > 0).ok_or_else(|| invalid("Invalid ttl value."))?,
    };
    let mut expiration = now.saturating_add(ttl.saturating_mul(1000));
    if let Some(v) = &request.expiration {
        let asked = int64(v).ok_or_else(|| invalid("Invalid expiration value."))?;
        if asked <= now {
            return Err(invalid("Channel expiration must be in the future."));
        }
        expiration = expiration.min(asked);
    }
    let mut world = emu.world.lock();
    let taken = world
        .channels
        .iter()
        .any(|c| c.id == id && c.client_id == caller.client_id && !c.stopped && c.expiration > now);
    if taken {
        return Err(CalendarError::backend(
            StatusCode::BAD_REQUEST,
            "global",
            "channelIdNotUnique",
            "Channel id not unique",
        ));
    }
    let channel = Channel {
        id,
        resource_id: resource_id(&caller.user.sub(), "primary"),
        resource_uri: base.join(&format!(
            "/calendar/v3/calendars/{}/events?alt=json",
            url::form_urlencoded::byte_serialize(calendar_id.as_bytes()).collect::<String>()
        )),
        token: request.token,
        address,
        expiration,
        user: caller.user.email.to_lowercase(),
        client_id: caller.client_id.clone(),
        calendar_id: calendar_id.to_owned(),
        event_types: types,
        created: now,
        stopped: false,
        message_number: 1,
    };
    world.channels.push(channel.clone());
    Ok(channel)
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct StopRequest {
    id: Option<String>,
    resource_id: Option<String>,
}

pub async fn stop(State(emu): State<Arc<Emulator>>, caller: Caller, body: Bytes) -> Response {
    if let Err(e) = caller.may(Method::ChannelsStop) {
        return e.into_response();
    }
    let Ok(request) = serde_json::from_slice::<StopRequest>(&body) else {
        return parse_error().into_response();
    };
    let (Some(id), Some(resource_id)) = (request.id, request.resource_id) else {
        return required("id and resourceId").into_response();
    };
    let mut world = emu.world.lock();
    // Another user's or another client's channel is as good as unknown to this caller.
    let channel = world.channels.iter_mut().find(|c| {
        c.id == id
            && c.resource_id == resource_id
            && !c.stopped
            && c.client_id == caller.client_id
            && c.user.eq_ignore_ascii_case(&caller.user.email)
    });
    match channel {
        Some(c) => {
            c.stopped = true;
            StatusCode::NO_CONTENT.into_response()
        }
        None => {
            let project = caller.client_id.split('.').next().unwrap_or(&caller.client_id).to_owned();
            CalendarError::backend(
                StatusCode::NOT_FOUND,
                "global",
                "notFound",
                &format!("Channel '{id}' not found for project '{project}'"),
            )
            .into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_ids_are_stable_per_calendar_and_opaque() {
        let a = resource_id("100", "primary");
        assert_eq!(a, resource_id("100", "primary"));
        assert_ne!(a, resource_id("101", "primary"));
        assert_eq!(a.len(), 19);
        assert!(a.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()));
        assert_eq!(int64(&json!("1764752400000")), Some(1_764_752_400_000));
        assert_eq!(int64(&json!(60)), Some(60));
        assert_eq!(int64(&json!("soon")), None);
    }
}
