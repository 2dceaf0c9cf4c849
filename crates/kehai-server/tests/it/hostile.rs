//! The bad-input table: malformed and hostile requests at every endpoint, each answered with
//! the status and stable code `docs/errors.md` documents for it, with nothing stored (the whole
//! database is the same before and after), no panic and the server healthy afterwards.

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
    what: &'static str,
    request: RequestBuilder,
    status: u16,
    code: Code,
}

fn case(what: &'static str, request: RequestBuilder, status: u16, code: Code) -> Case {
    Case { what, request, status, code }
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
    let connect = |query: &str| app.url(&format!("/integrations/msteams/connect?{query}&connect={alice_token}"));
    let guest_csrf = anonymous.form_csrf("/s/alpha/guest").await;
    let genuine = basic_notification_json(&app, None).await;
    let genuine_state = genuine["value"][0]["clientState"].as_str().unwrap().to_owned();
    let webhook = "/webhooks/msgraph";
    let lifecycle = "/webhooks/msgraph/lifecycle";
    let me = "/api/spaces/alpha/me";
    let teams = "/api/spaces/alpha/integrations/msteams";
    let huge = vec![b'a'; 3 * 1024 * 1024];

    let before = app.sqlite_dump().await;
    for table in ["accounts|", "avatars|", "sessions|", "connections|", "connection_spaces|"] {
        assert!(before.iter().any(|row| row.starts_with(table)), "the dump has {table}");
    }
    let avatars_before = alice.avatars("alpha").await;

    use Code::*;
    let cases = vec![
        // --- the webhook: anyone can post to it ------------------------------------------------
        case(
            "broken JSON",
            raw(&forger, Method::POST, webhook, "application/json", "{\"value\": ["),
            400,
            Json("invalid_notification"),
        ),
        case(
            "JSON that is not a collection",
            raw(&forger, Method::POST, webhook, "application/json", "[]"),
            400,
            Json("invalid_notification"),
        ),
        case(
            "value of the wrong type",
            api(&forger, Method::POST, webhook, Some(json!({"value": "x"}))),
            400,
            Json("invalid_notification"),
        ),
        case(
            "a notification without subscriptionId",
            api(&forger, Method::POST, webhook, Some(json!({"value": [{}]}))),
            400,
            Json("invalid_notification"),
        ),
        case(
            "an empty body",
            raw(&forger, Method::POST, webhook, "application/json", ""),
            400,
            Json("invalid_notification"),
        ),
        case(
            "invalid UTF-8",
            raw(
                &forger,
                Method::POST,
                webhook,
                "application/json",
                b"{\"value\":[{\"subscriptionId\":\"\xff\xfe\"}]}".to_vec(),
            ),
            400,
            Json("invalid_notification"),
        ),
        case(
            "deep nesting",
            raw(
                &forger,
                Method::POST,
                webhook,
                "application/json",
                format!("{{\"value\":[{{\"subscriptionId\":\"s\",\"resourceData\":{}}}]}}", nested(100_000)),
            ),
            400,
            Json("invalid_notification"),
        ),
        case(
            "a body over 1 MiB",
            raw(&forger, Method::POST, webhook, "application/json", huge.clone()),
            413,
            Json("payload_too_large"),
        ),
        case(
            "a body over 1 MiB, lifecycle",
            raw(&forger, Method::POST, lifecycle, "application/json", huge.clone()),
            413,
            Json("payload_too_large"),
        ),
        case(
            "40,000 made-up notifications in one POST",
            raw(
                &forger,
                Method::POST,
                webhook,
                "application/json",
                format!("{{\"value\":[{}]}}", vec![r#"{"subscriptionId":"x"}"#; 40_000].join(",")),
            ),
            413,
            Json("too_many_notifications"),
        ),
        case("GET on the webhook", api(&forger, Method::GET, webhook, None), 405, Json("method_not_allowed")),
        case(
            "forged: unknown subscription",
            api(
                &forger,
                Method::POST,
                webhook,
                Some(forged(&genuine, |n| n["subscriptionId"] = json!("00000000-0000-0000-0000-000000000000"))),
            ),
            202,
            Accepted,
        ),
        case(
            "forged: wrong clientState",
            api(&forger, Method::POST, webhook, Some(forged(&genuine, |n| n["clientState"] = json!("guessed")))),
            202,
            Accepted,
        ),
        case(
            "forged: no clientState",
            api(
                &forger,
                Method::POST,
                webhook,
                Some(forged(&genuine, |n| {
                    n.as_object_mut().unwrap().remove("clientState");
                })),
            ),
            202,
            Accepted,
        ),
        case(
            "forged rich notification without validation tokens",
            api(
                &forger,
                Method::POST,
                webhook,
                Some(forged(
                    &genuine,
                    |n| n["encryptedContent"] = json!({"data": "AAAA", "dataSignature": "AAAA", "dataKey": "AAAA", "encryptionCertificateId": "x"}),
                )),
            ),
            202,
            Accepted,
        ),
        case(
            "forged rich notification with a made-up validation token",
            api(
                &forger,
                Method::POST,
                webhook,
                Some({
                    let mut v = forged(
                        &genuine,
                        |n| n["encryptedContent"] = json!({"data": "AAAA", "dataSignature": "AAAA", "dataKey": "AAAA", "encryptionCertificateId": "x"}),
                    );
                    v["validationTokens"] = json!(["eyJhbGciOiJSUzI1NiIsImtpZCI6Im1hZGUtdXAifQ.eyJ0aWQiOiJ4In0.c2ln"]);
                    v
                }),
            ),
            202,
            Accepted,
        ),
        case(
            "forged lifecycle: subscriptionRemoved with a wrong clientState",
            api(
                &forger,
                Method::POST,
                lifecycle,
                Some(forged(&genuine, |n| {
                    n["clientState"] = json!("guessed");
                    n["lifecycleEvent"] = json!("subscriptionRemoved");
                })),
            ),
            202,
            Accepted,
        ),
        case(
            "forged lifecycle: reauthorizationRequired for an unknown subscription",
            api(
                &forger,
                Method::POST,
                lifecycle,
                Some(forged(&genuine, |n| {
                    n["subscriptionId"] = json!("unknown");
                    n["clientState"] = json!(genuine_state);
                    n["lifecycleEvent"] = json!("reauthorizationRequired");
                })),
            ),
            202,
            Accepted,
        ),
        // --- the JSON API -------------------------------------------------------------------------
        case("no session", api(&anonymous, Method::PUT, me, Some(json!({"emoji": "🌸"}))), 401, Json("unauthorized")),
        case(
            "an expired session",
            api(&expired, Method::PUT, me, Some(json!({"emoji": "🌸"}))),
            401,
            Json("unauthorized"),
        ),
        case(
            "an expired session reading",
            api(&expired, Method::GET, "/api/spaces/alpha/avatars", None),
            401,
            Json("unauthorized"),
        ),
        case(
            "a made-up session cookie",
            anonymous
                .http
                .put(app.url(me))
                .header("cookie", "kehai_session=bm90LWEtc2Vzc2lvbg")
                .json(&json!({"emoji": "🌸"})),
            401,
            Json("unauthorized"),
        ),
        case(
            "a mutation without CSRF token",
            api(&alice_without_token, Method::PUT, me, Some(json!({"emoji": "🌸"}))),
            403,
            Json("csrf_token_invalid"),
        ),
        case(
            "a wrong CSRF token",
            api(&alice_wrong_token, Method::PUT, me, Some(json!({"emoji": "🌸"}))),
            403,
            Json("csrf_token_invalid"),
        ),
        case(
            "another session's CSRF token",
            api(&alice_with_bobs_token, Method::PUT, me, Some(json!({"emoji": "🌸"}))),
            403,
            Json("csrf_token_invalid"),
        ),
        case(
            "text/plain instead of JSON",
            raw(&alice, Method::PUT, me, "text/plain", "{\"emoji\":\"🌸\"}"),
            415,
            Json("unsupported_media_type"),
        ),
        case(
            "a form instead of JSON",
            raw(&alice, Method::PUT, me, "application/x-www-form-urlencoded", "emoji=%F0%9F%8C%B8"),
            415,
            Json("unsupported_media_type"),
        ),
        case(
            "broken JSON",
            raw(&alice, Method::PUT, me, "application/json", "{\"emoji\": "),
            400,
            Json("invalid_json"),
        ),
        case(
            "invalid UTF-8",
            raw(&alice, Method::PUT, me, "application/json", b"{\"display_name\":\"\xff\"}".to_vec()),
            400,
            Json("invalid_json"),
        ),
        case(
            "deep nesting",
            raw(&alice, Method::PUT, me, "application/json", format!("{{\"display_name\":{}}}", nested(10_000))),
            422,
            Json("invalid_body"),
        ),
        case(
            "a body over 2 MiB",
            raw(&alice, Method::PUT, me, "application/json", huge.clone()),
            413,
            Json("payload_too_large"),
        ),
        case(
            "an unknown field",
            api(&alice, Method::PUT, me, Some(json!({"emoji": "🌸", "role": "admin"}))),
            422,
            Json("invalid_body"),
        ),
        case(
            "a field of the wrong type",
            api(&alice, Method::PUT, me, Some(json!({"display_name": 5}))),
            422,
            Json("invalid_body"),
        ),
        case(
            "a giant emoji",
            api(&alice, Method::PUT, me, Some(json!({"emoji": "😀".repeat(1000)}))),
            422,
            Json("invalid_emoji"),
        ),
        case("two emoji", api(&alice, Method::PUT, me, Some(json!({"emoji": "😀😀"}))), 422, Json("invalid_emoji")),
        case(
            "a flag and a letter",
            api(&alice, Method::PUT, me, Some(json!({"emoji": "🇯🇵a"}))),
            422,
            Json("invalid_emoji"),
        ),
        case("text as emoji", api(&alice, Method::PUT, me, Some(json!({"emoji": "<b>"}))), 422, Json("invalid_emoji")),
        case(
            "combining marks piled on an emoji",
            api(&alice, Method::PUT, me, Some(json!({"emoji": format!("😀{}", "\u{0301}".repeat(200))}))),
            422,
            Json("invalid_emoji"),
        ),
        case(
            "a digit with the emoji selector",
            api(&alice, Method::PUT, me, Some(json!({"emoji": "5\u{FE0F}"}))),
            422,
            Json("invalid_emoji"),
        ),
        case(
            "an empty name",
            api(&alice, Method::PUT, me, Some(json!({"display_name": "   "}))),
            422,
            Json("invalid_display_name"),
        ),
        case(
            "a name of 65 characters",
            api(&alice, Method::PUT, me, Some(json!({"display_name": "あ".repeat(65)}))),
            422,
            Json("invalid_display_name"),
        ),
        case(
            "a name with a NUL",
            api(&alice, Method::PUT, me, Some(json!({"display_name": "Al\u{0}ice"}))),
            422,
            Json("invalid_display_name"),
        ),
        case(
            "a name with a line break",
            api(&alice, Method::PUT, me, Some(json!({"display_name": "Alice\nAdmin"}))),
            422,
            Json("invalid_display_name"),
        ),
        case(
            "a name with a right-to-left override",
            api(&alice, Method::PUT, me, Some(json!({"display_name": "\u{202E}ecilA"}))),
            422,
            Json("invalid_display_name"),
        ),
        case(
            "another space's avatars",
            api(&alice, Method::GET, "/api/spaces/beta/avatars", None),
            403,
            Json("forbidden"),
        ),
        case(
            "a change in another space",
            api(&alice, Method::PUT, "/api/spaces/beta/me", Some(json!({"emoji": "🌸"}))),
            403,
            Json("forbidden"),
        ),
        case(
            "a guest in another space",
            api(&guest, Method::PUT, "/api/spaces/beta/me", Some(json!({"emoji": "🌸"}))),
            403,
            Json("forbidden"),
        ),
        case(
            "a space that does not exist",
            api(&alice, Method::PUT, "/api/spaces/nowhere/me", Some(json!({"emoji": "🌸"}))),
            404,
            Json("space_not_found"),
        ),
        case(
            "SQL as a slug",
            api(&alice, Method::GET, "/api/spaces/alpha'%20OR%20'1'='1/avatars", None),
            404,
            Json("space_not_found"),
        ),
        case(
            "a path that climbs",
            api(&alice, Method::GET, "/api/spaces/..%2F..%2Fetc/avatars", None),
            404,
            Json("space_not_found"),
        ),
        case(
            "a method the endpoint does not take",
            api(&alice, Method::DELETE, me, None),
            405,
            Json("method_not_allowed"),
        ),
        case(
            "an endpoint that does not exist",
            api(&alice, Method::GET, "/api/spaces/alpha/secrets", None),
            404,
            Json("route_not_found"),
        ),
        case(
            "Teams toggle without CSRF token",
            api(&alice_without_token, Method::PUT, teams, Some(json!({"enabled": false}))),
            403,
            Json("csrf_token_invalid"),
        ),
        case(
            "Teams toggle with a string",
            api(&alice, Method::PUT, teams, Some(json!({"enabled": "no"}))),
            422,
            Json("invalid_body"),
        ),
        case(
            "Teams toggle in another space",
            api(&alice, Method::PUT, "/api/spaces/beta/integrations/msteams", Some(json!({"enabled": false}))),
            403,
            Json("forbidden"),
        ),
        case(
            "Teams toggle by a guest",
            api(&guest, Method::PUT, teams, Some(json!({"enabled": false}))),
            403,
            Json("members_only"),
        ),
        case(
            "Teams toggle by someone not connected",
            api(&bob, Method::PUT, teams, Some(json!({"enabled": false}))),
            409,
            Json("not_connected"),
        ),
        case(
            "Teams disconnect without CSRF token",
            api(&alice_without_token, Method::DELETE, teams, None),
            403,
            Json("csrf_token_invalid"),
        ),
        case("Teams disconnect in another space", api(&carol, Method::DELETE, teams, None), 403, Json("forbidden")),
        case("Teams status of another space", api(&carol, Method::GET, teams, None), 403, Json("forbidden")),
        case("Teams status without session", api(&anonymous, Method::GET, teams, None), 401, Json("unauthorized")),
        case("another space's event stream", api(&alice, Method::GET, "/s/beta/events", None), 403, Json("forbidden")),
        case(
            "an event stream without session",
            api(&anonymous, Method::GET, "/s/alpha/events", None),
            401,
            Json("unauthorized"),
        ),
        case(
            "logout without CSRF token",
            raw(&alice_without_token, Method::POST, "/logout", "application/x-www-form-urlencoded", ""),
            403,
            Json("csrf_token_invalid"),
        ),
        // --- forms and pages -----------------------------------------------------------------------
        case(
            "login without CSRF token",
            anonymous
                .http
                .post(app.url("/login"))
                .form(&[("email", "alice@example.com"), ("password", crate::support::PASSWORD)]),
            403,
            Page("csrf_token_invalid"),
        ),
        case(
            "login with a wrong password",
            anonymous.http.post(app.url("/login")).form(&[
                ("email", "alice@example.com"),
                ("password", "' OR '1'='1"),
                ("csrf", &login_csrf),
            ]),
            401,
            Page("login_failed"),
        ),
        case(
            "login with SQL as the address",
            anonymous.http.post(app.url("/login")).form(&[
                ("email", "' OR 1=1; --@x"),
                ("password", "x"),
                ("csrf", &login_csrf),
            ]),
            401,
            Page("login_failed"),
        ),
        case(
            "login as JSON",
            anonymous.http.post(app.url("/login")).json(&json!({"email": "alice@example.com"})),
            415,
            Json("unsupported_media_type"),
        ),
        case(
            "login over 2 MiB",
            raw(&anonymous, Method::POST, "/login", "application/x-www-form-urlencoded", huge.clone()),
            413,
            Json("payload_too_large"),
        ),
        case(
            "joining as a guest without CSRF token",
            anonymous.http.post(app.url("/s/alpha/guest")).form(&[("display_name", "Eve")]),
            403,
            Page("csrf_token_invalid"),
        ),
        case(
            "joining with a control character in the name",
            anonymous.http.post(app.url("/s/alpha/guest")).form(&[("display_name", "Eve\u{7}"), ("csrf", &guest_csrf)]),
            422,
            Page("invalid_display_name"),
        ),
        case(
            "joining with a name of 200 characters",
            anonymous
                .http
                .post(app.url("/s/alpha/guest"))
                .form(&[("display_name", "E".repeat(200).as_str()), ("csrf", &guest_csrf)]),
            422,
            Page("invalid_display_name"),
        ),
        case(
            "joining a space without guests",
            anonymous.http.post(app.url("/s/beta/guest")).form(&[("display_name", "Eve"), ("csrf", &guest_csrf)]),
            403,
            Page("guests_not_allowed"),
        ),
        case("another space's page", alice.http.get(app.url("/s/beta")), 403, Page("forbidden")),
        case(
            "a space page that does not exist",
            alice.http.get(app.url("/s/nowhere")).header("accept", "text/html"),
            404,
            Page("space_not_found"),
        ),
        case(
            "a static file that climbs",
            anonymous.http.get(app.url("/static/..%2F..%2FCargo.toml")),
            404,
            Json("route_not_found"),
        ),
        // --- the Teams sign-in ---------------------------------------------------------------------
        case("a replayed OAuth callback", alice.http.get(&callback), 400, Outcome("expired")),
        case(
            "a callback with a made-up state",
            alice.http.get(app.url("/integrations/msteams/callback?state=made-up&code=stolen")),
            400,
            Outcome("expired"),
        ),
        case(
            "a callback without state",
            alice.http.get(app.url("/integrations/msteams/callback?code=stolen")),
            400,
            Outcome("expired"),
        ),
        case(
            "a callback with script in its error",
            alice.http.get(app.url("/integrations/msteams/callback?state=x&error=%3Cscript%3Ealert(1)%3C/script%3E")),
            400,
            Outcome("expired"),
        ),
        case(
            "a callback with two states",
            alice.http.get(app.url("/integrations/msteams/callback?state=a&state=b&code=c")),
            400,
            Outcome("expired"),
        ),
        case(
            "connecting Teams to two spaces at once",
            alice.http.get(connect("space=alpha&space=beta")),
            404,
            Page("space_not_found"),
        ),
        case(
            "a callback without session",
            anonymous
                .http
                .get(app.url(&format!("/integrations/msteams/callback?{}", callback.split_once('?').unwrap().1))),
            400,
            Outcome("expired"),
        ),
        case("connecting Teams to another space", alice.http.get(connect("space=beta")), 403, Page("forbidden")),
        case(
            "connecting Teams to a space that does not exist",
            alice.http.get(connect("space=%3Cscript%3E")),
            404,
            Page("space_not_found"),
        ),
        case(
            "connecting Teams from a link elsewhere (no token)",
            alice.http.get(app.url("/integrations/msteams/connect?space=alpha")),
            400,
            Outcome("expired"),
        ),
        case(
            "connecting Teams with another session's token",
            alice.http.get(app.url(&format!("/integrations/msteams/connect?space=alpha&connect={bob_token}"))),
            400,
            Outcome("expired"),
        ),
        case(
            "connecting Teams with the token given twice",
            alice.http.get(app.url(&format!(
                "/integrations/msteams/connect?space=alpha&connect={alice_token}&connect={alice_token}"
            ))),
            400,
            Outcome("expired"),
        ),
        case(
            "connecting Teams as a guest",
            guest.http.get(app.url("/integrations/msteams/connect?space=alpha")),
            403,
            Outcome("members-only"),
        ),
    ];
    assert!(cases.len() >= 50, "{} cases", cases.len());
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
    assert_eq!(forged_accepted, 7);

    // Every forged notification was dropped for what it was.
    for line in [
        "kehai_notifications_dropped_total{provider=\"msteams\",reason=\"unknown_subscription\"} 2",
        "kehai_notifications_dropped_total{provider=\"msteams\",reason=\"client_state\"} 3",
        "kehai_notifications_dropped_total{provider=\"msteams\",reason=\"validation_token\"} 2",
    ] {
        metric_becomes(&alice, line).await;
    }
    // Nothing stored, changed or deleted; the server answers as before.
    let after = app.sqlite_dump().await;
    let gone: Vec<_> = before.iter().filter(|r| !after.contains(r)).collect();
    let new: Vec<_> = after.iter().filter(|r| !before.contains(r)).collect();
    assert!(gone.is_empty() && new.is_empty(), "the database changed:\n- {gone:#?}\n+ {new:#?}");
    assert_eq!(alice.avatars("alpha").await, avatars_before);
    assert_eq!(alice.get("/healthz").await.status(), StatusCode::OK);
    assert_eq!(alice.put_me("alpha", json!({"emoji": "🌸"})).await.status(), StatusCode::OK);
    // …and Teams still reaches Alice's avatar.
    set_status(&emu, "alice@example.com", "BeRightBack").await;
    crate::support::microsoft::avatar_becomes(&alice, "⏳").await;
}

/// Script, HTML and SQL in names are names: stored as typed, shown as text.
#[tokio::test]
async fn markup_and_sql_in_names_are_stored_as_typed_and_shown_as_text() {
    let app = TestApp::start().await;
    let mut alice = app.member("alice@example.com").await;
    alice.load_space("alpha").await;
    let names = [
        "<script>alert(1)</script>",
        "<img src=x onerror=alert(1)>",
        "Robert'); DROP TABLE avatars;--",
        "\"}]</script><b>",
    ];
    for name in names {
        let r = alice.put_me("alpha", json!({ "display_name": name })).await;
        assert_eq!(r.status(), StatusCode::OK, "{name}");
        let avatars = alice.avatars("alpha").await;
        assert!(avatars.iter().any(|a| a["display_name"] == name), "{name} stored as typed");
        let page = alice.get("/s/alpha").await.text().await.unwrap();
        for raw in ["<script>alert", "<img src=x", "</script><b>"] {
            assert!(!page.contains(raw), "{name} shown as markup: {raw}");
        }
        let shown = between(&page, "<span class=\"whoami\">", "</span>").expect("the name on the page");
        assert_eq!(unescape(&shown), name, "shown as text: {shown}");
        // The page's embedded data is still JSON.
        alice.load_space("alpha").await;
    }
    assert_eq!(app.stored_avatars("alpha").await.len(), 2, "the avatars table is still there");
}

/// HTML text back to what it says (the entities an escaper writes).
fn unescape(html: &str) -> String {
    let mut text = html.to_owned();
    for (entity, c) in [
        ("&lt;", "<"),
        ("&#60;", "<"),
        ("&gt;", ">"),
        ("&#62;", ">"),
        ("&quot;", "\""),
        ("&#34;", "\""),
        ("&#x27;", "'"),
        ("&#39;", "'"),
        ("&amp;", "&"),
        ("&#38;", "&"),
    ] {
        text = text.replace(entity, c);
    }
    text
}
