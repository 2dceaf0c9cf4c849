//! The control API (`/_emu/api/…`, JSON), documented in googleemu's README.

use std::{collections::HashMap, sync::Arc, time::Duration};

use axum::{
    Json,
    extract::{Path, Query, State, rejection::JsonRejection},
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::{delete, get, post},
};
use serde::Deserialize;
use serde_json::{Value, json};

use super::actions::ControlError;
use crate::{
    Emulator, EventSpec,
    calendar::{event::EventKind, time::utc_millis, zone},
    clock::unix_ms,
    faults::Fault,
};

pub fn router() -> axum::Router<Arc<Emulator>> {
    axum::Router::new()
        .route("/_emu/api/users", get(users))
        .route("/_emu/api/users/{email}/events", get(events).post(add_event).delete(clear_calendar))
        .route("/_emu/api/users/{email}/events/{id}", delete(delete_event))
        .route("/_emu/api/users/{email}/revoke", post(revoke))
        .route("/_emu/api/users/{email}/admin-policy", post(admin_policy))
        .route("/_emu/api/users/{email}/grants", get(grants))
        .route("/_emu/api/clock", get(clock))
        .route("/_emu/api/clock/advance", post(advance))
        .route("/_emu/api/keys/rotate", post(rotate_keys))
        .route("/_emu/api/faults", post(add_fault).get(list_faults).delete(clear_faults))
        .route("/_emu/api/requests", get(requests))
        .route("/_emu/api/pushes", get(pushes))
        .route("/_emu/api/channels", get(channels))
        .route("/_emu/api/counters/reset", post(reset_counters))
        .route("/_emu/api/reset", post(reset))
}

fn error(e: ControlError) -> Response {
    (e.status, Json(json!({ "error": e.message }))).into_response()
}

fn done(result: Result<(), ControlError>) -> Response {
    match result {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => error(e),
    }
}

fn bad_body(e: &JsonRejection) -> Response {
    error(ControlError { status: StatusCode::BAD_REQUEST, message: e.body_text() })
}

async fn users(State(emu): State<Arc<Emulator>>) -> Json<Value> {
    let mut world = emu.world.lock();
    let users = world.directory.users.clone();
    let list: Vec<Value> = users
        .iter()
        .map(|u| {
            let events = world.calendar(&u.email).events.iter().filter(|e| !e.cancelled()).count();
            json!({
                "email": u.email, "name": u.name, "sub": u.sub(), "hd": u.hd, "workspace": u.hd.is_some(),
                "timeZone": u.time_zone, "adminPolicyEnforced": world.admin_policy_enforced(&u.email, ""),
                "events": events,
            })
        })
        .collect();
    Json(json!({ "users": list }))
}

async fn events(State(emu): State<Arc<Emulator>>, Path(email): Path<String>) -> Response {
    let user = emu.world.lock().directory.user(&email).cloned();
    let Some(user) = user else {
        return error(ControlError { status: StatusCode::NOT_FOUND, message: format!("no user {email}") });
    };
    let (zone_name, offset) = zone(&user);
    match emu.events(&email) {
        Ok(events) => {
            let items: Vec<Value> = events.iter().map(|e| e.full_json(&user.email, &zone_name, offset)).collect();
            Json(json!({ "items": items })).into_response()
        }
        Err(e) => error(e),
    }
}

/// `POST /_emu/api/users/{email}/events`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewEvent {
    pub kind: EventKind,
    /// When it starts, from now (negative: already under way); now when both are absent.
    pub start_in_minutes: Option<i64>,
    pub start_in_seconds: Option<i64>,
    /// How long it lasts; 30 minutes when both are absent.
    pub minutes: Option<i64>,
    pub seconds: Option<i64>,
    pub summary: Option<String>,
    pub description: Option<String>,
    /// An all-day event from today, `days` long (default 1).
    #[serde(default)]
    pub all_day: bool,
    pub days: Option<i64>,
}

impl NewEvent {
    pub fn spec(self) -> Result<EventSpec, ControlError> {
        let bad = |m: &str| ControlError { status: StatusCode::BAD_REQUEST, message: m.to_owned() };
        let mut spec = if self.all_day {
            EventSpec::all_day(self.kind, self.days.unwrap_or(1))
        } else {
            let start = match (self.start_in_minutes, self.start_in_seconds) {
                (Some(_), Some(_)) => return Err(bad("give startInMinutes or startInSeconds, not both")),
                (Some(m), None) => time::Duration::minutes(m),
                (None, Some(s)) => time::Duration::seconds(s),
                (None, None) => time::Duration::ZERO,
            };
            let length = match (self.minutes, self.seconds) {
                (Some(_), Some(_)) => return Err(bad("give minutes or seconds, not both")),
                (Some(m), None) => time::Duration::minutes(m),
                (None, Some(s)) => time::Duration::seconds(s),
                (None, None) => time::Duration::minutes(30),
            };
            if length <= time::Duration::ZERO {
                return Err(bad("an event lasts longer than zero"));
            }
            EventSpec::starting_in(self.kind, start, length)
        };
        spec.summary = self.summary;
        spec.description = self.description;
        Ok(spec)
    }
}

