//! Graph's change notifications at the webhook: checked, applied once and in order, every row of
//! the product's presence table, flawed and forged ones dropped and counted, the queue's limits.

use std::time::Duration;

use kehai_server::{config::NotificationMode, providers::msteams::Teams};
use kehai_store::ConnectionState;
use reqwest::StatusCode;
use serde_json::{Value, json};

use kehai_store::secrets::ConnectionSecret;

use crate::support::{find, microsoft::*};

#[tokio::test]
async fn a_presence_change_at_microsoft_reaches_the_avatar_through_a_rich_notification() {
    let (app, emu) = start().await;
    set_status(&emu, "alice@example.com", "Available").await;
    let alice = connected(&app, &emu, "alice@example.com", "alice-password").await;
    alice.put_me("alpha", json!({"emoji": "🌸"})).await;
    assert_eq!(find(&alice.avatars("alpha").await, "Alice").unwrap()["emoji"], "🌸");

    set_status(&emu, "alice@example.com", "InAMeeting").await;
    let a = avatar_becomes(&alice, "📅").await;
    assert_eq!(a["own_emoji"], "🌸");
    let delivered = subscriptions(&emu).await[0]["delivered"].as_u64().unwrap();
    assert!(delivered >= 1, "pushed by a notification, not read: {delivered}");

    set_status(&emu, "alice@example.com", "BeRightBack").await;
    avatar_becomes(&alice, "⏳").await;
    // Available gives the member's own emoji back.
    set_status(&emu, "alice@example.com", "Available").await;
    avatar_becomes(&alice, "🌸").await;
}

#[tokio::test]
async fn notifications_are_checked_and_applied_once_in_order() {
    use kehai_server::presence::Dropped;
    let (app, emu, alice, teams) = alice_connected_while("Busy").await;

    // A forged clientState changes nothing, even though Graph now says Away.
    quietly_set(&emu, "alice@example.com", "Away");
    let forged = basic_notification(&app, Some("guessed")).await;
    assert_eq!(process(&app.state, &teams, forged).await, vec![Err(Dropped::ClientState)]);
    assert_eq!(find(&alice.avatars("alpha").await, "Alice").unwrap()["emoji"], "🔴");

    // A genuine basic notification: kehai reads the presence from Graph.
    let genuine = basic_notification(&app, None).await;
    assert_eq!(process(&app.state, &teams, genuine.clone()).await, vec![Ok(())]);
    // Delivered again (Graph retries): the same sequence number is not applied twice.
    assert_eq!(process(&app.state, &teams, genuine).await, vec![Err(Dropped::Stale)]);

    // An unknown subscription, and a rich notification without a valid validation token.
    let mut unknown = basic_notification(&app, None).await;
    unknown.value[0].subscription_id = "00000000-0000-0000-0000-000000000000".into();
    assert_eq!(process(&app.state, &teams, unknown).await, vec![Err(Dropped::UnknownSubscription)]);
    let mut unsigned = basic_notification(&app, None).await;
    unsigned.value[0].encrypted_content = Some(kehai_microsoft::notifications::EncryptedContent {
        data: "AA==".into(),
        data_signature: "AA==".into(),
        data_key: "AA==".into(),
        encryption_certificate_id: "kehai-x".into(),
        encryption_certificate_thumbprint: None,
    });
    unsigned.validation_tokens = Some(vec!["not.a.jwt".into()]);
    assert_eq!(process(&app.state, &teams, unsigned).await, vec![Err(Dropped::ValidationToken)]);

    // Each counted by its reason.
    has_metrics(
        &alice,
        &[
            "kehai_notifications_received_total{provider=\"msteams\"} 5",
            "kehai_notifications_applied_total{provider=\"msteams\"} 1",
            "kehai_notifications_dropped_total{provider=\"msteams\",reason=\"client_state\"} 1",
            "kehai_notifications_dropped_total{provider=\"msteams\",reason=\"stale\"} 1",
            "kehai_notifications_dropped_total{provider=\"msteams\",reason=\"unknown_subscription\"} 1",
            "kehai_notifications_dropped_total{provider=\"msteams\",reason=\"validation_token\"} 1",
        ],
    )
    .await;

    // A connection that needs a new sign-in shows nothing more, even with a genuine notification.
    quietly_set(&emu, "alice@example.com", "Busy");
    let connection = alice_connection(&app).await;
    let now = app.state.clock.now();
    app.state.store.set_connection_state(connection.id, ConnectionState::NeedsReconnect, None, now).await.unwrap();
    let genuine = basic_notification(&app, None).await;
    assert_eq!(process(&app.state, &teams, genuine).await, vec![Err(Dropped::NotConnected)]);
}

