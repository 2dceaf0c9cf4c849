//! The authorization endpoint and the code exchange: PKCE, both client authentications,
//! single-use codes, granular consent, `hd`, prompts, error screens and redirects.

use reqwest::StatusCode;
use serde_json::Value;

use crate::support::*;

const CALENDAR_READONLY: &str = "https://www.googleapis.com/auth/calendar.readonly";

#[tokio::test]
async fn the_code_flow_with_pkce_and_client_secret_post_gives_googles_token_response() {
    let emu = start().await;
    let (verifier, challenge) = pkce();
    let browser = browser();
    let chooser = get(&browser, &authorize_url(&emu, CLIENT_ID, KEHAI_SCOPES, &challenge, &[])).await.page();
    assert!(chooser.contains("Choose an account"));
    let consent_page = choose(&emu, &browser, &chooser, "alice@example.com").await.page();
    assert_eq!(checkboxes(&consent_page), [FREEBUSY], "only the calendar scope can be unticked");
    let params = consent(&emu, &browser, &consent_page, "allow", None).await.redirect();
    assert_eq!(params["state"], "st-123");
    assert!(params["code"].starts_with("4/"));
    assert_eq!(params["scope"], format!("{FREEBUSY} {EMAIL} openid"));
    assert_eq!(
        (params["authuser"].as_str(), params["hd"].as_str(), params["prompt"].as_str()),
        ("0", "example.com", "consent")
    );

    let (status, body) = redeem(&emu, CLIENT_ID, &params["code"], &verifier).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let mut keys: Vec<&str> = body.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort();
    assert_eq!(keys, ["access_token", "expires_in", "id_token", "refresh_token", "scope", "token_type"]);
    assert_eq!(body["expires_in"], 3599);
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["scope"], format!("{FREEBUSY} {EMAIL} openid"), "email normalized, openid kept");
    assert!(body["access_token"].as_str().unwrap().starts_with("ya29."));
    assert!(body["refresh_token"].as_str().unwrap().starts_with("1//"));

    let id = claims(body["id_token"].as_str().unwrap());
    assert_eq!(id["iss"], emu.url(""));
    assert_eq!((id["aud"].as_str(), id["azp"].as_str()), (Some(CLIENT_ID), Some(CLIENT_ID)));
    assert_eq!(id["email"], "alice@example.com");
    assert_eq!(id["email_verified"], Value::Bool(true), "a boolean, not a string");
    assert_eq!(id["hd"], "example.com");
    assert_eq!(id["nonce"], "n-456");
    let sub = id["sub"].as_str().unwrap();
    assert!(sub.len() >= 20 && sub.chars().all(|c| c.is_ascii_digit()), "{sub}");
    let at_hash = googleemu::identity::tokens::at_hash(body["access_token"].as_str().unwrap());
    assert_eq!(id["at_hash"], at_hash);
    let (iat, exp) = (id["iat"].as_i64().unwrap(), id["exp"].as_i64().unwrap());
    assert_eq!(exp - iat, 3600);
    assert!((iat - time::OffsetDateTime::now_utc().unix_timestamp()).abs() < 5);
    assert!(id.get("name").is_none(), "no profile scope, no name");

    // The same person again: the same sub.
    let again = connect(&emu, "alice@example.com", KEHAI_SCOPES).await;
    assert_eq!(claims(again["id_token"].as_str().unwrap())["sub"], sub);
}

#[tokio::test]
async fn http_basic_client_authentication_and_plain_pkce_work_too() {
    let emu = start().await;
    let verifier = "plain-verifier-0123456789-0123456789-0123456789";
    // authorize_url asks for S256; drop that so that the plain method stands.
    let url = authorize_url(&emu, CLIENT_ID, "openid email", verifier, &[("code_challenge_method", "plain")])
        .replace("code_challenge_method=S256&", "");
    let browser = browser();
    let chooser = get(&browser, &url).await.page();
    let consent_page = choose(&emu, &browser, &chooser, "bob@example.com").await.page();
    let code = consent(&emu, &browser, &consent_page, "allow", None).await.redirect()["code"].clone();
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", REDIRECT_URI),
        ("code_verifier", verifier),
    ];
    let (status, body) = token(&emu, &form, Some((CLIENT_ID, SECRET))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(claims(body["id_token"].as_str().unwrap())["email"], "bob@example.com");
}

