//! Connecting Microsoft Teams against msemu, as a member's browser does it: kehai's connect
//! link, msemu's sign-in and consent pages, and back to kehai's callback.

use std::{collections::HashMap, time::Duration};

use reqwest::StatusCode;
use serde_json::{Value, json};

use kehai_server::{config::NotificationMode, presence::Dropped, providers::msteams::Teams};
use kehai_store::ConnectionState;

use crate::support::{Client, TestApp, find};

/// kehai configured with msemu's app, and msemu knowing kehai's callback.
pub(crate) async fn start() -> (TestApp, msemu::Running) {
    start_in(NotificationMode::Rich).await
}

pub(crate) async fn start_in(mode: NotificationMode) -> (TestApp, msemu::Running) {
    start_custom(mode, |_| {}).await
}

pub(crate) async fn start_custom(
    mode: NotificationMode,
    emulator: impl FnOnce(&mut msemu::Config),
) -> (TestApp, msemu::Running) {
    start_both(mode, emulator, |_| {}).await
}

/// kehai and msemu, each configured further.
pub(crate) async fn start_both(
    mode: NotificationMode,
    emulator: impl FnOnce(&mut msemu::Config),
    kehai: impl FnOnce(&mut kehai_server::Config),
) -> (TestApp, msemu::Running) {
    crate::support::capture_logs();
    let mut directory = msemu::Directory::default();
    directory.apps[0].redirect_uris.clear();
    let mut config = msemu::Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        directory,
        allow_http_notifications: true,
        ..msemu::Config::default()
    };
    emulator(&mut config);
    let emu = msemu::Emulator::start(config).await.unwrap();
    let app_reg = emu.emulator.world.lock().directory.apps[0].clone();
    let base = emu.base_url.clone();
    let app = TestApp::start_with(|c| {
        c.ms_client_id = Some(app_reg.client_id.to_string());
        c.ms_client_secret = Some(app_reg.client_secret.clone().into());
        c.ms_login_url = base.clone();
        c.ms_graph_url = base;
        c.ms_notifications = mode;
        kehai(c);
    })
    .await;
    emu.emulator.world.lock().directory.apps[0].redirect_uris.push(app.url("/integrations/msteams/callback"));
    (app, emu)
}

fn hidden(html: &str, name: &str) -> String {
    crate::support::between(html, &format!("name=\"{name}\" value=\""), "\"")
        .unwrap_or_else(|| panic!("no {name}:\n{html}"))
}

fn location(r: &reqwest::Response) -> String {
    r.headers().get("location").unwrap_or_else(|| panic!("no redirect ({})", r.status())).to_str().unwrap().to_owned()
}

/// Walks the popup: connect → msemu sign-in (→ consent) → back to kehai. Returns msemu's last
/// redirect (to kehai's callback).
pub(crate) async fn sign_in_at_microsoft(
    c: &Client,
    emu: &msemu::Running,
    email: &str,
    password: &str,
    decision: &str,
) -> String {
    let r = c.get("/integrations/msteams/connect?space=alpha").await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let authorize = location(&r);
    assert!(authorize.starts_with(emu.base_url.as_str()), "{authorize}");
    let page = c.http.get(&authorize).send().await.unwrap().text().await.unwrap();
    let mut answer = c
        .http
        .post(emu.url("/organizations/login"))
        .form(&[("flow", hidden(&page, "flow").as_str()), ("email", email), ("password", password)])
        .send()
        .await
        .unwrap();
    if answer.status() == StatusCode::OK {
        let consent = answer.text().await.unwrap();
        answer = c
            .http
            .post(emu.url("/organizations/consent"))
            .form(&[("flow", hidden(&consent, "flow").as_str()), ("decision", decision)])
            .send()
            .await
            .unwrap();
    }
    location(&answer)
}

/// Follows msemu's redirect to kehai's callback: the page the popup ends on.
pub(crate) async fn back_to_kehai(c: &Client, callback: &str) -> (StatusCode, String) {
    let r = c.http.get(callback).send().await.unwrap();
    (r.status(), r.text().await.unwrap())
}

pub(crate) fn outcome(html: &str) -> String {
    crate::support::between(html, "data-outcome=\"", "\"").expect("a result page")
}

