//! The Status card of a connected member: its state per space, the ON/OFF toggle, several spaces
//! sharing one connection, and disconnecting.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::{find, microsoft::*};

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

    // After disconnecting, connecting again works.
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