#[tokio::test]
async fn the_webhook_queues_notifications_and_refuses_malformed_bodies() {
    let (app, _emu) = start().await;
    let c = reqwest::Client::new();
    let r =
        c.post(app.url("/webhooks/msgraph")).body("{").header("content-type", "application/json").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(r.json::<Value>().await.unwrap()["error"]["code"], "invalid_notification");
    let r = c.post(app.url("/webhooks/msgraph")).json(&json!({"value": []})).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    // Another provider's path is no webhook.
    let r = c.post(app.url("/webhooks/elsewhere")).json(&json!({"value": []})).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}

/// The engine's counters are scraped from the start (at zero, not missing), by provider, and the
/// webhooks' requests are counted by their own paths.
#[tokio::test]
async fn counters_are_there_from_the_start_and_webhooks_keep_their_paths() {
    let (app, _emu) = start().await;
    let mut alice = app.member("alice@example.com").await;
    alice.load_space("alpha").await;
    has_metrics(
        &alice,
        &[
            "kehai_notifications_received_total{provider=\"msteams\"} 0",
            "kehai_notifications_applied_total{provider=\"msteams\"} 0",
            "kehai_subscription_repairs_total{provider=\"msteams\"} 0",
            "kehai_presence_repairs_total{provider=\"msteams\"} 0",
        ],
    )
    .await;
    let r = reqwest::Client::new().post(app.url("/webhooks/msgraph")).json(&json!({"value": []})).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    has_metrics(&alice, &["kehai_http_requests_total{method=\"POST\",route=\"/webhooks/msgraph\",status=\"202\"} 1"])
        .await;
}