async fn add_event(
    State(emu): State<Arc<Emulator>>,
    Path(email): Path<String>,
    body: Result<Json<NewEvent>, JsonRejection>,
) -> Response {
    let spec = match body {
        Ok(Json(new)) => new.spec(),
        Err(e) => return bad_body(&e),
    };
    let user = emu.world.lock().directory.user(&email).cloned();
    match (spec.and_then(|spec| emu.add_event(&email, spec)), user) {
        (Ok(event), Some(user)) => {
            let (zone_name, offset) = zone(&user);
            (StatusCode::CREATED, Json(event.full_json(&user.email, &zone_name, offset))).into_response()
        }
        (Err(e), _) => error(e),
        (Ok(_), None) => error(ControlError { status: StatusCode::NOT_FOUND, message: format!("no user {email}") }),
    }
}

async fn delete_event(State(emu): State<Arc<Emulator>>, Path((email, id)): Path<(String, String)>) -> Response {
    done(emu.delete_event(&email, &id))
}

async fn clear_calendar(State(emu): State<Arc<Emulator>>, Path(email): Path<String>) -> Response {
    match emu.clear_calendar(&email) {
        Ok(n) => Json(json!({ "deleted": n })).into_response(),
        Err(e) => error(e),
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ClientChoice {
    client_id: Option<String>,
}

async fn revoke(
    State(emu): State<Arc<Emulator>>,
    Path(email): Path<String>,
    body: Option<Json<ClientChoice>>,
) -> Response {
    let choice = body.map(|Json(c)| c).unwrap_or_default();
    done(emu.revoke(&email, choice.client_id.as_deref()))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct AdminPolicy {
    enforced: bool,
    client_id: Option<String>,
}

async fn admin_policy(
    State(emu): State<Arc<Emulator>>,
    Path(email): Path<String>,
    body: Result<Json<AdminPolicy>, JsonRejection>,
) -> Response {
    match body {
        Ok(Json(p)) => done(emu.set_admin_policy(&email, p.client_id.as_deref(), p.enforced)),
        Err(e) => bad_body(&e),
    }
}

async fn grants(State(emu): State<Arc<Emulator>>, Path(email): Path<String>) -> Response {
    match emu.grants(&email) {
        Ok(grants) => Json(json!({ "grants": grants })).into_response(),
        Err(e) => error(e),
    }
}

fn clock_json(emu: &Emulator) -> Value {
    let now = emu.now();
    json!({ "now": utc_millis(now), "nowMs": unix_ms(now), "offsetSeconds": emu.clock.offset().as_secs() })
}

async fn clock(State(emu): State<Arc<Emulator>>) -> Json<Value> {
    Json(clock_json(&emu))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Advance {
    seconds: u64,
}

async fn advance(State(emu): State<Arc<Emulator>>, body: Result<Json<Advance>, JsonRejection>) -> Response {
    match body {
        Ok(Json(a)) => {
            emu.advance(Duration::from_secs(a.seconds));
            Json(clock_json(&emu)).into_response()
        }
        Err(e) => bad_body(&e),
    }
}

async fn rotate_keys(State(emu): State<Arc<Emulator>>) -> Response {
    match emu.rotate_keys() {
        Ok(kid) => Json(json!({ "kid": kid })).into_response(),
        Err(e) => error(e),
    }
}

async fn add_fault(State(emu): State<Arc<Emulator>>, body: Result<Json<Fault>, JsonRejection>) -> Response {
    match body {
        Ok(Json(fault)) => done(emu.add_fault(fault)),
        Err(e) => bad_body(&e),
    }
}

async fn list_faults(State(emu): State<Arc<Emulator>>) -> Json<Value> {
    Json(json!({ "faults": emu.faults() }))
}

async fn clear_faults(State(emu): State<Arc<Emulator>>) -> StatusCode {
    emu.clear_faults();
    StatusCode::NO_CONTENT
}

/// `GET /_emu/api/requests[?user=&operation=&since=&until=]` (`since`/`until`: milliseconds,
/// emulator time; `until` exclusive).
async fn requests(State(emu): State<Arc<Emulator>>, Query(q): Query<HashMap<String, String>>) -> Json<Value> {
    let since = q.get("since").and_then(|v| v.parse::<i64>().ok()).unwrap_or(i64::MIN);
    let until = q.get("until").and_then(|v| v.parse::<i64>().ok()).unwrap_or(i64::MAX);
    let list: Vec<_> = emu
        .calendar_requests()
        .into_iter()
        .filter(|r| q.get("user").is_none_or(|u| r.user.as_deref().is_some_and(|x| x.eq_ignore_ascii_case(u))))
        .filter(|r| q.get("operation").is_none_or(|op| r.operation.as_deref() == Some(op.as_str())))
        .filter(|r| r.at >= since && r.at < until)
        .collect();
    Json(json!({ "count": list.len(), "requests": list }))
}

async fn pushes(State(emu): State<Arc<Emulator>>, Query(q): Query<HashMap<String, String>>) -> Json<Value> {
    let list: Vec<_> =
        emu.pushes().into_iter().filter(|p| q.get("channel").is_none_or(|c| &p.channel_id == c)).collect();
    Json(json!({ "pushes": list }))
}

async fn channels(State(emu): State<Arc<Emulator>>) -> Json<Value> {
    let now = emu.clock.now_ms();
    let list: Vec<Value> = emu
        .channels()
        .iter()
        .map(|c| {
            let mut v = serde_json::to_value(c).unwrap_or_default();
            v["expired"] = json!(c.expiration <= now);
            v["hasToken"] = json!(c.token.is_some());
            v
        })
        .collect();
    Json(json!({ "channels": list }))
}

async fn reset_counters(State(emu): State<Arc<Emulator>>) -> StatusCode {
    emu.reset_counters();
    StatusCode::NO_CONTENT
}

async fn reset(State(emu): State<Arc<Emulator>>) -> Response {
    done(emu.reset())
}
