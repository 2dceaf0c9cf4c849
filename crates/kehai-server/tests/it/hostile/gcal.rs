//! Google Calendar's endpoints: the push webhook (anyone can post to it: malformed pushes are
//! refused, forged ones taken and dropped when checked) and the sign-in popup (connect links and
//! callbacks replayed, made up, of another session, of a guest) — each refused as documented,
//! with nothing stored and the genuine channel still followed.

use std::time::Duration;

use googleemu::EventKind;
use reqwest::{Method, RequestBuilder, StatusCode};

use super::{
    Case,
    Code::*,
    api, case,
    popup::{self, Popup},
    refused_as_documented,
};
use crate::support::{Client, between, google::*, microsoft::metric_becomes};

const WEBHOOK: &str = "/webhooks/gcal";

/// A push as Google sends one: headers only.
fn push(c: &Client, headers: &[(&str, &str)]) -> RequestBuilder {
    headers.iter().fold(c.http.post(c.url(WEBHOOK)), |r, (name, value)| r.header(*name, *value))
}

#[tokio::test]
async fn hostile_google_pushes_and_popups_get_their_documented_refusal_and_change_nothing() {
    let (app, emu) = start().await;
    // Alice connects Google Calendar; the callback she came back through is kept, to replay it.
    let alice = app.member("alice@example.com").await;
    let callback = sign_in_at_google(&alice, &emu, "alice@example.com", "alice-password", |_| true).await;
    let page = alice.http.get(&callback).send().await.unwrap().text().await.unwrap();
    assert_eq!(outcome(&page), "connected");
    let bob = app.member("bob@example.com").await;
    let guest = app.guest("Gwen").await;
    let anonymous = app.client();
    let mut forger = app.client();
    forger.csrf = None;
    let token_of = |html: String| between(&html, "\"connect\":\"", "\"").unwrap();
    let alice_token = token_of(alice.get("/s/alpha").await.text().await.unwrap());
    let bob_token = token_of(bob.get("/s/alpha").await.text().await.unwrap());
    let channel = emu.channels().into_iter().next().unwrap();
    let token = channel_token(&app, "alice@example.com").await;
    let (id, resource) = (channel.id.as_str(), channel.resource_id.as_str());
    let unknown = uuid::Uuid::new_v4().to_string();
    let state = "x-goog-resource-state";
    let (h_id, h_token, h_resource) = ("x-goog-channel-id", "x-goog-channel-token", "x-goog-resource-id");
    // Connecting read the calendar once more shortly after; nothing moves after that.
    settled(&emu, "alice@example.com").await;

    let before = app.sqlite_dump().await;
    assert!(before.iter().any(|row| row.starts_with("connections|")), "the dump has the connection");
    let avatars_before = alice.avatars("alpha").await;
    let calls_before = calls(&emu, "alice@example.com");

    let popup = Popup {
        app: &app,
        alice: &alice,
        guest: &guest,
        anonymous: &anonymous,
        alice_token: &alice_token,
        bob_token: &bob_token,
        callback: &callback,
    };
    let mut cases: Vec<Case> = vec![
        // --- the webhook ---------------------------------------------------------------------------
        case("a POST that is no push", push(&forger, &[]), 400, Json("not_a_push")),
        case("a push without its state", push(&forger, &[(h_id, id), (h_token, &token)]), 400, Json("not_a_push")),
        case("a push without its channel", push(&forger, &[(state, "exists")]), 400, Json("not_a_push")),
        case(
            "a push body over 1 MiB",
            push(&forger, &[(h_id, id), (state, "exists")]).body(vec![b'a'; 3 * 1024 * 1024]),
            413,
            Json("payload_too_large"),
        ),
        case("GET on the webhook", api(&forger, Method::GET, WEBHOOK, None), 405, Json("method_not_allowed")),
        case(
            "a guessed token",
            push(&forger, &[(h_id, id), (h_token, "guessed"), (h_resource, resource), (state, "exists")]),
            202,
            Accepted,
        ),
        case("no token", push(&forger, &[(h_id, id), (h_resource, resource), (state, "not_exists")]), 202, Accepted),
        case(
            "another resource",
            push(&forger, &[(h_id, id), (h_token, &token), (h_resource, "another"), (state, "exists")]),
            202,
            Accepted,
        ),
        case(
            "an unknown channel",
            push(&forger, &[(h_id, &unknown), (h_token, &token), (h_resource, resource), (state, "exists")]),
            202,
            Accepted,
        ),
        case(
            "a channel id that is none of kehai's",
            push(&forger, &[(h_id, "'; DROP TABLE connections;--"), (h_token, &token), (state, "exists")]),
            202,
            Accepted,
        ),
        // --- the popup -------------------------------------------------------------------------------
        case(
            "an unknown provider's popup",
            alice.http.get(app.url("/integrations/gcalx/connect?space=alpha")),
            404,
            Json("route_not_found"),
        ),
    ];
    cases.extend(popup::cases("gcal", &popup));
    assert_eq!(refused_as_documented(cases).await, 5);

    // Every forged push was dropped for what it was, and none was read from Google.
    for line in [
        "kehai_notifications_dropped_total{provider=\"gcal\",reason=\"unknown_subscription\"} 2",
        "kehai_notifications_dropped_total{provider=\"gcal\",reason=\"client_state\"} 3",
    ] {
        metric_becomes(&alice, line).await;
    }
    assert_eq!(settled(&emu, "alice@example.com").await, calls_before, "no read");
    // Nothing stored, changed or deleted.
    let after = app.sqlite_dump().await;
    let gone: Vec<_> = before.iter().filter(|r| !after.contains(r)).collect();
    let new: Vec<_> = after.iter().filter(|r| !before.contains(r)).collect();
    assert!(gone.is_empty() && new.is_empty(), "the database changed:\n- {gone:#?}\n+ {new:#?}");
    assert_eq!(alice.avatars("alpha").await, avatars_before);
    assert_eq!(alice.get("/healthz").await.status(), StatusCode::OK);
    // …and the genuine channel still reaches Alice's avatar.
    event(&emu, "alice@example.com", EventKind::Meeting, Duration::ZERO, Duration::from_secs(600));
    avatar_becomes(&alice, "Alice", Some("📅"), 10).await;
}
