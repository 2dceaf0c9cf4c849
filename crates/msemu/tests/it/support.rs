//! A running msemu and a browser-like client that walks its sign-in and consent pages.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use msemu::{Config, Directory, Emulator, Running};
use reqwest::{StatusCode, redirect::Policy};
use serde_json::Value;

pub const REDIRECT_URI: &str = "http://app.test/callback";
pub const CONSUMER_TENANT: &str = "9188040d-6c67-4c5b-b112-36a304b66dad";

/// msemu on a free port, with the built-in directory whose app also accepts [`REDIRECT_URI`].
pub async fn start() -> Running {
    start_with(|_| {}).await
}

pub async fn start_with(adjust: impl FnOnce(&mut Config)) -> Running {
    let mut directory = Directory::default();
    directory.apps[0].redirect_uris.push(REDIRECT_URI.to_owned());
    let mut config = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        directory,
        allow_http_notifications: true,
        delivery: msemu::Delivery { retry_base: std::time::Duration::from_millis(50), ..msemu::Delivery::default() },
        ..Config::default()
    };
    adjust(&mut config);
    Emulator::start(config).await.unwrap()
}

pub fn app(emu: &Running) -> (String, String) {
    let d = emu.emulator.world.lock();
    (d.directory.apps[0].client_id.to_string(), d.directory.apps[0].client_secret.clone())
}

/// A browser: keeps msemu's cookies, does not follow redirects (the test reads them).
pub fn browser() -> reqwest::Client {
    reqwest::Client::builder().cookie_store(true).redirect(Policy::none()).build().unwrap()
}

/// A PKCE pair: (verifier, S256 challenge).
pub fn pkce() -> (String, String) {
    let verifier = format!("verifier-{}-{}", uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
    let challenge = URL_SAFE_NO_PAD.encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, verifier.as_bytes()));
    (verifier, challenge)
}

/// The authorize URL for the test app.
pub fn authorize_url(emu: &Running, tenant: &str, scope: &str, challenge: &str, extra: &[(&str, &str)]) -> String {
    let (client_id, _) = app(emu);
    let mut url = url::Url::parse(&emu.url(&format!("/{tenant}/oauth2/v2.0/authorize"))).unwrap();
    url.query_pairs_mut()
        .append_pair("client_id", &client_id)
        .append_pair("response_type", "code")
        .append_pair("redirect_uri", REDIRECT_URI)
        .append_pair("response_mode", "query")
        .append_pair("scope", scope)
        .append_pair("state", "st-123")
        .append_pair("nonce", "nonce-456")
        .append_pair("code_challenge", challenge)
        .append_pair("code_challenge_method", "S256")
        .extend_pairs(extra);
    url.to_string()
}

/// The value of a hidden or named input in `html`.
pub fn input(html: &str, name: &str) -> Option<String> {
    let marker = format!("name=\"{name}\" value=\"");
    let from = html.find(&marker)? + marker.len();
    Some(html[from..from + html[from..].find('"')?].to_owned())
}

/// The query parameters of a redirect.
pub fn redirect_params(r: &reqwest::Response) -> std::collections::HashMap<String, String> {
    assert_eq!(r.status(), StatusCode::FOUND, "expected a redirect");
    let location = r.headers()["location"].to_str().unwrap();
    assert!(location.starts_with(REDIRECT_URI), "{location}");
    url::Url::parse(location).unwrap().query_pairs().into_owned().collect()
}

/// What a page step answered.
pub enum Step {
    Page(String),
    Redirect(std::collections::HashMap<String, String>),
}

async fn step(r: reqwest::Response) -> Step {
    if r.status() == StatusCode::FOUND {
        Step::Redirect(redirect_params(&r))
    } else {
        assert_eq!(r.status(), StatusCode::OK);
        Step::Page(r.text().await.unwrap())
    }
}

pub async fn get(browser: &reqwest::Client, url: &str) -> Step {
    step(browser.get(url).send().await.unwrap()).await
}

pub async fn post(browser: &reqwest::Client, url: &str, form: &[(&str, &str)]) -> Step {
    step(browser.post(url).form(form).send().await.unwrap()).await
}

impl Step {
    pub fn page(self) -> String {
        match self {
            Step::Page(html) => html,
            Step::Redirect(p) => panic!("expected a page, got a redirect {p:?}"),
        }
    }

    pub fn redirect(self) -> std::collections::HashMap<String, String> {
        match self {
            Step::Redirect(p) => p,
            Step::Page(html) => panic!("expected a redirect, got a page:\n{html}"),
        }
    }
}

/// Signs in with email and password on the sign-in page `html`.
pub async fn sign_in(
    emu: &Running,
    browser: &reqwest::Client,
    tenant: &str,
    html: &str,
    email: &str,
    password: &str,
) -> Step {
    let flow = input(html, "flow").expect("a sign-in form");
    post(browser, &emu.url(&format!("/{tenant}/login")), &[("flow", &flow), ("email", email), ("password", password)])
        .await
}