#[tokio::test]
async fn codes_are_single_use_and_checked() {
    let emu = start().await;
    let (verifier, challenge) = pkce();
    let params = authorize(&emu, &browser(), CLIENT_ID, KEHAI_SCOPES, &challenge, "alice@example.com", &[]).await;
    let code = &params["code"];

    let (status, body) = redeem(&emu, CLIENT_ID, code, "wrong-verifier-wrong-verifier-wrong-verifier-1").await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_grant")));
    let secret = SECRET;
    let mut form = vec![
        ("grant_type", "authorization_code"),
        ("client_id", CLIENT_ID),
        ("client_secret", secret),
        ("code", code.as_str()),
        ("redirect_uri", "http://app.test/other"),
        ("code_verifier", verifier.as_str()),
    ];
    let (status, body) = token(&emu, &form, None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body, serde_json::json!({"error": "redirect_uri_mismatch", "error_description": "Bad Request"}));
    form[2] = ("client_secret", "wrong");
    let (status, body) = token(&emu, &form, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body, serde_json::json!({"error": "invalid_client", "error_description": "Unauthorized"}));

    let (status, _) = redeem(&emu, CLIENT_ID, code, &verifier).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = redeem(&emu, CLIENT_ID, code, &verifier).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body, serde_json::json!({"error": "invalid_grant", "error_description": "Bad Request"}), "used once");

    let (status, body) =
        token(&emu, &[("grant_type", "password"), ("client_id", CLIENT_ID), ("client_secret", SECRET)], None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "unsupported_grant_type");
    assert_eq!(body["error_description"], "Invalid grant_type: password");

    // Codes live ten minutes on the emulator's clock.
    let (verifier, challenge) = pkce();
    let params =
        authorize(&emu, &browser(), CLIENT_ID, KEHAI_SCOPES, &challenge, "alice@example.com", &[("prompt", "consent")])
            .await;
    emu.advance(std::time::Duration::from_secs(601));
    let (status, body) = redeem(&emu, CLIENT_ID, &params["code"], &verifier).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_grant")));
}

