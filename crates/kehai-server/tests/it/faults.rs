//! A misbehaving Microsoft, end to end: each scenario injects its fault at msemu (429 storms with
//! `Retry-After`, 503s, hanging requests, a slow token endpoint, dropped / duplicated /
//! reordered notifications, signing keys rotated, kehai's encryption certificate rotated while
//! notifications flow, revoked refresh tokens), changes presences, and ends with every avatar
//! right or correctly marked Needs reconnect — and with a bounded number of requests to
//! Microsoft: no retry storm.

use std::{collections::HashMap, time::Duration};

use kehai_server::config::NotificationMode;
use reqwest::StatusCode;
use serde_json::json;

use crate::{
    support::microsoft::{bob_ms_id, card, connected, fault, set_status, shows_within, start_both, start_in},
    support::{Client, TestApp, find},
};

/// kehai and msemu (notifications in `mode`) with Alice and Bob connected while Available;
/// their clients.
async fn alice_and_bob(mode: NotificationMode) -> (TestApp, msemu::Running, Client, Client) {
    alice_and_bob_with(start_in(mode).await).await
}

/// The same, with kehai and msemu started already.
async fn alice_and_bob_with((app, emu): (TestApp, msemu::Running)) -> (TestApp, msemu::Running, Client, Client) {
    set_status(&emu, "alice@example.com", "Available").await;
    set_status(&emu, "bob@example.com", "Available").await;
    let alice = connected(&app, &emu, "alice@example.com", "alice-password").await;
    let bob = connected(&app, &emu, "bob@example.com", "bob-password").await;
    (app, emu, alice, bob)
}

/// Requests kehai has made to msemu, by route (`GET /v1.0/users/{id}/presence`, …).
fn requests(emu: &msemu::Running) -> HashMap<String, u64> {
    emu.emulator.world.lock().requests.clone()
}

/// Requests made since `before`, by route, and in all.
fn made_since(emu: &msemu::Running, before: &HashMap<String, u64>) -> (HashMap<String, u64>, u64) {
    let made: HashMap<String, u64> = requests(emu)
        .into_iter()
        .map(|(route, n)| {
            let was = before.get(&route).copied().unwrap_or(0);
            (route, n - was)
        })
        .filter(|(_, n)| *n > 0)
        .collect();
    let all = made.values().sum();
    (made, all)
}

/// Requests to routes ending with `suffix` since `before`.
fn made_to(emu: &msemu::Running, before: &HashMap<String, u64>, suffix: &str) -> u64 {
    made_since(emu, before).0.iter().filter(|(route, _)| route.ends_with(suffix)).map(|(_, n)| n).sum()
}

/// Waits until Alice's page shows each `(name, emoji)`; panics naming what it shows instead.
async fn converges(alice: &Client, expected: &[(&str, &str)], within: Duration, scenario: &str) {
    for (name, emoji) in expected {
        if !shows_within(alice, name, emoji, within).await {
            let shown = find(&alice.avatars("alpha").await, name).unwrap()["emoji"].clone();
            panic!("{scenario}: {name} shows {shown} instead of {emoji}");
        }
    }
}

/// Waits until kehai has asked Microsoft nothing for 5 s (longer than the first two waits of a
/// presence read again), so that a bound counts late requests too.
async fn quiet(emu: &msemu::Running) {
    let total = || requests(emu).values().sum::<u64>();
    let started = std::time::Instant::now();
    let (mut last, mut since) = (total(), std::time::Instant::now());
    while since.elapsed() < Duration::from_secs(5) {
        assert!(started.elapsed() < Duration::from_secs(60), "kehai keeps asking Microsoft");
        tokio::time::sleep(Duration::from_millis(250)).await;
        let now = total();
        if now != last {
            (last, since) = (now, std::time::Instant::now());
        }
    }
}

/// At most `bound` requests to Microsoft since `before`.
fn bounded(emu: &msemu::Running, before: &HashMap<String, u64>, bound: u64, scenario: &str) {
    let (made, all) = made_since(emu, before);
    assert!(all <= bound, "{scenario}: {all} requests to Microsoft (at most {bound}): {made:?}");
}

