//! `GET /calendar/v3/calendars/{calendarId}/events` and `…/events/{eventId}`. `timeMin` bounds
//! an event's *end* (exclusive) and `timeMax` its *start* (exclusive); `eventTypes` repeats;
//! pages of `maxResults` (default 250, at most 2500) follow `nextPageToken`, and the last page
//! carries `nextSyncToken` for incremental sync (which returns deleted events too; a token
//! googleemu does not know answers 410 `fullSyncRequired`).
//!
//! A token whose only events scope is `calendar.events.freebusy` sees what
//! [`crate::FreeBusyVisibility`] says: whole events, stubs, or a 403.

use std::sync::Arc;

use axum::{
    extract::{Path, State},
    response::{IntoResponse, Response},
};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use serde_json::{Value, json};

use super::{CalendarError, Caller, Params, answer, event::Event, time as t, zone};
use crate::{Emulator, FreeBusyVisibility, scopes, scopes::Method};

const EVENT_TYPES: &[&str] = &["birthday", "default", "focusTime", "fromGmail", "outOfOffice", "workingLocation"];
const DEFAULT_PAGE: usize = 250;
const MAX_PAGE: usize = 2500;
/// Parameters a sync token cannot be combined with (the discovery document's list).
const NOT_WITH_SYNC: &[&str] = &[
    "iCalUID",
    "orderBy",
    "privateExtendedProperty",
    "q",
    "sharedExtendedProperty",
    "timeMin",
    "timeMax",
    "updatedMin",
];

/// How the caller may see events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum View {
    Full,
    Stubs,
}

/// The caller's view of events, or the 403 of the scope matrix or of the `forbidden` mode.
fn view(emu: &Emulator, caller: &Caller, method: Method) -> Result<View, CalendarError> {
    caller.may(method)?;
    if !scopes::events_at_freebusy_level(&caller.scopes) {
        return Ok(View::Full);
    }
    match emu.config.freebusy_visibility {
        FreeBusyVisibility::Full => Ok(View::Full),
        FreeBusyVisibility::Stubs => Ok(View::Stubs),
        FreeBusyVisibility::Forbidden => Err(CalendarError::insufficient_permissions()),
    }
}

fn show(view: View, e: &Event, owner: &str, zone_name: &str, zone: time::UtcOffset) -> Value {
    match view {
        View::Full => e.full_json(owner, zone_name, zone),
        View::Stubs => e.stub_json(zone_name, zone),
    }
}

fn invalid(name: &str) -> CalendarError {
    CalendarError::parameter("invalid", &format!("Invalid value for: {name}"), name)
}

fn flag(params: &Params, name: &str) -> Result<bool, CalendarError> {
    match params.get(name) {
        None | Some("false") => Ok(false),
        Some("true") => Ok(true),
        Some(_) => Err(invalid(name)),
    }
}

/// A sync token: the calendar's change counter when it was handed out, and whose calendar.
fn sync_token(sub: &str, changes: u64) -> String {
    URL_SAFE_NO_PAD.encode(format!("sync:{sub}:{changes}"))
}

fn read_sync_token(token: &str, sub: &str) -> Option<u64> {
    let text = String::from_utf8(URL_SAFE_NO_PAD.decode(token).ok()?).ok()?;
    let rest = text.strip_prefix("sync:")?.strip_prefix(sub)?.strip_prefix(':')?;
    rest.parse().ok()
}

fn page_token(offset: usize) -> String {
    URL_SAFE_NO_PAD.encode(format!("page:{offset}"))
}

fn read_page_token(token: &str) -> Option<usize> {
    let text = String::from_utf8(URL_SAFE_NO_PAD.decode(token).ok()?).ok()?;
    text.strip_prefix("page:")?.parse().ok()
}

pub async fn list(
    State(emu): State<Arc<Emulator>>,
    Path(calendar_id): Path<String>,
    params: Params,
    caller: Caller,
) -> Response {
    match list_events(&emu, &calendar_id, &params, &caller) {
        Ok(body) => answer(&params, body),
        Err(e) => e.into_response(),
    }
}

