//! Connecting Microsoft Teams against msemu, as a member's browser does it: kehai's connect
//! link, msemu's sign-in and consent pages, and back to kehai's callback; what each ending shows
//! and stores.

use std::collections::HashMap;

use reqwest::StatusCode;
use serde_json::Value;

use crate::support::{find, microsoft::*};

#[tokio::test]
async fn a_member_connects_and_the_avatar_shows_the_current_presence() {
    let (app, emu) = start().await;
    set_status(&emu, "alice@example.com", "Busy").await;
    let mut alice = app.member("alice@example.com").await;
    alice.load_space("alpha").await;
    let callback = sign_in_at_microsoft(&alice, &emu, "alice@example.com", "alice-password", "accept").await;
    assert!(callback.starts_with(&app.url("/integrations/msteams/callback")), "{callback}");
    let (status, html) = back_to_kehai(&alice, &callback).await;
    assert_eq!((status, outcome(&html).as_str()), (StatusCode::OK, "connected"));
    assert!(html.contains("Authentication complete") && html.contains("/static/popup.js"));

    // Stored: sealed tokens, the subscription.
    let account = alice_account(&app).await;
    let connection = app.state.store.connection_of(account, "msteams").await.unwrap().expect("a connection");
    let ms_alice = emu.emulator.world.lock().directory.user_by_email("alice@example.com").unwrap().id.to_string();
    assert_eq!(connection.external_user, ms_alice);
    assert!(
        connection.access_token.0.starts_with("v1.") && connection.refresh_token.as_ref().unwrap().0.starts_with("v1.")
    );
    assert_eq!(connection.state, kehai_store::ConnectionState::Connected);
    let subscription = connection.subscription.expect("subscribed");

    // At msemu: one rich presence subscription for Alice, pointing at kehai's webhooks.
    let subs = subscriptions(&emu).await;
    assert_eq!(subs.len(), 1);
    let s = &subs[0];
    assert_eq!(s["id"], subscription.id);
    assert_eq!(s["resource"], format!("communications/presences/{ms_alice}"));
    assert_eq!(s["notificationUrl"], app.url("/webhooks/msgraph"));
    assert_eq!(s["lifecycleNotificationUrl"], app.url("/webhooks/msgraph/lifecycle"));
    assert_eq!(s["includeResourceData"], true);
    assert!(s["encryptionCertificateId"].as_str().unwrap().starts_with("kehai-"));
    assert_eq!(s["hasClientState"], true);

    // The avatar shows Busy at once, and Alice's own emoji is untouched.
    let avatars = alice.avatars("alpha").await;
    let a = find(&avatars, "Alice").unwrap();
    assert_eq!(a["emoji"], "🔴");
    assert_eq!(a["presence"]["label"], "Microsoft Teams: 取り込み中 / Busy");
    assert_eq!(a["own_emoji"], Value::Null);
}

#[tokio::test]
async fn a_personal_account_is_refused_and_nothing_is_stored() {
    let (app, emu) = start().await;
    let alice = app.member("alice@example.com").await;
    let callback = sign_in_at_microsoft(&alice, &emu, "pat@outlook.example", "pat-password", "accept").await;
    let (status, html) = back_to_kehai(&alice, &callback).await;
    assert_eq!((status, outcome(&html).as_str()), (StatusCode::FORBIDDEN, "personal"));
    assert!(html.contains("Only work or school (business) Microsoft accounts can be connected"));
    assert!(subscriptions(&emu).await.is_empty());
    let account = alice_account(&app).await;
    assert!(app.state.store.connection_of(account, "msteams").await.unwrap().is_none());
}

