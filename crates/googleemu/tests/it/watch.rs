//! `events.watch`, push notifications and `channels.stop`: the sync message, `exists` on
//! change with Google's headers and no body, filters, retries, faults, stop and expiry.

use std::time::Duration;

use googleemu::{EventKind, EventSpec, Running};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::{hook::Hook, support::*};

async fn watch(emu: &Running, token: &str, body: Value, query: &str) -> (StatusCode, Value) {
    let (status, _, body) =
        calendar(emu, "POST", &format!("/calendars/primary/events/watch{query}"), token, Some(body)).await;
    (status, body)
}

fn channel(id: &str, hook: &Hook) -> Value {
    json!({"id": id, "type": "web_hook", "address": hook.url, "token": "v1.k=3.c=abc", "params": {"ttl": "3600"}})
}

async fn stop(emu: &Running, token: &str, id: &str, resource_id: &str) -> StatusCode {
    calendar(emu, "POST", "/channels/stop", token, Some(json!({"id": id, "resourceId": resource_id}))).await.0
}

#[tokio::test]
async fn a_channel_gets_sync_then_exists_on_every_change_with_googles_headers() {
    let emu = start().await;
    let mut hook = Hook::start().await;
    let token = access_token(&emu, "alice@example.com", KEHAI_SCOPES).await;
    let before = time::OffsetDateTime::now_utc();
    let (status, created) = watch(&emu, &token, channel("chan-1", &hook), "?alt=json").await;
    assert_eq!(status, StatusCode::OK, "{created}");
    let mut keys: Vec<&str> = created.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort();
    assert_eq!(keys, ["expiration", "id", "kind", "resourceId", "resourceUri", "token"]);
    assert_eq!((created["kind"].as_str(), created["id"].as_str()), (Some("api#channel"), Some("chan-1")));
    assert_eq!(created["token"], "v1.k=3.c=abc");
    assert_eq!(created["resourceUri"], emu.url("/calendar/v3/calendars/primary/events?alt=json"));
    let expiration: i64 = created["expiration"].as_str().expect("a string of milliseconds").parse().unwrap();
    let expected = (before.unix_timestamp() + 3600) * 1000;
    assert!((expiration - expected).abs() < 5_000, "{expiration} vs {expected}");

    let sync = hook.next().await;
    assert_eq!(sync.state(), "sync");
    assert_eq!(sync.number(), 1);
    assert!(sync.body.is_empty());
    assert_eq!(sync.header("content-length"), Some("0"));
    assert!(sync.header("user-agent").unwrap().starts_with("APIs-Google"));
    assert_eq!(sync.header("x-goog-channel-id"), Some("chan-1"));
    assert_eq!(sync.header("x-goog-channel-token"), Some("v1.k=3.c=abc"));
    assert_eq!(sync.header("x-goog-resource-id"), created["resourceId"].as_str());
    assert_eq!(sync.header("x-goog-resource-uri"), created["resourceUri"].as_str());
    let rfc1123 = googleemu::calendar::time::rfc1123(googleemu::clock::from_unix_ms(expiration));
    assert_eq!(sync.header("x-goog-channel-expiration"), Some(rfc1123.as_str()));
    assert!(rfc1123.ends_with(" GMT"));

    let event = emu.add_event("alice@example.com", EventSpec::now(EventKind::Meeting, 30)).unwrap();
    let first = hook.next().await;
    assert_eq!(first.state(), "exists");
    assert!(first.body.is_empty());
    assert!(first.number() > 2, "increasing, not sequential: {}", first.number());
    emu.delete_event("alice@example.com", &event.id).unwrap();
    let second = hook.next().await;
    assert_eq!(second.state(), "exists");
    assert!(second.number() > first.number());
    // Bob's calendar is not Alice's.
    emu.add_event("bob@example.com", EventSpec::now(EventKind::Meeting, 30)).unwrap();
    hook.nothing_for(Duration::from_millis(300)).await;

    // The resource id is stable for the calendar.
    let (_, again) = watch(&emu, &token, channel("chan-2", &hook), "").await;
    assert_eq!(again["resourceId"], created["resourceId"]);
    let pushes = emu.pushes();
    let of_chan_1: Vec<(&str, u64, Option<u16>)> = pushes
        .iter()
        .filter(|p| p.channel_id == "chan-1")
        .map(|p| (p.state.as_str(), p.message_number, p.status))
        .collect();
    assert_eq!(
        of_chan_1,
        [("sync", 1, Some(200)), ("exists", first.number(), Some(200)), ("exists", second.number(), Some(200))]
    );
}

