//! A running googleemu and a browser-like client that walks its chooser and consent pages.

use std::{collections::HashMap, time::Duration};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use googleemu::{Client, Config, Directory, Emulator, PushTiming, Running};
use reqwest::{StatusCode, redirect::Policy};
use serde_json::Value;

pub const CLIENT_ID: &str = "kehai-demo.apps.googleusercontent.com";
pub const SECRET: &str = "kehai-demo-secret";
/// External + Testing: refresh tokens lapse 7 days after consent.
pub const TESTING_CLIENT: &str = "testing.apps.googleusercontent.com";
/// Internal to example.com.
pub const INTERNAL_CLIENT: &str = "internal.apps.googleusercontent.com";
pub const REDIRECT_URI: &str = "http://app.test/callback";
pub const FREEBUSY: &str = "https://www.googleapis.com/auth/calendar.events.freebusy";
pub const EMAIL: &str = "https://www.googleapis.com/auth/userinfo.email";
/// kehai's scopes (google-protocol §0.1).
pub const KEHAI_SCOPES: &str = "openid email https://www.googleapis.com/auth/calendar.events.freebusy";

fn client(client_id: &str, testing: bool, internal: bool) -> Client {
    Client {
        client_id: client_id.to_owned(),
        client_secret: format!("{client_id}-secret"),
        name: client_id.split('.').next().unwrap().to_owned(),
        redirect_uris: vec![REDIRECT_URI.to_owned()],
        testing,
        internal,
        organization: internal.then(|| "example.com".to_owned()),
    }
}

/// The secret of a client of [`start`].
pub fn secret_of(client_id: &str) -> String {
    if client_id == CLIENT_ID { SECRET.to_owned() } else { format!("{client_id}-secret") }
}

/// googleemu on a free port: the built-in directory (whose client also accepts
/// [`REDIRECT_URI`]) plus a testing and an internal client; http pushes allowed; fast retries.
pub async fn start() -> Running {
    start_with(|_| {}).await
}

pub async fn start_with(adjust: impl FnOnce(&mut Config)) -> Running {
    let mut directory = Directory::default();
    directory.clients[0].redirect_uris.push(REDIRECT_URI.to_owned());
    directory.clients.push(client(TESTING_CLIENT, true, false));
    directory.clients.push(client(INTERNAL_CLIENT, false, true));
    let mut config = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        directory,
        allow_http_push: true,
        push: PushTiming { timeout: Duration::from_secs(2), retry_base: Duration::from_millis(50), max_attempts: 4 },
        ..Config::default()
    };
    adjust(&mut config);
    Emulator::start(config).await.unwrap()
}

/// A browser: keeps googleemu's cookies, does not follow redirects (the test reads them).
pub fn browser() -> reqwest::Client {
    reqwest::Client::builder().cookie_store(true).redirect(Policy::none()).build().unwrap()
}

/// A PKCE pair: (verifier, S256 challenge).
pub fn pkce() -> (String, String) {
    let verifier = format!("verifier-{}-{}", rand_part(), rand_part());
    let challenge = URL_SAFE_NO_PAD.encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, verifier.as_bytes()));
    (verifier, challenge)
}

fn rand_part() -> String {
    use rand::Rng;
    (0..20).map(|_| char::from(b'a' + rand::rng().random_range(0..26u8))).collect()
}

/// The authorization URL: `client_id`, `scope` and the S256 `challenge`, state `st-123`, nonce
/// `n-456`, offline access, then `extra`.
pub fn authorize_url(emu: &Running, client_id: &str, scope: &str, challenge: &str, extra: &[(&str, &str)]) -> String {
    let mut url = url::Url::parse(&emu.url("/o/oauth2/v2/auth")).unwrap();
    url.query_pairs_mut()
        .append_pair("client_id", client_id)
        .append_pair("redirect_uri", REDIRECT_URI)
        .append_pair("response_type", "code")
        .append_pair("scope", scope)
        .append_pair("state", "st-123")
        .append_pair("nonce", "n-456")
        .append_pair("code_challenge", challenge)
        .append_pair("code_challenge_method", "S256")
        .append_pair("access_type", "offline")
        .extend_pairs(extra);
    url.to_string()
}