/// Every row of the product's table, each through a real notification from msemu, in the given
/// mode. Consecutive rows show different emoji, so each wait proves a new notification applied.
async fn every_row_of_the_table(mode: NotificationMode) {
    let (app, emu) = start_in(mode).await;
    set_status(&emu, "alice@example.com", "Available").await;
    let alice = connected(&app, &emu, "alice@example.com", "alice-password").await;
    alice.put_me("alpha", json!({"emoji": "🌸"})).await;
    assert_eq!(subscriptions(&emu).await[0]["includeResourceData"], mode == NotificationMode::Rich);
    let rows = [
        ("Busy", "InAMeeting", "📅", Some("Microsoft Teams: 会議参加中 / In a meeting")),
        ("Busy", "InACall", "📞", Some("Microsoft Teams: 通話中 / In a call")),
        ("DoNotDisturb", "Presenting", "🖥️", Some("Microsoft Teams: 発表中 / Presenting")),
        ("Busy", "InAConferenceCall", "📞", Some("Microsoft Teams: 通話中 / In a call")),
        ("DoNotDisturb", "DoNotDisturb", "⛔", Some("Microsoft Teams: 応答不可 / Do not disturb")),
        ("Busy", "Busy", "🔴", Some("Microsoft Teams: 取り込み中 / Busy")),
        ("Available", "Available", "🌸", None),
        ("BeRightBack", "BeRightBack", "⏳", Some("Microsoft Teams: 一時退席中 / Be right back")),
        ("Away", "Away", "💤", Some("Microsoft Teams: 離席中 / Away")),
        ("Offline", "OutOfOffice", "🏝️", Some("Microsoft Teams: 外出中 / Out of office")),
        ("Offline", "Offline", "🌸", None),
    ];
    for (availability, activity, emoji, label) in rows {
        let r = reqwest::Client::new()
            .put(emu.url("/_emu/api/users/alice@example.com/presence"))
            .json(&json!({ "availability": availability, "activity": activity }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let a = avatar_becomes(&alice, emoji).await;
        assert_eq!(a["presence"]["label"].as_str(), label, "{availability}/{activity}");
        assert_eq!(a["own_emoji"], "🌸");
    }
    let subscription = &subscriptions(&emu).await[0];
    assert!(subscription["delivered"].as_u64().unwrap() >= 11, "{subscription}");
    let metrics = alice.get("/metrics").await.text().await.unwrap();
    assert!(!metrics.contains("kehai_notifications_dropped_total{"), "{metrics}");
}

#[tokio::test]
async fn every_row_of_the_table_through_rich_notifications() {
    every_row_of_the_table(NotificationMode::Rich).await;
}

#[tokio::test]
async fn every_row_of_the_table_through_basic_notifications() {
    every_row_of_the_table(NotificationMode::Basic).await;
}

#[tokio::test]
async fn out_of_order_and_duplicate_deliveries_leave_the_newest_presence() {
    let (_app, emu, alice, _teams) = alice_connected_while("Available").await;
    // The meeting's notification is held back and arrives after the newer Busy.
    fault(&emu, json!({"target": "notifications", "kind": "reorder"})).await;
    set_status(&emu, "alice@example.com", "InAMeeting").await;
    set_status(&emu, "alice@example.com", "Busy").await;
    avatar_becomes(&alice, "🔴").await;
    metric_becomes(&alice, "kehai_notifications_dropped_total{provider=\"msteams\",reason=\"stale\"} 1").await;
    assert_eq!(find(&alice.avatars("alpha").await, "Alice").unwrap()["emoji"], "🔴");

    // Delivered twice: applied once.
    fault(&emu, json!({"target": "notifications", "kind": "duplicate"})).await;
    set_status(&emu, "alice@example.com", "DoNotDisturb").await;
    avatar_becomes(&alice, "⛔").await;
    metric_becomes(&alice, "kehai_notifications_dropped_total{provider=\"msteams\",reason=\"stale\"} 2").await;
    metric_becomes(&alice, "kehai_notifications_applied_total{provider=\"msteams\"} 2").await;
}

#[tokio::test]
async fn an_idle_member_becomes_away_and_back() {
    let (app, emu) = start_custom(NotificationMode::Rich, |c| {
        c.idle_after = std::time::Duration::from_secs(3);
        c.tick = std::time::Duration::from_millis(200);
    })
    .await;
    set_status(&emu, "alice@example.com", "Available").await;
    let alice = connected(&app, &emu, "alice@example.com", "alice-password").await;
    alice.put_me("alpha", json!({"emoji": "🌸"})).await;
    assert_eq!(find(&alice.avatars("alpha").await, "Alice").unwrap()["emoji"], "🌸");
    avatar_becomes(&alice, "💤").await;
    let r = reqwest::Client::new().post(emu.url("/_emu/api/users/alice@example.com/activity")).send().await.unwrap();
    assert!(r.status().is_success());
    avatar_becomes(&alice, "🌸").await;
}

#[tokio::test]
async fn rich_notifications_with_a_flaw_are_dropped_counted_and_change_nothing() {
    use kehai_server::presence::Dropped;
    let (app, emu, alice, teams) = alice_connected_while("Busy").await;
    let sequence = |n: u32| format!("Z{n:04}");

    let mut bad_hmac = rich_notification(&app, &emu, "Away", &sequence(1), |_| {}).await;
    let content = bad_hmac.value[0].encrypted_content.as_mut().unwrap();
    content.data_signature = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=".into();
    assert_eq!(process(&app.state, &teams, bad_hmac).await, vec![Err(Dropped::Decryption)]);

    type Flaw = Box<dyn FnOnce(&mut Value)>;
    let other_tenant = "99999999-9999-9999-9999-999999999999";
    let other_issuer = emu.url(&format!("/{other_tenant}/v2.0"));
    let flaws: [(&str, Flaw); 4] = [
        ("wrong aud", Box::new(|c| c["aud"] = json!("00000000-0000-0000-0000-000000000001"))),
        ("expired", Box::new(|c| c["exp"] = json!(c["iat"].as_i64().unwrap() - 600))),
        ("not Graph's", Box::new(|c| c["azp"] = json!("00000000-0000-0000-0000-000000000002"))),
        // Genuine, but for another organization than Alice's connection.
        (
            "another tenant's",
            Box::new(move |c| {
                c["tid"] = json!(other_tenant);
                c["iss"] = json!(other_issuer);
            }),
        ),
    ];
    for (why, flaw) in flaws {
        let batch = rich_notification(&app, &emu, "Away", &sequence(2), flaw).await;
        assert_eq!(process(&app.state, &teams, batch).await, vec![Err(Dropped::ValidationToken)], "{why}");
    }
    // A bad signature: the token's payload changed after signing.
    let mut forged = rich_notification(&app, &emu, "Away", &sequence(3), |_| {}).await;
    let token = &mut forged.validation_tokens.as_mut().unwrap()[0];
    let parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    let payload = base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, &parts[1]).unwrap();
    let mut claims: Value = serde_json::from_slice(&payload).unwrap();
    claims["exp"] = json!(claims["exp"].as_i64().unwrap() + 86_400);
    let payload = base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, claims.to_string());
    *token = format!("{}.{payload}.{}", parts[0], parts[2]);
    assert_eq!(process(&app.state, &teams, forged).await, vec![Err(Dropped::ValidationToken)]);
    assert_eq!(find(&alice.avatars("alpha").await, "Alice").unwrap()["emoji"], "🔴", "nothing applied");

    // The same notification without a flaw is applied (so the flaws were what stopped them).
    let genuine = rich_notification(&app, &emu, "Away", &sequence(4), |_| {}).await;
    assert_eq!(process(&app.state, &teams, genuine).await, vec![Ok(())]);
    assert_eq!(find(&alice.avatars("alpha").await, "Alice").unwrap()["emoji"], "💤");
    has_metrics(
        &alice,
        &[
            "kehai_notification_decrypt_failures_total{provider=\"msteams\"} 1",
            "kehai_validation_token_failures_total{provider=\"msteams\"} 5",
            "kehai_notifications_dropped_total{provider=\"msteams\",reason=\"decryption\"} 1",
            "kehai_notifications_dropped_total{provider=\"msteams\",reason=\"validation_token\"} 5",
        ],
    )
    .await;
}