#[tokio::test]
async fn watch_requests_are_checked_as_google_documents() {
    let emu = start().await;
    let hook = Hook::start().await;
    let token = access_token(&emu, "alice@example.com", KEHAI_SCOPES).await;
    let too_long = "x".repeat(65);
    let (status, _) = watch(&emu, &token, channel(&too_long, &hook), "").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) =
        watch(&emu, &token, json!({"id": "t", "type": "web_hook", "address": hook.url, "token": "t".repeat(257)}), "")
            .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = watch(&emu, &token, json!({"id": "t", "type": "email", "address": hook.url}), "").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, created) =
        watch(&emu, &token, json!({"id": "x".repeat(64), "type": "webhook", "address": hook.url}), "").await;
    assert_eq!(status, StatusCode::OK, "64 characters and `webhook` are fine");
    assert!(created.get("token").is_none());
    let expiration: i64 = created["expiration"].as_str().unwrap().parse().unwrap();
    assert!((expiration - emu.clock.now_ms() - 604_800_000).abs() < 5_000, "default ttl: a week");
    let (status, body) =
        watch(&emu, &token, json!({"id": "x".repeat(64), "type": "webhook", "address": hook.url}), "").await;
    assert_eq!(
        (status, body["error"]["errors"][0]["reason"].as_str()),
        (StatusCode::BAD_REQUEST, Some("channelIdNotUnique"))
    );
    // An expiration earlier than the ttl wins.
    let soon = emu.clock.now_ms() + 60_000;
    let (_, created) = watch(
        &emu,
        &token,
        json!({"id": "e", "type": "web_hook", "address": hook.url, "expiration": soon.to_string()}),
        "",
    )
    .await;
    assert_eq!(created["expiration"], soon.to_string());

    let strict = start_with(|c| c.allow_http_push = false).await;
    let token = access_token(&strict, "alice@example.com", KEHAI_SCOPES).await;
    let (status, body) = watch(&strict, &token, channel("h", &hook), "").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["errors"][0]["reason"], "push.webhookUrlNotHttps");
    assert_eq!(body["error"]["message"], format!("WebHook callback must be HTTPS: {}", hook.url));
}

#[tokio::test]
async fn an_event_types_filter_limits_what_triggers_a_push() {
    let emu = start().await;
    let mut hook = Hook::start().await;
    let token = access_token(&emu, "alice@example.com", KEHAI_SCOPES).await;
    watch(&emu, &token, channel("ooo-only", &hook), "?eventTypes=outOfOffice&eventTypes=focusTime").await;
    assert_eq!(hook.next().await.state(), "sync");
    emu.add_event("alice@example.com", EventSpec::now(EventKind::Meeting, 30)).unwrap();
    hook.nothing_for(Duration::from_millis(300)).await;
    emu.add_event("alice@example.com", EventSpec::now(EventKind::OutOfOffice, 30)).unwrap();
    assert_eq!(hook.next().await.state(), "exists");
}

#[tokio::test]
async fn failed_pushes_are_retried_on_5xx_only() {
    let emu = start().await;
    let mut hook = Hook::start().await;
    let token = access_token(&emu, "alice@example.com", KEHAI_SCOPES).await;
    hook.answer(&[503, 500]);
    watch(&emu, &token, channel("retry", &hook), "").await;
    for _ in 0..3 {
        assert_eq!(hook.next().await.number(), 1, "the same sync message, again");
    }
    hook.nothing_for(Duration::from_millis(300)).await;
    let attempts: Vec<(u32, Option<u16>, bool)> =
        emu.pushes().iter().map(|p| (p.attempt, p.status, p.delivered)).collect();
    assert_eq!(attempts, [(1, Some(503), false), (2, Some(500), false), (3, Some(200), true)]);

    hook.answer(&[404]);
    emu.add_event("alice@example.com", EventSpec::now(EventKind::Meeting, 30)).unwrap();
    hook.next().await;
    hook.nothing_for(Duration::from_millis(300)).await;
    assert_eq!(emu.pushes().last().map(|p| (p.attempt, p.status)), Some((1, Some(404))), "no retry after a 404");
}