#[tokio::test]
async fn an_organization_that_needs_admin_consent_gets_the_admin_link_then_connects() {
    let (app, emu) = start().await;
    let bob = app.member("bob@example.com").await;
    let callback = sign_in_at_microsoft(&bob, &emu, "erin@fabrikam.example", "erin-password", "back").await;
    let (status, html) = back_to_kehai(&bob, &callback).await;
    assert_eq!((status, outcome(&html).as_str()), (StatusCode::OK, "admin-approval"));
    let admin_url = crate::support::between(&html, "id=\"admin-url\" class=\"copy-source\" readonly value=\"", "\"")
        .unwrap()
        .replace("&#38;", "&");
    let parsed = url::Url::parse(&admin_url).unwrap();
    assert!(parsed.path().ends_with("/organizations/v2.0/adminconsent"));
    let q: HashMap<String, String> = parsed.query_pairs().into_owned().collect();
    assert_eq!(q["scope"], "https://graph.microsoft.com/Presence.Read.All");
    assert_eq!(q["redirect_uri"], app.url("/integrations/msteams/callback"));
    assert!(html.contains("id=\"copy-admin-url\""));

    // An administrator approves; Erin (as Bob's Microsoft account) connects.
    reqwest::Client::new().post(emu.url("/_emu/api/tenants/fabrikam/admin-consent")).send().await.unwrap();
    let callback = sign_in_at_microsoft(&bob, &emu, "erin@fabrikam.example", "erin-password", "accept").await;
    let (status, html) = back_to_kehai(&bob, &callback).await;
    assert_eq!((status, outcome(&html).as_str()), (StatusCode::OK, "connected"));
}

#[tokio::test]
async fn sign_in_links_are_single_use_and_bound_to_their_session() {
    let (app, emu) = start().await;
    let alice = app.member("alice@example.com").await;
    let callback = sign_in_at_microsoft(&alice, &emu, "alice@example.com", "alice-password", "accept").await;
    // Another member's browser cannot finish Alice's sign-in…
    let bob = app.member("bob@example.com").await;
    let (status, html) = back_to_kehai(&bob, &callback).await;
    assert_eq!((status, outcome(&html).as_str()), (StatusCode::BAD_REQUEST, "expired"));
    // …and the state is used up by that attempt.
    let (_, html) = back_to_kehai(&alice, &callback).await;
    assert_eq!(outcome(&html), "expired");
    assert!(subscriptions(&emu).await.is_empty(), "nothing stored");
    let (_, html) = back_to_kehai(&alice, &app.url("/integrations/msteams/callback?state=forged&code=x")).await;
    assert_eq!(outcome(&html), "expired");
    let (_, html) = back_to_kehai(&alice, &app.url("/integrations/msteams/callback")).await;
    assert_eq!(outcome(&html), "expired");
}

#[tokio::test]
async fn cancelling_changes_nothing() {
    let (app, emu) = start().await;
    let alice = app.member("alice@example.com").await;
    let callback = sign_in_at_microsoft(&alice, &emu, "alice@example.com", "alice-password", "cancel").await;
    let (_, html) = back_to_kehai(&alice, &callback).await;
    assert_eq!(outcome(&html), "cancelled");
    assert!(subscriptions(&emu).await.is_empty());
}

