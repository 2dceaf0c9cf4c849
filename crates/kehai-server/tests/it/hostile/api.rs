//! The JSON API: sessions, CSRF tokens, roles, and bodies of every wrong shape.

use reqwest::Method;
use serde_json::json;

use super::{Actors, Case, Code::*, api, case, nested, raw};

const ME: &str = "/api/spaces/alpha/me";
const TEAMS: &str = "/api/spaces/alpha/integrations/msteams";

pub(super) fn cases(a: &Actors<'_>) -> Vec<Case> {
    let Actors {
        app,
        alice,
        bob,
        carol,
        guest,
        expired,
        anonymous,
        alice_with_bobs_token,
        alice_without_token,
        alice_wrong_token,
        huge,
        ..
    } = a;
    vec![
        case("no session", api(anonymous, Method::PUT, ME, Some(json!({"emoji": "🌸"}))), 401, Json("unauthorized")),
        case(
            "an expired session",
            api(expired, Method::PUT, ME, Some(json!({"emoji": "🌸"}))),
            401,
            Json("unauthorized"),
        ),
        case(
            "an expired session reading",
            api(expired, Method::GET, "/api/spaces/alpha/avatars", None),
            401,
            Json("unauthorized"),
        ),
        case(
            "a made-up session cookie",
            anonymous
                .http
                .put(app.url(ME))
                .header("cookie", "kehai_session=bm90LWEtc2Vzc2lvbg")
                .json(&json!({"emoji": "🌸"})),
            401,
            Json("unauthorized"),
        ),
        case(
            "a mutation without CSRF token",
            api(alice_without_token, Method::PUT, ME, Some(json!({"emoji": "🌸"}))),
            403,
            Json("csrf_token_invalid"),
        ),
        case(
            "a wrong CSRF token",
            api(alice_wrong_token, Method::PUT, ME, Some(json!({"emoji": "🌸"}))),
            403,
            Json("csrf_token_invalid"),
        ),
        case(
            "another session's CSRF token",
            api(alice_with_bobs_token, Method::PUT, ME, Some(json!({"emoji": "🌸"}))),
            403,
            Json("csrf_token_invalid"),
        ),
        case(
            "text/plain instead of JSON",
            raw(alice, Method::PUT, ME, "text/plain", "{\"emoji\":\"🌸\"}"),
            415,
            Json("unsupported_media_type"),
        ),
        case(
            "a form instead of JSON",
            raw(alice, Method::PUT, ME, "application/x-www-form-urlencoded", "emoji=%F0%9F%8C%B8"),
            415,
            Json("unsupported_media_type"),
        ),
        case("broken JSON", raw(alice, Method::PUT, ME, "application/json", "{\"emoji\": "), 400, Json("invalid_json")),
        case(
            "invalid UTF-8",
            raw(alice, Method::PUT, ME, "application/json", b"{\"display_name\":\"\xff\"}".to_vec()),
            400,
            Json("invalid_json"),
        ),
        case(
            "deep nesting",
            raw(alice, Method::PUT, ME, "application/json", format!("{{\"display_name\":{}}}", nested(10_000))),
            422,
            Json("invalid_body"),
        ),
        case(
            "a body over 2 MiB",
            raw(alice, Method::PUT, ME, "application/json", huge.clone()),
            413,
            Json("payload_too_large"),
        ),
        case(
            "an unknown field",
            api(alice, Method::PUT, ME, Some(json!({"emoji": "🌸", "role": "admin"}))),
            422,
            Json("invalid_body"),
        ),
        case(
            "a field of the wrong type",
            api(alice, Method::PUT, ME, Some(json!({"display_name": 5}))),
            422,
            Json("invalid_body"),
        ),
        case(
            "a giant emoji",
            api(alice, Method::PUT, ME, Some(json!({"emoji": "😀".repeat(1000)}))),
            422,
            Json("invalid_emoji"),
        ),
        case("two emoji", api(alice, Method::PUT, ME, Some(json!({"emoji": "😀😀"}))), 422, Json("invalid_emoji")),
        case(
            "a flag and a letter",
            api(alice, Method::PUT, ME, Some(json!({"emoji": "🇯🇵a"}))),
            422,
            Json("invalid_emoji"),
        ),
        case("text as emoji", api(alice, Method::PUT, ME, Some(json!({"emoji": "<b>"}))), 422, Json("invalid_emoji")),
        case(
            "combining marks piled on an emoji",
            api(alice, Method::PUT, ME, Some(json!({"emoji": format!("😀{}", "\u{0301}".repeat(200))}))),
            422,
            Json("invalid_emoji"),
        ),
        case(
            "a digit with the emoji selector",
            api(alice, Method::PUT, ME, Some(json!({"emoji": "5\u{FE0F}"}))),
            422,
            Json("invalid_emoji"),
        ),
        case(
            "an empty name",
            api(alice, Method::PUT, ME, Some(json!({"display_name": "   "}))),
            422,
            Json("invalid_display_name"),
        ),
        case(
            "a name of 65 characters",
            api(alice, Method::PUT, ME, Some(json!({"display_name": "あ".repeat(65)}))),
            422,
            Json("invalid_display_name"),
        ),
        case(
            "a name with a NUL",
            api(alice, Method::PUT, ME, Some(json!({"display_name": "Al\u{0}ice"}))),
            422,
            Json("invalid_display_name"),
        ),
        case(
            "a name with a line break",
            api(alice, Method::PUT, ME, Some(json!({"display_name": "Alice\nAdmin"}))),
            422,
            Json("invalid_display_name"),
        ),
        case(
            "a name with a right-to-left override",
            api(alice, Method::PUT, ME, Some(json!({"display_name": "\u{202E}ecilA"}))),
            422,
            Json("invalid_display_name"),
        ),
        case(
            "another space's avatars",
            api(alice, Method::GET, "/api/spaces/beta/avatars", None),
            403,
            Json("forbidden"),
        ),
        case(
            "a change in another space",
            api(alice, Method::PUT, "/api/spaces/beta/me", Some(json!({"emoji": "🌸"}))),
            403,
            Json("forbidden"),
        ),
        case(
            "a guest in another space",
            api(guest, Method::PUT, "/api/spaces/beta/me", Some(json!({"emoji": "🌸"}))),
            403,
            Json("forbidden"),
        ),
        case(
            "a space that does not exist",
            api(alice, Method::PUT, "/api/spaces/nowhere/me", Some(json!({"emoji": "🌸"}))),
            404,
            Json("space_not_found"),
        ),
        case(
            "SQL as a slug",
            api(alice, Method::GET, "/api/spaces/alpha'%20OR%20'1'='1/avatars", None),
            404,
            Json("space_not_found"),
        ),
        case(
            "a path that climbs",
            api(alice, Method::GET, "/api/spaces/..%2F..%2Fetc/avatars", None),
            404,
            Json("space_not_found"),
        ),
        case(
            "a method the endpoint does not take",
            api(alice, Method::DELETE, ME, None),
            405,
            Json("method_not_allowed"),
        ),
        case(
            "an endpoint that does not exist",
            api(alice, Method::GET, "/api/spaces/alpha/secrets", None),
            404,
            Json("route_not_found"),
        ),
        case(
            "Teams toggle without CSRF token",
            api(alice_without_token, Method::PUT, TEAMS, Some(json!({"enabled": false}))),
            403,
            Json("csrf_token_invalid"),
        ),
        case(
            "Teams toggle with a string",
            api(alice, Method::PUT, TEAMS, Some(json!({"enabled": "no"}))),
            422,
            Json("invalid_body"),
        ),
        case(
            "Teams toggle in another space",
            api(alice, Method::PUT, "/api/spaces/beta/integrations/msteams", Some(json!({"enabled": false}))),
            403,
            Json("forbidden"),
        ),
        case(
            "Teams toggle by a guest",
            api(guest, Method::PUT, TEAMS, Some(json!({"enabled": false}))),
            403,
            Json("members_only"),
        ),
        case(
            "Teams toggle by someone not connected",
            api(bob, Method::PUT, TEAMS, Some(json!({"enabled": false}))),
            409,
            Json("not_connected"),
        ),
        case(
            "Teams disconnect without CSRF token",
            api(alice_without_token, Method::DELETE, TEAMS, None),
            403,
            Json("csrf_token_invalid"),
        ),
        case("Teams disconnect in another space", api(carol, Method::DELETE, TEAMS, None), 403, Json("forbidden")),
        case("Teams status of another space", api(carol, Method::GET, TEAMS, None), 403, Json("forbidden")),
        case("Teams status without session", api(anonymous, Method::GET, TEAMS, None), 401, Json("unauthorized")),
        case("another space's event stream", api(alice, Method::GET, "/s/beta/events", None), 403, Json("forbidden")),
        case(
            "an event stream without session",
            api(anonymous, Method::GET, "/s/alpha/events", None),
            401,
            Json("unauthorized"),
        ),
        case(
            "logout without CSRF token",
            raw(alice_without_token, Method::POST, "/logout", "application/x-www-form-urlencoded", ""),
            403,
            Json("csrf_token_invalid"),
        ),
    ]
}
