//! Connecting Google Calendar from the profile's card, and what is refused.

use kehai_google::scopes;
use reqwest::StatusCode;

use crate::support::google::*;

#[tokio::test]
async fn a_workspace_member_connects_and_a_channel_is_made() {
    let (app, emu) = start().await;
    let alice = connected(&app, &emu, "alice@example.com", "alice-password").await;
    let account = app.account("alice@example.com").await;
    let connection = app.state.store.connection_of(account, "gcal").await.unwrap().expect("stored");
    assert_eq!(connection.external_tenant, "example.com", "the organization (hd)");
    let scope = connection.granted_scope.clone().expect("the granted scopes");
    assert!(scopes::granted(&scope, scopes::CALENDAR), "{scope}");
    // One channel on her primary calendar, pushing to kehai, whose id and resource kehai keeps.
    let channels = emu.channels();
    assert_eq!(channels.len(), 1, "{channels:?}");
    let subscription = connection.subscription.expect("the channel");
    assert_eq!(channels[0].id, subscription.id);
    assert_eq!(Some(&channels[0].resource_id), subscription.resource.as_ref());
    assert_eq!(channels[0].address, app.url("/webhooks/gcal"));
    assert_eq!(channels[0].user, "alice@example.com");
    // The card says so.
    let card: serde_json::Value = alice.get("/api/spaces/alpha/integrations/gcal").await.json().await.unwrap();
    assert_eq!(card["state"], "connected", "{card}");
    // The channel was stored before Google was asked: its `sync`, which Google may send before
    // it answers, was recognized rather than dropped as an unknown channel.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let applied = "kehai_notifications_applied_total{provider=\"gcal\"} 1";
    let metrics = loop {
        let metrics = alice.get("/metrics").await.text().await.unwrap();
        if metrics.contains(applied) || std::time::Instant::now() > deadline {
            break metrics;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert!(emu.pushes().iter().any(|p| p.state == "sync" && p.delivered));
    assert!(metrics.contains(applied), "{metrics}");
    assert!(!metrics.contains("kehai_notifications_dropped_total{provider=\"gcal\""), "{metrics}");
}

#[tokio::test]
async fn a_personal_account_is_refused_and_nothing_is_kept() {
    let (app, emu) = start().await;
    let alice = app.member("alice@example.com").await;
    let (status, page) = connect_as(&alice, &emu, "carol@gmail.com", "carol-password", |_| true).await;
    assert_eq!((status, outcome(&page)), (StatusCode::FORBIDDEN, "personal".to_owned()));
    assert!(page.contains("Google Workspace"), "{page}");
    let account = app.account("alice@example.com").await;
    assert_eq!(app.state.store.connection_of(account, "gcal").await.unwrap(), None);
    assert!(emu.channels().is_empty());
    let grants = emu.grants("carol@gmail.com").unwrap();
    assert!(grants.iter().all(|g| g.live_refresh_tokens == 0), "Google forgets the grant too: {grants:?}");
}

#[tokio::test]
async fn personal_accounts_connect_where_the_operator_allows_them() {
    let (app, emu) = start_with(|c| c.google_allow_personal = true, |_| {}).await;
    let alice = app.member("alice@example.com").await;
    let (status, page) = connect_as(&alice, &emu, "carol@gmail.com", "carol-password", |_| true).await;
    assert_eq!((status, outcome(&page)), (StatusCode::OK, "connected".to_owned()), "{page}");
    let connection = app.state.store.connection_of(app.account("alice@example.com").await, "gcal").await.unwrap();
    assert_eq!(connection.map(|c| c.external_tenant), Some(String::new()), "no organization");
}

#[tokio::test]
async fn an_account_of_another_organization_is_refused() {
    let (app, emu) = start_with(|c| c.google_hosted_domains = "example.com".into(), |_| {}).await;
    let alice = app.member("alice@example.com").await;
    // The chooser is told which organization (a hint only) …
    let r = alice.get(&alice.connect_link("gcal", "alpha").await).await;
    let authorize = r.headers()["location"].to_str().unwrap().to_owned();
    assert!(authorize.contains("hd=example.com"), "{authorize}");
    // … and the id token decides.
    let (status, page) = connect_as(&alice, &emu, "dave@other.example", "dave-password", |_| true).await;
    assert_eq!((status, outcome(&page)), (StatusCode::FORBIDDEN, "other-organization".to_owned()));
    assert_eq!(app.state.store.connection_of(app.account("alice@example.com").await, "gcal").await.unwrap(), None);
}

#[tokio::test]
async fn an_unticked_calendar_permission_is_explained_and_nothing_is_kept() {
    let (app, emu) = start().await;
    let alice = app.member("alice@example.com").await;
    let (status, page) =
        connect_as(&alice, &emu, "alice@example.com", "alice-password", |s| s != scopes::CALENDAR).await;
    assert_eq!((status, outcome(&page)), (StatusCode::FORBIDDEN, "scope-missing".to_owned()));
    assert!(page.contains("never a title"), "it says why kehai needs it: {page}");
    assert_eq!(app.state.store.connection_of(app.account("alice@example.com").await, "gcal").await.unwrap(), None);
    assert!(emu.channels().is_empty());
}

#[tokio::test]
async fn without_push_the_card_says_the_calendar_is_polled_and_it_still_follows() {
    let (app, emu) = start_with(
        |c| {
            c.google_push = kehai_server::config::GooglePush::Off;
            c.google_poll_seconds = Some(2);
        },
        |_| {},
    )
    .await;
    let alice = connected(&app, &emu, "alice@example.com", "alice-password").await;
    assert!(emu.channels().is_empty(), "no channel is asked for");
    let card: serde_json::Value = alice.get("/api/spaces/alpha/integrations/gcal").await.json().await.unwrap();
    assert_eq!(card["notes"], serde_json::json!(["polling"]), "{card}");
    // No push comes: the next poll (every 2 s here) sees the meeting.
    let second = std::time::Duration::from_secs(1);
    event(&emu, "alice@example.com", googleemu::EventKind::Meeting, second, 600 * second);
    avatar_becomes(&alice, "Alice", Some("📅"), 10).await;
    assert!(emu.pushes().is_empty());
}

#[tokio::test]
async fn where_google_shares_no_event_types_the_card_says_so_and_busy_is_a_meeting() {
    let (app, emu) = start_with(|_| {}, |e| e.freebusy_visibility = googleemu::FreeBusyVisibility::Forbidden).await;
    let alice = connected(&app, &emu, "alice@example.com", "alice-password").await;
    event(
        &emu,
        "alice@example.com",
        googleemu::EventKind::FocusTime,
        std::time::Duration::ZERO,
        std::time::Duration::from_secs(600),
    );
    avatar_becomes(&alice, "Alice", Some("📅"), 10).await;
    let card: serde_json::Value = alice.get("/api/spaces/alpha/integrations/gcal").await.json().await.unwrap();
    assert_eq!(card["notes"], serde_json::json!(["no_event_types"]), "{card}");
}

#[tokio::test]
async fn a_refused_channel_leaves_the_calendar_polled_not_broken() {
    // (Polled every 2 s here; by default every 5 minutes, not at the hourly safety interval.)
    let (app, emu) = start_with(|c| c.google_poll_seconds = Some(2), |_| {}).await;
    emu.add_fault(googleemu::Fault {
        target: googleemu::FaultTarget::Calendar,
        kind: googleemu::FaultKind::BackendError,
        count: 10,
        operation: Some("calendar.events.watch".into()),
        retry_after: None,
        delay_ms: None,
        percent: None,
    })
    .unwrap();
    let alice = connected(&app, &emu, "alice@example.com", "alice-password").await;
    let card: serde_json::Value = alice.get("/api/spaces/alpha/integrations/gcal").await.json().await.unwrap();
    assert_eq!((card["state"].as_str(), &card["notes"]), (Some("connected"), &serde_json::json!(["channel_refused"])));
    let second = std::time::Duration::from_secs(1);
    event(&emu, "alice@example.com", googleemu::EventKind::Meeting, second, 600 * second);
    avatar_becomes(&alice, "Alice", Some("📅"), 10).await;
}
