//! Forms and pages: login, guest entry, logout, static files.

use reqwest::Method;
use serde_json::json;

use super::{Actors, Case, Code::*, case, raw};

pub(super) fn cases(a: &Actors<'_>) -> Vec<Case> {
    let Actors { app, alice, anonymous, login_csrf, guest_csrf, huge, .. } = a;
    vec![
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
                ("csrf", login_csrf),
            ]),
            401,
            Page("login_failed"),
        ),
        case(
            "login with SQL as the address",
            anonymous.http.post(app.url("/login")).form(&[
                ("email", "' OR 1=1; --@x"),
                ("password", "x"),
                ("csrf", login_csrf),
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
            raw(anonymous, Method::POST, "/login", "application/x-www-form-urlencoded", huge.clone()),
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
            anonymous.http.post(app.url("/s/alpha/guest")).form(&[("display_name", "Eve\u{7}"), ("csrf", guest_csrf)]),
            422,
            Page("invalid_display_name"),
        ),
        case(
            "joining with a name of 200 characters",
            anonymous
                .http
                .post(app.url("/s/alpha/guest"))
                .form(&[("display_name", "E".repeat(200).as_str()), ("csrf", guest_csrf)]),
            422,
            Page("invalid_display_name"),
        ),
        case(
            "joining a space without guests",
            anonymous.http.post(app.url("/s/beta/guest")).form(&[("display_name", "Eve"), ("csrf", guest_csrf)]),
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
    ]
}
