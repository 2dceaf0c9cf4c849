//! The avatar following the calendar: exact at boundaries, with no call to Google there; pushes
//! read once per burst; out of office and focus time; Google Calendar beside Teams.

use std::time::Duration;

use googleemu::EventKind;

use crate::support::google::*;

#[tokio::test]
async fn a_meeting_shows_on_time_and_ends_on_time_without_a_call_at_either_boundary() {
    let (app, emu) = start().await;
    let alice = connected(&app, &emu, "alice@example.com", "alice-password").await;
    avatar_becomes(&alice, "Alice", None, 5).await;
    let (start, end) =
        event(&emu, "alice@example.com", EventKind::Meeting, Duration::from_secs(12), Duration::from_secs(3));
    // The push is read once (free/busy and the status events), then nothing until the end.
    let before = settled(&emu, "alice@example.com").await;
    assert_eq!(since(start), Duration::ZERO, "settled before the meeting starts");
    avatar_becomes(&alice, "Alice", Some("📅"), 10).await;
    let late = since(start);
    assert!(late < Duration::from_secs(1), "shown {late:?} after the start");
    avatar_becomes(&alice, "Alice", None, 10).await;
    let late = since(end);
    assert!(late < Duration::from_secs(1), "taken off {late:?} after the end");
    assert_eq!(calls(&emu, "alice@example.com"), before, "no call to Google at the boundaries");
    let avatars = alice.avatars("alpha").await;
    assert!(crate::support::find(&avatars, "Alice").unwrap()["presence"].is_null());
}

#[tokio::test]
async fn with_teams_too_the_avatar_shows_the_busier_of_the_two_and_names_its_source() {
    let (app, google, teams) = start_with_teams().await;
    use crate::support::microsoft::set_status;
    set_status(&teams, "alice@example.com", "Busy").await;
    let alice = crate::support::microsoft::connected(&app, &teams, "alice@example.com", "alice-password").await;
    avatar_becomes(&alice, "Alice", Some("🔴"), 10).await;
    let (status, page) = connect_as(&alice, &google, "alice@example.com", "alice-password", |_| true).await;
    assert_eq!((status.as_u16(), outcome(&page)), (200, "connected".to_owned()));
    let label = |avatars: Vec<serde_json::Value>| {
        crate::support::find(&avatars, "Alice").unwrap()["presence"]["label"].as_str().unwrap_or("").to_owned()
    };
    // A calendar meeting outranks Teams' Busy, and the tooltip says where it comes from.
    event(&google, "alice@example.com", EventKind::Meeting, Duration::ZERO, Duration::from_secs(600));
    avatar_becomes(&alice, "Alice", Some("📅"), 10).await;
    assert_eq!(label(alice.avatars("alpha").await), "Google Calendar: 会議中 / In a meeting");
    // A Teams call outranks the meeting; Teams going Available shows the meeting again.
    set_status(&teams, "alice@example.com", "InACall").await;
    avatar_becomes(&alice, "Alice", Some("📞"), 10).await;
    assert!(label(alice.avatars("alpha").await).starts_with("Microsoft Teams"));
    set_status(&teams, "alice@example.com", "Available").await;
    avatar_becomes(&alice, "Alice", Some("📅"), 10).await;
    // Out of office outranks Teams' Away; with the calendar free, Away shows.
    google.clear_calendar("alice@example.com").unwrap();
    set_status(&teams, "alice@example.com", "AppearAway").await;
    avatar_becomes(&alice, "Alice", Some("💤"), 10).await;
    event(&google, "alice@example.com", EventKind::OutOfOffice, Duration::ZERO, Duration::from_secs(600));
    avatar_becomes(&alice, "Alice", Some("🏝️"), 10).await;
}
