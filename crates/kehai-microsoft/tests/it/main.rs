//! kehai's Microsoft client against msemu, over HTTP on loopback.

#![allow(clippy::unwrap_used)]

use std::{collections::HashMap, sync::Arc, time::Duration};

use kehai_microsoft::{Graph, IdTokenValidator, Identity, MicrosoftConfig, MicrosoftError, NewSubscription};
use msemu::{Config, Directory, Emulator, Running};
use secrecy::SecretString;
use serde_json::json;

const REDIRECT: &str = "http://kehai.test/integrations/msteams/callback";
/// The key presence reads are limited by (any tenant name does).
const TENANT: &str = "contoso";

async fn msemu() -> Running {
    let mut directory = Directory::default();
    directory.apps[0].redirect_uris.push(REDIRECT.to_owned());
    let config = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        directory,
        allow_http_notifications: true,
        ..Config::default()
    };
    Emulator::start(config).await.unwrap()
}

fn config(emu: &Running, tenant: &str) -> MicrosoftConfig {
    let app = emu.emulator.world.lock().directory.apps[0].clone();
    MicrosoftConfig {
        login_url: emu.base_url.clone(),
        graph_url: emu.base_url.clone(),
        tenant: tenant.to_owned(),
        client_id: app.client_id.to_string(),
        client_secret: SecretString::from(app.client_secret),
    }
}

fn hidden(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let from = html.find(&marker).unwrap_or_else(|| panic!("no {name} in {html}")) + marker.len();
    html[from..from + html[from..].find('"').unwrap()].to_owned()
}

/// Signs in at msemu as a browser would and returns the callback's query.
async fn sign_in(
    emu: &Running,
    authorize_url: &url::Url,
    tenant: &str,
    email: &str,
    password: &str,
) -> HashMap<String, String> {
    let browser =
        reqwest::Client::builder().cookie_store(true).redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let page = browser.get(authorize_url.as_str()).send().await.unwrap().text().await.unwrap();
    let mut answer = browser
        .post(emu.url(&format!("/{tenant}/login")))
        .form(&[("flow", hidden(&page, "flow").as_str()), ("email", email), ("password", password)])
        .send()
        .await
        .unwrap();
    if answer.status() == reqwest::StatusCode::OK {
        let consent = answer.text().await.unwrap();
        answer = browser
            .post(emu.url(&format!("/{tenant}/consent")))
            .form(&[("flow", hidden(&consent, "flow").as_str()), ("decision", "accept")])
            .send()
            .await
            .unwrap();
    }
    let location = answer.headers()["location"].to_str().unwrap().to_owned();
    assert!(location.starts_with(REDIRECT), "{location}");
    url::Url::parse(&location).unwrap().query_pairs().into_owned().collect()
}

/// A whole connect: authorize, sign in, redeem, validate. Returns tokens and the nonce check.
async fn connect(emu: &Running, email: &str, password: &str) -> (kehai_microsoft::Tokens, kehai_microsoft::IdClaims) {
    let cfg = config(emu, "organizations");
    let identity = Identity::new(cfg.clone());
    let request = identity.authorization_request(REDIRECT).unwrap();
    let callback = sign_in(emu, &request.url, "organizations", email, password).await;
    assert_eq!(callback["state"], secrecy::ExposeSecret::expose_secret(&request.state));
    let tokens = identity.exchange_code(&callback["code"], &request.pkce_verifier, REDIRECT).await.unwrap();
    let claims =
        IdTokenValidator::new(cfg).validate(tokens.id_token.as_deref().unwrap(), &request.nonce).await.unwrap();
    (tokens, claims)
}

