//! Graph: presence reads, subscriptions and their rules, notifications and throttling.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::{support::*, webhook::Webhook};

const SCOPE: &str = "openid email offline_access https://graph.microsoft.com/Presence.Read.All";

/// A Graph request with a bearer token.
async fn graph(
    emu: &msemu::Running,
    method: &str,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> (StatusCode, Value, reqwest::header::HeaderMap) {
    let mut req =
        reqwest::Client::new().request(method.parse().unwrap(), emu.url(&format!("/v1.0{path}"))).bearer_auth(token);
    if let Some(body) = body {
        req = req.json(&body);
    }
    let r = req.send().await.unwrap();
    let (status, headers) = (r.status(), r.headers().clone());
    let text = r.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null), headers)
}

fn graph_error(body: &Value) -> String {
    assert!(body["error"]["message"].is_string() && body["error"]["innerError"]["request-id"].is_string(), "{body}");
    body["error"]["code"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn presence_is_read_with_the_right_permissions() {
    let emu = start().await;
    let token = access_token(&emu, "alice@example.com", "alice-password", SCOPE).await;
    let (status, me, _) = graph(&emu, "GET", "/me/presence", &token, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (me["availability"].as_str(), me["id"].as_str()),
        (Some("Offline"), Some(user_id(&emu, "alice@example.com").as_str()))
    );
    let before = me["sequenceNumber"].as_str().unwrap().to_owned();

    set_status(&emu, "alice@example.com", "InAMeeting").await;
    let (_, me, _) = graph(&emu, "GET", "/me/presence", &token, None).await;
    assert_eq!((me["availability"].as_str(), me["activity"].as_str()), (Some("Busy"), Some("InAMeeting")));
    assert!(me["sequenceNumber"].as_str().unwrap() > before.as_str(), "sequence numbers sort in order");

    let bob = user_id(&emu, "bob@example.com");
    set_status(&emu, &bob, "DoNotDisturb").await;
    for path in [format!("/users/{bob}/presence"), format!("/communications/presences/{bob}")] {
        let (status, p, _) = graph(&emu, "GET", &path, &token, None).await;
        assert_eq!((status, p["availability"].as_str()), (StatusCode::OK, Some("DoNotDisturb")), "{path}");
    }
    let alice = user_id(&emu, "alice@example.com");
    let (status, batch, _) =
        graph(&emu, "POST", "/communications/getPresencesByUserId", &token, Some(json!({ "ids": [alice, bob] }))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(batch["value"].as_array().unwrap().len(), 2);
    let too_many: Vec<String> = (0..651).map(|_| uuid::Uuid::new_v4().to_string()).collect();
    let (status, _, _) =
        graph(&emu, "POST", "/communications/getPresencesByUserId", &token, Some(json!({ "ids": too_many }))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // /me needs User.Read, which this token lacks.
    let (status, body, _) = graph(&emu, "GET", "/me", &token, None).await;
    assert_eq!((status, graph_error(&body).as_str()), (StatusCode::FORBIDDEN, "Forbidden"));
    let profile = access_token(&emu, "alice@example.com", "alice-password", "openid User.Read").await;
    let (status, me, _) = graph(&emu, "GET", "/me", &profile, None).await;
    assert_eq!((status, me["mail"].as_str()), (StatusCode::OK, Some("alice@example.com")));
    // …and reading others' presence needs Presence.Read.All.
    let (status, _, _) = graph(&emu, "GET", &format!("/users/{bob}/presence"), &profile, None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn tokens_are_verified() {
    let emu = start().await;
    let token = access_token(&emu, "alice@example.com", "alice-password", SCOPE).await;
    let (status, body, _) = graph(&emu, "GET", "/me/presence", "", None).await;
    assert_eq!((status, graph_error(&body).as_str()), (StatusCode::UNAUTHORIZED, "InvalidAuthenticationToken"));
    let mut forged = token.clone();
    forged.replace_range(token.len() - 6.., "AAAAAA");
    assert_eq!(graph(&emu, "GET", "/me/presence", &forged, None).await.0, StatusCode::UNAUTHORIZED);
    // Revoking the user's sessions revokes their access tokens too.
    reqwest::Client::new().post(emu.url("/_emu/api/users/alice@example.com/revoke")).send().await.unwrap();
    assert_eq!(graph(&emu, "GET", "/me/presence", &token, None).await.0, StatusCode::UNAUTHORIZED);
    // Expired tokens are refused.
    let emu = start_with(|c| c.access_token_lifetime = std::time::Duration::ZERO).await;
    let token = access_token(&emu, "alice@example.com", "alice-password", SCOPE).await;
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let (status, body, _) = graph(&emu, "GET", "/me/presence", &token, None).await;
    assert_eq!((status, graph_error(&body).as_str()), (StatusCode::UNAUTHORIZED, "InvalidAuthenticationToken"));
}

#[tokio::test]
async fn presence_requests_are_throttled_per_app_and_tenant() {
    let emu = start_with(|c| c.presence_requests_per_30s = 3).await;
    let token = access_token(&emu, "alice@example.com", "alice-password", SCOPE).await;
    for _ in 0..3 {
        assert_eq!(graph(&emu, "GET", "/me/presence", &token, None).await.0, StatusCode::OK);
    }
    let (status, body, headers) = graph(&emu, "GET", "/me/presence", &token, None).await;
    assert_eq!((status, graph_error(&body).as_str()), (StatusCode::TOO_MANY_REQUESTS, "TooManyRequests"));
    let retry_after: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=30).contains(&retry_after));
}

fn basic_subscription(hook: &Webhook, user: &str) -> Value {
    presence_subscription(hook, &format!("communications/presences/{user}"))
}

#[tokio::test]
async fn a_basic_subscription_is_validated_then_notified() {
    let emu = start().await;
    let mut hook = Webhook::start().await;
    let token = access_token(&emu, "alice@example.com", "alice-password", SCOPE).await;
    let alice = user_id(&emu, "alice@example.com");
    let (status, sub, _) = graph(&emu, "POST", "/subscriptions", &token, Some(basic_subscription(&hook, &alice))).await;
    assert_eq!(status, StatusCode::CREATED, "{sub}");
    assert_eq!(hook.handshakes(), 2, "both the notification and the lifecycle URL are validated");
    let (client_id, _) = app(&emu);
    assert_eq!(
        (sub["applicationId"].as_str(), sub["creatorId"].as_str()),
        (Some(client_id.as_str()), Some(alice.as_str()))
    );
    assert_eq!(sub["clientState"], "secret-client-state");
    assert!(sub["expirationDateTime"].as_str().unwrap().ends_with('Z'));

    set_status(&emu, "alice@example.com", "Busy").await;
    let n = hook.next().await;
    let item = &n["value"][0];
    assert_eq!(item["subscriptionId"], sub["id"]);
    assert_eq!(item["clientState"], "secret-client-state");
    assert_eq!(item["resourceData"]["id"], alice);
    assert!(item.get("encryptedContent").is_none() && n.get("validationTokens").is_none(), "basic: no content");

    // A second presence subscription of the same app for the same user conflicts.
    let (status, body, _) =
        graph(&emu, "POST", "/subscriptions", &token, Some(basic_subscription(&hook, &alice))).await;
    assert_eq!((status, graph_error(&body).as_str()), (StatusCode::CONFLICT, "Conflict"));
    assert!(body["error"]["message"].as_str().unwrap().contains("already exists for the requested combination"));
}

#[tokio::test]
async fn subscription_rules_are_enforced() {
    let emu = start().await;
    let hook = Webhook::start().await;
    let token = access_token(&emu, "alice@example.com", "alice-password", SCOPE).await;
    let alice = user_id(&emu, "alice@example.com");
    let base = basic_subscription(&hook, &alice);
    let with = |key: &str, value: Value| {
        let mut b = base.clone();
        b[key] = value;
        b
    };
    for (body, why) in [
        (with("changeType", json!("created")), "changeType"),
        (with("expirationDateTime", json!(in_minutes(61))), "more than 60 minutes"),
        (with("expirationDateTime", json!(in_minutes(-1))), "in the past"),
        (with("clientState", json!("x".repeat(129))), "clientState too long"),
        (with("resource", json!("me/presence")), "resource grammar"),
        (with("includeResourceData", json!(true)), "no certificate"),
    ] {
        let (status, _, _) = graph(&emu, "POST", "/subscriptions", &token, Some(body)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{why}");
    }
    // Below 45 minutes is raised to 45.
    let (status, sub, _) =
        graph(&emu, "POST", "/subscriptions", &token, Some(with("expirationDateTime", json!(in_minutes(10))))).await;
    assert_eq!(status, StatusCode::CREATED);
    let expiry = time::OffsetDateTime::parse(
        sub["expirationDateTime"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let minutes = (expiry - time::OffsetDateTime::now_utc()).whole_minutes();
    assert!((44..=45).contains(&minutes), "{minutes}");

    // Renew, list, reauthorize, delete.
    let id = sub["id"].as_str().unwrap();
    let (status, renewed, _) = graph(
        &emu,
        "PATCH",
        &format!("/subscriptions/{id}"),
        &token,
        Some(json!({ "expirationDateTime": in_minutes(59) })),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(renewed["expirationDateTime"].as_str().unwrap() > sub["expirationDateTime"].as_str().unwrap());
    let (_, list, _) = graph(&emu, "GET", "/subscriptions", &token, None).await;
    assert_eq!(list["value"].as_array().unwrap().len(), 1);
    assert_eq!(
        graph(&emu, "POST", &format!("/subscriptions/{id}/reauthorize"), &token, None).await.0,
        StatusCode::NO_CONTENT
    );
    let stats: Value = reqwest::get(emu.url("/_emu/api/subscriptions")).await.unwrap().json().await.unwrap();
    assert_eq!(
        (stats["subscriptions"][0]["renewals"].as_u64(), stats["subscriptions"][0]["reauthorizations"].as_u64()),
        (Some(1), Some(1))
    );
    assert_eq!(graph(&emu, "DELETE", &format!("/subscriptions/{id}"), &token, None).await.0, StatusCode::NO_CONTENT);
    let (status, body, _) = graph(&emu, "GET", &format!("/subscriptions/{id}"), &token, None).await;
    assert_eq!((status, graph_error(&body).as_str()), (StatusCode::NOT_FOUND, "ResourceNotFound"));

    // Delegated Presence.Read.All is required.
    let weak = access_token(&emu, "bob@example.com", "bob-password", "openid User.Read").await;
    let bob = user_id(&emu, "bob@example.com");
    let (status, _, _) = graph(&emu, "POST", "/subscriptions", &weak, Some(basic_subscription(&hook, &bob))).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn failed_handshakes_and_plain_http_are_refused() {
    let emu = start().await;
    let bad = Webhook::start_with(0, crate::webhook::Handshake::WrongBody).await;
    let token = access_token(&emu, "alice@example.com", "alice-password", SCOPE).await;
    let alice = user_id(&emu, "alice@example.com");
    let (status, body, _) = graph(&emu, "POST", "/subscriptions", &token, Some(basic_subscription(&bad, &alice))).await;
    assert_eq!((status, graph_error(&body).as_str()), (StatusCode::BAD_REQUEST, "InvalidRequest"));
    assert!(body["error"]["message"].as_str().unwrap().starts_with("Subscription validation request failed."));

    let strict = start_with(|c| c.allow_http_notifications = false).await;
    let hook = Webhook::start().await;
    let token = access_token(&strict, "alice@example.com", "alice-password", SCOPE).await;
    let (status, _, _) =
        graph(&strict, "POST", "/subscriptions", &token, Some(basic_subscription(&hook, &alice))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "http:// only for local use");
    assert_eq!(hook.handshakes(), 0);
}

#[tokio::test]
async fn undelivered_notifications_are_retried() {
    let emu = start().await;
    let mut hook = Webhook::start_with(2, crate::webhook::Handshake::Right).await;
    let token = access_token(&emu, "alice@example.com", "alice-password", SCOPE).await;
    let alice = user_id(&emu, "alice@example.com");
    let (status, _, _) = graph(&emu, "POST", "/subscriptions", &token, Some(basic_subscription(&hook, &alice))).await;
    assert_eq!(status, StatusCode::CREATED);
    set_status(&emu, "alice@example.com", "BeRightBack").await;
    let n = hook.next().await;
    assert_eq!(n["value"][0]["resourceData"]["id"], alice);
    let stats: Value = reqwest::get(emu.url("/_emu/api/subscriptions")).await.unwrap().json().await.unwrap();
    assert_eq!(
        (stats["subscriptions"][0]["delivered"].as_u64(), stats["subscriptions"][0]["failedAttempts"].as_u64()),
        (Some(1), Some(2))
    );
}
