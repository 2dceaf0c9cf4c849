//! The bad-input table: malformed and hostile requests at every endpoint, each answered with
//! the status and stable code `docs/errors.md` documents for it, with nothing stored (the whole
//! database is the same before and after), no panic and the server healthy afterwards. The
//! cases are kept by endpoint: Graph's webhooks (`msgraph`), the JSON API (`api`), forms and
//! pages (`pages`), the Teams popup (`popup`), Google's webhook and popup (`gcal`, with its own
//! server and emulator); `names` checks markup typed as names.

mod api;
mod gcal;
mod msgraph;
mod names;
mod pages;
mod popup;

use reqwest::{Method, RequestBuilder, StatusCode};
use serde_json::{Value, json};

use crate::{
    support::microsoft::{
        back_to_kehai, basic_notification_json, metric_becomes, outcome, set_status, sign_in_at_microsoft, start,
    },
    support::{Client, TestApp, between},
};

/// What a refusal carries besides its status.
#[derive(Debug, Clone, Copy)]
enum Code {
    /// The JSON API's `{"error":{"code"}}`.
    Json(&'static str),
    /// An HTML page's or form's `data-error-code`.
    Page(&'static str),
    /// The Teams popup's `data-outcome`.
    Outcome(&'static str),
    /// The webhook's 202: taken, checked later, dropped (counted in
    /// `kehai_notifications_dropped_total{reason}`).
    Accepted,
}

struct Case {
    what: String,
    request: RequestBuilder,
    status: u16,
    code: Code,
}

fn case(what: impl Into<String>, request: RequestBuilder, status: u16, code: Code) -> Case {
    Case { what: what.into(), request, status, code }
}

/// A request from `c` with its CSRF token (when it has one) and a JSON body.
fn api(c: &Client, method: Method, path: &str, body: Option<Value>) -> RequestBuilder {
    let mut r = c.http.request(method, c.url(path));
    if let Some(token) = &c.csrf {
        r = r.header("x-csrf-token", token);
    }
    match body {
        Some(body) => r.json(&body),
        None => r,
    }
}

/// The same with a raw body and content type.
fn raw(c: &Client, method: Method, path: &str, content_type: &str, body: impl Into<reqwest::Body>) -> RequestBuilder {
    let mut r = c.http.request(method, c.url(path)).header("content-type", content_type);
    if let Some(token) = &c.csrf {
        r = r.header("x-csrf-token", token);
    }
    r.body(body)
}

fn nested(depth: usize) -> String {
    format!("{}{}", "[".repeat(depth), "]".repeat(depth))
}

/// A forged copy of Alice's genuine notification, changed by `forge`.
fn forged(genuine: &Value, forge: impl FnOnce(&mut Value)) -> Value {
    let mut v = genuine.clone();
    forge(&mut v["value"][0]);
    v
}

/// The people and tokens the cases use, set up once: Alice connected to Teams (the callback she
/// came back through kept, to replay it), Bob in the same space, Carol in another, a guest, a
/// guest whose session expired, strangers.
struct Actors<'a> {
    app: &'a TestApp,
    alice: Client,
    bob: Client,
    carol: Client,
    guest: Client,
    expired: Client,
    anonymous: Client,
    forger: Client,
    /// Alice's session with Bob's CSRF token, with none, with a made-up one.
    alice_with_bobs_token: Client,
    alice_without_token: Client,
    alice_wrong_token: Client,
    login_csrf: String,
    guest_csrf: String,
    /// The connect tokens of Alice's and Bob's pages.
    alice_token: String,
    bob_token: String,
    callback: String,
    /// A genuine Graph notification for Alice, and its clientState.
    genuine: Value,
    genuine_state: String,
    huge: Vec<u8>,
}

impl Actors<'_> {
    fn popup(&self) -> popup::Popup<'_> {
        popup::Popup {
            app: self.app,
            alice: &self.alice,
            guest: &self.guest,
            anonymous: &self.anonymous,
            alice_token: &self.alice_token,
            bob_token: &self.bob_token,
            callback: &self.callback,
        }
    }
}