#[tokio::test]
async fn authorize_url_asks_for_exactly_the_seed_permissions() {
    let emu = msemu().await;
    let identity = Identity::new(config(&emu, "organizations"));
    let request = identity.authorization_request(REDIRECT).unwrap();
    let q: HashMap<String, String> = request.url.query_pairs().into_owned().collect();
    assert_eq!(q["scope"], "openid email offline_access https://graph.microsoft.com/Presence.Read.All");
    assert_eq!(
        (q["response_type"].as_str(), q["prompt"].as_str(), q["code_challenge_method"].as_str()),
        ("code", "select_account", "S256")
    );
    assert_eq!(q["redirect_uri"], REDIRECT);
    assert!(request.url.path().ends_with("/organizations/oauth2/v2.0/authorize"));
    assert!(
        !format!("{request:?}").contains(secrecy::ExposeSecret::expose_secret(&request.state)),
        "Debug hides the state"
    );
    let admin = identity.admin_consent_url(REDIRECT, "s1");
    assert!(admin.contains("/organizations/v2.0/adminconsent?client_id=") && admin.contains("Presence.Read.All"));
}

#[tokio::test]
async fn a_full_connect_gives_tokens_an_identity_and_presence() {
    let emu = msemu().await;
    let (tokens, claims) = connect(&emu, "alice@example.com", "alice-password").await;
    let contoso = emu.emulator.world.lock().directory.tenant("contoso").unwrap().id.to_string();
    assert_eq!(claims.tid, contoso);
    assert_eq!(claims.email.as_deref(), Some("alice@example.com"));
    assert!(!format!("{tokens:?}").contains(secrecy::ExposeSecret::expose_secret(&tokens.access_token)));

    let graph = Graph::new(config(&emu, "organizations"));
    reqwest::Client::new()
        .put(emu.url("/_emu/api/users/alice@example.com/presence"))
        .json(&json!({"status": "InAMeeting"}))
        .send()
        .await
        .unwrap();
    let presence = graph.my_presence(&tokens.access_token, TENANT).await.unwrap();
    let alice = emu.emulator.world.lock().directory.user_by_email("alice@example.com").unwrap().id.to_string();
    assert_eq!(
        (presence.id.as_str(), presence.availability.as_str(), presence.activity.as_str()),
        (alice.as_str(), "Busy", "InAMeeting")
    );
    assert!(presence.sequence_number.is_some());

    // Refreshing rotates the refresh token.
    let identity = Identity::new(config(&emu, "organizations"));
    let old = tokens.refresh_token.clone().unwrap();
    let fresh = identity.refresh(&old, REDIRECT).await.unwrap();
    let new = fresh.refresh_token.unwrap();
    assert_ne!(secrecy::ExposeSecret::expose_secret(&new), secrecy::ExposeSecret::expose_secret(&old));
}

#[tokio::test]
async fn id_tokens_are_refused_for_the_wrong_nonce_audience_signature_or_issuer() {
    let emu = msemu().await;
    let cfg = config(&emu, "organizations");
    let identity = Identity::new(cfg.clone());
    let request = identity.authorization_request(REDIRECT).unwrap();
    let callback = sign_in(&emu, &request.url, "organizations", "alice@example.com", "alice-password").await;
    let tokens = identity.exchange_code(&callback["code"], &request.pkce_verifier, REDIRECT).await.unwrap();
    let id_token = tokens.id_token.unwrap();
    let validator = IdTokenValidator::new(cfg.clone());
    assert!(validator.validate(&id_token, &request.nonce).await.is_ok());

    let refused = |r: Result<kehai_microsoft::IdClaims, MicrosoftError>| matches!(r, Err(MicrosoftError::IdToken(_)));
    assert!(refused(validator.validate(&id_token, &SecretString::from("another nonce")).await), "nonce");
    let other_app = IdTokenValidator::new(MicrosoftConfig {
        client_id: "00000000-0000-0000-0000-000000000001".into(),
        ..cfg.clone()
    });
    assert!(refused(other_app.validate(&id_token, &request.nonce).await), "audience");
    let mut tampered = id_token.clone();
    tampered.replace_range(id_token.len() - 8.., "AAAAAAAA");
    assert!(refused(validator.validate(&tampered, &request.nonce).await), "signature");
    // Validated against fabrikam's metadata, contoso's token has the wrong issuer.
    let fabrikam = IdTokenValidator::new(MicrosoftConfig { tenant: "fabrikam".into(), ..cfg });
    let err = fabrikam.validate(&id_token, &request.nonce).await.unwrap_err().to_string();
    assert!(err.contains("wrong issuer"), "refused for its issuer, not for something else: {err}");
}

