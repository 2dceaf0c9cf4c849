//! `events.list` and `events.get`: the time window, `eventTypes`, the `fields` mask, paging and
//! sync tokens, and what a free/busy-level token sees in each visibility mode.

use googleemu::{EventKind, EventSpec, FreeBusyVisibility, Running};
use reqwest::StatusCode;
use serde_json::{Value, json};
use time::macros::datetime;

use crate::support::*;

const MASK: &str = "nextPageToken,items(eventType,status,transparency,start,end)";

fn week(emu: &Running) {
    let add = |kind, start, end, summary: &str| {
        emu.add_event("alice@example.com", EventSpec::at(kind, start, end).summary(summary)).unwrap();
    };
    add(EventKind::OutOfOffice, datetime!(2026-11-26 00:00 UTC), datetime!(2026-11-27 00:00 UTC), "Holiday");
    add(EventKind::FocusTime, datetime!(2026-11-26 13:00 UTC), datetime!(2026-11-26 15:00 UTC), "Deep work");
    add(EventKind::Meeting, datetime!(2026-11-26 10:00 UTC), datetime!(2026-11-26 10:30 UTC), "Secret project");
    add(EventKind::WorkingLocation, datetime!(2026-11-26 09:00 UTC), datetime!(2026-11-26 17:00 UTC), "Home");
    // Ends exactly at timeMin / starts exactly at timeMax: both outside.
    add(EventKind::Meeting, datetime!(2026-11-25 23:00 UTC), datetime!(2026-11-26 00:00 UTC), "Before");
    add(EventKind::Meeting, datetime!(2026-11-27 00:00 UTC), datetime!(2026-11-27 01:00 UTC), "After");
}

async fn list(emu: &Running, token: &str, query: &str) -> (StatusCode, Value) {
    let (status, _, body) = calendar(emu, "GET", &format!("/calendars/primary/events?{query}"), token, None).await;
    (status, body)
}

const WINDOW: &str = "timeMin=2026-11-26T00:00:00Z&timeMax=2026-11-27T00:00:00Z&singleEvents=true";