#[tokio::test]
async fn unticking_the_calendar_scope_grants_the_rest() {
    let emu = start().await;
    let (verifier, challenge) = pkce();
    let browser = browser();
    let chooser = get(&browser, &authorize_url(&emu, CLIENT_ID, KEHAI_SCOPES, &challenge, &[])).await.page();
    let consent_page = choose(&emu, &browser, &chooser, "alice@example.com").await.page();
    let params = consent(&emu, &browser, &consent_page, "allow", Some(&[])).await.redirect();
    let (_, body) = redeem(&emu, CLIENT_ID, &params["code"], &verifier).await;
    assert_eq!(body["scope"], format!("{EMAIL} openid"));
    let (status, _, error) = calendar(
        &emu,
        "POST",
        "/freeBusy",
        body["access_token"].as_str().unwrap(),
        Some(serde_json::json!({"timeMin": "2026-01-01T00:00:00Z", "timeMax": "2026-01-02T00:00:00Z", "items": [{"id": "primary"}]})),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(error["error"]["status"], "PERMISSION_DENIED");

    // Asking again shows consent again: the calendar scope was never granted.
    let (_, challenge) = pkce();
    let next = get(&browser, &authorize_url(&emu, CLIENT_ID, KEHAI_SCOPES, &challenge, &[])).await.page();
    assert!(next.contains("wants access to your Google Account"), "{next}");
}

#[tokio::test]
async fn cancel_redirects_access_denied_with_the_state() {
    let emu = start().await;
    let (_, challenge) = pkce();
    let browser = browser();
    let chooser = get(&browser, &authorize_url(&emu, CLIENT_ID, KEHAI_SCOPES, &challenge, &[])).await.page();
    let consent_page = choose(&emu, &browser, &chooser, "alice@example.com").await.page();
    let params = consent(&emu, &browser, &consent_page, "cancel", None).await.redirect();
    assert_eq!(params.len(), 2, "{params:?}");
    assert_eq!((params["error"].as_str(), params["state"].as_str()), ("access_denied", "st-123"));
}

#[tokio::test]
async fn hd_is_a_claim_of_organization_accounts_only_and_the_hint_is_never_enforced() {
    let emu = start().await;
    let carol = connect(&emu, "carol@gmail.com", KEHAI_SCOPES).await;
    let id = claims(carol["id_token"].as_str().unwrap());
    assert_eq!(id["email"], "carol@gmail.com");
    assert!(id.get("hd").is_none(), "a consumer account has no hd: {id}");
    let dave = connect(&emu, "dave@other.example", KEHAI_SCOPES).await;
    assert_eq!(claims(dave["id_token"].as_str().unwrap())["hd"], "other.example");

    // hd=example.com narrows the chooser, but carol can still type her address in.
    let (verifier, challenge) = pkce();
    let browser = browser();
    let url = authorize_url(&emu, CLIENT_ID, KEHAI_SCOPES, &challenge, &[("hd", "example.com")]);
    let chooser = get(&browser, &url).await.page();
    assert!(chooser.contains("value=\"alice@example.com\"") && chooser.contains("value=\"bob@example.com\""));
    assert!(!chooser.contains("value=\"carol@gmail.com\"") && !chooser.contains("value=\"dave@other.example\""));
    // Carol consented before (above): straight back to the app.
    let params = sign_in(&emu, &browser, &chooser, "carol@gmail.com", "carol-password").await.redirect();
    assert!(!params.contains_key("hd"));
    let (status, body) = redeem(&emu, CLIENT_ID, &params["code"], &verifier).await;
    assert_eq!(status, StatusCode::OK);
    assert!(claims(body["id_token"].as_str().unwrap()).get("hd").is_none());

    let chooser = get(
        &browser,
        &authorize_url(&emu, CLIENT_ID, KEHAI_SCOPES, &challenge, &[("hd", "*"), ("prompt", "select_account")]),
    )
    .await
    .page();
    assert!(chooser.contains("value=\"dave@other.example\"") && !chooser.contains("value=\"carol@gmail.com\""));
}

#[tokio::test]
async fn a_refresh_token_comes_with_the_first_consent_and_with_prompt_consent() {
    let emu = start().await;
    let browser = browser();
    let (verifier, challenge) = pkce();
    let first = authorize(&emu, &browser, CLIENT_ID, KEHAI_SCOPES, &challenge, "alice@example.com", &[]).await;
    let (_, body) = redeem(&emu, CLIENT_ID, &first["code"], &verifier).await;
    assert!(body["refresh_token"].is_string(), "first consent: {body}");

    // Signed in and consented: straight back, no refresh token.
    let (verifier, challenge) = pkce();
    let second = get(&browser, &authorize_url(&emu, CLIENT_ID, KEHAI_SCOPES, &challenge, &[])).await.redirect();
    assert_eq!(second["prompt"], "none");
    let (_, body) = redeem(&emu, CLIENT_ID, &second["code"], &verifier).await;
    assert!(body.get("refresh_token").is_none(), "{body}");
    assert!(body["id_token"].is_string());

    let (verifier, challenge) = pkce();
    let third =
        authorize(&emu, &browser, CLIENT_ID, KEHAI_SCOPES, &challenge, "alice@example.com", &[("prompt", "consent")])
            .await;
    let (_, body) = redeem(&emu, CLIENT_ID, &third["code"], &verifier).await;
    assert!(body["refresh_token"].is_string(), "prompt=consent: {body}");

    // Online access never gets one.
    let (verifier, challenge) = pkce();
    let url = authorize_url(&emu, CLIENT_ID, KEHAI_SCOPES, &challenge, &[("prompt", "consent")])
        .replace("access_type=offline", "access_type=online");
    let page = get(&browser, &url).await.page();
    let params = consent(&emu, &browser, &page, "allow", None).await.redirect();
    let (_, body) = redeem(&emu, CLIENT_ID, &params["code"], &verifier).await;
    assert!(body.get("refresh_token").is_none());
}

#[tokio::test]
async fn prompt_none_answers_login_required_or_consent_required_without_a_page() {
    let emu = start().await;
    let browser = browser();
    let (_, challenge) = pkce();
    let params = get(&browser, &authorize_url(&emu, CLIENT_ID, KEHAI_SCOPES, &challenge, &[("prompt", "none")]))
        .await
        .redirect();
    assert_eq!((params["error"].as_str(), params["state"].as_str()), ("login_required", "st-123"));

    authorize(&emu, &browser, CLIENT_ID, "openid email", &challenge, "alice@example.com", &[]).await;
    let params = get(&browser, &authorize_url(&emu, CLIENT_ID, KEHAI_SCOPES, &challenge, &[("prompt", "none")]))
        .await
        .redirect();
    assert_eq!(params["error"], "consent_required", "the calendar scope is new");
    let params = get(&browser, &authorize_url(&emu, CLIENT_ID, "openid email", &challenge, &[("prompt", "none")]))
        .await
        .redirect();
    assert!(params.contains_key("code"), "{params:?}");

    let (status, html) =
        get(&browser, &authorize_url(&emu, CLIENT_ID, "openid", &challenge, &[("prompt", "none consent")]))
            .await
            .error_page();
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(html.contains("invalid_request"));
}

#[tokio::test]
async fn include_granted_scopes_adds_what_was_granted_before() {
    let emu = start().await;
    let browser = browser();
    let (verifier, challenge) = pkce();
    let first = authorize(
        &emu,
        &browser,
        CLIENT_ID,
        &format!("openid email {CALENDAR_READONLY}"),
        &challenge,
        "alice@example.com",
        &[],
    )
    .await;
    redeem(&emu, CLIENT_ID, &first["code"], &verifier).await;
    let (verifier, challenge) = pkce();
    let params = authorize(
        &emu,
        &browser,
        CLIENT_ID,
        "openid email",
        &challenge,
        "alice@example.com",
        &[("include_granted_scopes", "true")],
    )
    .await;
    let (_, body) = redeem(&emu, CLIENT_ID, &params["code"], &verifier).await;
    assert_eq!(body["scope"], format!("{CALENDAR_READONLY} {EMAIL} openid"));
    let (verifier, challenge) = pkce();
    let params = authorize(&emu, &browser, CLIENT_ID, "openid email", &challenge, "alice@example.com", &[]).await;
    let (_, body) = redeem(&emu, CLIENT_ID, &params["code"], &verifier).await;
    assert_eq!(body["scope"], format!("{EMAIL} openid"), "without it, only what was asked");
}

#[tokio::test]
async fn unregistered_redirect_uris_and_unknown_clients_get_an_error_screen_never_a_redirect() {
    let emu = start().await;
    let (_, challenge) = pkce();
    let url = authorize_url(&emu, CLIENT_ID, KEHAI_SCOPES, &challenge, &[]).replace("callback", "callback%2F");
    let r = browser().get(&url).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(r.headers().get("location").is_none());
    let html = r.text().await.unwrap();
    assert!(html.contains("Error 400: redirect_uri_mismatch"), "{html}");

    let url = authorize_url(&emu, "nobody.apps.googleusercontent.com", KEHAI_SCOPES, &challenge, &[]);
    let (status, html) = get(&browser(), &url).await.error_page();
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(html.contains("invalid_client"));
    let url = authorize_url(&emu, CLIENT_ID, "openid https://www.googleapis.com/auth/drive", &challenge, &[]);
    let (_, html) = get(&browser(), &url).await.error_page();
    assert!(html.contains("invalid_scope") && html.contains("drive"), "{html}");
}

#[tokio::test]
async fn an_internal_client_refuses_outsiders_with_org_internal() {
    let emu = start().await;
    let (verifier, challenge) = pkce();
    let browser = browser();
    let chooser = get(&browser, &authorize_url(&emu, INTERNAL_CLIENT, KEHAI_SCOPES, &challenge, &[])).await.page();
    let (status, html) = choose(&emu, &browser, &chooser, "carol@gmail.com").await.error_page();
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(html.contains("Error 403: org_internal"), "{html}");
    let chooser =
        get(&browser, &authorize_url(&emu, INTERNAL_CLIENT, KEHAI_SCOPES, &challenge, &[("prompt", "select_account")]))
            .await
            .page();
    let (_, html) = choose(&emu, &browser, &chooser, "dave@other.example").await.error_page();
    assert!(html.contains("org_internal"));
    let params = authorize(
        &emu,
        &crate::support::browser(),
        INTERNAL_CLIENT,
        KEHAI_SCOPES,
        &challenge,
        "alice@example.com",
        &[],
    )
    .await;
    assert_eq!(redeem(&emu, INTERNAL_CLIENT, &params["code"], &verifier).await.0, StatusCode::OK);
}

#[tokio::test]
async fn an_admin_policy_blocks_sign_in_and_ends_existing_grants() {
    let emu = start().await;
    let tokens = connect(&emu, "bob@example.com", KEHAI_SCOPES).await;
    let (status, _) =
        control(&emu, "POST", "/users/bob@example.com/admin-policy", Some(serde_json::json!({"enforced": true}))).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = refresh(&emu, CLIENT_ID, tokens["refresh_token"].as_str().unwrap()).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_grant")));
    let (_, challenge) = pkce();
    let browser = browser();
    let chooser = get(&browser, &authorize_url(&emu, CLIENT_ID, KEHAI_SCOPES, &challenge, &[])).await.page();
    let (status, html) = choose(&emu, &browser, &chooser, "bob@example.com").await.error_page();
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(html.contains("Error 400: admin_policy_enforced"), "{html}");
    control(&emu, "POST", "/users/bob@example.com/admin-policy", Some(serde_json::json!({"enforced": false}))).await;
    connect(&emu, "bob@example.com", KEHAI_SCOPES).await;
}

#[tokio::test]
async fn forms_need_the_nonce_of_the_page_they_came_from() {
    let emu = start().await;
    let (_, challenge) = pkce();
    let browser = browser();
    let chooser = get(&browser, &authorize_url(&emu, CLIENT_ID, KEHAI_SCOPES, &challenge, &[])).await.page();
    let flow = input(&chooser, "flow").unwrap();
    let forged = [("flow", flow.as_str()), ("csrf", "0000"), ("account", "alice@example.com")];
    let (status, _) = post(&browser, &emu.url("/o/oauth2/v2/auth/signin"), &forged).await.error_page();
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // The real form still works once; replaying it does not.
    let consent_page = choose(&emu, &browser, &chooser, "alice@example.com").await.page();
    let (status, _) = choose(&emu, &browser, &chooser, "alice@example.com").await.error_page();
    assert_eq!(status, StatusCode::BAD_REQUEST);
    consent(&emu, &browser, &consent_page, "allow", None).await.redirect();

    let wrong = sign_in(
        &emu,
        &crate::support::browser(),
        &get(&crate::support::browser(), &authorize_url(&emu, CLIENT_ID, KEHAI_SCOPES, &challenge, &[])).await.page(),
        "alice@example.com",
        "nope",
    )
    .await
    .page();
    assert!(wrong.contains("Wrong password"));
}