/// Sends every case, checking its status, its stable code (documented in `docs/errors.md`) and
/// that nothing of the request comes back unescaped; returns how many were taken as webhook
/// deliveries (202) to be dropped later.
async fn refused_as_documented(cases: Vec<Case>) -> usize {
    use Code::*;
    let documented = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/errors.md")).unwrap();
    let mut forged_accepted = 0;
    for Case { what, request, status, code } in cases {
        let response = request.send().await.unwrap_or_else(|e| panic!("{what}: {e}"));
        let got = response.status();
        let content_type =
            response.headers().get("content-type").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
        let body = response.text().await.unwrap_or_default();
        assert_eq!(got, StatusCode::from_u16(status).unwrap(), "{what}: {body}");
        let name = match code {
            Json(name) => {
                assert!(content_type.starts_with("application/json"), "{what}: {content_type}");
                let v: Value = serde_json::from_str(&body).unwrap_or_else(|_| panic!("{what}: {body}"));
                assert_eq!(v["error"]["code"], name, "{what}: {body}");
                assert!(v["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{what}: a message");
                name
            }
            Page(name) => {
                assert!(content_type.starts_with("text/html"), "{what}: {content_type}");
                assert_eq!(between(&body, "data-error-code=\"", "\"").as_deref(), Some(name), "{what}: {body}");
                name
            }
            Outcome(name) => {
                assert_eq!(outcome(&body), name, "{what}");
                name
            }
            Accepted => {
                forged_accepted += 1;
                "accepted"
            }
        };
        // Nothing of the request comes back unescaped.
        assert!(!body.contains("<script>alert"), "{what}: {body}");
        assert!(
            documented.lines().any(|l| l.contains(&format!("| {status} ")) && l.contains(&format!("`{name}`"))),
            "{what}: {status} {name} is not in docs/errors.md"
        );
    }
    forged_accepted
}

#[tokio::test]
async fn hostile_requests_get_their_documented_refusal_and_change_nothing() {
    let (app, emu) = start().await;
    set_status(&emu, "alice@example.com", "Busy").await;
    // Alice connects Teams; the callback she came back through is kept, to replay it.
    let mut alice = app.member("alice@example.com").await;
    alice.load_space("alpha").await;
    let callback = sign_in_at_microsoft(&alice, &emu, "alice@example.com", "alice-password", "accept").await;
    assert_eq!(outcome(&back_to_kehai(&alice, &callback).await.1), "connected");
    let mut bob = app.member("bob@example.com").await;
    bob.load_space("alpha").await;
    let mut carol = app.client();
    carol.login("carol@example.com", crate::support::PASSWORD, "/s/beta").await;
    carol.load_space("beta").await;
    let guest = app.guest("Gwen").await;
    let expired = app.guest("Mallory").await;
    app.sqlite_execute("UPDATE sessions SET expires_at = 1 WHERE kind = 'guest' AND person_id IN (SELECT person_id FROM avatars WHERE display_name = 'Mallory')").await;
    let anonymous = app.client();
    // Another session's CSRF token on Alice's session.
    let alice_with_bobs_token = Client { http: alice.http.clone(), base: app.base.clone(), csrf: bob.csrf.clone() };
    let alice_without_token = Client { http: alice.http.clone(), base: app.base.clone(), csrf: None };
    let alice_wrong_token = Client { http: alice.http.clone(), base: app.base.clone(), csrf: Some("x".repeat(43)) };
    let mut forger = app.client();
    forger.csrf = None;
    let login_csrf = anonymous.form_csrf("/login").await;
    let alice_token = between(&alice.get("/s/alpha").await.text().await.unwrap(), "\"connect\":\"", "\"").unwrap();
    let bob_token = between(&bob.get("/s/alpha").await.text().await.unwrap(), "\"connect\":\"", "\"").unwrap();
    let guest_csrf = anonymous.form_csrf("/s/alpha/guest").await;
    let genuine = basic_notification_json(&app, None).await;
    let genuine_state = genuine["value"][0]["clientState"].as_str().unwrap().to_owned();
    let huge = vec![b'a'; 3 * 1024 * 1024];
    let a = Actors {
        app: &app,
        alice,
        bob,
        carol,
        guest,
        expired,
        anonymous,
        forger,
        alice_with_bobs_token,
        alice_without_token,
        alice_wrong_token,
        login_csrf,
        guest_csrf,
        alice_token,
        bob_token,
        callback,
        genuine,
        genuine_state,
        huge,
    };

    let before = app.sqlite_dump().await;
    for table in ["accounts|", "avatars|", "sessions|", "connections|", "connection_spaces|"] {
        assert!(before.iter().any(|row| row.starts_with(table)), "the dump has {table}");
    }
    let avatars_before = a.alice.avatars("alpha").await;
    let cases: Vec<Case> = [msgraph::cases(&a), api::cases(&a), pages::cases(&a), popup::cases("msteams", &a.popup())]
        .into_iter()
        .flatten()
        .collect();
    assert!(cases.len() >= 50, "{} cases", cases.len());
    assert_eq!(refused_as_documented(cases).await, 7);

    // Every forged notification was dropped for what it was.
    for line in [
        "kehai_notifications_dropped_total{provider=\"msteams\",reason=\"unknown_subscription\"} 2",
        "kehai_notifications_dropped_total{provider=\"msteams\",reason=\"client_state\"} 3",
        "kehai_notifications_dropped_total{provider=\"msteams\",reason=\"validation_token\"} 2",
    ] {
        metric_becomes(&a.alice, line).await;
    }
    // Nothing stored, changed or deleted; the server answers as before.
    let after = app.sqlite_dump().await;
    let gone: Vec<_> = before.iter().filter(|r| !after.contains(r)).collect();
    let new: Vec<_> = after.iter().filter(|r| !before.contains(r)).collect();
    assert!(gone.is_empty() && new.is_empty(), "the database changed:\n- {gone:#?}\n+ {new:#?}");
    assert_eq!(a.alice.avatars("alpha").await, avatars_before);
    assert_eq!(a.alice.get("/healthz").await.status(), StatusCode::OK);
    assert_eq!(a.alice.put_me("alpha", json!({"emoji": "🌸"})).await.status(), StatusCode::OK);
    // …and Teams still reaches Alice's avatar.
    set_status(&emu, "alice@example.com", "BeRightBack").await;
    crate::support::microsoft::avatar_becomes(&a.alice, "⏳").await;
}