/// The value of a named input in `html`.
pub fn input(html: &str, name: &str) -> Option<String> {
    let marker = format!("name=\"{name}\" value=\"");
    let from = html.find(&marker)? + marker.len();
    Some(html[from..from + html[from..].find('"')?].to_owned())
}

/// What a page step answered.
#[derive(Debug)]
pub enum Step {
    Page(StatusCode, String),
    Redirect(HashMap<String, String>),
}

impl Step {
    pub fn page(self) -> String {
        match self {
            Step::Page(StatusCode::OK, html) => html,
            other => panic!("expected a page, got {other:?}"),
        }
    }

    pub fn error_page(self) -> (StatusCode, String) {
        match self {
            Step::Page(status, html) if status != StatusCode::OK => (status, html),
            other => panic!("expected an error page, got {other:?}"),
        }
    }

    pub fn redirect(self) -> HashMap<String, String> {
        match self {
            Step::Redirect(p) => p,
            Step::Page(status, html) => panic!("expected a redirect, got {status}:\n{html}"),
        }
    }
}

async fn step(r: reqwest::Response) -> Step {
    if r.status() == StatusCode::FOUND {
        let location = r.headers()["location"].to_str().unwrap();
        assert!(location.starts_with(REDIRECT_URI), "{location}");
        Step::Redirect(url::Url::parse(location).unwrap().query_pairs().into_owned().collect())
    } else {
        Step::Page(r.status(), r.text().await.unwrap())
    }
}

pub async fn get(browser: &reqwest::Client, url: &str) -> Step {
    step(browser.get(url).send().await.unwrap()).await
}

pub async fn post(browser: &reqwest::Client, url: &str, form: &[(&str, &str)]) -> Step {
    step(browser.post(url).form(form).send().await.unwrap()).await
}

/// Clicks `email`'s button in the account chooser `html`.
pub async fn choose(emu: &Running, browser: &reqwest::Client, html: &str, email: &str) -> Step {
    let (flow, csrf) = (input(html, "flow").unwrap(), input(html, "csrf").unwrap());
    assert!(html.contains(&format!("name=\"account\" value=\"{email}\"")), "{email} is not offered:\n{html}");
    post(browser, &emu.url("/o/oauth2/v2/auth/signin"), &[("flow", &flow), ("csrf", &csrf), ("account", email)]).await
}

/// Signs in with email and password on the chooser `html`.
pub async fn sign_in(emu: &Running, browser: &reqwest::Client, html: &str, email: &str, password: &str) -> Step {
    let (flow, csrf) = (input(html, "flow").unwrap(), input(html, "csrf").unwrap());
    let form = [("flow", flow.as_str()), ("csrf", &csrf), ("email", email), ("password", password)];
    post(browser, &emu.url("/o/oauth2/v2/auth/signin"), &form).await
}

/// The scopes the consent page `html` offers as checkboxes.
pub fn checkboxes(html: &str) -> Vec<String> {
    html.split("type=\"checkbox\" name=\"scope\" value=\"")
        .skip(1)
        .map(|s| s[..s.find('"').unwrap()].to_owned())
        .collect()
}

/// Answers the consent page `html`: `allow` with the scopes in `ticked` (all when `None`), or
/// `cancel`.
pub async fn consent(
    emu: &Running,
    browser: &reqwest::Client,
    html: &str,
    decision: &str,
    ticked: Option<&[&str]>,
) -> Step {
    let (flow, csrf) = (input(html, "flow").unwrap(), input(html, "csrf").unwrap());
    let boxes = checkboxes(html);
    let mut form: Vec<(&str, &str)> = vec![("flow", &flow), ("csrf", &csrf), ("decision", decision)];
    for scope in &boxes {
        if ticked.is_none_or(|t| t.contains(&scope.as_str())) {
            form.push(("scope", scope));
        }
    }
    post(browser, &emu.url("/o/oauth2/v2/auth/consent"), &form).await
}

