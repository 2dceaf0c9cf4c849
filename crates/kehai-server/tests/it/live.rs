//! The event stream: snapshots, live changes, who is here, and catching up after a reconnect.

use serde_json::{Value, json};

use crate::support::{TestApp, find};

fn avatars(e: &crate::support::Sse) -> Vec<Value> {
    e.data["avatars"].as_array().expect("snapshot avatars").clone()
}

#[tokio::test]
async fn a_second_client_sees_changes_live() {
    let app = TestApp::start().await;
    let mut alice = app.member("alice@example.com").await;
    alice.load_space("alpha").await;
    let bob = app.member("bob@example.com").await;
    let mut stream = bob.events("alpha", None).await;
    let first = stream.next(5).await.expect("a first event");
    assert_eq!(first.event, "snapshot");
    assert!(first.id.is_some(), "events carry ids");
    let snapshot = avatars(&first);
    assert_eq!(find(&snapshot, "Bob").expect("Bob")["here"], true);
    assert_eq!(find(&snapshot, "Alice").expect("Alice")["here"], false);

    alice.put_me("alpha", json!({"emoji": "🍵"})).await;
    let e = stream.wait_for("Alice 🍵", |e| e.event == "avatar" && e.data["emoji"] == "🍵").await;
    assert_eq!(e.data["display_name"], "Alice");
    assert!(e.id.is_some());
    alice.put_me("alpha", json!({"emoji": null})).await;
    stream
        .wait_for("Alice without emoji", |e| {
            e.event == "avatar" && e.data["display_name"] == "Alice" && e.data["emoji"].is_null()
        })
        .await;
}

#[tokio::test]
async fn here_while_the_page_is_open_and_guests_vanish_when_they_leave() {
    let app = TestApp::start().await;
    let bob = app.member("bob@example.com").await;
    let mut watching = bob.events("alpha", None).await;
    watching.next(5).await.expect("snapshot");

    let alice = app.member("alice@example.com").await;
    let alice_page = alice.events("alpha", None).await;
    watching.wait_for("Alice here", |e| e.data["display_name"] == "Alice" && e.data["here"] == true).await;
    assert_eq!(find(&bob.avatars("alpha").await, "Alice").unwrap()["here"], true);
    drop(alice_page);
    watching.wait_for("Alice away", |e| e.data["display_name"] == "Alice" && e.data["here"] == false).await;
    assert_eq!(find(&bob.avatars("alpha").await, "Alice").expect("members stay listed")["here"], false);

    let guest = app.guest("Visitor").await;
    let guest_page = guest.events("alpha", None).await;
    let arrived = watching.wait_for("guest here", |e| e.data["display_name"] == "Visitor").await;
    assert_eq!(arrived.data["kind"], "guest");
    let id = arrived.data["person_id"].clone();
    drop(guest_page);
    watching.wait_for("guest left", |e| e.event == "left" && e.data["person_id"] == id).await;
    assert!(find(&bob.avatars("alpha").await, "Visitor").is_none(), "guests disappear when they leave");
}

#[tokio::test]
async fn a_reconnecting_page_catches_up() {
    let app = TestApp::start().await;
    let mut alice = app.member("alice@example.com").await;
    alice.load_space("alpha").await;
    let bob = app.member("bob@example.com").await;
    let mut stream = bob.events("alpha", None).await;
    let last = stream.next(5).await.expect("snapshot").id.expect("id");
    drop(stream);

    alice.put_me("alpha", json!({"emoji": "🌙"})).await;
    alice.put_me("alpha", json!({"emoji": "☀️"})).await;

    let mut resumed = bob.events("alpha", Some(&last)).await;
    let mut seen = Vec::new();
    while let Some(e) = resumed.next(2).await {
        assert_ne!(e.event, "snapshot", "a known id resumes without a snapshot");
        if e.data["display_name"] == "Alice" {
            seen.push(e.data["emoji"].as_str().unwrap_or("").to_owned());
        }
        if seen.len() == 2 {
            break;
        }
    }
    assert_eq!(seen, vec!["🌙", "☀️"], "missed events are replayed in order");

    // An id the server does not know gets a fresh snapshot.
    let mut fresh = bob.events("alpha", Some("00000000-1")).await;
    let e = fresh.next(5).await.expect("snapshot");
    assert_eq!(e.event, "snapshot");
    assert_eq!(find(&avatars(&e), "Alice").unwrap()["emoji"], "☀️");
}