fn list_events(emu: &Emulator, calendar_id: &str, params: &Params, caller: &Caller) -> Result<Value, CalendarError> {
    let view = view(emu, caller, Method::EventsList)?;
    if !caller.owns(calendar_id) {
        return Err(CalendarError::not_found());
    }
    let types = params.all("eventTypes");
    if let Some(bad) = types.iter().find(|ty| !EVENT_TYPES.contains(ty)) {
        return Err(CalendarError::parameter("invalid", &format!("Invalid event type: {bad}"), "eventTypes"));
    }
    let single_events = flag(params, "singleEvents")?;
    let show_deleted = flag(params, "showDeleted")?;
    let min = params.get("timeMin").map(|v| t::parse(v).ok_or_else(|| invalid("timeMin"))).transpose()?;
    let max = params.get("timeMax").map(|v| t::parse(v).ok_or_else(|| invalid("timeMax"))).transpose()?;
    if let (Some(min), Some(max)) = (min, max)
        && max <= min
    {
        return Err(CalendarError::time_range_empty());
    }
    let order = params.get("orderBy");
    match order {
        None | Some("updated") => {}
        Some("startTime") if single_events => {}
        Some("startTime") => {
            return Err(CalendarError::bad_request(
                "The requested ordering is not available for the particular query.",
            ));
        }
        Some(_) => return Err(invalid("orderBy")),
    }
    let page_size = match params.get("maxResults") {
        None => DEFAULT_PAGE,
        Some(v) => v.parse::<usize>().ok().filter(|n| *n >= 1).ok_or_else(|| invalid("maxResults"))?.min(MAX_PAGE),
    };
    let offset = match params.get("pageToken") {
        None => 0,
        Some(token) => read_page_token(token).ok_or_else(|| invalid("pageToken"))?,
    };
    let sub = caller.user.sub();
    let since = match params.get("syncToken") {
        None => None,
        Some(token) => {
            if let Some(other) = NOT_WITH_SYNC.iter().find(|p| params.get(p).is_some()) {
                return Err(CalendarError::parameter(
                    "invalid",
                    &format!("Sync token cannot be used with {other}."),
                    "syncToken",
                ));
            }
            Some(read_sync_token(token, &sub).ok_or_else(CalendarError::full_sync_required)?)
        }
    };

    let (zone_name, calendar_zone) = zone(&caller.user);
    let out_zone = params.get("timeZone").and_then(t::zone_offset).unwrap_or(calendar_zone);
    let out_zone_name = params.get("timeZone").filter(|z| t::zone_offset(z).is_some()).unwrap_or(&zone_name).to_owned();
    let mut world = emu.world.lock();
    let calendar = world.calendar(&caller.user.email);
    let changes = calendar.changes;
    let mut events: Vec<&Event> = calendar
        .events
        .iter()
        .filter(|e| match since {
            // Incremental sync: what changed since, deleted events included.
            Some(seq) => e.changed_at > seq,
            None => show_deleted || !e.cancelled(),
        })
        .filter(|e| types.is_empty() || types.contains(&e.kind.event_type()))
        .filter(|e| min.is_none_or(|min| e.end.instant(calendar_zone) > min))
        .filter(|e| max.is_none_or(|max| e.start.instant(calendar_zone) < max))
        .collect();
    match order {
        Some("updated") => events.sort_by(|a, b| (a.updated, &a.id).cmp(&(b.updated, &b.id))),
        _ => {
            events.sort_by(|a, b| (a.start.instant(calendar_zone), &a.id).cmp(&(b.start.instant(calendar_zone), &b.id)))
        }
    }
    let updated = events.iter().map(|e| e.updated).max().unwrap_or_else(|| emu.clock.now());
    let items: Vec<Value> = events
        .iter()
        .skip(offset)
        .take(page_size)
        .map(|e| show(view, e, &caller.user.email, &out_zone_name, out_zone))
        .collect();
    let mut body = json!({
        "kind": "calendar#events",
        "etag": format!("\"{}\"", changes),
        "summary": caller.user.email,
        "description": "",
        "updated": t::utc_millis(updated),
        "timeZone": zone_name,
        "accessRole": if view == View::Stubs { "freeBusyReader" } else { "owner" },
        "defaultReminders": [],
        "items": items,
    });
    if offset + page_size < events.len() {
        body["nextPageToken"] = json!(page_token(offset + page_size));
    } else {
        body["nextSyncToken"] = json!(sync_token(&sub, changes));
    }
    Ok(body)
}

pub async fn get(
    State(emu): State<Arc<Emulator>>,
    Path((calendar_id, event_id)): Path<(String, String)>,
    params: Params,
    caller: Caller,
) -> Response {
    let found = view(&emu, &caller, Method::EventsGet).and_then(|view| {
        if !caller.owns(&calendar_id) {
            return Err(CalendarError::not_found());
        }
        let (zone_name, zone) = zone(&caller.user);
        let mut world = emu.world.lock();
        let event = world.calendar(&caller.user.email).events.iter().find(|e| e.id == event_id).cloned();
        event.map(|e| show(view, &e, &caller.user.email, &zone_name, zone)).ok_or_else(CalendarError::not_found)
    });
    match found {
        Ok(body) => answer(&params, body),
        Err(e) => e.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_belong_to_their_calendar() {
        assert_eq!(read_sync_token(&sync_token("123", 7), "123"), Some(7));
        assert_eq!(read_sync_token(&sync_token("123", 7), "456"), None);
        assert_eq!(read_sync_token("garbage", "123"), None);
        assert_eq!(read_page_token(&page_token(250)), Some(250));
        assert_eq!(read_page_token("nope"), None);
    }
}