#[tokio::test]
async fn guests_and_outsiders_cannot_connect() {
    let (app, _emu) = start().await;
    let guest = app.guest("Visitor").await;
    let r = guest.get("/integrations/msteams/connect?space=alpha").await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(outcome(&r.text().await.unwrap()), "members-only");
    let carol = app.member("carol@example.com").await;
    let link = carol.connect_link_from("beta", "msteams", "alpha").await;
    assert_eq!(carol.get(&link).await.status(), StatusCode::FORBIDDEN);
    let anonymous = app.client().get("/integrations/msteams/connect?space=alpha").await;
    assert_eq!(anonymous.status(), StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn an_existing_subscription_after_a_crash_is_replaced() {
    let (app, emu) = start().await;
    connected(&app, &emu, "alice@example.com", "alice-password").await;
    let old = subscriptions(&emu).await[0]["id"].clone();
    // kehai lost its record (say, a crash before it was written) but Graph kept the subscription.
    let connection = alice_connection(&app).await;
    app.state.store.delete_connection(connection.id).await.unwrap();
    let alice = connected(&app, &emu, "alice@example.com", "alice-password").await;
    let subs = subscriptions(&emu).await;
    assert_eq!(subs.len(), 1);
    assert_ne!(subs[0]["id"], old, "replaced, since its clientState is unknown");
    assert_eq!(card(&alice).await["state"], "connected");
}

#[tokio::test]
async fn reconnecting_with_another_account_moves_the_subscription() {
    let (app, emu) = start().await;
    let alice = connected(&app, &emu, "alice@example.com", "alice-password").await;
    // Linking another Microsoft account needs no sign-out at Microsoft: the account picker is
    // offered every time; Alice picks her colleague Bob's account.
    let callback = sign_in_at_microsoft(&alice, &emu, "bob@example.com", "bob-password", "accept").await;
    assert_eq!(outcome(&back_to_kehai(&alice, &callback).await.1), "connected");
    let ms_bob = emu.emulator.world.lock().directory.user_by_email("bob@example.com").unwrap().id.to_string();
    let subs = subscriptions(&emu).await;
    assert_eq!(subs.len(), 1, "the previous account's subscription is gone");
    assert_eq!(subs[0]["resource"], format!("communications/presences/{ms_bob}"));
}

#[tokio::test]
async fn a_sign_in_older_than_ten_minutes_has_expired() {
    let (app, emu) = start().await;
    let alice = app.member("alice@example.com").await;
    let callback = sign_in_at_microsoft(&alice, &emu, "alice@example.com", "alice-password", "accept").await;
    app.clock.advance(10 * 60 * 1000 + 1);
    let (status, html) = back_to_kehai(&alice, &callback).await;
    assert_eq!((status, outcome(&html).as_str()), (StatusCode::BAD_REQUEST, "expired"));
    assert!(subscriptions(&emu).await.is_empty(), "nothing stored");
}

/// A connect link followed from elsewhere (a cross-site navigation carries the session's cookie
/// but not its CSRF token) starts nothing: no sign-in is kept, no account picker is shown.
#[tokio::test]
async fn a_connect_link_without_the_pages_token_starts_nothing() {
    let (app, _emu) = start().await;
    let mut alice = app.member("alice@example.com").await;
    alice.load_space("alpha").await;
    let csrf = alice.csrf.clone().unwrap();
    for link in [
        "/integrations/msteams/connect?space=alpha".to_owned(),
        "/integrations/msteams/connect?space=alpha&connect=forged".to_owned(),
        // The session's CSRF token is not the connect token.
        format!("/integrations/msteams/connect?space=alpha&connect={csrf}"),
    ] {
        let r = alice.get(&link).await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{link}");
        assert_eq!(outcome(&r.text().await.unwrap()), "expired");
    }
    assert!(!app.sqlite_dump().await.iter().any(|row| row.starts_with("oauth_states|")), "no sign-in kept");
    let r = alice.get(&alice.connect_link("msteams", "alpha").await).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER, "the page's own button starts one");
}

/// A page (or a script) opening popup after popup holds at most five sign-ins in progress: the
/// oldest are dropped, and the newest still finishes.
#[tokio::test]
async fn a_session_holds_at_most_five_sign_ins_in_progress_and_the_newest_finishes() {
    let (app, emu) = start().await;
    let alice = app.member("alice@example.com").await;
    let link = alice.connect_link("msteams", "alpha").await;
    for _ in 0..7 {
        assert_eq!(alice.get(&link).await.status(), StatusCode::SEE_OTHER);
    }
    let pending = || async { app.sqlite_dump().await.iter().filter(|row| row.starts_with("oauth_states|")).count() };
    assert_eq!(pending().await, 5);
    let callback = sign_in_at_microsoft(&alice, &emu, "alice@example.com", "alice-password", "accept").await;
    assert_eq!(outcome(&back_to_kehai(&alice, &callback).await.1), "connected");
    assert_eq!(pending().await, 4, "the finished one is gone, the others wait to expire");
}