#[tokio::test]
async fn the_window_types_and_mask_select_what_comes_back() {
    let emu = start().await;
    week(&emu);
    let token =
        access_token(&emu, "alice@example.com", "openid https://www.googleapis.com/auth/calendar.readonly").await;
    let (status, body) = list(&emu, &token, &format!("{WINDOW}&orderBy=startTime")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let summaries: Vec<&str> =
        body["items"].as_array().unwrap().iter().map(|e| e["summary"].as_str().unwrap()).collect();
    assert_eq!(summaries, ["Holiday", "Home", "Secret project", "Deep work"]);
    assert_eq!(body["kind"], "calendar#events");
    assert_eq!(body["accessRole"], "owner");
    assert!(body["nextSyncToken"].is_string() && body.get("nextPageToken").is_none());

    let query =
        format!("{WINDOW}&eventTypes=outOfOffice&eventTypes=focusTime&eventTypes=default&fields={}", urlencode(MASK));
    let (_, body) = list(&emu, &token, &query).await;
    assert_eq!(
        body,
        json!({"items": [
            {"eventType": "outOfOffice", "status": "confirmed", "start": {"dateTime": "2026-11-26T00:00:00Z", "timeZone": "UTC"}, "end": {"dateTime": "2026-11-27T00:00:00Z", "timeZone": "UTC"}},
            {"eventType": "default", "status": "confirmed", "start": {"dateTime": "2026-11-26T10:00:00Z", "timeZone": "UTC"}, "end": {"dateTime": "2026-11-26T10:30:00Z", "timeZone": "UTC"}},
            {"eventType": "focusTime", "status": "confirmed", "start": {"dateTime": "2026-11-26T13:00:00Z", "timeZone": "UTC"}, "end": {"dateTime": "2026-11-26T15:00:00Z", "timeZone": "UTC"}},
        ]})
    );
    let (_, body) =
        list(&emu, &token, &format!("{WINDOW}&eventTypes=workingLocation&fields=items(transparency,eventType)")).await;
    assert_eq!(body, json!({"items": [{"eventType": "workingLocation", "transparency": "transparent"}]}));

    let (status, body) = list(&emu, &token, "orderBy=startTime").await;
    assert_eq!((status, body["error"]["errors"][0]["reason"].as_str()), (StatusCode::BAD_REQUEST, Some("badRequest")));
    let (status, body) = list(&emu, &token, "fields=items(").await;
    assert_eq!((status, body["error"]["errors"][0]["location"].as_str()), (StatusCode::BAD_REQUEST, Some("fields")));
    let (status, _) = list(&emu, &token, "eventTypes=meeting").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // Every request is recorded with its fields and query.
    let requests = emu.calendar_requests();
    let masked = requests.iter().find(|r| r.fields.as_deref() == Some(MASK)).expect("the masked list is logged");
    assert_eq!(masked.operation.as_deref(), Some("calendar.events.list"));
    assert!(masked.query.contains("eventTypes=outOfOffice&eventTypes=focusTime"));
    assert_eq!(masked.status, 200);
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[tokio::test]
async fn pages_then_a_sync_token_that_brings_changes_and_deletions() {
    let emu = start().await;
    week(&emu);
    let token =
        access_token(&emu, "alice@example.com", "openid https://www.googleapis.com/auth/calendar.readonly").await;
    let (_, first) = list(&emu, &token, "maxResults=4&fields=nextPageToken,nextSyncToken,items(id)").await;
    assert_eq!(first["items"].as_array().unwrap().len(), 4);
    let page = first["nextPageToken"].as_str().unwrap();
    let (_, second) = list(&emu, &token, &format!("maxResults=4&pageToken={page}")).await;
    assert_eq!(second["items"].as_array().unwrap().len(), 2);
    let sync = second["nextSyncToken"].as_str().unwrap().to_owned();

    let (_, nothing) = list(&emu, &token, &format!("syncToken={sync}")).await;
    assert_eq!(nothing["items"], json!([]));
    let added = emu.add_event("alice@example.com", EventSpec::now(EventKind::Meeting, 30)).unwrap();
    let gone = &first["items"][0]["id"];
    emu.delete_event("alice@example.com", gone.as_str().unwrap()).unwrap();
    let (_, changes) = list(&emu, &token, &format!("syncToken={sync}")).await;
    let items = changes["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "{changes}");
    assert!(items.iter().any(|e| e["id"] == added.id.as_str() && e["status"] == "confirmed"));
    assert!(items.iter().any(|e| e["id"] == *gone && e["status"] == "cancelled"));

    let (status, body) = list(&emu, &token, "syncToken=not-one-of-ours").await;
    assert_eq!(status, StatusCode::GONE);
    assert_eq!(body["error"]["errors"][0]["reason"], "fullSyncRequired");
    let (status, _) = list(&emu, &token, &format!("syncToken={sync}&timeMin=2026-11-26T00:00:00Z")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // Deleted events show with showDeleted only.
    let (_, all) = list(&emu, &token, "showDeleted=true&fields=items(id,status)").await;
    assert!(all["items"].as_array().unwrap().iter().any(|e| e["status"] == "cancelled"));
    let (_, live) = list(&emu, &token, "fields=items(id,status)").await;
    assert!(live["items"].as_array().unwrap().iter().all(|e| e["status"] == "confirmed"));
}

async fn freebusy_level_view(visibility: FreeBusyVisibility) -> (StatusCode, Value, StatusCode) {
    let emu = start_with(|c| c.freebusy_visibility = visibility).await;
    week(&emu);
    let token = access_token(&emu, "alice@example.com", KEHAI_SCOPES).await;
    let query = format!(
        "{WINDOW}&eventTypes=outOfOffice&eventTypes=default&fields=items(eventType,summary,description,attendees,start)"
    );
    let (status, body) = list(&emu, &token, &query).await;
    let id = emu.events("alice@example.com").unwrap()[0].id.clone();
    let (get_status, _, _) = calendar(&emu, "GET", &format!("/calendars/primary/events/{id}"), &token, None).await;
    (status, body, get_status)
}

#[tokio::test]
async fn a_freebusy_level_token_sees_stubs_full_events_or_nothing_as_configured() {
    let (status, stubs, get) = freebusy_level_view(FreeBusyVisibility::Stubs).await;
    assert_eq!((status, get), (StatusCode::OK, StatusCode::OK));
    assert_eq!(
        stubs,
        json!({"items": [
            {"eventType": "outOfOffice", "start": {"dateTime": "2026-11-26T00:00:00Z", "timeZone": "UTC"}},
            {"eventType": "default", "start": {"dateTime": "2026-11-26T10:00:00Z", "timeZone": "UTC"}},
        ]}),
        "no title, description or guests even when asked"
    );

    let (status, full, _) = freebusy_level_view(FreeBusyVisibility::Full).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(full["items"][1]["summary"], "Secret project");
    assert_eq!(full["items"][1]["attendees"][0]["email"], "alice@example.com");

    let (status, body, get) = freebusy_level_view(FreeBusyVisibility::Forbidden).await;
    assert_eq!((status, get), (StatusCode::FORBIDDEN, StatusCode::FORBIDDEN));
    assert_eq!(body["error"]["errors"][0]["reason"], "insufficientPermissions");
}

#[tokio::test]
async fn stubs_mode_spares_tokens_with_a_broader_scope() {
    let emu = start().await;
    week(&emu);
    let scope = format!("{KEHAI_SCOPES} https://www.googleapis.com/auth/calendar.events.readonly");
    let token = access_token(&emu, "alice@example.com", &scope).await;
    let (_, body) = list(&emu, &token, &format!("{WINDOW}&eventTypes=default&fields=items(summary)")).await;
    assert_eq!(body, json!({"items": [{"summary": "Secret project"}]}));
    let id = emu.events("alice@example.com").unwrap()[2].id.clone();
    let (status, _, event) =
        calendar(&emu, "GET", &format!("/calendars/primary/events/{id}?fields=id,summary"), &token, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(event, json!({"id": id, "summary": "Secret project"}));
    let (status, _, _) = calendar(&emu, "GET", "/calendars/primary/events/nope", &token, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}
