//! Self-healing: presences read again when kehai was down or another instance died, the
//! reconciliation's paging, and a slow or throttling Microsoft.

use std::time::Duration;

use kehai_server::config::NotificationMode;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::{find, microsoft::*};

#[tokio::test]
async fn when_another_instance_dies_this_one_reads_every_presence_again() {
    // Short subscriptions: the heartbeat ticks every few hundred milliseconds.
    let (app, emu) = start_both(NotificationMode::Rich, |_| {}, |c| c.ms_subscription_seconds = 6).await;
    set_status(&emu, "alice@example.com", "Available").await;
    let alice = connected(&app, &emu, "alice@example.com", "alice-password").await;
    // A change whose notification died in the other instance's queue.
    quietly_set(&emu, "alice@example.com", "Busy");
    let now = app.state.clock.now();
    let dead = kehai_store::Claim { holder: "dead-instance", now, until: now + 1_000 };
    assert!(app.state.store.claim("instance/dead-instance", dead).await.unwrap());
    // While its heartbeat holds, this instance beats on (its own claim renewed at each new time)
    // and takes nothing over: two beats later the other's claim is still there.
    let life = kehai_server::presence::renewal::claim_ms(6_000);
    for _ in 0..2 {
        app.clock.advance(1);
        heartbeat_at(&app, app.state.clock.now() + life).await;
    }
    assert!(has_claim(&app, "instance/dead-instance").await, "alive: not taken over");
    assert_ne!(find(&alice.avatars("alpha").await, "Alice").unwrap()["emoji"], "🔴", "alive: nothing is read");
    app.clock.advance(1_000);
    avatar_becomes(&alice, "🔴").await;
    assert!(!has_claim(&app, "instance/dead-instance").await, "taken");
}

/// The claims table as stored: one `claims|'name'|'holder'|held_until` line each.
async fn claims(app: &crate::support::TestApp) -> Vec<String> {
    app.sqlite_dump().await.into_iter().filter(|row| row.starts_with("claims|")).collect()
}

async fn has_claim(app: &crate::support::TestApp, name: &str) -> bool {
    claims(app).await.iter().any(|row| row.starts_with(&format!("claims|'{name}'|")))
}

