//! A Google connection's life: revoked at Google, disconnected, read again after a restart.

use std::time::Duration;

use googleemu::EventKind;
use kehai_server::presence::ingest;
use kehai_store::ConnectionState;
use reqwest::StatusCode;

use crate::support::google::*;

#[tokio::test]
async fn a_revoked_grant_needs_reconnect_once_without_a_storm() {
    let (app, emu) = start().await;
    let alice = connected(&app, &emu, "alice@example.com", "alice-password").await;
    event(&emu, "alice@example.com", EventKind::Meeting, Duration::ZERO, Duration::from_secs(600));
    avatar_becomes(&alice, "Alice", Some("📅"), 10).await;
    emu.revoke("alice@example.com", None).unwrap();
    // The next push is read with the revoked token: refused, refreshed once, refused for good.
    for _ in 0..4 {
        later_meetings(&emu, "alice@example.com", 1);
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    avatar_becomes(&alice, "Alice", None, 15).await;
    let account = app.account("alice@example.com").await;
    let connection = app.state.store.connection_of(account, "gcal").await.unwrap().unwrap();
    assert_eq!(connection.state, ConnectionState::NeedsReconnect);
    let metrics = alice.get("/metrics").await.text().await.unwrap();
    let refused = "kehai_token_requests_total{provider=\"gcal\",grant=\"refresh_token\",outcome=\"invalid_grant\"} 1";
    assert!(metrics.contains(refused), "one refused refresh: {metrics}");
    // More pushes change nothing and cost nothing.
    let before = calls(&emu, "alice@example.com");
    event(&emu, "alice@example.com", EventKind::Meeting, Duration::ZERO, Duration::from_secs(60));
    assert_eq!(settled(&emu, "alice@example.com").await, before);
    let metrics = alice.get("/metrics").await.text().await.unwrap();
    assert!(metrics.contains(refused), "still one: {metrics}");
}

#[tokio::test]
async fn disconnecting_stops_the_channel_revokes_and_erases() {
    let (app, emu) = start().await;
    let mut alice = connected(&app, &emu, "alice@example.com", "alice-password").await;
    alice.load_space("alpha").await;
    let url = alice.url("/api/spaces/alpha/integrations/gcal");
    let r = alice.http.delete(url).header("x-csrf-token", alice.csrf.clone().unwrap()).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let channels = emu.channels();
    assert!(channels.iter().all(|c| c.stopped), "the channel is stopped: {channels:?}");
    let grants = emu.grants("alice@example.com").unwrap();
    assert!(grants.iter().all(|g| g.live_refresh_tokens == 0), "the grant is revoked: {grants:?}");
    let account = app.account("alice@example.com").await;
    assert_eq!(app.state.store.connection_of(account, "gcal").await.unwrap(), None, "tokens erased");
}

#[tokio::test]
async fn after_a_restart_each_calendar_is_read_once() {
    let (mut app, emu) = start().await;
    let alice = connected(&app, &emu, "alice@example.com", "alice-password").await;
    event(&emu, "alice@example.com", EventKind::Meeting, Duration::ZERO, Duration::from_secs(600));
    avatar_becomes(&alice, "Alice", Some("📅"), 10).await;
    let before = settled(&emu, "alice@example.com").await;
    app.shutdown().await.unwrap();
    app.restart().await;
    app.clock_follows_real_time();
    let after = settled(&emu, "alice@example.com").await;
    assert_eq!(after - before, 2, "one read (free/busy and the status events) after the restart");
    let alice = app.member("alice@example.com").await;
    avatar_becomes(&alice, "Alice", Some("📅"), 1).await;
}

/// Forces a channel replacement: the channel is made to lapse within a day, and a sweep runs
/// (this one, or the server's own if it comes first). Returns when it was to lapse.
async fn replace_channel(app: &crate::support::TestApp) -> i64 {
    let account = app.account("alice@example.com").await;
    let current = || async { app.state.store.connection_of(account, "gcal").await.unwrap().unwrap().subscription };
    let before = current().await.map(|s| s.id);
    let soon = kehai_server::clock::Clock::now(&*app.state.clock) + 23 * 3600 * 1000;
    app.sqlite_execute(&format!("UPDATE connections SET subscription_expires_at = {soon}")).await;
    let provider = app.state.presence.provider("gcal").unwrap().clone();
    kehai_server::presence::renewal::sweep(&app.state, &*provider).await;
    for _ in 0..50 {
        let now = current().await;
        if now.as_ref().is_some_and(|s| Some(&s.id) != before.as_ref() && s.resource.is_some()) {
            return soon;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the channel was not replaced");
}

/// Waits until `id`'s channel is stopped at Google; false if it is not within `seconds`.
async fn stopped_within(emu: &googleemu::Running, id: &str, seconds: u64) -> bool {
    for _ in 0..seconds * 10 {
        if emu.channels().iter().any(|c| c.id == id && c.stopped) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

#[tokio::test]
async fn a_channel_is_replaced_before_it_lapses_and_the_old_one_stopped_after() {
    let (app, emu) = start().await;
    let alice = connected(&app, &emu, "alice@example.com", "alice-password").await;
    let account = app.account("alice@example.com").await;
    let connection = || async { app.state.store.connection_of(account, "gcal").await.unwrap().unwrap() };
    let first = connection().await.subscription.unwrap();
    settled(&emu, "alice@example.com").await;

    // The successor's `sync` is lost: until the successor delivers, both are recognized.
    emu.add_fault(googleemu::Fault::new(googleemu::FaultTarget::Pushes, googleemu::FaultKind::Drop)).unwrap();
    let soon = replace_channel(&app).await;
    let both = connection().await;
    let second = both.subscription.clone().unwrap();
    assert_ne!(second.id, first.id, "a new channel");
    assert!(second.expires_at > soon + 24 * 3600 * 1000, "for another week or so");
    assert_eq!(both.previous_subscription.map(|p| p.id), Some(first.id.clone()), "the old one kept beside it");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let live = |id: &str| emu.channels().iter().any(|c| c.id == id && !c.stopped);
    assert!(live(&first.id) && live(&second.id), "both live meanwhile: {:?}", emu.channels());

    // A change is pushed through both: read once, shown, and the new one's delivery ends the old.
    let reads = |emu: &googleemu::Running| {
        let requests = emu.calendar_requests();
        requests.iter().filter(|r| r.operation.as_deref() == Some("calendar.freebusy.query")).count()
    };
    let before = reads(&emu);
    event(&emu, "alice@example.com", EventKind::Meeting, Duration::ZERO, Duration::from_secs(600));
    avatar_becomes(&alice, "Alice", Some("📅"), 10).await;
    settled(&emu, "alice@example.com").await;
    assert_eq!(reads(&emu) - before, 1, "one read for the two pushes");
    let delivered: Vec<String> =
        emu.pushes().into_iter().filter(|p| p.state == "exists" && p.delivered).map(|p| p.channel_id).collect();
    assert!(delivered.contains(&first.id) && delivered.contains(&second.id), "{delivered:?}");
    assert!(stopped_within(&emu, &first.id, 5).await, "the old one stopped once the new one delivered");
    assert_eq!(connection().await.previous_subscription, None);
    assert!(live(&second.id));

    // The next replacement, with its `sync` on time: the old one stops as soon as it comes.
    replace_channel(&app).await;
    assert!(stopped_within(&emu, &second.id, 5).await, "stopped after the successor's sync");
    let third = connection().await;
    assert_eq!(third.previous_subscription, None);
    let third = third.subscription.unwrap();
    assert!(live(&third.id) && third.id != second.id);
    // Only the newest one carries the changes now.
    let since = emu.pushes().len();
    event(&emu, "alice@example.com", EventKind::Meeting, Duration::from_secs(1200), Duration::from_secs(600));
    settled(&emu, "alice@example.com").await;
    let later: Vec<_> = emu.pushes().into_iter().skip(since).filter(|p| p.state == "exists").collect();
    assert!(!later.is_empty() && later.iter().all(|p| p.channel_id == third.id), "{later:?}");
}

#[tokio::test]
async fn turned_off_everywhere_the_channel_stops_and_on_again_it_comes_back() {
    let (app, emu) = start().await;
    let mut alice = connected(&app, &emu, "alice@example.com", "alice-password").await;
    settled(&emu, "alice@example.com").await;
    alice.load_space("alpha").await;
    let off = alice.put_json("/api/spaces/alpha/integrations/gcal", &serde_json::json!({"enabled": false})).await;
    assert_eq!(off.status(), StatusCode::OK);
    assert!(emu.channels().iter().all(|c| c.stopped), "paused everywhere: no channel");
    // A meeting added while paused: nobody is told of it, and ON shows it at once.
    event(&emu, "alice@example.com", EventKind::Meeting, Duration::ZERO, Duration::from_secs(600));
    tokio::time::sleep(Duration::from_secs(3)).await;
    avatar_becomes(&alice, "Alice", None, 1).await;
    let on = alice.put_json("/api/spaces/alpha/integrations/gcal", &serde_json::json!({"enabled": true})).await;
    assert_eq!(on.status(), StatusCode::OK);
    avatar_becomes(&alice, "Alice", Some("📅"), 1).await;
    let live: Vec<_> = emu.channels().into_iter().filter(|c| !c.stopped).collect();
    assert_eq!(live.len(), 1, "a channel again: {live:?}");
}

#[tokio::test]
async fn another_instance_never_shows_its_older_copy_of_a_calendar() {
    let (app, emu) = start().await;
    let alice = connected(&app, &emu, "alice@example.com", "alice-password").await;
    avatar_becomes(&alice, "Alice", None, 5).await;
    settled(&emu, "alice@example.com").await;
    let other = app.another_instance().await;
    let provider = other.state.presence.provider("gcal").unwrap().clone();
    let account = app.account("alice@example.com").await;
    let connection = || async { app.state.store.connection_of(account, "gcal").await.unwrap().unwrap() };
    // The other instance reads the calendar (woken there): nothing on it yet.
    let read_there = || async { ingest::read(&other.state, &*provider, &mut connection().await).await.unwrap() };
    assert_eq!(read_there().await.shown, None);
    // A meeting: Google pushes to this instance, which reads it and shows it.
    event(&emu, "alice@example.com", EventKind::Meeting, Duration::ZERO, Duration::from_secs(600));
    avatar_becomes(&alice, "Alice", Some("📅"), 10).await;
    // Woken there again (a boundary, the reconciliation): its copy is older than the read shown,
    // so it reads the calendar again rather than show what it kept.
    let before = calls(&emu, "alice@example.com");
    let reading = read_there().await;
    assert_eq!(reading.shown.map(|o| o.shown.emoji.as_str().to_owned()), Some("📅".to_owned()));
    assert_eq!(calls(&emu, "alice@example.com") - before, 2, "read from Google");
    // And now that copy is the newest, it is used as it is.
    let before = calls(&emu, "alice@example.com");
    assert!(read_there().await.shown.is_some());
    assert_eq!(calls(&emu, "alice@example.com"), before, "kept");
}
