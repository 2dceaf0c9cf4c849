//! Free/busy, status events, channels, and throttling.

use std::sync::{Arc, Mutex};

use axum::{Router, http::HeaderMap, routing::post};
use googleemu::{EventKind, EventSpec, Fault, FaultKind, FaultTarget};
use kehai_google::{GoogleError, NewChannel, StatusKind};
use time::OffsetDateTime;

use super::*;

fn day() -> (OffsetDateTime, OffsetDateTime) {
    let now = OffsetDateTime::now_utc();
    (now, now + time::Duration::hours(24))
}

#[tokio::test]
async fn busy_times_come_merged_and_status_events_without_content() {
    let emu = googleemu().await;
    let tokens = connected(&emu, "alice@example.com", "alice-password").await;
    let minutes = time::Duration::minutes;
    for (kind, start, length) in [
        (EventKind::Meeting, minutes(10), minutes(30)),
        (EventKind::Meeting, minutes(30), minutes(30)),
        (EventKind::FocusTime, minutes(120), minutes(60)),
        (EventKind::Declined, minutes(300), minutes(30)),
        (EventKind::Free, minutes(400), minutes(30)),
        (EventKind::OutOfOffice, minutes(600), minutes(60)),
    ] {
        emu.add_event("alice@example.com", EventSpec::starting_in(kind, start, length)).unwrap();
    }
    let (from, to) = day();
    let busy = calendar(&emu).free_busy(&tokens.access_token, from, to).await.unwrap();
    let lengths: Vec<i64> = busy.iter().map(|b| (b.end - b.start).whole_minutes()).collect();
    assert_eq!(lengths, [50, 60, 60], "two meetings merged, focus, out of office; declined and free ignored");
    let status = calendar(&emu).status_events(&tokens.access_token, from, to).await.unwrap();
    let kinds: Vec<StatusKind> = status.iter().map(|s| s.kind).collect();
    assert!(kinds.contains(&StatusKind::FocusTime) && kinds.contains(&StatusKind::OutOfOffice), "{kinds:?}");
    assert_eq!(kinds.len(), 2);
    let asked: Vec<_> = emu.calendar_requests().into_iter().filter_map(|r| r.fields).collect();
    assert_eq!(asked, ["items(eventType,status,transparency,start,end)"], "never a title");
}

#[tokio::test]
async fn throttling_is_waited_out_and_a_refusal_is_not_retried() {
    let emu = googleemu().await;
    let tokens = connected(&emu, "alice@example.com", "alice-password").await;
    let fault = |kind| Fault {
        target: FaultTarget::Calendar,
        kind,
        count: 1,
        operation: None,
        retry_after: Some(1),
        delay_ms: None,
        percent: None,
    };
    emu.add_fault(fault(FaultKind::UserRateLimitExceeded)).unwrap();
    emu.add_fault(fault(FaultKind::TooManyRequests)).unwrap();
    emu.reset_counters();
    let (from, to) = day();
    calendar(&emu).free_busy(&tokens.access_token, from, to).await.unwrap();
    assert_eq!(emu.calendar_requests().len(), 3, "403 and 429 retried");
    let refused = calendar(&emu).free_busy(&SecretString::from("made-up"), from, to).await.unwrap_err();
    assert!(matches!(&refused, GoogleError::Api { status: 401, .. }), "{refused}");
    assert_eq!(emu.calendar_requests().len(), 4, "401 not retried");
}

#[tokio::test]
async fn a_channel_pushes_sync_then_changes_and_stops_when_told() {
    let emu = googleemu().await;
    let tokens = connected(&emu, "alice@example.com", "alice-password").await;
    let pushes: Arc<Mutex<Vec<HeaderMap>>> = Arc::default();
    let seen = pushes.clone();
    let hook = Router::new().route(
        "/webhooks/gcal",
        post(move |headers: HeaderMap| {
            seen.lock().unwrap().push(headers);
            async { StatusCode::OK }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("http://{}/webhooks/gcal", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, hook).await });

    let channel = NewChannel {
        id: "kehai-test-channel".into(),
        token: SecretString::from("channel-token"),
        address,
        ttl: Duration::from_secs(7 * 24 * 3600),
    };
    let made = calendar(&emu).watch(&tokens.access_token, &channel).await.unwrap();
    assert_eq!(made.id, channel.id);
    let expires = made.expiration.unwrap() - OffsetDateTime::now_utc();
    assert!((expires - time::Duration::days(7)).abs() < time::Duration::minutes(1), "{expires}");
    emu.add_event("alice@example.com", EventSpec::now(EventKind::Meeting, 30)).unwrap();
    let states = || -> Vec<String> {
        pushes.lock().unwrap().iter().map(|h| h["x-goog-resource-state"].to_str().unwrap().to_owned()).collect()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while states().len() < 2 {
        assert!(std::time::Instant::now() < deadline, "{:?}", states());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(states(), ["sync", "exists"]);
    let first = pushes.lock().unwrap()[0].clone();
    assert_eq!(first["x-goog-channel-token"], "channel-token");
    assert_eq!(first["x-goog-resource-id"], made.resource_id.as_str());

    calendar(&emu).stop(&tokens.access_token, &made.id, &made.resource_id).await.unwrap();
    emu.add_event("alice@example.com", EventSpec::now(EventKind::Meeting, 30)).unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(states().len(), 2, "nothing after the stop");
    let again = calendar(&emu).stop(&tokens.access_token, &made.id, &made.resource_id).await.unwrap_err();
    assert!(matches!(again, GoogleError::Api { status: 404, .. }), "{again}");
}