pub(crate) async fn set_status(emu: &msemu::Running, email: &str, status: &str) {
    let r = reqwest::Client::new()
        .put(emu.url(&format!("/_emu/api/users/{email}/presence")))
        .json(&json!({ "status": status }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}

pub(crate) async fn subscriptions(emu: &msemu::Running) -> Vec<Value> {
    let v: Value = reqwest::get(emu.url("/_emu/api/subscriptions")).await.unwrap().json().await.unwrap();
    v["subscriptions"].as_array().unwrap().clone()
}

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
    assert_eq!(carol.get("/integrations/msteams/connect?space=alpha").await.status(), StatusCode::FORBIDDEN);
    let anonymous = app.client().get("/integrations/msteams/connect?space=alpha").await;
    assert_eq!(anonymous.status(), StatusCode::SEE_OTHER);
}

pub(crate) async fn card(c: &Client) -> Value {
    let r = c.get("/api/spaces/alpha/integrations/msteams").await;
    assert_eq!(r.status(), StatusCode::OK);
    r.json().await.unwrap()
}

pub(crate) async fn connected(app: &TestApp, emu: &msemu::Running, email: &str, password: &str) -> Client {
    let mut c = app.member(email).await;
    c.load_space("alpha").await;
    let callback = sign_in_at_microsoft(&c, emu, email, password, "accept").await;
    assert_eq!(outcome(&back_to_kehai(&c, &callback).await.1), "connected");
    c
}

#[tokio::test]
async fn the_toggle_pauses_and_resumes_the_presence_in_this_space() {
    let (app, emu) = start().await;
    set_status(&emu, "alice@example.com", "DoNotDisturb").await;
    let mut alice = app.member("alice@example.com").await;
    alice.load_space("alpha").await;
    alice.put_me("alpha", json!({"emoji": "🌸"})).await;
    assert_eq!(card(&alice).await["state"], "not_connected");
    let callback = sign_in_at_microsoft(&alice, &emu, "alice@example.com", "alice-password", "accept").await;
    back_to_kehai(&alice, &callback).await;
    assert_eq!(card(&alice).await["state"], "connected");
    assert_eq!(find(&alice.avatars("alpha").await, "Alice").unwrap()["emoji"], "⛔");

    let r = toggle(&alice, "alpha", false).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.json::<Value>().await.unwrap()["state"], "paused");
    let a = find(&alice.avatars("alpha").await, "Alice").unwrap().clone();
    assert_eq!((a["emoji"].as_str(), &a["presence"]), (Some("🌸"), &Value::Null), "OFF: the own emoji at once");

    set_status(&emu, "alice@example.com", "InACall").await;
    let r = toggle(&alice, "alpha", true).await;
    assert_eq!(r.json::<Value>().await.unwrap()["state"], "connected");
    assert_eq!(
        find(&alice.avatars("alpha").await, "Alice").unwrap()["emoji"],
        "📞",
        "ON: the current presence at once"
    );

    // Without the CSRF token nothing changes.
    let r = alice
        .http
        .put(alice.url("/api/spaces/alpha/integrations/msteams"))
        .json(&json!({"enabled": false}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(card(&alice).await["state"], "connected");
}

#[tokio::test]
async fn disconnecting_deletes_the_subscription_and_the_tokens_and_connecting_again_works() {
    let (app, emu) = start().await;
    set_status(&emu, "alice@example.com", "Busy").await;
    let alice = connected(&app, &emu, "alice@example.com", "alice-password").await;
    assert_eq!(subscriptions(&emu).await.len(), 1);
    let r = disconnect(&alice, "alpha").await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.json::<Value>().await.unwrap()["state"], "not_connected");
    assert!(subscriptions(&emu).await.is_empty(), "deleted at Microsoft");
    let account = alice_account(&app).await;
    assert!(app.state.store.connection_of(account, "msteams").await.unwrap().is_none(), "tokens erased");
    assert_eq!(find(&alice.avatars("alpha").await, "Alice").unwrap()["presence"], Value::Null);

    // S13: connecting again works.
    let callback = sign_in_at_microsoft(&alice, &emu, "alice@example.com", "alice-password", "accept").await;
    assert_eq!(outcome(&back_to_kehai(&alice, &callback).await.1), "connected");
    assert_eq!(subscriptions(&emu).await.len(), 1);
}

#[tokio::test]
async fn guests_get_no_card() {
    let (app, _emu) = start().await;
    let guest = app.guest("Visitor").await;
    let r = guest.get("/api/spaces/alpha/integrations/msteams").await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(r.json::<Value>().await.unwrap()["error"]["code"], "members_only");
}

/// Adds Alice to a second space, `gamma`.
async fn alice_in_gamma(app: &TestApp) {
    let store = &*app.state.store;
    kehai_server::admin::create_space(store, "gamma", "Gamma office", false).await.unwrap();
    kehai_server::admin::add_member(store, "gamma", "alice@example.com", Some("Alice"), None, kehai_core::Role::Member)
        .await
        .unwrap();
}

#[tokio::test]
async fn one_sign_in_serves_several_spaces_with_one_subscription() {
    let (app, emu) = start().await;
    alice_in_gamma(&app).await;
    set_status(&emu, "alice@example.com", "BeRightBack").await;
    let mut alice = connected(&app, &emu, "alice@example.com", "alice-password").await;
    alice.load_space("gamma").await;
    let gamma_card = alice.get("/api/spaces/gamma/integrations/msteams").await.json::<Value>().await.unwrap();
    assert_eq!(gamma_card["state"], "available", "connected elsewhere: enable here");
    let r = toggle(&alice, "gamma", true).await;
    assert_eq!(r.json::<Value>().await.unwrap()["state"], "connected");
    assert_eq!(find(&alice.avatars("gamma").await, "Alice").unwrap()["emoji"], "⏳");
    assert_eq!(subscriptions(&emu).await.len(), 1, "one subscription whatever the number of spaces");
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
    // S8: the account picker is offered every time; Alice picks her colleague Bob's account.
    let callback = sign_in_at_microsoft(&alice, &emu, "bob@example.com", "bob-password", "accept").await;
    assert_eq!(outcome(&back_to_kehai(&alice, &callback).await.1), "connected");
    let ms_bob = emu.emulator.world.lock().directory.user_by_email("bob@example.com").unwrap().id.to_string();
    let subs = subscriptions(&emu).await;
    assert_eq!(subs.len(), 1, "the previous account's subscription is gone");
    assert_eq!(subs[0]["resource"], format!("communications/presences/{ms_bob}"));
}

#[tokio::test]
async fn disconnecting_works_even_when_microsoft_is_down() {
    let (app, emu) = start().await;
    let alice = connected(&app, &emu, "alice@example.com", "alice-password").await;
    reqwest::Client::new()
        .post(emu.url("/_emu/api/faults"))
        .json(&json!({"target": "graph", "kind": "unavailable", "count": 5}))
        .send()
        .await
        .unwrap();
    let r = disconnect(&alice, "alpha").await;
    assert_eq!(r.json::<Value>().await.unwrap()["state"], "not_connected", "local data erased anyway");
    assert_eq!(subscriptions(&emu).await.len(), 1, "the orphan lapses by itself");
}

#[tokio::test]
async fn a_revoked_sign_in_shows_needs_reconnect() {
    let (app, emu) = start().await;
    set_status(&emu, "alice@example.com", "Busy").await;
    let alice = connected(&app, &emu, "alice@example.com", "alice-password").await;
    assert_eq!(find(&alice.avatars("alpha").await, "Alice").unwrap()["emoji"], "🔴");
    reqwest::Client::new().post(emu.url("/_emu/api/users/alice@example.com/revoke")).send().await.unwrap();
    // The access token is due for a refresh (as if an hour had passed); the refresh is refused.
    app.clock.advance(3600 * 1000);
    let r = toggle(&alice, "alpha", true).await;
    assert_eq!(r.json::<Value>().await.unwrap()["state"], "needs_reconnect");
    let c = card(&alice).await;
    assert!(c["last_error"].as_str().unwrap().contains("Connect again"));
    // A presence kehai can no longer follow is taken off the avatar.
    assert_eq!(find(&alice.avatars("alpha").await, "Alice").unwrap()["presence"], Value::Null);
}

#[tokio::test]
async fn concurrent_refreshes_of_one_connection_make_one_token_request() {
    let (app, emu, _alice, teams) = alice_connected_while("Available").await;
    let token_requests = || token_requests(&emu);
    let before = token_requests();
    app.clock.advance(3600 * 1000);
    let (mut a, mut b) = (alice_connection(&app).await, alice_connection(&app).await);
    let (ta, tb) = tokio::join!(
        kehai_server::presence::tokens::access_token(&app.state, &*teams, &mut a),
        kehai_server::presence::tokens::access_token(&app.state, &*teams, &mut b),
    );
    let (ta, tb) = (ta.unwrap(), tb.unwrap());
    let same = secrecy::ExposeSecret::expose_secret(&ta) == secrecy::ExposeSecret::expose_secret(&tb);
    assert!(same, "both callers get the one new token (not printed: it is a secret)");
    assert_eq!(token_requests() - before, 1, "one refresh, the other waited for it");
    assert_eq!(alice_connection(&app).await.state, ConnectionState::Connected);
}

/// Requests msemu's token endpoint answered.
pub(crate) fn token_requests(emu: &msemu::Running) -> u64 {
    let counts = emu.emulator.world.lock().requests.clone();
    counts.iter().filter(|(k, _)| k.ends_with("/oauth2/v2.0/token")).map(|(_, n)| *n).sum()
}

#[tokio::test]
async fn a_token_graph_refuses_is_refreshed_once_and_the_call_made_again() {
    let (app, emu, _alice, teams) = alice_connected_while("Busy").await;
    let before = token_requests(&emu);
    let read = || async {
        let mut connection = alice_connection(&app).await;
        kehai_server::presence::ingest::read(&app.state, &*teams, &mut connection).await
    };
    fault(&emu, json!({"target": "graph", "kind": "unauthorized"})).await;
    assert_eq!(read().await.unwrap().shown.unwrap().availability, "Busy");
    assert_eq!(token_requests(&emu) - before, 1, "one refresh");
    // Refused again after the refresh: an error, not a loop.
    fault(&emu, json!({"target": "graph", "kind": "unauthorized", "count": 2})).await;
    let refused = read().await.unwrap_err();
    assert!(
        matches!(refused, kehai_server::presence::Error::Provider(kehai_server::presence::ProviderError::Unauthorized)),
        "{refused}"
    );
    assert_eq!(token_requests(&emu) - before, 2);
    assert_eq!(alice_connection(&app).await.state, ConnectionState::Connected);
}

#[tokio::test]
async fn no_token_is_stored_in_plain_text() {
    let (app, emu) = start().await;
    connected(&app, &emu, "alice@example.com", "alice-password").await;
    let refresh_tokens: Vec<String> = emu.emulator.world.lock().refresh_tokens.keys().cloned().collect();
    let c = alice_connection(&app).await;
    let access = app.state.secrets.open(&c.access_token.0, &format!("connection:{}:access_token", c.id.0)).unwrap();
    let client_state = app
        .state
        .secrets
        .open(&c.subscription.unwrap().client_state.0, &format!("connection:{}:client_state", c.id.0))
        .unwrap();
    let mut secrets = refresh_tokens;
    secrets.push(secrecy::ExposeSecret::expose_secret(&access).to_owned());
    secrets.push(secrecy::ExposeSecret::expose_secret(&client_state).to_owned());
    // Every file of the database (main file and WAL).
    let mut bytes = Vec::new();
    for entry in std::fs::read_dir(&app.state.config.data_dir).unwrap() {
        let path = entry.unwrap().path();
        if path.file_name().unwrap().to_string_lossy().starts_with("kehai.db") {
            bytes.extend(std::fs::read(path).unwrap());
        }
    }
    assert!(bytes.len() > 1000, "the database was read");
    for secret in &secrets {
        assert!(secret.len() > 20);
        let found = bytes.windows(secret.len()).any(|w| w == secret.as_bytes());
        assert!(!found, "a token or client state is in the database in plain text");
    }
}

#[tokio::test]
async fn rotating_the_master_key_reseals_every_token() {
    let (app, emu) = start().await;
    connected(&app, &emu, "alice@example.com", "alice-password").await;
    let before = alice_connection(&app).await;
    let label = kehai_store::secrets::row_label("connection", &before.id.0.to_string(), "refresh_token");
    let plain = app.state.secrets.open(&before.refresh_token.clone().unwrap().0, &label).unwrap();

    let rotated = kehai_server::keys::rotate(&app.state.config, &*app.state.store, None).await.unwrap();
    assert!(rotated.values >= 4, "tokens, client state and the certificate's key: {}", rotated.values);
    let after = alice_connection(&app).await;
    let sealed = after.refresh_token.unwrap().0;
    assert!(app.state.secrets.open(&sealed, &label).is_err(), "the old key no longer opens it");
    let new_key = kehai_server::keys::load(&app.state.config).unwrap();
    let opened = kehai_store::secrets::SecretBox::new(&new_key).open(&sealed, &label).unwrap();
    assert_eq!(secrecy::ExposeSecret::expose_secret(&opened), secrecy::ExposeSecret::expose_secret(&plain));
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

#[tokio::test]
async fn a_master_key_that_does_not_open_the_database_stops_the_start() {
    let (app, emu) = start().await;
    connected(&app, &emu, "alice@example.com", "alice-password").await;
    let mut config = (*app.state.config).clone();
    config.secret_key = Some(kehai_store::secrets::MasterKey::generate().unwrap().to_base64());
    let err = kehai_server::App::build(config).await.err().expect("refused").to_string();
    assert!(err.contains("does not open the secrets"), "{err}");
    // The right key starts.
    assert!(kehai_server::App::build((*app.state.config).clone()).await.is_ok());
}

#[tokio::test]
async fn disconnect_and_off_apply_only_where_the_connection_is_used() {
    let (app, emu) = start().await;
    alice_in_gamma(&app).await;
    let mut alice = connected(&app, &emu, "alice@example.com", "alice-password").await;
    alice.load_space("gamma").await;
    let c = alice.get("/api/spaces/gamma/integrations/msteams").await.json::<Value>().await.unwrap();
    assert_eq!((c["state"].as_str(), c["used_here"].as_bool()), (Some("available"), Some(false)));
    let r = disconnect(&alice, "gamma").await;
    assert_eq!(r.status(), StatusCode::CONFLICT);
    assert_eq!(r.json::<Value>().await.unwrap()["error"]["code"], "not_used_here");
    let r = toggle(&alice, "gamma", false).await;
    assert_eq!(r.status(), StatusCode::CONFLICT);
    // Enabled in gamma, then disconnected from gamma: alpha keeps it, and the subscription stays.
    toggle(&alice, "gamma", true).await;
    let r = disconnect(&alice, "gamma").await;
    assert_eq!(r.json::<Value>().await.unwrap()["state"], "available");
    assert_eq!(subscriptions(&emu).await.len(), 1, "alpha still uses it");
}

/// Polls Alice's avatar in alpha until it shows `emoji` (Graph pushes; kehai applies in the
/// background).
pub(crate) async fn avatar_becomes(c: &Client, emoji: &str) -> Value {
    for _ in 0..100 {
        let a = find(&c.avatars("alpha").await, "Alice").unwrap().clone();
        if a["emoji"] == emoji {
            return a;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("Alice's avatar never showed {emoji}");
}

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

/// A basic (resource-data-free) notification for Alice's subscription, as Graph would send it.
async fn basic_notification(
    app: &TestApp,
    client_state: Option<&str>,
) -> kehai_microsoft::notifications::NotificationBatch {
    serde_json::from_value(basic_notification_json(app, client_state).await).unwrap()
}

/// The same, as the JSON body Graph posts.
pub(crate) async fn basic_notification_json(app: &TestApp, client_state: Option<&str>) -> Value {
    let connection = alice_connection(app).await;
    let subscription = connection.subscription.clone().unwrap();
    let genuine = opened(app, &connection, &subscription.client_state, "client_state");
    let client_state =
        client_state.map_or_else(|| secrecy::ExposeSecret::expose_secret(&genuine).to_owned(), str::to_owned);
    json!({"value": [{
        "subscriptionId": subscription.id,
        "clientState": client_state,
        "changeType": "updated",
        "resource": format!("communications/presences/{}", connection.external_user),
        "resourceData": {"id": connection.external_user},
        "tenantId": connection.external_tenant,
    }]})
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

/// Changes a presence at msemu without any notification (as if it were missed).
fn quietly_set(emu: &msemu::Running, email: &str, availability: &str) {
    let mut world = emu.emulator.world.lock();
    let id = world.directory.user_by_email(email).unwrap().id;
    let sequence = world.next_sequence();
    let p = world.presences.get_mut(&id).unwrap();
    p.availability = availability.into();
    p.activity = availability.into();
    p.sequence = sequence;
}

pub(crate) async fn alice_connection(app: &TestApp) -> kehai_store::Connection {
    let account = alice_account(app).await;
    app.state.store.connection_of(account, "msteams").await.unwrap().unwrap()
}

#[tokio::test]
async fn reauthorization_required_renews_the_subscription() {
    // msemu asks for reauthorization as soon as a subscription exists (its lead exceeds the
    // subscription's life), as Graph does when the access token behind it is about to lapse.
    let (app, emu) = start_custom(NotificationMode::Rich, |c| {
        c.reauthorization_lead = std::time::Duration::from_secs(3 * 3600);
        c.tick = std::time::Duration::from_millis(200);
    })
    .await;
    set_status(&emu, "alice@example.com", "Available").await;
    let alice = connected(&app, &emu, "alice@example.com", "alice-password").await;
    let before = alice_connection(&app).await.subscription.unwrap();
    let mut renewed = None;
    for _ in 0..100 {
        let s = subscriptions(&emu).await[0].clone();
        if s["renewals"].as_u64().unwrap() >= 1 {
            renewed = Some(s);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let renewed = renewed.expect("kehai renewed the subscription after reauthorizationRequired");
    assert_eq!(renewed["id"], before.id, "the same subscription, renewed");
    assert!(renewed["lifecycleDelivered"].as_u64().unwrap() >= 1);
    assert_eq!(renewed["reauthorizations"], 0, "a PATCH reauthorizes: no separate reauthorize call");
    assert_eq!(subscriptions(&emu).await.len(), 1);
    // Notifications still arrive.
    set_status(&emu, "alice@example.com", "Busy").await;
    avatar_becomes(&alice, "🔴").await;
}

#[tokio::test]
async fn the_sweep_renews_due_subscriptions_and_recreates_lost_ones() {
    use kehai_server::presence::renewal::recreate;
    let (app, emu, alice, teams) = alice_connected_while("Available").await;
    let now = app.state.clock.now();

    // Fresh (59 minutes left): nothing to do.
    assert_eq!(sweep(&app.state, &teams).await, 0);
    assert_eq!(subscriptions(&emu).await[0]["renewals"], 0);

    // Made for Alice's connection's life: 59 minutes less her spread (up to a twelfth).
    let mut connection = alice_connection(&app).await;
    let mut record = connection.subscription.clone().unwrap();
    let life = kehai_server::presence::renewal::life_of(3_540_000, connection.id);
    assert!(life <= 3_540_000 && life > 3_540_000 - 295_000, "{life}");
    assert!((record.expires_at - (connection.connected_at + life)).abs() < 5_000, "{}", record.expires_at - now);

    // Eleven minutes left: not yet (the lead is ten minutes).
    record.expires_at = now + 11 * 60_000;
    app.state.store.set_connection_subscription(connection.id, Some(&record.id), &record, now, None).await.unwrap();
    assert_eq!(sweep(&app.state, &teams).await, 0);

    // Five minutes left: renewed for the same life.
    record.expires_at = now + 5 * 60_000;
    app.state.store.set_connection_subscription(connection.id, Some(&record.id), &record, now, None).await.unwrap();
    assert_eq!(sweep(&app.state, &teams).await, 1);
    assert_eq!(subscriptions(&emu).await[0]["renewals"], 1);
    let expires_at = alice_connection(&app).await.subscription.unwrap().expires_at;
    assert!((expires_at - (now + life)).abs() < 5_000, "{} for a life of {life}", expires_at - now);

    // Graph lost it (404 on renewal) while Alice became Busy: a new subscription, the
    // presence read again, and notifications flow through the new one.
    emu.emulator.world.lock().subscriptions.clear();
    quietly_set(&emu, "alice@example.com", "Busy");
    record.expires_at = now + 60_000;
    app.state.store.set_connection_subscription(connection.id, Some(&record.id), &record, now, None).await.unwrap();
    assert_eq!(sweep(&app.state, &teams).await, 1);
    assert_eq!(find(&alice.avatars("alpha").await, "Alice").unwrap()["emoji"], "🔴");
    let subs = subscriptions(&emu).await;
    assert_eq!(subs.len(), 1);
    let stored = alice_connection(&app).await.subscription.unwrap();
    assert_eq!(subs[0]["id"], stored.id);
    assert_ne!(stored.id, record.id);
    set_status(&emu, "alice@example.com", "AppearAway").await;
    avatar_becomes(&alice, "💤").await;

    // `subscriptionRemoved` arrives: the same.
    emu.emulator.world.lock().subscriptions.clear();
    quietly_set(&emu, "alice@example.com", "DoNotDisturb");
    let mut removed = basic_notification(&app, None).await;
    removed.value[0].lifecycle_event = Some("subscriptionRemoved".into());
    let outcomes = process(&app.state, &teams, removed).await;
    assert_eq!(outcomes, vec![Ok(())]);
    assert_eq!(find(&alice.avatars("alpha").await, "Alice").unwrap()["emoji"], "⛔");
    assert_eq!(subscriptions(&emu).await.len(), 1);

    // A connection removed meanwhile leaves no subscription behind.
    connection = alice_connection(&app).await;
    let token = opened(&app, &connection, &connection.access_token, "access_token");
    app.state.store.delete_connection(connection.id).await.unwrap();
    emu.emulator.world.lock().subscriptions.clear();
    assert!(recreate(&app.state, &*teams, &connection, &token).await.is_err());
    assert!(subscriptions(&emu).await.is_empty());
}

#[tokio::test]
async fn a_connection_claimed_by_another_instance_is_left_to_it_until_the_claim_lapses() {
    use kehai_server::presence::renewal::{Upkeep, claim_ms, renew};
    use kehai_store::Claim;
    // Ten-minute subscriptions: renewed 100 to 150 s ahead, claims last 50 s (msemu, on the real
    // clock, refuses expiries over an hour ahead of it).
    let (app, emu) = start_both(NotificationMode::Rich, |_| {}, |c| c.ms_subscription_seconds = 600).await;
    connected(&app, &emu, "alice@example.com", "alice-password").await;
    let teams = Teams::offered(&app.state).unwrap();
    let now = app.state.clock.now();
    let connection = alice_connection(&app).await;
    let mut record = connection.subscription.clone().unwrap();
    record.expires_at = now + 90_000;
    app.state.store.set_connection_subscription(connection.id, Some(&record.id), &record, now, None).await.unwrap();
    let hold = claim_ms(teams.subscription_ms);
    let other = Claim { holder: "another-instance", now, until: now + hold };
    assert!(app.state.store.claim_connection(connection.id, other).await.unwrap());

    assert_eq!(sweep(&app.state, &teams).await, 0, "due, but another instance is renewing it");
    assert!(matches!(renew(&app.state, &*teams, connection.clone()).await, Ok(Upkeep::Elsewhere)));
    assert_eq!(subscriptions(&emu).await[0]["renewals"], 0);

    // That instance died: once its claim lapses, this one renews.
    app.clock.advance(hold - 1);
    assert_eq!(sweep(&app.state, &teams).await, 0);
    app.clock.advance(1);
    assert_eq!(sweep(&app.state, &teams).await, 1);
    assert_eq!(subscriptions(&emu).await[0]["renewals"], 1);
    // And let go of it afterwards: another instance may renew it next time.
    let later = app.state.clock.now();
    assert!(
        app.state
            .store
            .claim_connection(connection.id, Claim { holder: "another-instance", now: later, until: later + hold })
            .await
            .unwrap()
    );
}

#[tokio::test]
async fn a_renewal_uses_a_token_that_lasts_as_long_as_the_renewed_subscription() {
    use kehai_server::presence::renewal::{Upkeep, renew};
    let (app, emu, _alice, teams) = alice_connected_while("Available").await;
    let now = app.state.clock.now();
    // A token still fine for ordinary calls, but lapsing half an hour before the renewed
    // subscription would: Graph would ask for reauthorization then (one more request).
    let connection = alice_connection(&app).await;
    let aged = kehai_store::TokenUpdate {
        access_token: connection.access_token.clone(),
        access_expires_at: now + 30 * 60_000,
        access_refresh_at: now + 25 * 60_000,
        refresh_token: None,
        refresh_expires_at: None,
        updated_at: now,
    };
    assert!(app.state.store.update_connection_tokens(connection.id, &aged, None).await.unwrap());
    let refreshes = |emu: &msemu::Running| emu.emulator.world.lock().access_tokens.len();
    let before = refreshes(&emu);
    assert!(matches!(renew(&app.state, &*teams, alice_connection(&app).await).await, Ok(Upkeep::Renewed)));
    assert_eq!(refreshes(&emu), before + 1, "a new access token first");
    let world = emu.emulator.world.lock();
    let sub = world.subscriptions.values().next().unwrap();
    assert!(sub.authorized_until >= sub.expiration, "authorized for its whole life");
}

#[tokio::test]
async fn when_another_instance_dies_this_one_reads_every_presence_again() {
    // Short subscriptions: the heartbeat ticks every few hundred milliseconds.
    let (app, emu) = start_both(NotificationMode::Rich, |_| {}, |c| c.ms_subscription_seconds = 6).await;
    set_status(&emu, "alice@example.com", "Available").await;
    let alice = connected(&app, &emu, "alice@example.com", "alice-password").await;
    // A change whose notification died in the other instance's queue.
    quietly_set(&emu, "alice@example.com", "Busy");
    let now = app.state.clock.now();
    let dead = kehai_store::Claim { holder: "dead-instance", now, until: now + 1 };
    assert!(app.state.store.claim("instance/dead-instance", dead).await.unwrap());
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    assert_ne!(find(&alice.avatars("alpha").await, "Alice").unwrap()["emoji"], "🔴", "alive: nothing is read");
    app.clock.advance(1);
    avatar_becomes(&alice, "🔴").await;
    assert!(app.state.store.take_lapsed("instance/dead", app.state.clock.now()).await.unwrap().is_empty(), "taken");
}

/// Hands a notification collection to the engine as the webhook's workers do.
pub(crate) async fn process(
    state: &kehai_server::AppState,
    teams: &std::sync::Arc<Teams>,
    batch: kehai_microsoft::notifications::NotificationBatch,
) -> Vec<Result<(), Dropped>> {
    kehai_server::presence::ingest::process(state, &**teams, &kehai_server::providers::msteams::inbound(batch)).await
}

/// One renewal sweep of Microsoft Teams' subscriptions.
pub(crate) async fn sweep(state: &kehai_server::AppState, teams: &std::sync::Arc<Teams>) -> usize {
    kehai_server::presence::renewal::sweep(state, &**teams).await
}

/// kehai and msemu with Alice connected while her presence is `status`, and the integration.
async fn alice_connected_while(status: &str) -> (TestApp, msemu::Running, Client, std::sync::Arc<Teams>) {
    let (app, emu) = start().await;
    set_status(&emu, "alice@example.com", status).await;
    let alice = connected(&app, &emu, "alice@example.com", "alice-password").await;
    let teams = Teams::offered(&app.state).unwrap();
    (app, emu, alice, teams)
}

/// kehai and msemu with Alice and Bob connected while Available, Alice's client and the
/// integration.
async fn alice_and_bob_connected() -> (TestApp, msemu::Running, Client, std::sync::Arc<Teams>) {
    let (app, emu, alice, teams) = alice_connected_while("Available").await;
    set_status(&emu, "bob@example.com", "Available").await;
    connected(&app, &emu, "bob@example.com", "bob-password").await;
    (app, emu, alice, teams)
}

/// A sealed value of a connection's row, opened.
fn opened(
    app: &TestApp,
    connection: &kehai_store::Connection,
    sealed: &kehai_store::Sealed,
    column: &str,
) -> secrecy::SecretString {
    let label = kehai_store::secrets::row_label("connection", &connection.id.0.to_string(), column);
    app.state.secrets.open(&sealed.0, &label).unwrap()
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

fn bob_ms_id(emu: &msemu::Running) -> String {
    emu.emulator.world.lock().directory.user_by_email("bob@example.com").unwrap().id.to_string()
}

pub(crate) async fn fault(emu: &msemu::Running, fault: Value) {
    let r = reqwest::Client::new().post(emu.url("/_emu/api/faults")).json(&fault).send().await.unwrap();
    assert!(r.status().is_success(), "{}", r.status());
}

/// `/metrics` has every one of `lines`.
async fn has_metrics(c: &Client, lines: &[&str]) {
    let metrics = c.get("/metrics").await.text().await.unwrap();
    for line in lines {
        assert!(metrics.lines().any(|l| l == *line), "no {line} in\n{metrics}");
    }
}

/// Polls `/metrics` until it has `line`.
pub(crate) async fn metric_becomes(c: &Client, line: &str) {
    for _ in 0..100 {
        if c.get("/metrics").await.text().await.unwrap().lines().any(|l| l == line) {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("never: {line}");
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

/// The Status card's ON/OFF toggle in `space`, as the page sends it.
async fn toggle(c: &Client, space: &str, on: bool) -> reqwest::Response {
    let url = c.url(&format!("/api/spaces/{space}/integrations/msteams"));
    c.http
        .put(url)
        .header("x-csrf-token", c.csrf.clone().unwrap())
        .json(&json!({ "enabled": on }))
        .send()
        .await
        .unwrap()
}

/// The Status card's Disconnect in `space`.
pub(crate) async fn disconnect(c: &Client, space: &str) -> reqwest::Response {
    let url = c.url(&format!("/api/spaces/{space}/integrations/msteams"));
    c.http.delete(url).header("x-csrf-token", c.csrf.clone().unwrap()).send().await.unwrap()
}

/// Alice's account id.
async fn alice_account(app: &TestApp) -> kehai_core::PersonId {
    app.stored_avatars("alpha").await.into_iter().find(|a| a.display_name.as_str() == "Alice").unwrap().person_id
}

/// Cycles Alice's presence for `run`, a change every `every`, each of which must reach her
/// avatar: a lapsed subscription or a lost authorization would leave one behind.
async fn presence_keeps_flowing(emu: &msemu::Running, alice: &Client, run: Duration, every: Duration) -> usize {
    let rows = [("Busy", "🔴"), ("DoNotDisturb", "⛔"), ("BeRightBack", "⏳"), ("InAMeeting", "📅")];
    let started = std::time::Instant::now();
    let mut changes = 0;
    while started.elapsed() < run {
        let (status, emoji) = rows[changes % rows.len()];
        set_status(emu, "alice@example.com", status).await;
        avatar_becomes(alice, emoji).await;
        changes += 1;
        tokio::time::sleep(every).await;
    }
    changes
}

#[tokio::test]
async fn twenty_second_subscriptions_stay_alive_for_two_minutes_with_no_gap() {
    let (app, emu) = start_both(
        NotificationMode::Rich,
        |e| {
            e.min_subscription_lifetime = Duration::ZERO;
            e.reauthorization_lead = Duration::from_secs(3);
        },
        |k| k.ms_subscription_seconds = 20,
    )
    .await;
    app.clock_follows_real_time();
    set_status(&emu, "alice@example.com", "Available").await;
    let alice = connected(&app, &emu, "alice@example.com", "alice-password").await;
    let first = subscriptions(&emu).await;
    assert_eq!(first.len(), 1);
    let changes = presence_keeps_flowing(&emu, &alice, Duration::from_secs(120), Duration::from_secs(3)).await;
    assert!(changes >= 20, "{changes} changes");
    // The one subscription, renewed all along (never lapsed and made anew).
    let now = subscriptions(&emu).await;
    assert_eq!((now.len(), &now[0]["id"]), (1, &first[0]["id"]));
    let renewals = now[0]["renewals"].as_u64().unwrap();
    assert!((6..=60).contains(&renewals), "{renewals} renewals in two minutes of 20-second subscriptions");
}

#[tokio::test]
async fn ten_second_access_tokens_are_refreshed_ahead_and_not_on_every_use() {
    let (app, emu) = start_custom(NotificationMode::Basic, |e| {
        e.access_token_lifetime = Duration::from_secs(10);
        e.reauthorization_lead = Duration::from_secs(2);
    })
    .await;
    app.clock_follows_real_time();
    set_status(&emu, "alice@example.com", "Available").await;
    let alice = connected(&app, &emu, "alice@example.com", "alice-password").await;
    let before = token_requests(&emu);
    // Basic notifications: every change is read from Graph with Alice's token.
    let changes = presence_keeps_flowing(&emu, &alice, Duration::from_secs(30), Duration::from_millis(500)).await;
    assert!(changes >= 20, "{changes} changes");
    let refreshes = token_requests(&emu) - before;
    assert!((2..=8).contains(&refreshes), "{refreshes} refreshes for {changes} reads in 30 s of 10-second tokens");
    assert_eq!(alice_connection(&app).await.state, ConnectionState::Connected);
}

/// A rich notification of Alice's presence as Graph sends it: encrypted for kehai's certificate,
/// with a validation token msemu signed with `claims` changed as `flaw` says.
async fn rich_notification(
    app: &TestApp,
    emu: &msemu::Running,
    availability: &str,
    sequence: &str,
    flaw: impl FnOnce(&mut Value),
) -> kehai_microsoft::notifications::NotificationBatch {
    let current = app.state.store.current_certificate().await.unwrap().unwrap();
    rich_notification_for(app, emu, &current.id, availability, sequence, flaw).await
}

/// The same, encrypted for the certificate `certificate_id`.
async fn rich_notification_for(
    app: &TestApp,
    emu: &msemu::Running,
    certificate_id: &str,
    availability: &str,
    sequence: &str,
    flaw: impl FnOnce(&mut Value),
) -> kehai_microsoft::notifications::NotificationBatch {
    use base64::Engine;
    let connection = alice_connection(app).await;
    let subscription = connection.subscription.clone().unwrap();
    let client_state = opened(app, &connection, &subscription.client_state, "client_state");
    let cert = app.state.store.certificate(certificate_id).await.unwrap().unwrap();
    let der = base64::engine::general_purpose::STANDARD.decode(&cert.certificate).unwrap();
    let presence = json!({
        "id": connection.external_user, "availability": availability, "activity": availability,
        "sequenceNumber": sequence,
    });
    let encrypted = msemu::crypto::encrypt(&der, &cert.id, presence.to_string().as_bytes()).unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    let tenant = &connection.external_tenant;
    let mut claims = json!({
        "aud": app.state.config.ms_client_id, "iss": emu.url(&format!("/{tenant}/v2.0")),
        "iat": now, "nbf": now, "exp": now + 3600,
        "azp": kehai_microsoft::notifications::PUBLISHER, "tid": tenant, "ver": "2.0",
    });
    flaw(&mut claims);
    let token = emu.emulator.world.keys().sign(&claims).unwrap();
    serde_json::from_value(json!({
        "value": [{
            "subscriptionId": subscription.id,
            "clientState": secrecy::ExposeSecret::expose_secret(&client_state),
            "changeType": "updated",
            "resource": format!("communications/presences('{}')", connection.external_user),
            "resourceData": {"@odata.type": "#Microsoft.Graph.presence", "id": connection.external_user},
            "encryptedContent": encrypted,
            "tenantId": tenant,
        }],
        "validationTokens": [token],
    }))
    .unwrap()
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
    let flaws: [(&str, Flaw); 3] = [
        ("wrong aud", Box::new(|c| c["aud"] = json!("00000000-0000-0000-0000-000000000001"))),
        ("expired", Box::new(|c| c["exp"] = json!(c["iat"].as_i64().unwrap() - 600))),
        ("not Graph's", Box::new(|c| c["azp"] = json!("00000000-0000-0000-0000-000000000002"))),
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
            "kehai_validation_token_failures_total{provider=\"msteams\"} 4",
            "kehai_notifications_dropped_total{provider=\"msteams\",reason=\"decryption\"} 1",
            "kehai_notifications_dropped_total{provider=\"msteams\",reason=\"validation_token\"} 4",
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

/// `GET /users/{id}/presence` requests msemu has answered (or is answering).
pub(crate) async fn presence_reads(emu: &msemu::Running) -> u64 {
    let v: Value = reqwest::get(emu.url("/_emu/api/requests")).await.unwrap().json().await.unwrap();
    v["requests"]["GET /v1.0/users/{id}/presence"].as_u64().unwrap_or(0)
}

/// Polls `name`'s avatar in alpha until it shows `emoji`, for at most `within`.
pub(crate) async fn shows_within(c: &Client, name: &str, emoji: &str, within: Duration) -> bool {
    let started = std::time::Instant::now();
    while started.elapsed() < within {
        if find(&c.avatars("alpha").await, name).unwrap()["emoji"] == emoji {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    false
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

#[tokio::test]
async fn needs_reconnect_is_told_once_on_the_space_page_and_stays_in_the_status_section() {
    let (app, emu, alice, teams) = alice_connected_while("Busy").await;
    let page = || async { alice.get("/s/alpha").await.text().await.unwrap() };
    assert!(!page().await.contains("teams-notice"), "nothing to tell while connected");
    reqwest::Client::new().post(emu.url("/_emu/api/users/alice@example.com/revoke")).send().await.unwrap();
    app.clock.advance(3600 * 1000);
    // Refused twice (a notification, then the sweep): still one notice.
    for _ in 0..2 {
        let mut connection = alice_connection(&app).await;
        assert!(kehai_server::presence::tokens::access_token(&app.state, &*teams, &mut connection).await.is_err());
    }
    let first = page().await;
    assert!(first.contains("id=\"teams-notice\""), "{first}");
    assert!(first.contains("Connect again in the Status section"));
    assert!(!page().await.contains("teams-notice"), "told once");
    assert_eq!(card(&alice).await["state"], "needs_reconnect", "the Status section keeps saying it");
    // In Japanese too (a fresh notice after connecting again and being refused again).
    let again = connected(&app, &emu, "alice@example.com", "alice-password").await;
    assert!(!page().await.contains("teams-notice"));
    reqwest::Client::new().post(emu.url("/_emu/api/users/alice@example.com/revoke")).send().await.unwrap();
    app.clock.advance(3600 * 1000);
    let mut connection = alice_connection(&app).await;
    assert!(kehai_server::presence::tokens::access_token(&app.state, &*teams, &mut connection).await.is_err());
    let ja = again.http.get(again.url("/s/alpha")).header("accept-language", "ja").send().await.unwrap();
    let ja = ja.text().await.unwrap();
    assert!(ja.contains("もう一度接続してください"), "{ja}");
}

#[tokio::test]
async fn rotating_the_certificate_moves_subscriptions_and_keeps_the_old_key_until_unused() {
    use kehai_server::providers::msteams::certificates::{remove_unused, rotate};
    let (app, emu, alice, teams) = alice_and_bob_connected().await;
    let old = app.state.store.current_certificate().await.unwrap().unwrap().id;
    let at_msemu = |email: &str| {
        let world = emu.emulator.world.lock();
        let id = world.directory.user_by_email(email).unwrap().id.to_string();
        world.subscriptions.values().find(|s| s.resource.ends_with(&id)).unwrap().encryption_certificate_id.clone()
    };
    assert_eq!(at_msemu("alice@example.com").as_deref(), Some(old.as_str()));

    // Bob's sign-in is refused when his move needs a fresh token: his subscription cannot move.
    reqwest::Client::new().post(emu.url("/_emu/api/users/bob@example.com/revoke")).send().await.unwrap();
    let bob = app.stored_avatars("alpha").await.into_iter().find(|a| a.display_name.as_str() == "Bob").unwrap();
    let bob = app.state.store.connection_of(bob.person_id, "msteams").await.unwrap().unwrap();
    let now = app.state.clock.now();
    let lapsed = kehai_store::TokenUpdate {
        access_token: bob.access_token.clone(),
        access_expires_at: now - 1,
        access_refresh_at: now - 1,
        refresh_token: None,
        refresh_expires_at: None,
        updated_at: now,
    };
    app.state.store.update_connection_tokens(bob.id, &lapsed, None).await.unwrap();
    let rotation = rotate(&app.state, &teams).await.unwrap();
    assert_eq!((rotation.moved, rotation.failed, rotation.kept), (1, 1, 1), "{rotation:?}");
    let new = app.state.store.current_certificate().await.unwrap().unwrap().id;
    assert_eq!(new, rotation.certificate_id);
    assert_eq!(at_msemu("alice@example.com").as_deref(), Some(new.as_str()), "Graph encrypts Alice's for the new one");
    let stored = alice_connection(&app).await.subscription.unwrap();
    assert_eq!(stored.certificate_id.as_deref(), Some(new.as_str()));
    // Graph's next notification for Alice is encrypted for the new certificate…
    set_status(&emu, "alice@example.com", "Busy").await;
    avatar_becomes(&alice, "🔴").await;
    // …and one it still retries, encrypted for the old one, opens too.
    let late = rich_notification_for(&app, &emu, &old, "Away", "Zzzzzzzzzz", |_| {}).await;
    assert_eq!(process(&app.state, &teams, late).await, vec![Ok(())]);
    avatar_becomes(&alice, "💤").await;

    // The old key stays while Bob's subscription names it (the store's contract: however long).
    remove_unused(&app.state, &teams.keys).await;
    assert!(app.state.store.certificate(&old).await.unwrap().is_some());
    // Bob connects again (a new subscription, on the new certificate)…
    connected(&app, &emu, "bob@example.com", "bob-password").await;
    assert_eq!(at_msemu("bob@example.com").as_deref(), Some(new.as_str()));
    // …and four hours after it was last used — Graph's retries are over — the old key goes.
    remove_unused(&app.state, &teams.keys).await;
    app.clock.advance(4 * 3600 * 1000 - 1);
    remove_unused(&app.state, &teams.keys).await;
    assert!(app.state.store.certificate(&old).await.unwrap().is_some(), "not before four hours");
    app.clock.advance(1);
    remove_unused(&app.state, &teams.keys).await;
    assert_eq!(app.state.store.certificate(&old).await.unwrap(), None);

    // A certificate made while kehai was not serving (or moves that failed): the sweep moves them.
    let newer = kehai_server::providers::msteams::certificates::make_new_current(&app.state).await.unwrap();
    app.clock.set(kehai_server::clock::Clock::now(&kehai_server::clock::SystemClock));
    assert_eq!(sweep(&app.state, &teams).await, 2);
    assert_eq!(at_msemu("alice@example.com").as_deref(), Some(newer.as_str()));
    assert_eq!(at_msemu("bob@example.com").as_deref(), Some(newer.as_str()));
    assert_eq!(sweep(&app.state, &teams).await, 0, "nothing left to move");
    assert!(app.state.store.certificate(&new).await.unwrap().is_some());
}

#[tokio::test]
async fn in_the_browser_the_presence_label_is_the_tooltip_and_needs_reconnect_is_told_once() {
    let Some(browser) = crate::browser::Browser::start().await else { return };
    let (app, emu, _alice, teams) = alice_connected_while("Busy").await;
    browser.login(&app.url(""), "alice@example.com", crate::support::PASSWORD, "/s/alpha").await;
    // Alice's face: the Teams emoji, and the label as tooltip and accessible name.
    let face = ".avatar.is-me .avatar-face";
    let label = "Alice (you) — Microsoft Teams: 取り込み中 / Busy";
    let read = format!(
        "const f = document.querySelector('{face}'); return f && [f.title, f.getAttribute('aria-label'), f.querySelector('.badge').textContent];"
    );
    browser.eventually(&read, json!([label, label, "🔴"])).await;
    // A change at Microsoft arrives live, without a reload.
    set_status(&emu, "alice@example.com", "DoNotDisturb").await;
    let dnd = "Alice (you) — Microsoft Teams: 応答不可 / Do not disturb";
    browser.eventually(&read, json!([dnd, dnd, "⛔"])).await;
    assert!(!browser.has("#teams-notice").await);

    // Microsoft refuses the sign-in: the next page tells it once, and its button opens Status.
    reqwest::Client::new().post(emu.url("/_emu/api/users/alice@example.com/revoke")).send().await.unwrap();
    app.clock.advance(3600 * 1000);
    let mut connection = alice_connection(&app).await;
    assert!(kehai_server::presence::tokens::access_token(&app.state, &*teams, &mut connection).await.is_err());
    browser.client.refresh().await.unwrap();
    let notice = browser.find("#teams-notice").await;
    assert!(notice.text().await.unwrap().contains("Connect again in the Status section"));
    browser.find("#teams-notice-open").await.click().await.unwrap();
    browser.eventually("return document.getElementById('profile-dialog').open", json!(true)).await;
    browser.eventually("return document.getElementById('teams-card').dataset.state", json!("needs_reconnect")).await;
    // The own emoji shows again (the override was removed), and the notice does not come back.
    browser.eventually(&format!("return document.querySelector('{face} .badge') === null"), json!(true)).await;
    browser.client.refresh().await.unwrap();
    browser.find(face).await;
    assert!(!browser.has("#teams-notice").await, "told once");
    browser.client.clone().close().await.unwrap();
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
    let client_state = opened(&app, &connection, &subscription.client_state, "client_state");
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
    let received = app.state.metrics.notifications_received("msteams");
    let c = reqwest::Client::new();
    for (path, body) in &posts {
        assert_eq!(c.post(app.url(path)).json(body).send().await.unwrap().status(), StatusCode::ACCEPTED);
    }
    // Every one processed — the basic one and the lifecycle ones through msemu: the removed
    // subscription made anew (at msemu, never at the trap).
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let recreated = || emu.emulator.world.lock().subscriptions.keys().any(|id| id.to_string() != subscription.id);
    while app.state.metrics.notifications_received("msteams") < received + 4
        || app.state.notifications.depth() > 0
        || !recreated()
    {
        assert!(std::time::Instant::now() < deadline, "not processed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
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