#[tokio::test]
async fn calls_to_microsoft_renewals_and_connections_are_counted() {
    let (app, emu, alice, teams) = alice_connected_while("Busy").await;
    // A renewal, one refused token on the way.
    fault(&emu, json!({"target": "graph", "kind": "throttle", "count": 1, "retry_after": 0})).await;
    let connection = alice_connection(&app).await;
    kehai_server::presence::renewal::renew(&app.state, &*teams, connection).await.unwrap();
    set_status(&emu, "alice@example.com", "DoNotDisturb").await;
    avatar_becomes(&alice, "⛔").await;
    has_metrics(
        &alice,
        &[
            "kehai_graph_requests_total{operation=\"get_my_presence\",status=\"200\"} 1",
            "kehai_graph_requests_total{operation=\"create_subscription\",status=\"201\"} 1",
            "kehai_graph_requests_total{operation=\"renew_subscription\",status=\"429\"} 1",
            "kehai_graph_requests_total{operation=\"renew_subscription\",status=\"200\"} 1",
            "kehai_token_requests_total{provider=\"msteams\",grant=\"authorization_code\",outcome=\"ok\"} 1",
            "kehai_subscription_upkeep_total{provider=\"msteams\",outcome=\"renewed\"} 1",
            "kehai_connections{provider=\"msteams\",state=\"connected\"} 1",
            "kehai_connections{provider=\"msteams\",state=\"needs_reconnect\"} 0",
        ],
    )
    .await;
    let metrics = alice.get("/metrics").await.text().await.unwrap();
    assert!(metrics.lines().any(|l| l.starts_with("kehai_webhook_answer_seconds_count ")), "{metrics}");
    // A refused refresh: counted by its outcome, and the connection by its new state.
    reqwest::Client::new().post(emu.url("/_emu/api/users/alice@example.com/revoke")).send().await.unwrap();
    app.clock.advance(3600 * 1000);
    let mut connection = alice_connection(&app).await;
    assert!(kehai_server::presence::tokens::access_token(&app.state, &*teams, &mut connection).await.is_err());
    has_metrics(
        &alice,
        &[
            "kehai_token_requests_total{provider=\"msteams\",grant=\"refresh_token\",outcome=\"invalid_grant\"} 1",
            "kehai_connections{provider=\"msteams\",state=\"connected\"} 0",
            "kehai_connections{provider=\"msteams\",state=\"needs_reconnect\"} 1",
        ],
    )
    .await;
}