#[tokio::test]
async fn when_another_instance_dies_every_page_starts_again_from_the_database() {
    use kehai_server::live::BusMessage;
    let app = TestApp::start().await;
    let mut alice = app.member("alice@example.com").await;
    alice.load_space("alpha").await;
    let bob = app.member("bob@example.com").await;
    let mut stream = bob.events("alpha", None).await;
    assert_eq!(stream.next(5).await.expect("snapshot").event, "snapshot");

    // What a dying instance wrote and never published: in the database, on no page.
    let slug = kehai_core::SpaceSlug::parse("alpha").unwrap();
    let space = app.state.store.space_by_slug(&slug).await.unwrap().unwrap();
    let alice = find(&bob.avatars("alpha").await, "Alice").unwrap()["person_id"].as_str().unwrap().to_owned();
    let alice = kehai_core::PersonId::parse(&alice).unwrap();
    let change = kehai_store::AvatarChange {
        own_emoji: Some(Some(kehai_core::Emoji::parse("🌵").unwrap())),
        ..Default::default()
    };
    app.state.store.update_avatar(space.id, alice, &change, app.state.clock.now()).await.unwrap().unwrap();
    while let Some(e) = stream.next(1).await {
        assert_ne!(e.data["emoji"], "🌵", "nothing was published: {e:?}");
    }

    // Its heartbeat lapses; another instance says so on the bus.
    app.state.live.bus.publish(BusMessage::Gone { instance: "dead".into(), by: "another".into() });
    let e = stream.wait_for("a fresh snapshot", |e| e.event == "snapshot").await;
    assert_eq!(find(&avatars(&e), "Alice").unwrap()["emoji"], "🌵");
}