#[tokio::test]
async fn rotated_signing_keys_are_fetched_once() {
    let emu = msemu().await;
    let cfg = config(&emu, "organizations");
    let validator = IdTokenValidator::new(cfg.clone());
    let identity = Identity::new(cfg);
    let first = identity.authorization_request(REDIRECT).unwrap();
    let callback = sign_in(&emu, &first.url, "organizations", "alice@example.com", "alice-password").await;
    let tokens = identity.exchange_code(&callback["code"], &first.pkce_verifier, REDIRECT).await.unwrap();
    validator.validate(tokens.id_token.as_deref().unwrap(), &first.nonce).await.unwrap();

    reqwest::Client::new().post(emu.url("/_emu/api/keys/rotate")).send().await.unwrap();
    let second = identity.authorization_request(REDIRECT).unwrap();
    let callback = sign_in(&emu, &second.url, "organizations", "alice@example.com", "alice-password").await;
    let tokens = identity.exchange_code(&callback["code"], &second.pkce_verifier, REDIRECT).await.unwrap();
    validator.validate(tokens.id_token.as_deref().unwrap(), &second.nonce).await.expect("the new key is fetched");
    let requests: serde_json::Value = reqwest::get(emu.url("/_emu/api/requests")).await.unwrap().json().await.unwrap();
    assert_eq!(
        requests["requests"]["GET /{tenant}/discovery/v2.0/keys"], 2,
        "fetched once at first, once after the rotation"
    );
}

#[tokio::test]
async fn identity_errors_carry_their_aadsts_code() {
    let emu = msemu().await;
    let cfg = config(&emu, "organizations");
    let identity = Identity::new(cfg);
    let request = identity.authorization_request(REDIRECT).unwrap();
    let callback = sign_in(&emu, &request.url, "organizations", "alice@example.com", "alice-password").await;
    let tokens = identity.exchange_code(&callback["code"], &request.pkce_verifier, REDIRECT).await.unwrap();
    let reuse = identity.exchange_code(&callback["code"], &request.pkce_verifier, REDIRECT).await.unwrap_err();
    assert_eq!((reuse.aadsts(), reuse.identity_error()), (Some(54005), Some("invalid_grant")));

    reqwest::Client::new().post(emu.url("/_emu/api/users/alice@example.com/revoke")).send().await.unwrap();
    let revoked = identity.refresh(tokens.refresh_token.as_ref().unwrap(), REDIRECT).await.unwrap_err();
    assert_eq!((revoked.aadsts(), revoked.identity_error()), (Some(50173), Some("invalid_grant")));
    assert!(
        !revoked.to_string().contains(secrecy::ExposeSecret::expose_secret(tokens.refresh_token.as_ref().unwrap()))
    );

    let wrong_secret =
        Identity::new(MicrosoftConfig { client_secret: SecretString::from("nope"), ..config(&emu, "organizations") });
    let err = wrong_secret.refresh(&SecretString::from("x"), REDIRECT).await.unwrap_err();
    assert_eq!(err.aadsts(), Some(7000215));
}