#[tokio::test]
async fn urls_in_notifications_are_never_followed() {
    use base64::Engine;
    use std::sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    };
    let (app, emu, _alice, _teams) = alice_connected_while("Available").await;
    // A listener that counts every connection made to it: the URLs below all point at it.
    let trap = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", trap.local_addr().unwrap());
    let hits = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&hits);
    tokio::spawn(async move {
        while let Ok((socket, _)) = trap.accept().await {
            counted.fetch_add(1, Ordering::SeqCst);
            drop(socket);
        }
    });
    let connection = alice_connection(&app).await;
    let subscription = connection.subscription.clone().unwrap();
    let client_state = opened(&app, &connection, &subscription.client_state, ConnectionSecret::ClientState);
    let client_state = secrecy::ExposeSecret::expose_secret(&client_state).to_owned();
    let part = |v: Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    // A validation token that names its keys and its issuer at the trap.
    let token = format!(
        "{}.{}.c2lnbmF0dXJl",
        part(json!({"alg": "RS256", "kid": "trap", "jku": format!("{url}/keys"), "x5u": format!("{url}/cert")})),
        part(json!({"iss": format!("{url}/"), "aud": app.state.config.ms_client_id, "exp": 4_000_000_000_i64})),
    );
    let item = |extra: Value| {
        let mut item = json!({
            "subscriptionId": subscription.id,
            "clientState": client_state,
            "changeType": "updated",
            "resource": format!("{url}/presence"),
            "resourceData": {"@odata.type": "#Microsoft.Graph.presence", "@odata.id": format!("{url}/x"), "id": connection.external_user},
            "tenantId": connection.external_tenant,
        });
        item.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        item
    };
    let encrypted = json!({"encryptedContent": {
        "data": "AAAA", "dataSignature": "AAAA", "dataKey": "AAAA",
        "encryptionCertificateId": format!("{url}/certificate"), "encryptionCertificateThumbprint": "trap",
    }});
    let posts = [
        ("/webhooks/msgraph", json!({"value": [item(encrypted)], "validationTokens": [token]})),
        ("/webhooks/msgraph", json!({"value": [item(json!({}))]})),
        ("/webhooks/msgraph/lifecycle", json!({"value": [item(json!({"lifecycleEvent": "missed"}))]})),
        ("/webhooks/msgraph/lifecycle", json!({"value": [item(json!({"lifecycleEvent": "subscriptionRemoved"}))]})),
    ];
    let done = || notifications_done(&app);
    let before = done();
    let c = reqwest::Client::new();
    for (path, body) in &posts {
        assert_eq!(c.post(app.url(path)).json(body).send().await.unwrap().status(), StatusCode::ACCEPTED);
    }
    // Every one processed to its end (applied or dropped) — the basic one and the lifecycle ones
    // through msemu: the removed subscription made anew (at msemu, never at the trap).
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let recreated = || emu.emulator.world.lock().subscriptions.keys().any(|id| id.to_string() != subscription.id);
    while done() < before + 4 || !recreated() {
        assert!(std::time::Instant::now() < deadline, "not processed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(hits.load(Ordering::SeqCst), 0, "kehai followed a URL from a notification");
}

#[tokio::test]
async fn a_full_queue_answers_503_with_retry_after_and_what_was_accepted_is_processed() {
    let (app, emu, alice, _teams) = {
        let (app, emu) = start_in(NotificationMode::Basic).await;
        set_status(&emu, "alice@example.com", "Available").await;
        let alice = connected(&app, &emu, "alice@example.com", "alice-password").await;
        let teams = Teams::offered(&app.state).unwrap();
        (app, emu, alice, teams)
    };
    // Every worker waits on a Graph read that never answers (kehai gives up after its 10-second
    // timeout, then tries again and gets the answer)…
    let workers = kehai_server::webhooks::WORKERS;
    fault(&emu, json!({"target": "graph", "kind": "hang", "count": workers, "delay_ms": 600_000})).await;
    quietly_set(&emu, "alice@example.com", "Busy");
    let c = reqwest::Client::new();
    let genuine = basic_notification_json(&app, None).await;
    for _ in 0..workers {
        let r = c.post(app.url("/webhooks/msgraph")).json(&genuine).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::ACCEPTED);
    }
    // …so batches queue up until the queue is full, and then Graph is asked to retry.
    let mut accepted = 0;
    let refused = loop {
        let r = c.post(app.url("/webhooks/msgraph")).json(&json!({"value": []})).send().await.unwrap();
        if r.status() != StatusCode::ACCEPTED {
            break r;
        }
        accepted += 1;
        assert!(accepted <= 2000, "the queue never filled");
    };
    assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(refused.headers()["retry-after"], "1");
    assert!((1024..=1024 + 1).contains(&accepted), "{accepted} accepted");
    has_metrics(&alice, &["kehai_notification_queue_depth 1024"]).await;
    // Once Graph answers, everything accepted is processed, and the webhook accepts again.
    assert!(shows_within(&alice, "Alice", "🔴", Duration::from_secs(30)).await);
    metric_becomes(&alice, "kehai_notification_queue_depth 0").await;
    let r = c.post(app.url("/webhooks/msgraph")).json(&json!({"value": []})).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
}