/// Waits until this instance's heartbeat has been renewed to last until `until`.
async fn heartbeat_at(app: &crate::support::TestApp, until: i64) {
    let id = &app.state.instance;
    let row = format!("claims|'instance/{id}'|'{id}'|{until}");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !claims(app).await.contains(&row) {
        assert!(std::time::Instant::now() < deadline, "no heartbeat until {until}: {:?}", claims(app).await);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn presences_changed_while_kehai_was_down_are_right_soon_after_the_start() {
    // Graph gives up on a notification kehai did not take (here at once, not after 4 hours).
    let (mut app, emu) = start_custom(NotificationMode::Rich, |c| {
        c.delivery.retry_for = std::time::Duration::ZERO;
    })
    .await;
    set_status(&emu, "alice@example.com", "Available").await;
    set_status(&emu, "bob@example.com", "Available").await;
    connected(&app, &emu, "alice@example.com", "alice-password").await;
    connected(&app, &emu, "bob@example.com", "bob-password").await;

    app.shutdown().await.unwrap();
    set_status(&emu, "alice@example.com", "InAMeeting").await;
    set_status(&emu, "bob@example.com", "DoNotDisturb").await;
    // Bob's subscription lapsed meanwhile as well.
    let bob_id = bob_ms_id(&emu);
    emu.emulator.world.lock().subscriptions.retain(|_, s| !s.resource.ends_with(&bob_id));
    let bob = app.stored_avatars("alpha").await.into_iter().find(|a| a.display_name.as_str() == "Bob").unwrap();
    let bob = app.state.store.connection_of(bob.person_id, "msteams").await.unwrap().unwrap();
    let lapsed = kehai_store::SubscriptionRecord { expires_at: app.state.clock.now() - 1, ..bob.subscription.unwrap() };
    app.state
        .store
        .set_connection_subscription(bob.id, Some(&lapsed.id), &lapsed, app.state.clock.now(), None)
        .await
        .unwrap();
    app.restart().await;

    let viewer = app.member("alice@example.com").await;
    for (name, emoji) in [("Alice", "📅"), ("Bob", "⛔")] {
        let mut shown = Value::Null;
        for _ in 0..200 {
            shown = find(&viewer.avatars("alpha").await, name).unwrap()["emoji"].clone();
            if shown == emoji {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        assert_eq!(shown, emoji, "{name} healed after the start");
    }
    // Read in one batch for the tenant; Bob subscribed anew.
    let requests: Value = reqwest::get(emu.url("/_emu/api/requests")).await.unwrap().json().await.unwrap();
    let batches = requests["requests"].as_object().unwrap().iter().find(|(k, _)| k.contains("getPresencesByUserId"));
    assert!(batches.is_some_and(|(_, n)| n.as_u64() >= Some(1)), "{requests}");
    let resources: Vec<String> =
        subscriptions(&emu).await.iter().map(|s| s["resource"].as_str().unwrap().to_owned()).collect();
    assert_eq!(resources.len(), 2, "{resources:?}");
    let metrics = viewer.get("/metrics").await.text().await.unwrap();
    assert!(metrics.lines().any(|l| l == "kehai_subscription_repairs_total{provider=\"msteams\"} 1"), "{metrics}");
}

#[tokio::test]
async fn the_reconciliation_pages_through_every_connection_and_reads_only_what_changed() {
    use kehai_server::presence::reconcile::{Healed, reconcile_in_pages};
    let (app, emu, alice, teams) = alice_and_bob_connected().await;
    let batch_reads = || async {
        let requests: Value = reqwest::get(emu.url("/_emu/api/requests")).await.unwrap().json().await.unwrap();
        let requests = requests["requests"].as_object().unwrap().clone();
        requests.iter().filter(|(k, _)| k.contains("getPresencesByUserId")).filter_map(|(_, n)| n.as_u64()).sum::<u64>()
    };

    // Both changed unnoticed; pages of one connection: two pages, a batch read each.
    quietly_set(&emu, "alice@example.com", "Busy");
    quietly_set(&emu, "bob@example.com", "DoNotDisturb");
    let before = batch_reads().await;
    let healed = reconcile_in_pages(&app.state, &*teams, 1).await;
    assert_eq!(healed, Healed { checked: 2, resubscribed: 0, corrected: 2 });
    assert_eq!(batch_reads().await - before, 2, "one batch read per page");
    let avatars = alice.avatars("alpha").await;
    assert_eq!(
        (find(&avatars, "Alice").unwrap()["emoji"].as_str(), find(&avatars, "Bob").unwrap()["emoji"].as_str()),
        (Some("🔴"), Some("⛔"))
    );

    // Again, in one page: nothing new, nothing applied.
    let healed = reconcile_in_pages(&app.state, &*teams, 650).await;
    assert_eq!(healed, Healed { checked: 2, resubscribed: 0, corrected: 0 });
}

#[tokio::test]
async fn a_hanging_microsoft_holds_up_neither_other_members_nor_the_webhooks_nor_the_pages() {
    let (app, emu) = start_in(NotificationMode::Basic).await;
    set_status(&emu, "alice@example.com", "Available").await;
    set_status(&emu, "bob@example.com", "Available").await;
    let alice = connected(&app, &emu, "alice@example.com", "alice-password").await;
    connected(&app, &emu, "bob@example.com", "bob-password").await;
    // The next Graph request — the read that follows Alice's notification — hangs for 4 s.
    fault(&emu, json!({"target": "graph", "kind": "hang", "count": 1, "delay_ms": 4000})).await;
    let reads = || presence_reads(&emu);
    let before = reads().await;
    set_status(&emu, "alice@example.com", "Busy").await;
    // Alice's read has reached msemu (and hangs) before Bob's change is made.
    for _ in 0..100 {
        if reads().await > before {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(reads().await, before + 1);
    set_status(&emu, "bob@example.com", "DoNotDisturb").await;
    assert!(shows_within(&alice, "Bob", "⛔", Duration::from_secs(2)).await, "Bob's waits for nobody");
    assert_ne!(find(&alice.avatars("alpha").await, "Alice").unwrap()["emoji"], "🔴", "Alice's read still hangs");
    // Meanwhile the webhooks and the pages answer at once.
    let started = std::time::Instant::now();
    let r = reqwest::Client::new().post(app.url("/webhooks/msgraph")).json(&json!({"value": []})).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    assert_eq!(alice.get("/s/alpha").await.status(), StatusCode::OK);
    assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
    // And Alice's arrives once Graph answers.
    assert!(shows_within(&alice, "Alice", "🔴", Duration::from_secs(8)).await);
}

#[tokio::test]
async fn a_throttling_storm_converges_with_retry_after_honoured() {
    let (app, emu) = start_in(NotificationMode::Basic).await;
    set_status(&emu, "alice@example.com", "Available").await;
    let alice = connected(&app, &emu, "alice@example.com", "alice-password").await;
    let reads = || presence_reads(&emu);
    let before = reads().await;
    // Six 429s with Retry-After: 1 s, while three changes arrive.
    fault(&emu, json!({"target": "graph", "kind": "throttle", "count": 6, "retry_after": 1})).await;
    let started = std::time::Instant::now();
    for status in ["Busy", "InAMeeting", "DoNotDisturb"] {
        set_status(&emu, "alice@example.com", status).await;
    }
    assert!(shows_within(&alice, "Alice", "⛔", Duration::from_secs(10)).await, "converged on the last change");
    assert!(started.elapsed() >= Duration::from_secs(2), "two rounds of Retry-After: {:?}", started.elapsed());
    // Every throttled read was tried again after Retry-After, and each of the three then got its answer.
    let mut made = 0;
    for _ in 0..40 {
        made = reads().await - before;
        if made >= 9 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(made, 9, "6 throttled + 3 answered");
    has_metrics(
        &alice,
        &[
            "kehai_graph_requests_total{operation=\"get_presence\",status=\"429\"} 6",
            "kehai_graph_requests_total{operation=\"get_presence\",status=\"200\"} 3",
        ],
    )
    .await;
}
