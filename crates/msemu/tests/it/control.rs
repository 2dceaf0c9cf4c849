//! The control API: idle and activity, lifecycle notifications and withheld delivery, faults,
//! request counts and reset.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::{support::*, webhook::Webhook};

const SCOPE: &str = "openid offline_access https://graph.microsoft.com/Presence.Read.All";

async fn control(emu: &msemu::Running, method: &str, path: &str, body: Option<Value>) -> (StatusCode, Value) {
    let mut req = reqwest::Client::new().request(method.parse().unwrap(), emu.url(&format!("/_emu/api{path}")));
    if let Some(b) = body {
        req = req.json(&b);
    }
    let r = req.send().await.unwrap();
    let status = r.status();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn presence_of(emu: &msemu::Running, email: &str) -> (String, String) {
    let (_, users) = control(emu, "GET", "/users", None).await;
    let u = users["users"].as_array().unwrap().iter().find(|u| u["email"] == email).unwrap();
    (u["availability"].as_str().unwrap().to_owned(), u["activity"].as_str().unwrap().to_owned())
}

#[tokio::test]
async fn idle_users_go_away_and_activity_brings_them_back() {
    let emu = start_with(|c| {
        c.idle_after = Duration::from_secs(1);
        c.tick = Duration::from_millis(200);
    })
    .await;
    let mut hook = Webhook::start().await;
    let token = access_token(&emu, "alice@example.com", "alice-password", SCOPE).await;
    subscribe_to(&emu, &hook, &token, &user_id(&emu, "alice@example.com")).await;
    set_status(&emu, "alice@example.com", "Available").await;
    hook.next().await; // Available
    hook.next().await; // Away, by idle
    assert_eq!(presence_of(&emu, "alice@example.com").await, ("Away".into(), "Away".into()));
    let (status, _) = control(&emu, "POST", "/users/alice@example.com/activity", None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    hook.next().await;
    assert_eq!(presence_of(&emu, "alice@example.com").await.0, "Available");
    // A Busy user stays Busy however idle.
    set_status(&emu, "alice@example.com", "Busy").await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(presence_of(&emu, "alice@example.com").await.0, "Busy");
}

#[tokio::test]
async fn lapsing_authorization_sends_reauthorization_required_and_withholds_until_renewed() {
    let emu = start_with(|c| {
        c.access_token_lifetime = Duration::from_secs(2);
        c.reauthorization_lead = Duration::from_secs(1);
        c.tick = Duration::from_millis(200);
    })
    .await;
    let mut hook = Webhook::start().await;
    let token = access_token(&emu, "alice@example.com", "alice-password", SCOPE).await;
    let alice = user_id(&emu, "alice@example.com");
    let sub = subscribe_to(&emu, &hook, &token, &alice).await;
    let lifecycle = hook.next_lifecycle().await;
    let item = &lifecycle["value"][0];
    assert_eq!(
        (item["lifecycleEvent"].as_str(), item["subscriptionId"].as_str()),
        (Some("reauthorizationRequired"), sub["id"].as_str())
    );
    assert_eq!(item["clientState"], "secret-client-state");

    // After the token lapses, changes are withheld…
    tokio::time::sleep(Duration::from_millis(2200)).await;
    set_status(&emu, "alice@example.com", "Busy").await;
    assert!(
        tokio::time::timeout(Duration::from_millis(700), hook.rx.recv()).await.is_err(),
        "withheld while unauthorized"
    );
    // …and delivered once the app reauthorizes with a fresh token.
    let fresh = access_token(&emu, "alice@example.com", "alice-password", SCOPE).await;
    let id = sub["id"].as_str().unwrap();
    let r = reqwest::Client::new()
        .post(emu.url(&format!("/v1.0/subscriptions/{id}/reauthorize")))
        .bearer_auth(&fresh)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let n = hook.next().await;
    assert_eq!(n["value"][0]["resourceData"]["id"], alice);
}

#[tokio::test]
async fn request_faults_answer_429_503_or_hang() {
    let emu = start().await;
    let token = access_token(&emu, "alice@example.com", "alice-password", SCOPE).await;
    let (status, _) = control(
        &emu,
        "POST",
        "/faults",
        Some(json!({"target": "graph", "kind": "throttle", "count": 2, "retry_after": 7})),
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    control(&emu, "POST", "/faults", Some(json!({"target": "graph", "kind": "unavailable"}))).await;
    let get = || reqwest::Client::new().get(emu.url("/v1.0/me/presence")).bearer_auth(&token).send();
    for expected in [429, 429, 503, 200] {
        let r = get().await.unwrap();
        assert_eq!(r.status().as_u16(), expected);
        if expected != 200 {
            assert!(r.headers().contains_key("retry-after"));
        }
    }
    assert_eq!(r_retry(&emu, &token).await, "7", "Retry-After as asked");

    control(&emu, "POST", "/faults", Some(json!({"target": "token", "kind": "throttle"}))).await;
    let (status, body) = token_refresh_attempt(&emu).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::TOO_MANY_REQUESTS, Some("temporarily_unavailable")));

    control(&emu, "POST", "/faults", Some(json!({"target": "graph", "kind": "hang", "delay_ms": 5000}))).await;
    let hung = reqwest::Client::new()
        .get(emu.url("/v1.0/me/presence"))
        .bearer_auth(&token)
        .timeout(Duration::from_millis(500))
        .send()
        .await;
    assert!(hung.is_err_and(|e| e.is_timeout()));

    let (status, _) = control(&emu, "POST", "/faults", Some(json!({"target": "graph", "kind": "drop"}))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "notification faults do not apply to requests");

    let (_, counts) = control(&emu, "GET", "/requests", None).await;
    assert!(counts["requests"]["GET /v1.0/me/presence"].as_u64().unwrap() >= 5, "{counts}");
    assert!(counts["requests"]["POST /{tenant}/oauth2/v2.0/token"].as_u64().unwrap() >= 2, "{counts}");
}

async fn r_retry(emu: &msemu::Running, token: &str) -> String {
    control(emu, "POST", "/faults", Some(json!({"target": "graph", "kind": "throttle", "retry_after": 7}))).await;
    let r = reqwest::Client::new().get(emu.url("/v1.0/me/presence")).bearer_auth(token).send().await.unwrap();
    r.headers()["retry-after"].to_str().unwrap().to_owned()
}

async fn token_refresh_attempt(emu: &msemu::Running) -> (StatusCode, Value) {
    let (client_id, secret) = app(emu);
    token(
        emu,
        "organizations",
        &[
            ("grant_type", "refresh_token"),
            ("client_id", &client_id),
            ("client_secret", &secret),
            ("refresh_token", "x"),
        ],
    )
    .await
}

#[tokio::test]
async fn notification_faults_drop_duplicate_and_reorder() {
    let emu = start().await;
    let mut hook = Webhook::start().await;
    let token = access_token(&emu, "alice@example.com", "alice-password", SCOPE).await;
    subscribe_to(&emu, &hook, &token, &user_id(&emu, "alice@example.com")).await;
    let seq = |n: &Value| n["value"][0]["subscriptionId"].as_str().map(str::to_owned);
    let _ = seq;

    control(&emu, "POST", "/faults", Some(json!({"target": "notifications", "kind": "drop"}))).await;
    set_status(&emu, "alice@example.com", "Busy").await;
    assert!(tokio::time::timeout(Duration::from_millis(500), hook.rx.recv()).await.is_err(), "dropped");

    control(&emu, "POST", "/faults", Some(json!({"target": "notifications", "kind": "duplicate"}))).await;
    set_status(&emu, "alice@example.com", "BeRightBack").await;
    let (a, b) = (hook.next().await, hook.next().await);
    assert_eq!(a, b, "the same notification twice");

    // Reorder: the first change arrives after the second. Basic notifications carry no presence,
    // so tell them apart by delivery count at msemu.
    control(&emu, "POST", "/faults", Some(json!({"target": "notifications", "kind": "reorder"}))).await;
    set_status(&emu, "alice@example.com", "InAMeeting").await;
    assert!(tokio::time::timeout(Duration::from_millis(300), hook.rx.recv()).await.is_err(), "held back");
    set_status(&emu, "alice@example.com", "InACall").await;
    hook.next().await;
    hook.next().await;

    let (_, faults) = control(&emu, "GET", "/faults", None).await;
    assert_eq!(faults["faults"].as_array().unwrap().len(), 0, "all used up");
}

#[tokio::test]
async fn reset_forgets_everything() {
    let emu = start().await;
    let hook = Webhook::start().await;
    let token = access_token(&emu, "alice@example.com", "alice-password", SCOPE).await;
    subscribe_to(&emu, &hook, &token, &user_id(&emu, "alice@example.com")).await;
    let old_keys: Value = reqwest::get(emu.url("/common/discovery/v2.0/keys")).await.unwrap().json().await.unwrap();
    assert_eq!(control(&emu, "POST", "/reset", None).await.0, StatusCode::NO_CONTENT);
    let (_, subs) = control(&emu, "GET", "/subscriptions", None).await;
    assert_eq!(subs["subscriptions"].as_array().unwrap().len(), 0);
    let new_keys: Value = reqwest::get(emu.url("/common/discovery/v2.0/keys")).await.unwrap().json().await.unwrap();
    assert_ne!(old_keys["keys"][0]["kid"], new_keys["keys"][0]["kid"]);
    let r = reqwest::Client::new().get(emu.url("/v1.0/me/presence")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "tokens of the old keys no longer verify");
}

#[tokio::test]
async fn the_control_page_sets_a_status_with_one_click() {
    let emu = start().await;
    let html = reqwest::get(emu.url("/_emu/")).await.unwrap().text().await.unwrap();
    for status in [
        "Available",
        "Busy",
        "DoNotDisturb",
        "BeRightBack",
        "AppearAway",
        "AppearOffline",
        "InAMeeting",
        "InACall",
        "Presenting",
        "OutOfOffice",
    ] {
        assert!(html.contains(&format!("value=\"{status}\"")), "a button for {status}");
    }
    assert!(html.contains("alice@example.com") && html.contains("Grant admin consent"));
    let alice = user_id(&emu, "alice@example.com");
    let r = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .post(emu.url("/_emu/act"))
        .form(&[("action", "status"), ("user", alice.as_str()), ("status", "DoNotDisturb")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(presence_of(&emu, "alice@example.com").await, ("DoNotDisturb".into(), "DoNotDisturb".into()));
    let page = reqwest::get(emu.url(r.headers()["location"].to_str().unwrap())).await.unwrap().text().await.unwrap();
    assert!(page.contains("is now DoNotDisturb / DoNotDisturb"));
}