/// The whole interactive flow for `email` choosing their account and allowing everything;
/// returns the redirect's parameters.
pub async fn authorize(
    emu: &Running,
    browser: &reqwest::Client,
    client_id: &str,
    scope: &str,
    challenge: &str,
    email: &str,
    extra: &[(&str, &str)],
) -> HashMap<String, String> {
    let mut next = get(browser, &authorize_url(emu, client_id, scope, challenge, extra)).await;
    if let Step::Page(StatusCode::OK, html) = &next
        && html.contains("Choose an account")
    {
        next = choose(emu, browser, html, email).await;
    }
    if let Step::Page(StatusCode::OK, html) = &next
        && html.contains("wants access to your Google Account")
    {
        next = consent(emu, browser, html, "allow", None).await;
    }
    let params = next.redirect();
    assert_eq!(params.get("state").map(String::as_str), Some("st-123"), "{params:?}");
    params
}

/// `POST /token`, client authentication in the body or (`basic`) as HTTP Basic.
pub async fn token(emu: &Running, form: &[(&str, &str)], basic: Option<(&str, &str)>) -> (StatusCode, Value) {
    let mut req = reqwest::Client::new().post(emu.url("/token")).form(form);
    if let Some((id, secret)) = basic {
        req = req.basic_auth(id, Some(secret));
    }
    let r = req.send().await.unwrap();
    (r.status(), r.json().await.unwrap())
}

pub async fn redeem(emu: &Running, client_id: &str, code: &str, verifier: &str) -> (StatusCode, Value) {
    let secret = secret_of(client_id);
    let form = [
        ("grant_type", "authorization_code"),
        ("client_id", client_id),
        ("client_secret", &secret),
        ("code", code),
        ("redirect_uri", REDIRECT_URI),
        ("code_verifier", verifier),
    ];
    token(emu, &form, None).await
}

pub async fn refresh(emu: &Running, client_id: &str, refresh_token: &str) -> (StatusCode, Value) {
    let secret = secret_of(client_id);
    let form = [
        ("grant_type", "refresh_token"),
        ("client_id", client_id),
        ("client_secret", &secret),
        ("refresh_token", refresh_token),
    ];
    token(emu, &form, None).await
}

/// A full connection of `email` to `client_id` with `scope` (offline, prompt=consent): the
/// token response.
pub async fn connect_with(emu: &Running, client_id: &str, email: &str, scope: &str) -> Value {
    let (verifier, challenge) = pkce();
    let params = authorize(emu, &browser(), client_id, scope, &challenge, email, &[("prompt", "consent")]).await;
    let (status, body) = redeem(emu, client_id, &params["code"], &verifier).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

/// `email` connected to the demo client with `scope`.
pub async fn connect(emu: &Running, email: &str, scope: &str) -> Value {
    connect_with(emu, CLIENT_ID, email, scope).await
}

/// An access token of `email` for `scope`.
pub async fn access_token(emu: &Running, email: &str, scope: &str) -> String {
    connect(emu, email, scope).await["access_token"].as_str().unwrap().to_owned()
}

/// The payload of a JWT, unverified (tests verify signatures separately).
pub fn claims(jwt: &str) -> Value {
    let payload = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

/// A control API call.
pub async fn control(emu: &Running, method: &str, path: &str, body: Option<Value>) -> (StatusCode, Value) {
    let mut req = reqwest::Client::new().request(method.parse().unwrap(), emu.url(&format!("/_emu/api{path}")));
    if let Some(b) = body {
        req = req.json(&b);
    }
    let r = req.send().await.unwrap();
    let status = r.status();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// A Calendar API call with a bearer token; the status, headers and JSON body (Null if none).
pub async fn calendar(
    emu: &Running,
    method: &str,
    path_and_query: &str,
    token: &str,
    body: Option<Value>,
) -> (StatusCode, reqwest::header::HeaderMap, Value) {
    let mut req = reqwest::Client::new()
        .request(method.parse().unwrap(), emu.url(&format!("/calendar/v3{path_and_query}")))
        .bearer_auth(token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let r = req.send().await.unwrap();
    let (status, headers) = (r.status(), r.headers().clone());
    (status, headers, r.json().await.unwrap_or(Value::Null))
}

/// RFC 3339 in UTC, seconds.
pub fn rfc3339(t: time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339).unwrap()
}
