//! The JSON API: reading avatars, changing your own, and every way it refuses.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::{TestApp, find};

async fn error_code(r: reqwest::Response) -> String {
    let body: Value = r.json().await.expect("error body is JSON");
    assert!(body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{body}");
    body["error"]["code"].as_str().expect("error.code").to_owned()
}

#[tokio::test]
async fn own_emoji_is_set_and_cleared() {
    let app = TestApp::start().await;
    let mut alice = app.member("alice@example.com").await;
    alice.load_space("alpha").await;
    let r = alice.put_me("alpha", json!({"emoji": "🌸"})).await;
    assert_eq!(r.status(), StatusCode::OK);
    let me: Value = r.json().await.unwrap();
    assert_eq!((me["emoji"].as_str(), me["own_emoji"].as_str()), (Some("🌸"), Some("🌸")));

    let bob = app.member("bob@example.com").await;
    let seen = bob.avatars("alpha").await;
    let a = find(&seen, "Alice").expect("Alice listed");
    assert_eq!(a["emoji"], "🌸");
    assert_eq!(a["kind"], "member");
    assert_eq!(a["presence"], Value::Null);

    // Renaming leaves the emoji; null clears it.
    let r = alice.put_me("alpha", json!({"display_name": "Alicia"})).await;
    assert_eq!(r.status(), StatusCode::OK);
    let r = alice.put_me("alpha", json!({"emoji": null})).await;
    let me: Value = r.json().await.unwrap();
    assert_eq!((me["display_name"].as_str(), &me["emoji"]), (Some("Alicia"), &Value::Null));
    let seen = bob.avatars("alpha").await;
    assert_eq!(find(&seen, "Alicia").expect("renamed")["own_emoji"], Value::Null);
}

#[tokio::test]
async fn invalid_values_are_refused_with_their_code() {
    let app = TestApp::start().await;
    let mut alice = app.member("alice@example.com").await;
    alice.load_space("alpha").await;
    alice.put_me("alpha", json!({"emoji": "🌸"})).await;
    for (body, code) in [
        (json!({"emoji": "ab"}), "invalid_emoji"),
        (json!({"emoji": "😀😀"}), "invalid_emoji"),
        (json!({"emoji": ""}), "invalid_emoji"),
        (json!({"display_name": ""}), "invalid_display_name"),
        (json!({"display_name": "x".repeat(65)}), "invalid_display_name"),
        (json!({"display_name": "ok", "emoji": "nope"}), "invalid_emoji"),
        (json!({"emoji": 5}), "invalid_body"),
        (json!({"colour": "red"}), "invalid_body"),
    ] {
        let r = alice.put_me("alpha", body.clone()).await;
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(error_code(r).await, code, "{body}");
    }
    let seen = alice.avatars("alpha").await;
    let a = find(&seen, "Alice").expect("name unchanged");
    assert_eq!(a["own_emoji"], "🌸", "nothing stored by refused requests");
}

#[tokio::test]
async fn malformed_and_oversized_bodies_are_answered_4xx_and_nothing_is_stored() {
    let app = TestApp::start().await;
    let mut alice = app.member("alice@example.com").await;
    alice.load_space("alpha").await;
    let csrf = alice.csrf.clone().unwrap();
    let put = |body: Vec<u8>, content_type: &'static str| {
        alice
            .http
            .put(alice.url("/api/spaces/alpha/me"))
            .header("x-csrf-token", csrf.clone())
            .header("content-type", content_type)
            .body(body)
            .send()
    };
    let r = put(b"{\"emoji\": ".to_vec(), "application/json").await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(error_code(r).await, "invalid_json");
    let r = put(b"emoji=x".to_vec(), "application/x-www-form-urlencoded").await.unwrap();
    assert_eq!(r.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(error_code(r).await, "unsupported_media_type");
    let r = put(vec![0xff, 0xfe, 0x00], "application/json").await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let mut huge = b"{\"display_name\": \"".to_vec();
    huge.extend(std::iter::repeat_n(b'a', 200 * 1024));
    huge.extend(b"\"}");
    let r = put(huge, "application/json").await.unwrap();
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(error_code(r).await, "payload_too_large");
    let seen = alice.avatars("alpha").await;
    let a = find(&seen, "Alice").expect("Alice unchanged");
    assert_eq!(a["own_emoji"], Value::Null);
}

#[tokio::test]
async fn mutations_need_the_csrf_token() {
    let app = TestApp::start().await;
    let mut alice = app.member("alice@example.com").await;
    alice.load_space("alpha").await;
    for token in [None, Some("forged"), Some("")] {
        let mut req = alice.http.put(alice.url("/api/spaces/alpha/me")).json(&json!({"emoji": "🔥"}));
        if let Some(t) = token {
            req = req.header("x-csrf-token", t);
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{token:?}");
        assert_eq!(error_code(r).await, "csrf_token_invalid");
    }
    // Another session's token does not work either.
    let mut bob = app.member("bob@example.com").await;
    bob.load_space("alpha").await;
    let r = alice
        .http
        .put(alice.url("/api/spaces/alpha/me"))
        .header("x-csrf-token", bob.csrf.clone().unwrap())
        .json(&json!({"emoji": "🔥"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(find(&alice.avatars("alpha").await, "Alice").unwrap()["own_emoji"], Value::Null);
}

#[tokio::test]
async fn one_space_cannot_reach_another() {
    let app = TestApp::start().await;
    let mut alice = app.member("alice@example.com").await;
    alice.load_space("alpha").await;
    let mut carol = app.member("carol@example.com").await;
    carol.load_space("beta").await;

    let r = alice.get("/api/spaces/beta/avatars").await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(error_code(r).await, "forbidden");
    // Alice's own valid CSRF token does not open beta.
    let r = alice.put_me("beta", json!({"emoji": "🔥"})).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = alice.http.get(alice.url("/s/beta/events")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(alice.get("/s/beta").await.status(), StatusCode::FORBIDDEN);
    let seen = carol.avatars("beta").await;
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0]["own_emoji"], Value::Null);
    let r = alice.get("/api/spaces/nowhere/avatars").await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(error_code(r).await, "space_not_found");
    let r = app.client().get("/api/spaces/alpha/avatars").await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(error_code(r).await, "unauthorized");
}

#[tokio::test]
async fn a_wrong_method_is_answered_with_a_code() {
    let app = TestApp::start().await;
    let alice = app.member("alice@example.com").await;
    let r = alice.http.delete(alice.url("/api/spaces/alpha/me")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(error_code(r).await, "method_not_allowed");
}