/// Answers Graph's validation handshake.
async fn webhook() -> (String, tokio::task::JoinHandle<()>) {
    async fn answer(
        axum::extract::Query(q): axum::extract::Query<HashMap<String, String>>,
    ) -> impl axum::response::IntoResponse {
        ([("content-type", "text/plain")], q.get("validationToken").cloned().unwrap_or_default())
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/webhooks/msgraph", listener.local_addr().unwrap());
    let app = axum::Router::new().route("/webhooks/msgraph", axum::routing::post(answer));
    (url, tokio::spawn(async move { axum::serve(listener, app).await.unwrap() }))
}

fn minutes_ahead(m: i64) -> String {
    (time::OffsetDateTime::now_utc() + time::Duration::minutes(m))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

#[tokio::test]
async fn presence_subscriptions_are_created_renewed_listed_and_deleted() {
    let emu = msemu().await;
    let (hook, _server) = webhook().await;
    let (tokens, _) = connect(&emu, "alice@example.com", "alice-password").await;
    let graph = Graph::new(config(&emu, "organizations"));
    let me = graph.my_presence(&tokens.access_token, TENANT).await.unwrap().id;
    let new = NewSubscription {
        resource: format!("communications/presences/{me}"),
        notification_url: hook.clone(),
        lifecycle_notification_url: Some(hook),
        expiration: minutes_ahead(59),
        client_state: SecretString::from("a-long-random-client-state-value-0123456789"),
        encryption_certificate: None,
    };
    assert!(!format!("{new:?}").contains("a-long-random"), "Debug hides the clientState");
    let sub = graph.create_subscription(&tokens.access_token, &new).await.unwrap();
    assert_eq!(sub.resource, new.resource);
    let again = graph.create_subscription(&tokens.access_token, &new).await.unwrap_err();
    assert!(matches!(&again, MicrosoftError::Graph { status: 409, code, .. } if code == "Conflict"), "{again}");
    let renewed = graph.renew_subscription(&tokens.access_token, &sub.id, &minutes_ahead(59)).await.unwrap();
    assert_eq!(renewed.id, sub.id);
    assert_eq!(graph.subscriptions(&tokens.access_token).await.unwrap().len(), 1);
    graph.delete_subscription(&tokens.access_token, &sub.id).await.unwrap();
    assert!(graph.subscriptions(&tokens.access_token).await.unwrap().is_empty());
}

/// Graph's validation tokens as msemu signs them, then each way one can be wrong.
#[tokio::test]
async fn validation_tokens_are_verified_and_every_flaw_refused() {
    use kehai_microsoft::notifications::{PUBLISHER, ValidationTokens};
    let emu = msemu().await;
    let microsoft = config(&emu, "organizations");
    let tenant = emu.emulator.world.lock().directory.tenant("contoso").unwrap().id.to_string();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    let claims = json!({
        "aud": microsoft.client_id,
        "iss": emu.url(&format!("/{tenant}/v2.0")),
        "iat": now, "nbf": now, "exp": now + 3600,
        "azp": PUBLISHER, "tid": tenant, "ver": "2.0",
    });
    let sign = |c: &serde_json::Value| emu.emulator.world.keys().sign(c).unwrap();
    let tokens = ValidationTokens::new(microsoft.clone());
    assert_eq!(tokens.verify(&sign(&claims)).await.unwrap(), tenant);
    let v1 = json!({ "iss": format!("https://sts.windows.net/{tenant}/"), "appid": PUBLISHER, "azp": null });
    let mut claims_v1 = claims.clone();
    claims_v1.as_object_mut().unwrap().extend(v1.as_object().unwrap().clone());
    assert_eq!(tokens.verify(&sign(&claims_v1)).await.unwrap(), tenant, "the v1.0 form");

    let with = |field: &str, value: serde_json::Value| {
        let mut c = claims.clone();
        c[field] = value;
        sign(&c)
    };
    let flawed = [
        ("wrong aud", with("aud", json!("00000000-0000-0000-0000-000000000001"))),
        ("expired", with("exp", json!(now - 600))),
        ("not yet valid", with("nbf", json!(now + 600))),
        ("another issuer", with("iss", json!("https://login.example/evil/v2.0"))),
        ("another tenant in iss", with("iss", json!(emu.url("/11111111-1111-1111-1111-111111111111/v2.0")))),
        ("not Graph", with("azp", json!("00000000-0000-0000-0000-000000000002"))),
    ];
    for (why, token) in flawed {
        assert!(tokens.verify(&token).await.is_err(), "{why} accepted");
    }
    // A bad signature: the payload changed after signing.
    let good = sign(&claims);
    let parts: Vec<&str> = good.split('.').collect();
    let mut forged_claims = claims.clone();
    forged_claims["tid"] = json!("11111111-1111-1111-1111-111111111111");
    let payload = base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, forged_claims.to_string());
    let forged = format!("{}.{payload}.{}", parts[0], parts[2]);
    assert!(tokens.verify(&forged).await.is_err(), "bad signature accepted");
    assert!(tokens.verify("not.a.jwt").await.is_err());
}

async fn fault(emu: &Running, fault: serde_json::Value) {
    let r = reqwest::Client::new().post(emu.url("/_emu/api/faults")).json(&fault).send().await.unwrap();
    assert!(r.status().is_success());
}

async fn presence_reads(emu: &Running) -> u64 {
    let v: serde_json::Value = reqwest::get(emu.url("/_emu/api/requests")).await.unwrap().json().await.unwrap();
    v["requests"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(k, _)| k.contains("/me/presence"))
        .map(|(_, n)| n.as_u64().unwrap())
        .sum()
}

#[tokio::test]
async fn throttled_calls_wait_for_retry_after_and_then_succeed() {
    let emu = msemu().await;
    let (tokens, _) = connect(&emu, "alice@example.com", "alice-password").await;
    let graph = Graph::new(config(&emu, "organizations"));
    let before = presence_reads(&emu).await;

    // Two 429s with Retry-After: 1 s, then the answer.
    fault(&emu, json!({"target": "graph", "kind": "throttle", "count": 2, "retry_after": 1})).await;
    let started = std::time::Instant::now();
    graph.my_presence(&tokens.access_token, TENANT).await.unwrap();
    assert!(started.elapsed() >= std::time::Duration::from_secs(2), "Retry-After honoured: {:?}", started.elapsed());
    assert_eq!(presence_reads(&emu).await - before, 3);

    // Throttled beyond the retries: the 429 reaches the caller with its Retry-After.
    fault(&emu, json!({"target": "graph", "kind": "throttle", "count": 4, "retry_after": 1})).await;
    match graph.my_presence(&tokens.access_token, TENANT).await.unwrap_err() {
        MicrosoftError::Graph { status: 429, retry_after, .. } => {
            assert_eq!(retry_after, Some(std::time::Duration::from_secs(1)));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(presence_reads(&emu).await - before, 7);

    // A Retry-After longer than kehai waits in place ends the call at once.
    fault(&emu, json!({"target": "graph", "kind": "throttle", "count": 1, "retry_after": 120})).await;
    let started = std::time::Instant::now();
    assert!(graph.my_presence(&tokens.access_token, TENANT).await.is_err());
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
}

/// What an observer was told.
#[derive(Debug, Default)]
struct Told(std::sync::Mutex<Vec<String>>);

impl kehai_microsoft::Observer for Told {
    fn graph_call(&self, operation: &'static str, status: Option<u16>) {
        self.0.lock().unwrap().push(format!("{operation} {status:?}"));
    }
    fn token_call(&self, grant: &'static str, outcome: &str) {
        self.0.lock().unwrap().push(format!("{grant} {outcome}"));
    }
}

async fn requests_to(emu: &Running, part: &str) -> u64 {
    let v: serde_json::Value = reqwest::get(emu.url("/_emu/api/requests")).await.unwrap().json().await.unwrap();
    v["requests"].as_object().unwrap().iter().filter(|(k, _)| k.contains(part)).map(|(_, n)| n.as_u64().unwrap()).sum()
}

#[tokio::test]
async fn presence_reads_wait_for_their_tenants_limit_and_every_attempt_is_observed() {
    let emu = msemu().await;
    let (tokens, _) = connect(&emu, "alice@example.com", "alice-password").await;
    let told = Arc::new(Told::default());
    // Three per 30 s: one at once, then one every 15 s.
    let graph = Graph::new(config(&emu, "organizations")).with_presence_limit(3).with_observer(told.clone());
    let before = presence_reads(&emu).await;
    graph.my_presence(&tokens.access_token, TENANT).await.unwrap();
    let held = tokio::time::timeout(Duration::from_millis(500), graph.my_presence(&tokens.access_token, TENANT)).await;
    assert!(held.is_err(), "the second read waits for the tenant's limit");
    assert_eq!(presence_reads(&emu).await - before, 1, "and never reached Graph");
    // Another tenant has its own limit.
    graph.my_presence(&tokens.access_token, "fabrikam").await.unwrap();
    assert_eq!(presence_reads(&emu).await - before, 2);
    fault(&emu, json!({"target": "graph", "kind": "throttle", "count": 1, "retry_after": 0})).await;
    graph.subscriptions(&tokens.access_token).await.unwrap();
    let told = told.0.lock().unwrap().clone();
    assert_eq!(
        told,
        [
            "get_my_presence Some(200)",
            "get_my_presence Some(200)",
            "list_subscriptions Some(429)",
            "list_subscriptions Some(200)"
        ]
    );
}

#[tokio::test]
async fn token_requests_are_retried_when_throttled_or_unavailable() {
    let emu = msemu().await;
    let (tokens, _) = connect(&emu, "alice@example.com", "alice-password").await;
    let told = Arc::new(Told::default());
    let identity = Identity::new(config(&emu, "organizations")).with_observer(told.clone());
    let refresh = tokens.refresh_token.unwrap();
    let before = requests_to(&emu, "/oauth2/v2.0/token").await;

    fault(&emu, json!({"target": "token", "kind": "throttle", "count": 1, "retry_after": 1})).await;
    fault(&emu, json!({"target": "token", "kind": "unavailable", "count": 1, "retry_after": 1})).await;
    let started = std::time::Instant::now();
    let fresh = identity.refresh(&refresh, REDIRECT).await.unwrap();
    assert!(started.elapsed() >= Duration::from_secs(2), "Retry-After honoured: {:?}", started.elapsed());
    assert_eq!(requests_to(&emu, "/oauth2/v2.0/token").await - before, 3);

    // Unavailable beyond the retries: a temporary failure, never one that asks for a new sign-in.
    fault(&emu, json!({"target": "token", "kind": "unavailable", "count": 4, "retry_after": 0})).await;
    let e = identity.refresh(fresh.refresh_token.as_ref().unwrap(), REDIRECT).await.unwrap_err();
    assert_ne!(e.identity_error(), Some("invalid_grant"), "{e}");
    assert_eq!(requests_to(&emu, "/oauth2/v2.0/token").await - before, 7);
    assert_eq!(*told.0.lock().unwrap(), ["refresh_token ok", "refresh_token temporarily_unavailable"]);
}

#[tokio::test]
async fn a_long_retry_after_holds_the_tenants_presence_reads_without_requests() {
    let emu = msemu().await;
    let (tokens, _) = connect(&emu, "alice@example.com", "alice-password").await;
    let graph = Graph::new(config(&emu, "organizations"));
    let before = presence_reads(&emu).await;
    fault(&emu, json!({"target": "graph", "kind": "throttle", "count": 1, "retry_after": 120})).await;
    for _ in 0..3 {
        match graph.my_presence(&tokens.access_token, TENANT).await.unwrap_err() {
            MicrosoftError::Graph { status: 429, retry_after: Some(wait), .. } => {
                assert!(wait > Duration::from_secs(100) && wait <= Duration::from_secs(120), "{wait:?}");
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(presence_reads(&emu).await - before, 1, "only the first reached Graph");
    // Another tenant is not held.
    graph.my_presence(&tokens.access_token, "fabrikam").await.unwrap();
    assert_eq!(presence_reads(&emu).await - before, 2);
}