#[tokio::test]
async fn a_429_storm_with_retry_after_converges_without_a_retry_storm() {
    let (_app, emu, alice, _bob) = alice_and_bob(NotificationMode::Basic).await;
    let before = requests(&emu);
    fault(&emu, json!({"target": "graph", "kind": "throttle", "count": 10, "retry_after": 1})).await;
    let started = std::time::Instant::now();
    set_status(&emu, "alice@example.com", "Busy").await;
    set_status(&emu, "bob@example.com", "DoNotDisturb").await;
    converges(&alice, &[("Alice", "🔴"), ("Bob", "⛔")], Duration::from_secs(30), "429 storm").await;
    // Ten 429s cannot be gone through faster than Retry-After allows: each read waits 1 s
    // after each of its 429s.
    assert!(started.elapsed() >= Duration::from_secs(3), "Retry-After honoured: {:?}", started.elapsed());
    // Ten refused, two answered (and a slack of two for a renewal or a refresh).
    quiet(&emu).await;
    bounded(&emu, &before, 14, "429 storm");
}

#[tokio::test]
async fn graph_answering_503_converges_without_a_retry_storm() {
    let (_app, emu, alice, _bob) = alice_and_bob(NotificationMode::Basic).await;
    let before = requests(&emu);
    fault(&emu, json!({"target": "graph", "kind": "unavailable", "count": 6, "retry_after": 1})).await;
    set_status(&emu, "alice@example.com", "InAMeeting").await;
    set_status(&emu, "bob@example.com", "BeRightBack").await;
    converges(&alice, &[("Alice", "📅"), ("Bob", "⏳")], Duration::from_secs(30), "503s").await;
    quiet(&emu).await;
    bounded(&emu, &before, 10, "503s");
}

#[tokio::test]
async fn hanging_graph_requests_time_out_and_converge() {
    let (_app, emu, alice, _bob) = alice_and_bob(NotificationMode::Basic).await;
    let before = requests(&emu);
    fault(&emu, json!({"target": "graph", "kind": "hang", "count": 2, "delay_ms": 3000})).await;
    set_status(&emu, "alice@example.com", "InACall").await;
    set_status(&emu, "bob@example.com", "Busy").await;
    converges(&alice, &[("Alice", "📞"), ("Bob", "🔴")], Duration::from_secs(30), "hanging Graph").await;
    quiet(&emu).await;
    bounded(&emu, &before, 6, "hanging Graph");
}

#[tokio::test]
async fn a_slow_token_endpoint_is_asked_once_per_connection() {
    let (app, emu, alice, _bob) = alice_and_bob(NotificationMode::Basic).await;
    // Both access tokens have lapsed (as kehai's clock sees it): the reads need a refresh first,
    // and the token endpoint takes 2 s to answer.
    app.clock.advance(2 * 3600 * 1000);
    let before = requests(&emu);
    fault(&emu, json!({"target": "token", "kind": "hang", "count": 2, "delay_ms": 2000})).await;
    set_status(&emu, "alice@example.com", "DoNotDisturb").await;
    set_status(&emu, "bob@example.com", "InAMeeting").await;
    converges(&alice, &[("Alice", "⛔"), ("Bob", "📅")], Duration::from_secs(30), "slow token endpoint").await;
    assert!(made_to(&emu, &before, "/oauth2/v2.0/token") <= 2, "one refresh per connection");
    quiet(&emu).await;
    bounded(&emu, &before, 8, "slow token endpoint");
}

#[tokio::test]
async fn dropped_notifications_are_caught_up_by_the_reconciliation() {
    // The reconciliation every 2 s rather than five minutes: the periodic one, not a call.
    const EVERY: u64 = 2;
    let started = start_both(NotificationMode::Rich, |_| {}, |c| c.reconcile_seconds = EVERY).await;
    let (_app, emu, alice, _bob) = alice_and_bob_with(started).await;
    let before = requests(&emu);
    let delivered = || emu.emulator.world.lock().subscriptions.values().map(|s| s.delivered).sum::<u64>();
    let delivered_before = delivered();
    fault(&emu, json!({"target": "notifications", "kind": "drop", "count": 2})).await;
    let dropped_at = std::time::Instant::now();
    set_status(&emu, "alice@example.com", "Busy").await;
    set_status(&emu, "bob@example.com", "AppearAway").await;
    assert!(emu.emulator.world.lock().faults.is_empty(), "both notifications were dropped");
    converges(&alice, &[("Alice", "🔴"), ("Bob", "💤")], Duration::from_secs(5 * EVERY), "dropped notifications").await;
    let took = dropped_at.elapsed();
    assert_eq!(delivered(), delivered_before, "Graph never sent them: the reconciliation read them");
    // Nothing but the periodic batch reads (one per period for both members, none in a burst),
    // and the slack of one renewal or refresh.
    let reads = made_to(&emu, &before, "/getPresencesByUserId");
    let periods = took.as_secs() / EVERY + 2;
    assert!((1..=periods).contains(&reads), "{reads} batch reads in {took:?}");
    bounded(&emu, &before, reads + 1, "dropped notifications");
}

