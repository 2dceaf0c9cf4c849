//! The control API and page: users, events of every kind, the clock, request logs, Calendar
//! faults, counters.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;

use crate::support::*;

#[tokio::test]
async fn users_and_events_through_the_json_api() {
    let emu = start().await;
    let (_, users) = control(&emu, "GET", "/users", None).await;
    let users = users["users"].as_array().unwrap();
    let carol = users.iter().find(|u| u["email"] == "carol@gmail.com").unwrap();
    assert_eq!((carol["workspace"].as_bool(), carol["hd"].is_null()), (Some(false), true));
    let alice = users.iter().find(|u| u["email"] == "alice@example.com").unwrap();
    assert_eq!(alice["hd"], "example.com");

    for (kind, event_type, transparency, response) in [
        ("meeting", "default", None, Some("accepted")),
        ("outOfOffice", "outOfOffice", None, None),
        ("focusTime", "focusTime", None, None),
        ("declined", "default", None, Some("declined")),
        ("needsAction", "default", None, Some("needsAction")),
        ("free", "default", Some("transparent"), Some("accepted")),
        ("workingLocation", "workingLocation", Some("transparent"), None),
    ] {
        let (status, event) = control(
            &emu,
            "POST",
            "/users/alice@example.com/events",
            Some(json!({"kind": kind, "startInMinutes": 5, "minutes": 20, "summary": "S"})),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{kind}: {event}");
        assert_eq!(event["eventType"], event_type, "{kind}");
        assert_eq!(event["transparency"].as_str(), transparency, "{kind}");
        let own = event["attendees"]
            .as_array()
            .and_then(|a| a.iter().find(|x| x["self"] == true))
            .map(|x| x["responseStatus"].as_str().unwrap());
        assert_eq!(own, response, "{kind}");
        assert_eq!(event["summary"], "S");
    }
    let (status, _) = control(&emu, "POST", "/users/alice@example.com/events", Some(json!({"kind": "party"}))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = control(&emu, "POST", "/users/nobody@example.com/events", Some(json!({"kind": "meeting"}))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, body) = control(
        &emu,
        "POST",
        "/users/alice@example.com/events",
        Some(json!({"kind": "meeting", "startInSeconds": 30, "seconds": 90})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let (start, end) = (body["start"]["dateTime"].as_str().unwrap(), body["end"]["dateTime"].as_str().unwrap());
    let parse = |s| time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).unwrap();
    assert_eq!(parse(end) - parse(start), time::Duration::seconds(90));
    let (status, _) = control(
        &emu,
        "POST",
        "/users/alice@example.com/events",
        Some(json!({"kind": "outOfOffice", "allDay": true, "days": 2})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);

    let (_, events) = control(&emu, "GET", "/users/alice@example.com/events", None).await;
    assert_eq!(events["items"].as_array().unwrap().len(), 9);
    let id = events["items"][0]["id"].as_str().unwrap();
    assert_eq!(
        control(&emu, "DELETE", &format!("/users/alice@example.com/events/{id}"), None).await.0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        control(&emu, "DELETE", &format!("/users/alice@example.com/events/{id}"), None).await.0,
        StatusCode::NOT_FOUND
    );
    let (_, cleared) = control(&emu, "DELETE", "/users/alice@example.com/events", None).await;
    assert_eq!(cleared["deleted"], 8);
}

#[tokio::test]
async fn the_clock_advances_and_request_logs_count_calls_per_user() {
    let emu = start().await;
    let (_, clock) = control(&emu, "GET", "/clock", None).await;
    assert_eq!(clock["offsetSeconds"], 0);
    let alice = access_token(&emu, "alice@example.com", KEHAI_SCOPES).await;
    let bob = access_token(&emu, "bob@example.com", KEHAI_SCOPES).await;
    let from = emu.now();
    for _ in 0..3 {
        calendar(&emu, "GET", "/calendars/primary/events?fields=items(start,end)", &alice, None).await;
    }
    calendar(&emu, "GET", "/calendars/primary/events", &bob, None).await;
    let (_, advanced) = control(&emu, "POST", "/clock/advance", Some(json!({"seconds": 3600}))).await;
    assert_eq!(advanced["offsetSeconds"], 3600);
    let to = emu.now();
    calendar(&emu, "GET", "/calendars/primary/events", &alice, None).await;
    assert_eq!(emu.calendar_requests_by("alice@example.com", from, to), 3);
    assert_eq!(emu.calendar_requests_by("bob@example.com", from, to), 1);
    let since = googleemu::clock::unix_ms(from);
    let (_, log) = control(
        &emu,
        "GET",
        &format!("/requests?user=alice@example.com&since={since}&until={}", googleemu::clock::unix_ms(to)),
        None,
    )
    .await;
    assert_eq!(log["count"], 3);
    assert_eq!(log["requests"][0]["fields"], "items(start,end)");
    assert!(
        emu.calendar_requests().iter().all(|r| !r.fields.as_deref().unwrap_or("").contains("summary")),
        "no title ever asked for"
    );

    assert_eq!(control(&emu, "POST", "/counters/reset", None).await.0, StatusCode::NO_CONTENT);
    assert!(emu.calendar_requests().is_empty());
}

#[tokio::test]
async fn calendar_faults_answer_quota_and_server_errors() {
    let emu = start().await;
    let token = access_token(&emu, "alice@example.com", KEHAI_SCOPES).await;
    let fault = |kind: &str| json!({"target": "calendar", "kind": kind});
    for kind in ["rateLimitExceeded", "userRateLimitExceeded", "backendError", "serviceUnavailable"] {
        assert_eq!(control(&emu, "POST", "/faults", Some(fault(kind))).await.0, StatusCode::NO_CONTENT);
    }
    control(&emu, "POST", "/faults", Some(json!({"target": "calendar", "kind": "tooManyRequests", "retryAfter": 7, "operation": "calendar.events.list"}))).await;
    let (_, faults) = control(&emu, "GET", "/faults", None).await;
    assert_eq!(faults["faults"].as_array().unwrap().len(), 5);

    // The list-only fault waits for a list; the freeBusy calls take the others in order.
    let body =
        json!({"timeMin": "2026-11-26T09:00:00Z", "timeMax": "2026-11-27T09:00:00Z", "items": [{"id": "primary"}]});
    let mut seen = Vec::new();
    for _ in 0..5 {
        let (status, _, error) = calendar(&emu, "POST", "/freeBusy", &token, Some(body.clone())).await;
        seen.push((status.as_u16(), error["error"]["errors"][0]["reason"].as_str().map(str::to_owned)));
    }
    let reason = |r: &str| Some(r.to_owned());
    assert_eq!(
        seen,
        [
            (403, reason("rateLimitExceeded")),
            (403, reason("userRateLimitExceeded")),
            (500, reason("backendError")),
            (503, reason("backendError")),
            (200, None),
        ]
    );
    let (status, headers, error) = calendar(&emu, "GET", "/calendars/primary/events", &token, None).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(headers["retry-after"], "7");
    assert_eq!(
        error["error"]["errors"][0],
        json!({"domain": "usageLimits", "reason": "rateLimitExceeded", "message": "Rate Limit Exceeded"})
    );
    assert_eq!(error["error"]["code"], 429);
    assert_eq!(emu.calendar_requests().iter().filter(|r| r.status == 429).count(), 1, "faults are logged too");

    let (status, _) = control(&emu, "POST", "/faults", Some(json!({"target": "calendar", "kind": "drop"}))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = control(
        &emu,
        "POST",
        "/faults",
        Some(json!({"target": "calendar", "kind": "backendError", "operation": "calendar.nope"})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(control(&emu, "DELETE", "/faults", None).await.0, StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn the_control_page_shows_users_and_its_buttons_act() {
    let emu = start().await;
    let page = reqwest::get(emu.url("/_emu/")).await.unwrap().text().await.unwrap();
    assert!(page.contains("alice@example.com") && page.contains("(consumer account)"), "{page}");
    let r = browser()
        .post(emu.url("/_emu/act"))
        .form(&[
            ("action", "add-event"),
            ("user", "bob@example.com"),
            ("kind", "focusTime"),
            ("start_in_minutes", "0"),
            ("minutes", "25"),
            ("summary", ""),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let events = emu.events("bob@example.com").unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].kind, googleemu::EventKind::FocusTime);
    let r =
        browser().post(emu.url("/_emu/act")).form(&[("action", "advance"), ("seconds", "60")]).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(emu.clock.offset(), Duration::from_secs(60));
    let page = reqwest::get(emu.url("/_emu/")).await.unwrap().text().await.unwrap();
    assert!(page.contains("Focus time"));
}

#[tokio::test]
async fn reset_forgets_everything_and_puts_the_clock_back() {
    let emu = start().await;
    let tokens = connect(&emu, "alice@example.com", KEHAI_SCOPES).await;
    emu.add_event("alice@example.com", googleemu::EventSpec::now(googleemu::EventKind::Meeting, 10)).unwrap();
    emu.advance(Duration::from_secs(100));
    assert_eq!(control(&emu, "POST", "/reset", None).await.0, StatusCode::NO_CONTENT);
    assert_eq!(emu.clock.offset(), Duration::ZERO);
    assert!(emu.events("alice@example.com").unwrap().is_empty());
    assert_eq!(refresh(&emu, CLIENT_ID, tokens["refresh_token"].as_str().unwrap()).await.0, StatusCode::BAD_REQUEST);
}