/// Answers the consent page `html`.
pub async fn decide(emu: &Running, browser: &reqwest::Client, tenant: &str, html: &str, decision: &str) -> Step {
    let flow = input(html, "flow").expect("a consent form");
    post(browser, &emu.url(&format!("/{tenant}/consent")), &[("flow", &flow), ("decision", decision)]).await
}

/// The whole interactive flow for a user who consents; returns the code.
pub async fn code_for(
    emu: &Running,
    browser: &reqwest::Client,
    tenant: &str,
    scope: &str,
    challenge: &str,
    email: &str,
    password: &str,
) -> String {
    let params = match get(browser, &authorize_url(emu, tenant, scope, challenge, &[])).await {
        // Already signed in at msemu, and consented: straight back to the app.
        Step::Redirect(p) => p,
        Step::Page(page) => match sign_in(emu, browser, tenant, &page, email, password).await {
            Step::Page(consent) => decide(emu, browser, tenant, &consent, "accept").await.redirect(),
            Step::Redirect(p) => p,
        },
    };
    assert_eq!(params.get("state").map(String::as_str), Some("st-123"));
    params.get("code").unwrap_or_else(|| panic!("no code: {params:?}")).clone()
}

/// `POST /{tenant}/oauth2/v2.0/token`.
pub async fn token(emu: &Running, tenant: &str, form: &[(&str, &str)]) -> (StatusCode, Value) {
    let r =
        reqwest::Client::new().post(emu.url(&format!("/{tenant}/oauth2/v2.0/token"))).form(form).send().await.unwrap();
    (r.status(), r.json().await.unwrap())
}

pub async fn redeem(emu: &Running, tenant: &str, code: &str, verifier: &str) -> (StatusCode, Value) {
    let (client_id, secret) = app(emu);
    token(
        emu,
        tenant,
        &[
            ("grant_type", "authorization_code"),
            ("client_id", &client_id),
            ("client_secret", &secret),
            ("code", code),
            ("redirect_uri", REDIRECT_URI),
            ("code_verifier", verifier),
        ],
    )
    .await
}

/// The payload of a JWT, unverified (tests verify signatures separately).
pub fn claims(jwt: &str) -> Value {
    let payload = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

/// Asserts Microsoft's token-endpoint error shape and returns the AADSTS code.
pub fn aadsts(body: &Value) -> u64 {
    for field in ["error", "error_description", "timestamp", "trace_id", "correlation_id"] {
        assert!(body[field].is_string(), "missing {field}: {body}");
    }
    let code = body["error_codes"][0].as_u64().expect("error_codes");
    assert!(body["error_description"].as_str().unwrap().starts_with(&format!("AADSTS{code}: ")), "{body}");
    code
}

/// An access token for `email` with `scope`, through the whole interactive flow.
pub async fn access_token(emu: &Running, email: &str, password: &str, scope: &str) -> String {
    let (verifier, challenge) = pkce();
    let code = code_for(emu, &browser(), "organizations", scope, &challenge, email, password).await;
    let (status, body) = redeem(emu, "organizations", &code, &verifier).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["access_token"].as_str().unwrap().to_owned()
}

/// Sets a user's Teams status through the control API.
pub async fn set_status(emu: &Running, user: &str, status: &str) -> Value {
    let r = reqwest::Client::new()
        .put(emu.url(&format!("/_emu/api/users/{user}/presence")))
        .json(&serde_json::json!({ "status": status }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    r.json().await.unwrap()
}

/// A user's object id.
pub fn user_id(emu: &Running, email: &str) -> String {
    emu.emulator.world.lock().directory.user_by_email(email).unwrap().id.to_string()
}

/// A time `minutes` from now, as Graph takes it.
pub fn in_minutes(minutes: i64) -> String {
    (time::OffsetDateTime::now_utc() + time::Duration::minutes(minutes))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

/// A presence subscription request for `resource` delivered to `hook`.
pub fn presence_subscription(hook: &crate::webhook::Webhook, resource: &str) -> Value {
    serde_json::json!({
        "changeType": "updated",
        "notificationUrl": hook.url,
        "lifecycleNotificationUrl": hook.lifecycle_url(),
        "resource": resource,
        "expirationDateTime": in_minutes(59),
        "clientState": "secret-client-state",
    })
}

/// `POST /v1.0/subscriptions`.
pub async fn subscribe(emu: &Running, token: &str, body: Value) -> (StatusCode, Value) {
    let r = reqwest::Client::new()
        .post(emu.url("/v1.0/subscriptions"))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = r.status();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// Subscribes `hook` to `user`'s presence; the subscription must be created.
pub async fn subscribe_to(emu: &Running, hook: &crate::webhook::Webhook, token: &str, user: &str) -> Value {
    let (status, sub) =
        subscribe(emu, token, presence_subscription(hook, &format!("communications/presences/{user}"))).await;
    assert_eq!(status, StatusCode::CREATED, "{sub}");
    sub
}
