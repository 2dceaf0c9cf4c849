//! Google's pushes: a burst read once, forged ones doing nothing, status events, and never a
//! title asked for.

use std::time::Duration;

use googleemu::EventKind;
use kehai_google::STATUS_EVENT_FIELDS;
use reqwest::StatusCode;

use crate::support::{find, google::*};

#[tokio::test]
async fn a_burst_of_pushes_costs_one_read() {
    let (app, emu) = start().await;
    let alice = connected(&app, &emu, "alice@example.com", "alice-password").await;
    let before = settled(&emu, "alice@example.com").await;
    later_meetings(&emu, "alice@example.com", 5);
    let after = settled(&emu, "alice@example.com").await;
    assert_eq!(after - before, 2, "one free/busy read and one of the status events for five pushes");
    let pushes = emu.pushes().iter().filter(|p| p.state == "exists" && p.delivered).count();
    assert_eq!(pushes, 5, "each change was pushed and answered");
    avatar_becomes(&alice, "Alice", None, 1).await;
    // A push is always read whole: a change may move no busy time and still matter (an
    // out-of-office event put over a meeting).
    event(&emu, "alice@example.com", EventKind::Free, Duration::from_secs(600), Duration::from_secs(600));
    assert_eq!(settled(&emu, "alice@example.com").await - after, 2);
}

#[tokio::test]
async fn forged_pushes_change_nothing() {
    let (app, emu) = start().await;
    let alice = connected(&app, &emu, "alice@example.com", "alice-password").await;
    let before = settled(&emu, "alice@example.com").await;
    let channel = emu.channels().into_iter().next().unwrap();
    let token = channel_token(&app, "alice@example.com").await;
    let unknown = uuid::Uuid::new_v4().to_string();
    let forged = [
        (channel.id.as_str(), "a-guessed-token", channel.resource_id.as_str()),
        (unknown.as_str(), token.as_str(), channel.resource_id.as_str()),
        (channel.id.as_str(), token.as_str(), "another-resource"),
        ("not-a-channel-id", token.as_str(), channel.resource_id.as_str()),
    ];
    let http = reqwest::Client::new();
    for (id, token, resource) in forged {
        let r = http
            .post(app.url("/webhooks/gcal"))
            .header("x-goog-channel-id", id)
            .header("x-goog-channel-token", token)
            .header("x-goog-resource-id", resource)
            .header("x-goog-resource-state", "exists")
            .header("x-goog-message-number", "7")
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "answered like any push: {}", r.status());
    }
    assert_eq!(settled(&emu, "alice@example.com").await, before, "no read");
    let metrics = alice.get("/metrics").await.text().await.unwrap();
    for (reason, n) in [("client_state", 2), ("unknown_subscription", 2)] {
        let line = format!("kehai_notifications_dropped_total{{provider=\"gcal\",reason=\"{reason}\"}} {n}");
        assert!(metrics.contains(&line), "{line} in\n{metrics}");
    }
    // The genuine channel still works.
    let (start, _) = event(&emu, "alice@example.com", EventKind::Meeting, Duration::ZERO, Duration::from_secs(600));
    let _ = start;
    avatar_becomes(&alice, "Alice", Some("📅"), 10).await;
}

#[tokio::test]
async fn out_of_office_outranks_a_meeting_which_outranks_nothing_and_focus_time_shows_too() {
    let (app, emu) = start().await;
    let alice = connected(&app, &emu, "alice@example.com", "alice-password").await;
    let minutes = |m: u64| Duration::from_secs(m * 60);
    event(&emu, "alice@example.com", EventKind::FocusTime, Duration::ZERO, minutes(30));
    avatar_becomes(&alice, "Alice", Some("⛔"), 10).await;
    let avatars = alice.avatars("alpha").await;
    let presence = &find(&avatars, "Alice").unwrap()["presence"];
    assert_eq!(presence["label"], "Google Calendar: 集中時間 / Focus time");
    assert_eq!(presence["kind"], "do_not_disturb");
    event(&emu, "alice@example.com", EventKind::OutOfOffice, Duration::ZERO, minutes(60));
    avatar_becomes(&alice, "Alice", Some("🏝️"), 10).await;
    event(&emu, "alice@example.com", EventKind::Meeting, Duration::ZERO, minutes(10));
    settled(&emu, "alice@example.com").await;
    avatar_becomes(&alice, "Alice", Some("🏝️"), 1).await;
    // Declined and free events change nothing.
    emu.clear_calendar("alice@example.com").unwrap();
    avatar_becomes(&alice, "Alice", None, 10).await;
    event(&emu, "alice@example.com", EventKind::Declined, Duration::ZERO, minutes(10));
    event(&emu, "alice@example.com", EventKind::Free, Duration::ZERO, minutes(10));
    settled(&emu, "alice@example.com").await;
    avatar_becomes(&alice, "Alice", None, 1).await;
    event(&emu, "alice@example.com", EventKind::NeedsAction, Duration::ZERO, minutes(10));
    avatar_becomes(&alice, "Alice", Some("📅"), 10).await;
    // Only ever the status events' times and kinds, never a title.
    let lists: Vec<_> = emu
        .calendar_requests()
        .into_iter()
        .filter(|r| r.operation.as_deref() == Some("calendar.events.list"))
        .collect();
    assert!(!lists.is_empty());
    for list in lists {
        assert_eq!(list.fields.as_deref(), Some(STATUS_EVENT_FIELDS), "{list:?}");
        assert!(list.query.contains("eventTypes=outOfOffice") && list.query.contains("eventTypes=focusTime"));
        assert!(!list.query.to_lowercase().contains("summary"), "{list:?}");
    }
    assert_eq!(StatusCode::OK, alice.get("/s/alpha").await.status());
}

#[tokio::test]
async fn out_of_office_put_over_a_meeting_shows_though_no_busy_time_changed() {
    let (app, emu) = start().await;
    let alice = connected(&app, &emu, "alice@example.com", "alice-password").await;
    let (start, end) = event(&emu, "alice@example.com", EventKind::Meeting, Duration::ZERO, Duration::from_secs(600));
    avatar_becomes(&alice, "Alice", Some("📅"), 10).await;
    settled(&emu, "alice@example.com").await;
    // Inside the meeting's time: free/busy says the same, the events say otherwise.
    emu.add_event("alice@example.com", googleemu::EventSpec::at(EventKind::OutOfOffice, start, end)).unwrap();
    avatar_becomes(&alice, "Alice", Some("🏝️"), 10).await;
}
