//! Rules where a careless client would pass against a careless emulator: consent covers scopes,
//! token endpoints and Graph refuse what Microsoft refuses, subscriptions belong to their user,
//! revocation reaches subscriptions, and faults keep their promises.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::{
    support::*,
    webhook::{Handshake, Webhook},
};

const PRESENCE: &str = "openid offline_access https://graph.microsoft.com/Presence.Read.All";

#[tokio::test]
async fn consent_covers_scopes_not_just_the_app() {
    let emu = start().await;
    let b = browser();
    let (_, challenge) = pkce();
    code_for(&emu, &b, "organizations", "openid User.Read", &challenge, "alice@example.com", "alice-password").await;
    // Signed in and consented to User.Read only: a silent request for presence needs consent.
    let params =
        get(&b, &authorize_url(&emu, "organizations", PRESENCE, &challenge, &[("prompt", "none")])).await.redirect();
    assert_eq!(params["error"], "consent_required");
    assert!(params["error_description"].starts_with("AADSTS65001: "));
    // Interactively, the consent page asks for the new permission.
    let page = get(&b, &authorize_url(&emu, "organizations", PRESENCE, &challenge, &[])).await.page();
    assert!(page.contains("Read presence information of all users in your organization"));
}

#[tokio::test]
async fn withdrawn_consent_stops_refreshes() {
    let emu = start().await;
    let (verifier, challenge) = pkce();
    let code =
        code_for(&emu, &browser(), "organizations", PRESENCE, &challenge, "alice@example.com", "alice-password").await;
    let (_, body) = redeem(&emu, "organizations", &code, &verifier).await;
    let r = reqwest::Client::new()
        .post(emu.url("/_emu/api/users/alice@example.com/consents/withdraw"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let (client_id, secret) = app(&emu);
    let (_, body) = token(
        &emu,
        "organizations",
        &[
            ("grant_type", "refresh_token"),
            ("client_id", &client_id),
            ("client_secret", &secret),
            ("refresh_token", body["refresh_token"].as_str().unwrap()),
        ],
    )
    .await;
    assert_eq!(aadsts(&body), 65001);
}

#[tokio::test]
async fn the_token_endpoints_url_decides_whose_tokens_it_gives() {
    let emu = start().await;
    let (verifier, challenge) = pkce();
    let code = code_for(&emu, &browser(), "common", PRESENCE, &challenge, "pat@outlook.example", "pat-password").await;
    // A personal account's code cannot be redeemed at the work-and-school endpoint.
    let (status, body) = redeem(&emu, "organizations", &code, &verifier).await;
    assert_eq!((status, aadsts(&body)), (StatusCode::BAD_REQUEST, 500208));
    let (_, body) = redeem(&emu, "nowhere", &code, &verifier).await;
    assert_eq!(aadsts(&body), 90002);
}

#[tokio::test]
async fn graph_presence_is_for_work_and_school_accounts_only() {
    let emu = start().await;
    let (verifier, challenge) = pkce();
    let code = code_for(&emu, &browser(), "common", PRESENCE, &challenge, "pat@outlook.example", "pat-password").await;
    let (_, body) = redeem(&emu, "common", &code, &verifier).await;
    let r = reqwest::Client::new()
        .get(emu.url("/v1.0/me/presence"))
        .bearer_auth(body["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn subscriptions_belong_to_their_user_and_name_real_users() {
    let emu = start().await;
    let hook = Webhook::start().await;
    let alice_token = access_token(&emu, "alice@example.com", "alice-password", PRESENCE).await;
    let bob_token = access_token(&emu, "bob@example.com", "bob-password", PRESENCE).await;
    let alice = user_id(&emu, "alice@example.com");

    // Ids that are no user of the caller's tenant are refused, not silently dead.
    for wrong in [uuid::Uuid::new_v4().to_string(), user_id(&emu, "erin@fabrikam.example")] {
        let (status, _) =
            subscribe(&emu, &alice_token, presence_subscription(&hook, &format!("communications/presences/{wrong}")))
                .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{wrong}");
    }
    // The URL-encoded filter form is understood.
    let encoded = format!("communications/presences?$filter=id+in+(%27{alice}%27)");
    let (status, sub) = subscribe(&emu, &alice_token, presence_subscription(&hook, &encoded)).await;
    assert_eq!(status, StatusCode::CREATED, "{sub}");
    let id = sub["id"].as_str().unwrap();
    // Another user of the same app cannot see, renew or delete it.
    for (method, path) in [
        ("GET", format!("/v1.0/subscriptions/{id}")),
        ("DELETE", format!("/v1.0/subscriptions/{id}")),
        ("POST", format!("/v1.0/subscriptions/{id}/reauthorize")),
    ] {
        let r = reqwest::Client::new()
            .request(method.parse().unwrap(), emu.url(&path))
            .bearer_auth(&bob_token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{method} {path}");
    }
    // Renewing needs the permission that creating needed.
    let weak = access_token(&emu, "alice@example.com", "alice-password", "openid User.Read").await;
    let r = reqwest::Client::new()
        .patch(emu.url(&format!("/v1.0/subscriptions/{id}")))
        .bearer_auth(&weak)
        .json(&json!({"expirationDateTime": in_minutes(59)}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn a_handshake_must_answer_plain_text() {
    let emu = start().await;
    let json_hook = Webhook::start_with(0, Handshake::WrongType).await;
    let token = access_token(&emu, "alice@example.com", "alice-password", PRESENCE).await;
    let alice = user_id(&emu, "alice@example.com");
    let (status, body) =
        subscribe(&emu, &token, presence_subscription(&json_hook, &format!("communications/presences/{alice}"))).await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::BAD_REQUEST, Some("InvalidRequest")));
}

#[tokio::test]
async fn revocation_reaches_subscriptions() {
    let emu = start_with(|c| c.tick = Duration::from_millis(200)).await;
    let mut hook = Webhook::start().await;
    let token = access_token(&emu, "alice@example.com", "alice-password", PRESENCE).await;
    let alice = user_id(&emu, "alice@example.com");
    let (status, sub) =
        subscribe(&emu, &token, presence_subscription(&hook, &format!("communications/presences/{alice}"))).await;
    assert_eq!(status, StatusCode::CREATED);
    reqwest::Client::new().post(emu.url("/_emu/api/users/alice@example.com/revoke")).send().await.unwrap();
    let lifecycle = hook.next_lifecycle().await;
    assert_eq!(lifecycle["value"][0]["lifecycleEvent"], "reauthorizationRequired");
    assert_eq!(lifecycle["value"][0]["subscriptionId"], sub["id"]);
    set_status(&emu, "alice@example.com", "Busy").await;
    assert!(
        tokio::time::timeout(Duration::from_millis(600), hook.rx.recv()).await.is_err(),
        "withheld after revocation"
    );
}

/// Rich notifications, to tell changes apart by their sequence numbers.
async fn rich_subscription(emu: &msemu::Running, hook: &Webhook) -> rcgen::KeyPair {
    let token = access_token(emu, "alice@example.com", "alice-password", PRESENCE).await;
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).unwrap();
    let cert = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap().self_signed(&key).unwrap();
    let mut body =
        presence_subscription(hook, &format!("communications/presences/{}", user_id(emu, "alice@example.com")));
    body["includeResourceData"] = json!(true);
    body["encryptionCertificate"] =
        json!(base64::Engine::encode(&base64::engine::general_purpose::STANDARD, cert.der()));
    body["encryptionCertificateId"] = json!("c1");
    assert_eq!(subscribe(emu, &token, body).await.0, StatusCode::CREATED);
    key
}

fn sequence_of(key: &rcgen::KeyPair, n: &Value) -> String {
    let plain = crate::rich::decrypt(&key.serialize_der(), &n["value"][0]["encryptedContent"]);
    serde_json::from_slice::<Value>(&plain).unwrap()["sequenceNumber"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn reorder_and_delay_faults_do_what_they_say() {
    let emu = start().await;
    let mut hook = Webhook::start().await;
    let key = rich_subscription(&emu, &hook).await;
    let fault = |kind: &str, extra: Value| {
        let mut f = json!({"target": "notifications", "kind": kind});
        f.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        let url = emu.url("/_emu/api/faults");
        async move { reqwest::Client::new().post(url).json(&f).send().await.unwrap().status() }
    };
    assert_eq!(fault("reorder", json!({})).await, StatusCode::NO_CONTENT);
    let first =
        set_status(&emu, "alice@example.com", "InAMeeting").await["sequenceNumber"].as_str().unwrap().to_owned();
    let second = set_status(&emu, "alice@example.com", "InACall").await["sequenceNumber"].as_str().unwrap().to_owned();
    let arrived = [sequence_of(&key, &hook.next().await), sequence_of(&key, &hook.next().await)];
    assert_eq!(arrived, [second, first], "the first change arrives after the second");

    assert_eq!(fault("delay", json!({"delay_ms": 800})).await, StatusCode::NO_CONTENT);
    let started = std::time::Instant::now();
    set_status(&emu, "alice@example.com", "Busy").await;
    hook.next().await;
    assert!(started.elapsed() >= Duration::from_millis(800), "delayed by {:?}", started.elapsed());
}