/// The resident memory of this process (the test and the server in it), in bytes.
fn resident_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kb = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").parse().ok());
    kb.unwrap_or(0) * 1024
}

/// Anyone can POST to the webhook. A megabyte of made-up items (some 40,000) is refused whole
/// before any lookup; deliveries of as many items as Graph may batch, naming subscriptions kehai
/// never made, cost one lookup each. Under a flood of both, a member's page still loads in time
/// and the memory held stays bounded (the queue is bounded by what its parsed items hold).
#[tokio::test]
async fn a_flood_of_made_up_notifications_neither_amplifies_nor_holds_up_the_pages() {
    let (app, _emu) = start().await;
    let mut alice = app.member("alice@example.com").await;
    alice.load_space("alpha").await;
    let junk = format!(r#"{{"value":[{}]}}"#, vec![r#"{"subscriptionId":"x"}"#; 40_000].join(","));
    assert!(junk.len() < 1024 * 1024);
    let c = reqwest::Client::new();
    let r = c
        .post(app.url("/webhooks/msgraph"))
        .header("content-type", "application/json")
        .body(junk.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(r.json::<Value>().await.unwrap()["error"]["code"], "too_many_notifications");
    let guids: Vec<Value> = (0..kehai_microsoft::notifications::MAX_NOTIFICATIONS)
        .map(|_| json!({"subscriptionId": uuid::Uuid::new_v4().to_string(), "clientState": "guess"}))
        .collect();
    let most = json!({ "value": guids }).to_string();

    let before = resident_bytes();
    assert!(before > 0, "the process's memory cannot be read here (/proc/self/status)");
    let flooding = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let mut floods = Vec::new();
    for n in 0..8 {
        let (c, url, flooding) = (c.clone(), app.url("/webhooks/msgraph"), std::sync::Arc::clone(&flooding));
        let body = if n % 2 == 0 { junk.clone() } else { most.clone() };
        floods.push(tokio::spawn(async move {
            let mut sent = 0u32;
            while flooding.load(std::sync::atomic::Ordering::Relaxed) {
                let r = c.post(&url).header("content-type", "application/json").body(body.clone()).send().await;
                if r.is_ok() {
                    sent += 1;
                }
            }
            sent
        }));
    }
    let mut slowest = Duration::ZERO;
    for _ in 0..20 {
        let started = std::time::Instant::now();
        assert_eq!(alice.get("/api/spaces/alpha/avatars").await.status(), StatusCode::OK);
        assert_eq!(alice.get("/s/alpha").await.status(), StatusCode::OK);
        slowest = slowest.max(started.elapsed());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    flooding.store(false, std::sync::atomic::Ordering::Relaxed);
    let mut sent = 0;
    for flood in floods {
        sent += flood.await.unwrap();
    }
    let grown = resident_bytes().saturating_sub(before);
    assert!(sent > 40, "the flood went on ({sent} POSTs)");
    assert!(slowest < Duration::from_secs(3), "a page took {slowest:?} under the flood");
    assert!(grown < 256 * 1024 * 1024, "the process grew by {} MiB", grown / 1024 / 1024);
}