#[tokio::test]
async fn streams_need_a_session() {
    let app = TestApp::start().await;
    let r = app.client().get("/s/alpha/events").await;
    assert_eq!(r.status(), reqwest::StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn logging_out_closes_the_pages_of_that_session() {
    let app = TestApp::start().await;
    let bob = app.member("bob@example.com").await;
    let mut watching = bob.events("alpha", None).await;
    let mut alice = app.member("alice@example.com").await;
    alice.load_space("alpha").await;
    let mut alice_page = alice.events("alpha", None).await;
    watching.wait_for("Alice here", |e| e.data["display_name"] == "Alice" && e.data["here"] == true).await;

    let csrf = alice.csrf.clone().unwrap();
    alice.post_form("/logout", &[("csrf", &csrf)]).await;
    assert!(alice_page.closes_within(5).await, "the logged-out page's stream must close");
    watching.wait_for("Alice away", |e| e.data["display_name"] == "Alice" && e.data["here"] == false).await;
}

/// Logging out on one instance closes the session's streams on every instance: a stream kept
/// alive by keep-alives never reconnects, and would otherwise keep a live feed (and keep its
/// person "here") for whoever holds a stolen cookie.
#[tokio::test]
async fn logging_out_on_one_instance_closes_the_sessions_pages_on_every_instance() {
    let app = TestApp::start().await;
    let other = app.another_instance().await;
    let mut alice = app.member("alice@example.com").await;
    alice.load_space("alpha").await;
    let mut here = alice.events("alpha", None).await;
    let mut there = other.as_seen_by(&alice).events("alpha", None).await;
    assert_eq!(there.next(5).await.expect("a snapshot from the other instance").event, "snapshot");
    let csrf = alice.csrf.clone().unwrap();
    alice.post_form("/logout", &[("csrf", &csrf)]).await;
    assert!(here.closes_within(5).await, "the stream on the instance that logged out");
    assert!(there.closes_within(5).await, "the stream on the other instance");
    let r = other.as_seen_by(&alice).get("/api/spaces/alpha/avatars").await;
    assert_eq!(r.status(), reqwest::StatusCode::UNAUTHORIZED);
}

/// One session holds a bounded number of pages open: opening one more closes its oldest, which
/// is told why (and does not reconnect); the others go on.
#[tokio::test]
async fn a_session_opening_too_many_pages_closes_its_oldest_which_says_why() {
    let app = TestApp::start_with(|c| c.max_streams_per_session = 2).await;
    let bob = app.member("bob@example.com").await;
    let mut first = bob.events("alpha", None).await;
    let mut second = bob.events("alpha", None).await;
    for page in [&mut first, &mut second] {
        assert_eq!(page.next(5).await.expect("snapshot").event, "snapshot");
    }
    let mut third = bob.events("alpha", None).await;
    assert_eq!(third.next(5).await.expect("snapshot").event, "snapshot");
    let last = first.wait_for("the oldest is told why", |e| e.event == "closed").await;
    assert_eq!(last.data["reason"], "too_many_pages");
    assert!(first.closes_within(5).await, "and ends");
    // The two newest still follow the space.
    let mut alice = app.member("alice@example.com").await;
    alice.load_space("alpha").await;
    alice.put_me("alpha", serde_json::json!({"emoji": "🌵"})).await;
    for page in [&mut second, &mut third] {
        page.wait_for("Alice's cactus", |e| e.data["emoji"] == "🌵").await;
    }
}

/// Beyond the streams one instance holds, a page is refused for now (503 with Retry-After) and
/// its page tries again later.
#[tokio::test]
async fn beyond_the_instances_streams_a_page_is_asked_to_come_again() {
    let app = TestApp::start_with(|c| c.max_event_streams = 2).await;
    let bob = app.member("bob@example.com").await;
    let alice = app.member("alice@example.com").await;
    let _bobs = bob.events("alpha", None).await;
    let alices = alice.events("alpha", None).await;
    let guest = app.guest("Visitor").await;
    let r = guest.get("/s/alpha/events").await;
    assert_eq!(r.status(), reqwest::StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.headers()["retry-after"], "5");
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "too_many_streams");
    drop(alices);
    // Its place is given back once the closed stream is noticed.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while guest.get("/s/alpha/events").await.status() != reqwest::StatusCode::OK {
        assert!(tokio::time::Instant::now() < deadline, "the closed stream's place never came back");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// A stream ends when its session's time is up, even if no instance's purge has ended it yet.
#[tokio::test]
async fn a_stream_ends_when_its_session_expires() {
    let app = TestApp::start().await;
    let guest = app.guest("Visitor").await;
    // A guest's session lasts a day: half a second of it is left.
    app.clock.advance(24 * 3600 * 1000 - 500);
    let mut page = guest.events("alpha", None).await;
    assert_eq!(page.next(5).await.expect("snapshot").event, "snapshot");
    assert!(page.closes_within(5).await, "the stream of an expired session must end");
}

#[tokio::test]
async fn guests_leave_when_their_session_expires() {
    let app = TestApp::start().await;
    let bob = app.member("bob@example.com").await;
    let mut watching = bob.events("alpha", None).await;
    let guest = app.guest("Visitor").await;
    let mut guest_page = guest.events("alpha", None).await;
    let arrived = watching.wait_for("guest here", |e| e.data["display_name"] == "Visitor").await;
    let id = arrived.data["person_id"].clone();

    // A day later the guest's session has expired; the periodic purge notices.
    app.clock.advance(25 * 3600 * 1000);
    app.state.purge_expired_sessions().await;
    watching.wait_for("guest left", |e| e.event == "left" && e.data["person_id"] == id).await;
    assert!(guest_page.closes_within(5).await, "the expired session's stream must close");
    assert_eq!(guest.get("/api/spaces/alpha/avatars").await.status(), reqwest::StatusCode::UNAUTHORIZED);
    assert!(find(&bob.avatars("alpha").await, "Visitor").is_none());
    assert!(
        app.stored_avatars("alpha").await.iter().all(|a| a.display_name.as_str() != "Visitor"),
        "the guest's avatar is deleted with the session"
    );
}

/// NATS for the bus tests: `KEHAI_TEST_NATS_URL` or the local default; `None` (skip) when it
/// does not answer outside CI.
async fn nats() -> Option<secrecy::SecretString> {
    let url = std::env::var("KEHAI_TEST_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into());
    let addr = url.trim_start_matches("nats://").to_owned();
    if tokio::net::TcpStream::connect(&addr).await.is_ok() {
        return Some(url.into());
    }
    assert_ne!(std::env::var("CI").as_deref(), Ok("true"), "CI=true but NATS does not answer at {url}");
    eprintln!("skipping: no NATS at {url}");
    None
}

#[tokio::test]
async fn events_put_on_the_nats_bus_reach_every_instance_in_order() {
    use futures::StreamExt;
    use kehai_server::live::{Bus, BusMessage, Delivery, SpaceEvent, nats::NatsBus};
    let Some(url) = nats().await else { return };
    let (one, two) = (NatsBus::connect(&url).await.unwrap(), NatsBus::connect(&url).await.unwrap());
    assert!(one.ready() && two.ready());
    let (mut at_one, mut at_two) = (one.subscribe(), two.subscribe());
    let space = kehai_core::SpaceId::new();
    let left = |n: usize| BusMessage::space(space, SpaceEvent::Left { person_id: format!("guest-{n}") });
    for n in 0..100 {
        one.publish(left(n));
    }
    for stream in [&mut at_one, &mut at_two] {
        let mut seen = Vec::new();
        while seen.len() < 100 {
            let d = tokio::time::timeout(std::time::Duration::from_secs(5), stream.next()).await.unwrap().unwrap();
            match d {
                // Other tests share the server: only this space's events count.
                Delivery::Message(m @ BusMessage::Space { space_id, .. }) if space_id == space => seen.push(m),
                _ => {}
            }
        }
        assert_eq!(seen, (0..100).map(left).collect::<Vec<_>>(), "every event, once, in order, the publisher's too");
    }
}

#[tokio::test]
async fn a_bus_that_cannot_be_reached_stops_the_start_without_showing_the_password() {
    let url = secrecy::SecretString::from("nats://kehai:hunter2@127.0.0.1:1".to_owned());
    let err = kehai_server::live::nats::NatsBus::connect(&url).await.unwrap_err().to_string();
    assert!(err.contains("KEHAI_BUS_URL"), "{err}");
    assert!(!err.contains("hunter2"), "{err}");
}