#[tokio::test]
async fn only_the_user_and_client_that_made_a_channel_can_stop_it() {
    let emu = start().await;
    let mut hook = Hook::start().await;
    let alice = access_token(&emu, "alice@example.com", KEHAI_SCOPES).await;
    let (_, created) = watch(&emu, &alice, channel("mine", &hook), "").await;
    hook.next().await;
    let resource = created["resourceId"].as_str().unwrap();
    let bob = access_token(&emu, "bob@example.com", KEHAI_SCOPES).await;
    assert_eq!(stop(&emu, &bob, "mine", resource).await, StatusCode::NOT_FOUND);
    let other_client = connect_with(&emu, TESTING_CLIENT, "alice@example.com", KEHAI_SCOPES).await;
    assert_eq!(
        stop(&emu, other_client["access_token"].as_str().unwrap(), "mine", resource).await,
        StatusCode::NOT_FOUND
    );
    assert_eq!(stop(&emu, &alice, "mine", "wrong-resource").await, StatusCode::NOT_FOUND);

    let (status, _, body) =
        calendar(&emu, "POST", "/channels/stop", &alice, Some(json!({"id": "mine", "resourceId": resource}))).await;
    assert_eq!((status, body), (StatusCode::NO_CONTENT, Value::Null));
    emu.add_event("alice@example.com", EventSpec::now(EventKind::Meeting, 30)).unwrap();
    hook.nothing_for(Duration::from_millis(300)).await;
    let (status, _, body) =
        calendar(&emu, "POST", "/channels/stop", &alice, Some(json!({"id": "mine", "resourceId": resource}))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"]["errors"][0]["reason"], "notFound");
    assert_eq!(body["error"]["code"], 404);
}

#[tokio::test]
async fn expired_channels_receive_nothing() {
    let emu = start().await;
    let mut hook = Hook::start().await;
    let token = access_token(&emu, "alice@example.com", KEHAI_SCOPES).await;
    watch(&emu, &token, channel("short", &hook), "").await;
    hook.next().await;
    emu.advance(Duration::from_secs(3601));
    emu.add_event("alice@example.com", EventSpec::now(EventKind::Meeting, 30)).unwrap();
    hook.nothing_for(Duration::from_millis(300)).await;
    let (_, channels) = control(&emu, "GET", "/channels", None).await;
    assert_eq!(channels["channels"][0]["expired"], true);
    assert_eq!(channels["channels"][0]["hasToken"], true);
    assert!(channels["channels"][0].get("token").is_none(), "the control API shows no token");
}

#[tokio::test]
async fn push_faults_drop_duplicate_delay_and_deliver_late() {
    let emu = start().await;
    let mut hook = Hook::start().await;
    let token = access_token(&emu, "alice@example.com", KEHAI_SCOPES).await;
    let (_, created) = watch(&emu, &token, channel("faulty", &hook), "").await;
    hook.next().await;
    let change = || emu.add_event("alice@example.com", EventSpec::now(EventKind::Meeting, 30)).unwrap();

    control(&emu, "POST", "/faults", Some(json!({"target": "pushes", "kind": "drop"}))).await;
    change();
    hook.nothing_for(Duration::from_millis(300)).await;

    control(&emu, "POST", "/faults", Some(json!({"target": "pushes", "kind": "duplicate"}))).await;
    change();
    let (a, b) = (hook.next().await, hook.next().await);
    assert_eq!(a.number(), b.number());

    control(&emu, "POST", "/faults", Some(json!({"target": "pushes", "kind": "delay", "delayMs": 600}))).await;
    change();
    hook.nothing_for(Duration::from_millis(300)).await;
    assert_eq!(hook.next().await.state(), "exists");

    control(&emu, "POST", "/faults", Some(json!({"target": "pushes", "kind": "lateAfterStop"}))).await;
    assert_eq!(stop(&emu, &token, "faulty", created["resourceId"].as_str().unwrap()).await, StatusCode::NO_CONTENT);
    change();
    assert_eq!(hook.next().await.header("x-goog-channel-id"), Some("faulty"), "one late delivery");
    change();
    hook.nothing_for(Duration::from_millis(300)).await;
}