#[tokio::test]
async fn the_periodic_reconciliation_waits_while_another_instance_holds_it() {
    const EVERY: u64 = 1;
    let started = start_both(NotificationMode::Rich, |_| {}, |c| c.reconcile_seconds = EVERY).await;
    let (app, emu, alice, _bob) = alice_and_bob_with(started).await;
    // Another instance takes the reconciliation's claim (kehai's clock stands still here, so it
    // claims as of 10 s on, when this instance's claim from its last run has lapsed; tried again
    // should this instance be reconciling just then) and holds it for 20 s.
    let now = kehai_server::clock::Clock::now(app.clock.as_ref());
    let other = kehai_store::Claim { holder: "another-instance", now: now + 10_000, until: now + 20_000 };
    let mut claimed = false;
    for _ in 0..30 {
        claimed = app.state.store.claim("job/reconcile", other).await.unwrap();
        if claimed {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(claimed, "the claim is free between two runs");
    fault(&emu, json!({"target": "notifications", "kind": "drop", "count": 1})).await;
    set_status(&emu, "alice@example.com", "Busy").await;
    assert!(!shows_within(&alice, "Alice", "🔴", Duration::from_secs(4 * EVERY)).await, "not this instance's turn");
    // Its claim lapses: this instance's next period reconciles.
    app.clock.advance(30_000);
    converges(&alice, &[("Alice", "🔴")], Duration::from_secs(5 * EVERY), "claim lapsed").await;
}

#[tokio::test]
async fn duplicated_and_reordered_notifications_leave_the_newest_presence() {
    let (_app, emu, alice, _bob) = alice_and_bob(NotificationMode::Rich).await;
    let before = requests(&emu);
    // The first three notifications are sent twice; the next three are held back until the one
    // after them has gone out — older presences arriving after newer ones.
    fault(&emu, json!({"target": "notifications", "kind": "duplicate", "count": 3})).await;
    fault(&emu, json!({"target": "notifications", "kind": "reorder", "count": 3})).await;
    for (who, status) in [
        ("alice", "Busy"),
        ("alice", "InAMeeting"),
        ("alice", "DoNotDisturb"),
        ("bob", "InACall"),
        ("bob", "BeRightBack"),
        ("alice", "InACall"),
        ("bob", "Busy"),
    ] {
        set_status(&emu, &format!("{who}@example.com"), status).await;
    }
    converges(&alice, &[("Alice", "📞"), ("Bob", "🔴")], Duration::from_secs(10), "reordered").await;
    // All ten in (seven, three of them twice), the late ones too.
    crate::support::microsoft::metric_becomes(&alice, "kehai_notifications_received_total{provider=\"msteams\"} 10")
        .await;
    let shown = alice.avatars("alpha").await;
    assert_eq!(
        (&find(&shown, "Alice").unwrap()["emoji"], &find(&shown, "Bob").unwrap()["emoji"]),
        (&json!("📞"), &json!("🔴")),
        "the late ones changed nothing"
    );
    // Rich notifications need no read: only the key set, at the first one.
    assert_eq!(made_to(&emu, &before, "/keys"), 2, "{:?}", made_since(&emu, &before).0);
    bounded(&emu, &before, 2, "reordered");
}

#[tokio::test]
async fn rotated_signing_keys_are_fetched_once_and_nothing_is_dropped() {
    let (app, emu, alice, bob) = alice_and_bob(NotificationMode::Rich).await;
    // A change before the rotation: kehai has the key set.
    set_status(&emu, "alice@example.com", "Busy").await;
    converges(&alice, &[("Alice", "🔴")], Duration::from_secs(5), "before the rotation").await;
    let before = requests(&emu);
    let r = reqwest::Client::new().post(emu.url("/_emu/api/keys/rotate")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    // Validation tokens are now signed with a key kehai has not seen.
    set_status(&emu, "alice@example.com", "DoNotDisturb").await;
    set_status(&emu, "bob@example.com", "InAMeeting").await;
    converges(&alice, &[("Alice", "⛔"), ("Bob", "📅")], Duration::from_secs(5), "signing keys rotated").await;
    // The key set fetched once (its v2.0 and v1.0 documents), not per notification.
    assert!(made_to(&emu, &before, "/keys") <= 2, "{:?}", made_since(&emu, &before).0);
    bounded(&emu, &before, 2, "signing keys rotated");
    // And an id token signed with the new key: Bob connects again.
    let r = crate::support::microsoft::disconnect(&bob, "alpha").await;
    assert_eq!(r.status(), StatusCode::OK);
    let bob = connected(&app, &emu, "bob@example.com", "bob-password").await;
    assert_eq!(card(&bob).await["state"], "connected");
    converges(&alice, &[("Bob", "📅")], Duration::from_secs(5), "Bob connected again").await;
}

#[tokio::test]
async fn the_encryption_certificate_rotated_mid_stream_loses_no_notification() {
    let (app, emu, alice, _bob) = alice_and_bob(NotificationMode::Rich).await;
    let teams = kehai_server::providers::msteams::Teams::offered(&app.state).unwrap();
    let before = requests(&emu);
    // Alice's status changes every 20 ms while kehai moves both subscriptions to a new
    // certificate: some notifications are encrypted for the old one, some for the new.
    let flow = {
        let emu_url = emu.url("");
        tokio::spawn(async move {
            let http = reqwest::Client::new();
            for i in 0..40 {
                let status = ["Busy", "DoNotDisturb", "InAMeeting", "BeRightBack"][i % 4];
                let url = format!("{}/_emu/api/users/alice@example.com/presence", emu_url.trim_end_matches('/'));
                http.put(url).json(&json!({ "status": status })).send().await.unwrap();
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let rotation = kehai_server::providers::msteams::certificates::rotate(&app.state, &teams).await.unwrap();
    assert_eq!((rotation.moved, rotation.failed), (2, 0), "{rotation:?}");
    flow.await.unwrap();
    set_status(&emu, "alice@example.com", "InACall").await;
    set_status(&emu, "bob@example.com", "DoNotDisturb").await;
    converges(&alice, &[("Alice", "📞"), ("Bob", "⛔")], Duration::from_secs(10), "certificate rotated").await;
    let metrics = alice.get("/metrics").await.text().await.unwrap();
    assert!(!metrics.contains("reason=\"decryption\""), "nothing failed to decrypt:\n{metrics}");
    // One PATCH per subscription (and perhaps a token each).
    assert_eq!(made_to(&emu, &before, "/subscriptions/{id}"), 2, "{:?}", made_since(&emu, &before).0);
    bounded(&emu, &before, 4, "certificate rotated");
}

#[tokio::test]
async fn a_revoked_refresh_token_marks_needs_reconnect_once_and_others_go_on() {
    let (app, emu, alice, bob) = alice_and_bob(NotificationMode::Basic).await;
    let r = reqwest::Client::new().post(emu.url("/_emu/api/users/bob@example.com/revoke")).send().await.unwrap();
    assert!(r.status().is_success());
    // Both access tokens have lapsed: each read needs a refresh, and Bob's is refused.
    app.clock.advance(2 * 3600 * 1000);
    set_status(&emu, "bob@example.com", "Busy").await;
    set_status(&emu, "alice@example.com", "BeRightBack").await;
    converges(&alice, &[("Alice", "⏳")], Duration::from_secs(10), "revoked").await;
    let mut state = serde_json::Value::Null;
    for _ in 0..100 {
        state = card(&bob).await["state"].clone();
        if state == "needs_reconnect" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(state, "needs_reconnect");
    assert_eq!(
        find(&alice.avatars("alpha").await, "Bob").unwrap()["emoji"],
        serde_json::Value::Null,
        "no Teams status"
    );
    // Bob's later changes ask Microsoft nothing: no retry of a refused sign-in. (His
    // subscription lost its authorization with the sign-in: Graph withholds its notifications.)
    let before = requests(&emu);
    let bob_id = bob_ms_id(&emu);
    let withheld = || {
        let world = emu.emulator.world.lock();
        world.subscriptions.values().filter(|s| s.resource.contains(&bob_id)).map(|s| s.withheld.len()).sum::<usize>()
    };
    let withheld_before = withheld();
    for status in ["DoNotDisturb", "InAMeeting", "Busy"] {
        set_status(&emu, "bob@example.com", status).await;
    }
    assert_eq!(withheld(), withheld_before + 3, "Graph withheld his three changes");
    set_status(&emu, "alice@example.com", "InACall").await;
    converges(&alice, &[("Alice", "📞")], Duration::from_secs(10), "revoked, later").await;
    assert_eq!(made_to(&emu, &before, "/oauth2/v2.0/token"), 0, "{:?}", made_since(&emu, &before).0);
    bounded(&emu, &before, 1, "revoked, later (Alice's one read)");
    assert_eq!(find(&alice.avatars("alpha").await, "Bob").unwrap()["emoji"], serde_json::Value::Null);
}
