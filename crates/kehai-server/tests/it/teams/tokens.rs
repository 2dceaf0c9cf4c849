//! A connection's tokens: refreshed ahead of their expiry, one refresh at a time, replaced once
//! when Graph refuses them, sealed at rest; a refused sign-in marks the connection Needs
//! reconnect and the member is told once.

use std::time::Duration;

use kehai_server::config::NotificationMode;
use kehai_store::ConnectionState;
use serde_json::{Value, json};

use kehai_store::secrets::{ConnectionSecret, Place};

use crate::support::{find, microsoft::*};

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
    let access =
        app.state.secrets.open(&c.access_token.0, Place::Connection(c.id, ConnectionSecret::AccessToken)).unwrap();
    let client_state = app
        .state
        .secrets
        .open(&c.subscription.unwrap().client_state.0, Place::Connection(c.id, ConnectionSecret::ClientState))
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
    let place = Place::Connection(before.id, ConnectionSecret::RefreshToken);
    let plain = app.state.secrets.open(&before.refresh_token.clone().unwrap().0, place).unwrap();

    let rotated = kehai_server::keys::rotate(&app.state.config, &*app.state.store, None).await.unwrap();
    assert!(rotated.values >= 4, "tokens, client state and the certificate's key: {}", rotated.values);
    let after = alice_connection(&app).await;
    let sealed = after.refresh_token.unwrap().0;
    assert!(app.state.secrets.open(&sealed, place).is_err(), "the old key no longer opens it");
    let new_key = kehai_server::keys::load(&app.state.config).unwrap();
    let opened = kehai_store::secrets::SecretBox::new(&new_key).open(&sealed, place).unwrap();
    assert_eq!(secrecy::ExposeSecret::expose_secret(&opened), secrecy::ExposeSecret::expose_secret(&plain));
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

#[tokio::test]
async fn needs_reconnect_is_told_once_on_the_space_page_and_stays_in_the_status_section() {
    let (app, emu, alice, teams) = alice_connected_while("Busy").await;
    let page = || async { alice.get("/s/alpha").await.text().await.unwrap() };
    assert!(!page().await.contains("notice-msteams"), "nothing to tell while connected");
    reqwest::Client::new().post(emu.url("/_emu/api/users/alice@example.com/revoke")).send().await.unwrap();
    app.clock.advance(3600 * 1000);
    // Refused twice (a notification, then the sweep): still one notice.
    for _ in 0..2 {
        let mut connection = alice_connection(&app).await;
        assert!(kehai_server::presence::tokens::access_token(&app.state, &*teams, &mut connection).await.is_err());
    }
    let first = page().await;
    assert!(first.contains("id=\"notice-msteams\""), "{first}");
    assert!(first.contains("Connect again in the Status section"));
    assert!(!page().await.contains("notice-msteams"), "told once");
    assert_eq!(card(&alice).await["state"], "needs_reconnect", "the Status section keeps saying it");
    // In Japanese too (a fresh notice after connecting again and being refused again).
    let again = connected(&app, &emu, "alice@example.com", "alice-password").await;
    assert!(!page().await.contains("notice-msteams"));
    reqwest::Client::new().post(emu.url("/_emu/api/users/alice@example.com/revoke")).send().await.unwrap();
    app.clock.advance(3600 * 1000);
    let mut connection = alice_connection(&app).await;
    assert!(kehai_server::presence::tokens::access_token(&app.state, &*teams, &mut connection).await.is_err());
    let ja = again.http.get(again.url("/s/alpha")).header("accept-language", "ja").send().await.unwrap();
    let ja = ja.text().await.unwrap();
    assert!(ja.contains("もう一度接続してください"), "{ja}");
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
    assert!(!browser.has("#notice-msteams").await);

    // Microsoft refuses the sign-in: the next page tells it once, and its button opens Status.
    reqwest::Client::new().post(emu.url("/_emu/api/users/alice@example.com/revoke")).send().await.unwrap();
    app.clock.advance(3600 * 1000);
    let mut connection = alice_connection(&app).await;
    assert!(kehai_server::presence::tokens::access_token(&app.state, &*teams, &mut connection).await.is_err());
    browser.client.refresh().await.unwrap();
    let notice = browser.find("#notice-msteams").await;
    assert!(notice.text().await.unwrap().contains("Connect again in the Status section"));
    browser.find("#notice-msteams .notice-open").await.click().await.unwrap();
    browser.eventually("return document.getElementById('profile-dialog').open", json!(true)).await;
    browser
        .eventually("return document.getElementById('integration-msteams').dataset.state", json!("needs_reconnect"))
        .await;
    // The own emoji shows again (the override was removed), and the notice does not come back.
    browser.eventually(&format!("return document.querySelector('{face} .badge') === null"), json!(true)).await;
    browser.client.refresh().await.unwrap();
    browser.find(face).await;
    assert!(!browser.has("#notice-msteams").await, "told once");
    browser.client.clone().close().await.unwrap();
}
