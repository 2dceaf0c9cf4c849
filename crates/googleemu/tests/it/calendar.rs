//! Calendar authorization: the scope matrix of the discovery document with Google's 403 body,
//! the 401 bodies, `access_token=` in the query, `alt=json`.

use reqwest::StatusCode;
use serde_json::json;

use crate::{hook::Hook, support::*};

const SCOPE: &str = "https://www.googleapis.com/auth/";

fn freebusy_body() -> serde_json::Value {
    json!({"timeMin": "2026-11-26T09:00:00Z", "timeMax": "2026-11-27T09:00:00Z", "items": [{"id": "primary"}]})
}

/// Which of freeBusy, events.list, events.watch and channels.stop answer other than 403.
async fn allowed(emu: &googleemu::Running, token: &str, hook: &Hook) -> [bool; 4] {
    let fb = calendar(emu, "POST", "/freeBusy", token, Some(freebusy_body())).await.0;
    let list = calendar(emu, "GET", "/calendars/primary/events", token, None).await.0;
    let id = format!("c-{}", rand_id());
    let watch = calendar(
        emu,
        "POST",
        "/calendars/primary/events/watch",
        token,
        Some(json!({"id": id, "type": "web_hook", "address": hook.url})),
    )
    .await
    .0;
    let stop =
        calendar(emu, "POST", "/channels/stop", token, Some(json!({"id": "nope", "resourceId": "nope"}))).await.0;
    [fb, list, watch, stop].map(|s| s != StatusCode::FORBIDDEN)
}

fn rand_id() -> String {
    use rand::Rng;
    rand::rng().random::<u64>().to_string()
}

#[tokio::test]
async fn each_scope_opens_the_methods_the_discovery_document_lists() {
    let emu = start().await;
    let hook = Hook::start().await;
    let cases = [
        ("calendar.freebusy", [true, false, false, false]),
        ("calendar.events.freebusy", [true, true, true, true]),
        ("calendar.events", [false, true, true, true]),
        ("calendar.events.readonly", [false, true, true, true]),
        ("calendar.events.owned.readonly", [false, true, true, true]),
        ("calendar.readonly", [true, true, true, true]),
        ("calendar", [true, true, true, true]),
        ("calendar.settings.readonly", [false, false, false, true]),
    ];
    for (scope, expected) in cases {
        let token = access_token(&emu, "alice@example.com", &format!("openid {SCOPE}{scope}")).await;
        assert_eq!(allowed(&emu, &token, &hook).await, expected, "{scope}");
    }
}

#[tokio::test]
async fn a_missing_scope_is_googles_403_with_the_method_named() {
    let emu = start().await;
    let token = access_token(&emu, "alice@example.com", &format!("openid {SCOPE}calendar.events")).await;
    let (status, headers, body) = calendar(&emu, "POST", "/freeBusy?alt=json", &token, Some(freebusy_body())).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        body,
        json!({"error": {
            "code": 403,
            "message": "Request had insufficient authentication scopes.",
            "errors": [{"message": "Insufficient Permission", "domain": "global", "reason": "insufficientPermissions"}],
            "status": "PERMISSION_DENIED",
            "details": [{
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": "ACCESS_TOKEN_SCOPE_INSUFFICIENT",
                "domain": "googleapis.com",
                "metadata": {"service": "calendar-json.googleapis.com", "method": "calendar.v3.Freebusy.Query"},
            }],
        }})
    );
    assert!(headers["www-authenticate"].to_str().unwrap().contains("insufficient_scope"));
    let freebusy_only = access_token(&emu, "alice@example.com", &format!("openid {SCOPE}calendar.freebusy")).await;
    let (_, _, body) = calendar(&emu, "GET", "/calendars/primary/events", &freebusy_only, None).await;
    assert_eq!(body["error"]["details"][0]["metadata"]["method"], "calendar.v3.Events.List");
}

#[tokio::test]
async fn bad_or_missing_credentials_are_401_and_the_query_token_works() {
    let emu = start().await;
    let (status, _, body) = calendar(&emu, "GET", "/calendars/primary/events", "ya29.made-up", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"]["code"], 401);
    assert_eq!(body["error"]["errors"][0]["reason"], "authError");
    let r = reqwest::get(emu.url("/calendar/v3/calendars/primary/events")).await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"]["errors"][0]["reason"], "required");

    let token = access_token(&emu, "alice@example.com", KEHAI_SCOPES).await;
    let r = reqwest::get(emu.url(&format!("/calendar/v3/calendars/primary/events?alt=json&access_token={token}")))
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let logged = emu.calendar_requests().last().cloned().unwrap();
    assert_eq!(logged.query, "alt=json&access_token=REDACTED", "no secret in the log");
    assert_eq!(logged.user.as_deref(), Some("alice@example.com"));
    // Only one's own calendar.
    let (status, _, body) = calendar(&emu, "GET", "/calendars/bob@example.com/events", &token, None).await;
    assert_eq!((status, body["error"]["errors"][0]["reason"].as_str()), (StatusCode::NOT_FOUND, Some("notFound")));
}
