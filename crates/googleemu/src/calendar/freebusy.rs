//! `POST /calendar/v3/freeBusy`: busy intervals of the asked calendars in `[timeMin, timeMax)`.
//! Only events that make the user busy count — opaque, not cancelled, not declined (an
//! unanswered invitation counts) — merged where they overlap or touch, and clipped to the
//! window. Bounds come back in UTC with milliseconds, busy times without, in `timeZone`
//! (default UTC); a calendar googleemu cannot show gets a `notFound` error inside the 200.

use std::sync::Arc;

use axum::{body::Bytes, extract::State, response::Response};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use time::{OffsetDateTime, UtcOffset};

use super::{CalendarError, Caller, Params, answer, time as t};
use crate::{Emulator, scopes::Method, world::Inner};

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Request {
    time_min: Option<String>,
    time_max: Option<String>,
    time_zone: Option<String>,
    #[serde(default)]
    items: Vec<Item>,
}

#[derive(Debug, Deserialize)]
struct Item {
    id: String,
}

fn bound(value: Option<&str>, name: &str) -> Result<OffsetDateTime, CalendarError> {
    let value =
        value.ok_or_else(|| CalendarError::parameter("required", &format!("Missing {name} parameter."), name))?;
    t::parse(value).ok_or_else(|| CalendarError::parameter("invalid", &format!("Invalid value for: {name}"), name))
}

pub async fn query(State(emu): State<Arc<Emulator>>, params: Params, caller: Caller, body: Bytes) -> Response {
    match compute(&emu, &caller, &body) {
        Ok(value) => answer(&params, value),
        Err(e) => axum::response::IntoResponse::into_response(e),
    }
}

fn compute(emu: &Emulator, caller: &Caller, body: &[u8]) -> Result<Value, CalendarError> {
    caller.may(Method::FreebusyQuery)?;
    let request: Request = serde_json::from_slice(body).map_err(|_| {
        CalendarError::backend(axum::http::StatusCode::BAD_REQUEST, "global", "parseError", "Parse Error")
    })?;
    let min = bound(request.time_min.as_deref(), "timeMin")?;
    let max = bound(request.time_max.as_deref(), "timeMax")?;
    if max <= min {
        return Err(CalendarError::time_range_empty());
    }
    // Zones googleemu cannot express (those with daylight saving) answer in UTC: the instants
    // are the same.
    let zone = request.time_zone.as_deref().and_then(t::zone_offset).unwrap_or(UtcOffset::UTC);
    let mut world = emu.world.lock();
    let mut calendars = Map::new();
    for item in &request.items {
        let entry = if caller.owns(&item.id) {
            let busy = busy(&mut world, &caller.user.email, caller.user.time_zone.as_str(), min, max);
            let busy: Vec<Value> = busy
                .iter()
                .map(|(s, e)| json!({ "start": t::seconds_at(*s, zone), "end": t::seconds_at(*e, zone) }))
                .collect();
            json!({ "busy": busy })
        } else {
            json!({ "errors": [{ "domain": "global", "reason": "notFound" }], "busy": [] })
        };
        calendars.insert(item.id.clone(), entry);
    }
    Ok(json!({
        "kind": "calendar#freeBusy",
        "timeMin": t::utc_millis(min),
        "timeMax": t::utc_millis(max),
        "calendars": calendars,
    }))
}

/// The merged busy intervals of `email`'s calendar within `[min, max)`.
pub fn busy(
    world: &mut Inner,
    email: &str,
    time_zone: &str,
    min: OffsetDateTime,
    max: OffsetDateTime,
) -> Vec<(OffsetDateTime, OffsetDateTime)> {
    let zone = t::zone_offset(time_zone).unwrap_or(UtcOffset::UTC);
    let mut intervals: Vec<(OffsetDateTime, OffsetDateTime)> = world
        .calendar(email)
        .events
        .iter()
        .filter(|e| e.busy())
        .map(|e| (e.start.instant(zone), e.end.instant(zone)))
        .filter(|(s, e)| *s < max && *e > min)
        .map(|(s, e)| (s.max(min), e.min(max)))
        .collect();
    intervals.sort();
    let mut merged: Vec<(OffsetDateTime, OffsetDateTime)> = Vec::new();
    for (s, e) in intervals {
        match merged.last_mut() {
            Some(last) if s <= last.1 => last.1 = last.1.max(e),
            _ => merged.push((s, e)),
        }
    }
    merged
}
