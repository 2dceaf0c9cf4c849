//! `freeBusy`: what counts as busy, merging, clipping, formatting, per-calendar errors, and
//! the empty range.

use googleemu::{EventKind, EventSpec};
use reqwest::StatusCode;
use serde_json::json;
use time::{OffsetDateTime, macros::datetime};

use crate::support::*;

fn add(emu: &googleemu::Running, kind: EventKind, start: OffsetDateTime, end: OffsetDateTime) {
    emu.add_event("alice@example.com", EventSpec::at(kind, start, end)).unwrap();
}

async fn query(emu: &googleemu::Running, token: &str, body: serde_json::Value) -> (StatusCode, serde_json::Value) {
    let (status, _, body) = calendar(emu, "POST", "/freeBusy?alt=json", token, Some(body)).await;
    (status, body)
}

#[tokio::test]
async fn busy_intervals_are_merged_clipped_and_only_from_busy_events() {
    let emu = start().await;
    let token = access_token(&emu, "alice@example.com", KEHAI_SCOPES).await;
    // Overlapping and touching meetings merge; OOO and an unanswered invitation count.
    add(&emu, EventKind::Meeting, datetime!(2026-11-26 08:30 UTC), datetime!(2026-11-26 09:30 UTC)); // clipped at 09:00
    add(&emu, EventKind::Meeting, datetime!(2026-11-26 10:00 UTC), datetime!(2026-11-26 10:30 UTC));
    add(&emu, EventKind::FocusTime, datetime!(2026-11-26 10:15 UTC), datetime!(2026-11-26 11:00 UTC));
    add(&emu, EventKind::NeedsAction, datetime!(2026-11-26 11:00 UTC), datetime!(2026-11-26 11:30 UTC));
    add(&emu, EventKind::OutOfOffice, datetime!(2026-11-26 13:00 UTC), datetime!(2026-11-26 14:00 UTC));
    // Not busy: declined, free, working location; and one outside the window.
    add(&emu, EventKind::Declined, datetime!(2026-11-26 15:00 UTC), datetime!(2026-11-26 16:00 UTC));
    add(&emu, EventKind::Free, datetime!(2026-11-26 16:00 UTC), datetime!(2026-11-26 17:00 UTC));
    add(&emu, EventKind::WorkingLocation, datetime!(2026-11-26 09:00 UTC), datetime!(2026-11-26 18:00 UTC));
    add(&emu, EventKind::Meeting, datetime!(2026-11-27 09:00 UTC), datetime!(2026-11-27 10:00 UTC));
    // A deleted meeting does not count.
    let gone = emu
        .add_event(
            "alice@example.com",
            EventSpec::at(EventKind::Meeting, datetime!(2026-11-26 16:30 UTC), datetime!(2026-11-26 17:30 UTC)),
        )
        .unwrap();
    emu.delete_event("alice@example.com", &gone.id).unwrap();

    let (status, body) = query(
        &emu,
        &token,
        json!({
            "timeMin": "2026-11-26T09:00:00Z", "timeMax": "2026-11-27T09:00:00Z", "timeZone": "UTC",
            "items": [{"id": "primary"}, {"id": "alice@example.com"}, {"id": "bob@example.com"}],
        }),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let busy = json!([
        {"start": "2026-11-26T09:00:00Z", "end": "2026-11-26T09:30:00Z"},
        {"start": "2026-11-26T10:00:00Z", "end": "2026-11-26T11:30:00Z"},
        {"start": "2026-11-26T13:00:00Z", "end": "2026-11-26T14:00:00Z"},
    ]);
    assert_eq!(
        body,
        json!({
            "kind": "calendar#freeBusy",
            "timeMin": "2026-11-26T09:00:00.000Z",
            "timeMax": "2026-11-27T09:00:00.000Z",
            "calendars": {
                "primary": {"busy": busy},
                "alice@example.com": {"busy": busy},
                "bob@example.com": {"errors": [{"domain": "global", "reason": "notFound"}], "busy": []},
            }
        })
    );
}

#[tokio::test]
async fn times_come_back_in_the_asked_time_zone() {
    let emu = start().await;
    let token = access_token(&emu, "alice@example.com", KEHAI_SCOPES).await;
    add(&emu, EventKind::Meeting, datetime!(2026-11-26 10:00 UTC), datetime!(2026-11-26 10:30 UTC));
    let (_, body) = query(
        &emu,
        &token,
        json!({
            "timeMin": "2026-11-26T18:00:00+09:00", "timeMax": "2026-11-27T18:00:00+09:00", "timeZone": "Asia/Tokyo",
            "items": [{"id": "primary"}],
        }),
    )
    .await;
    assert_eq!(body["timeMin"], "2026-11-26T09:00:00.000Z", "bounds in UTC");
    assert_eq!(
        body["calendars"]["primary"]["busy"],
        json!([{"start": "2026-11-26T19:00:00+09:00", "end": "2026-11-26T19:30:00+09:00"}])
    );
}

#[tokio::test]
async fn an_empty_range_is_timerangeempty_in_the_backend_envelope() {
    let emu = start().await;
    let token = access_token(&emu, "alice@example.com", KEHAI_SCOPES).await;
    let (status, body) = query(
        &emu,
        &token,
        json!({
            "timeMin": "2026-11-26T09:00:00Z", "timeMax": "2026-11-26T09:00:00Z", "items": [{"id": "primary"}],
        }),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        json!({"error": {
            "errors": [{"domain": "calendar", "reason": "timeRangeEmpty", "message": "The specified time range is empty."}],
            "code": 400, "message": "The specified time range is empty.",
        }})
    );
    let (status, body) = query(&emu, &token, json!({"timeMax": "2026-11-26T09:00:00Z", "items": []})).await;
    assert_eq!((status, body["error"]["errors"][0]["reason"].as_str()), (StatusCode::BAD_REQUEST, Some("required")));
}

#[tokio::test]
async fn a_meeting_made_now_is_busy_now() {
    let emu = start().await;
    let token = access_token(&emu, "bob@example.com", KEHAI_SCOPES).await;
    let (status, body) =
        control(&emu, "POST", "/users/bob@example.com/events", Some(json!({"kind": "meeting", "minutes": 15}))).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let now = OffsetDateTime::now_utc();
    let (_, body) = query(
        &emu,
        &token,
        json!({
            "timeMin": rfc3339(now - time::Duration::minutes(1)), "timeMax": rfc3339(now + time::Duration::hours(1)),
            "items": [{"id": "primary"}],
        }),
    )
    .await;
    let busy = &body["calendars"]["primary"]["busy"];
    assert_eq!(busy.as_array().unwrap().len(), 1, "{body}");
    let end =
        time::OffsetDateTime::parse(busy[0]["end"].as_str().unwrap(), &time::format_description::well_known::Rfc3339)
            .unwrap();
    assert!((end - now - time::Duration::minutes(15)).abs() < time::Duration::seconds(5));
}
