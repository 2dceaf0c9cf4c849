//! Refresh, the ways refresh tokens die (testing lapse, 100 per client, six idle months,
//! revocation), revocation itself, access-token expiry and userinfo.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;

use crate::support::*;

const DAY: Duration = Duration::from_secs(86_400);

fn dead() -> serde_json::Value {
    json!({"error": "invalid_grant", "error_description": "Token has been expired or revoked."})
}

#[tokio::test]
async fn refreshing_keeps_the_same_refresh_token_and_returns_an_id_token() {
    let emu = start().await;
    let tokens = connect(&emu, "alice@example.com", KEHAI_SCOPES).await;
    let refresh_token = tokens["refresh_token"].as_str().unwrap();
    for _ in 0..2 {
        let (status, body) = refresh(&emu, CLIENT_ID, refresh_token).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert!(body.get("refresh_token").is_none(), "no rotation: {body}");
        assert_ne!(body["access_token"], tokens["access_token"]);
        assert_eq!(body["scope"], tokens["scope"]);
        assert_eq!(
            claims(body["id_token"].as_str().unwrap())["sub"],
            claims(tokens["id_token"].as_str().unwrap())["sub"]
        );
    }
    // google-auth sends its Credentials' scopes, `email` alias included: a subset is fine…
    let form = [("grant_type", "refresh_token"), ("refresh_token", refresh_token), ("scope", "openid email")];
    let (status, body) = token(&emu, &form, Some((CLIENT_ID, SECRET))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["scope"], format!("{EMAIL} openid"));
    // …more is not.
    let form = [
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh_token),
        ("scope", "openid https://www.googleapis.com/auth/calendar"),
    ];
    let (status, body) = token(&emu, &form, Some((CLIENT_ID, SECRET))).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_scope")));
    // Another client cannot use it.
    let (status, body) = refresh(&emu, TESTING_CLIENT, refresh_token).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::UNAUTHORIZED, Some("unauthorized_client")));
}

#[tokio::test]
async fn a_testing_clients_refresh_tokens_lapse_seven_days_after_consent() {
    let emu = start().await;
    let calendar = connect_with(&emu, TESTING_CLIENT, "alice@example.com", KEHAI_SCOPES).await;
    let sign_in_only = connect_with(&emu, TESTING_CLIENT, "bob@example.com", "openid email profile").await;
    emu.advance(6 * DAY);
    assert_eq!(refresh(&emu, TESTING_CLIENT, calendar["refresh_token"].as_str().unwrap()).await.0, StatusCode::OK);
    emu.advance(DAY);
    let (status, body) = refresh(&emu, TESTING_CLIENT, calendar["refresh_token"].as_str().unwrap()).await;
    assert_eq!((status, body), (StatusCode::BAD_REQUEST, dead()), "seven days after consent, used or not");
    let (status, _) = refresh(&emu, TESTING_CLIENT, sign_in_only["refresh_token"].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::OK, "name, email and profile only: no lapse");
    // A client in production keeps going.
    let production = connect(&emu, "alice@example.com", KEHAI_SCOPES).await;
    emu.advance(30 * DAY);
    assert_eq!(refresh(&emu, CLIENT_ID, production["refresh_token"].as_str().unwrap()).await.0, StatusCode::OK);
}

#[tokio::test]
async fn six_idle_months_end_a_refresh_token() {
    let emu = start().await;
    let used = connect(&emu, "alice@example.com", KEHAI_SCOPES).await;
    let idle = connect(&emu, "bob@example.com", KEHAI_SCOPES).await;
    for _ in 0..4 {
        emu.advance(50 * DAY);
        assert_eq!(refresh(&emu, CLIENT_ID, used["refresh_token"].as_str().unwrap()).await.0, StatusCode::OK);
    }
    assert_eq!(refresh(&emu, CLIENT_ID, idle["refresh_token"].as_str().unwrap()).await.1, dead());
}

#[tokio::test]
async fn the_101st_refresh_token_silently_invalidates_the_oldest() {
    let emu = start().await;
    let browser = browser();
    let mut refresh_tokens = Vec::new();
    for _ in 0..101 {
        let (verifier, challenge) = pkce();
        let params = authorize(
            &emu,
            &browser,
            CLIENT_ID,
            KEHAI_SCOPES,
            &challenge,
            "alice@example.com",
            &[("prompt", "consent")],
        )
        .await;
        let (_, body) = redeem(&emu, CLIENT_ID, &params["code"], &verifier).await;
        refresh_tokens.push(body["refresh_token"].as_str().unwrap().to_owned());
    }
    assert_eq!(refresh(&emu, CLIENT_ID, &refresh_tokens[0]).await.1, dead());
    assert_eq!(refresh(&emu, CLIENT_ID, &refresh_tokens[1]).await.0, StatusCode::OK);
    assert_eq!(refresh(&emu, CLIENT_ID, &refresh_tokens[100]).await.0, StatusCode::OK);
    let grants = emu.grants("alice@example.com").unwrap();
    assert_eq!(grants[0].live_refresh_tokens, 100);
}

#[tokio::test]
async fn revoking_an_access_token_revokes_its_refresh_token_and_the_other_way_round() {
    let emu = start().await;
    let http = reqwest::Client::new();
    let alice = connect(&emu, "alice@example.com", KEHAI_SCOPES).await;
    let r =
        http.post(emu.url("/revoke")).form(&[("token", alice["access_token"].as_str().unwrap())]).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(refresh(&emu, CLIENT_ID, alice["refresh_token"].as_str().unwrap()).await.1, dead());

    let bob = connect(&emu, "bob@example.com", KEHAI_SCOPES).await;
    let url = format!("{}?token={}", emu.url("/revoke"), bob["refresh_token"].as_str().unwrap());
    assert_eq!(http.post(url).send().await.unwrap().status(), StatusCode::OK, "token= in the query");
    let (status, _, _) =
        calendar(&emu, "GET", "/calendars/primary/events", bob["access_token"].as_str().unwrap(), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "its access tokens go too");

    let r = http.post(emu.url("/revoke")).form(&[("token", "ya29.unknown")]).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body, json!({"error": "invalid_token", "error_description": "Token expired or revoked"}));

    // The consent went with it: the next authorization asks again and gives a refresh token.
    let again = connect(&emu, "bob@example.com", KEHAI_SCOPES).await;
    assert!(again["refresh_token"].is_string());
}

#[tokio::test]
async fn access_tokens_expire_on_the_emulator_clock() {
    let emu = start_with(|c| c.access_token_lifetime = Duration::from_secs(60)).await;
    let tokens = connect(&emu, "alice@example.com", KEHAI_SCOPES).await;
    assert_eq!(tokens["expires_in"], 60);
    let access = tokens["access_token"].as_str().unwrap();
    assert_eq!(calendar(&emu, "GET", "/calendars/primary/events", access, None).await.0, StatusCode::OK);
    emu.advance(Duration::from_secs(61));
    let (status, headers, body) = calendar(&emu, "GET", "/calendars/primary/events", access, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"]["status"], "UNAUTHENTICATED");
    assert_eq!(
        body["error"]["errors"][0],
        json!({"message": "Invalid Credentials", "domain": "global", "reason": "authError", "location": "Authorization", "locationType": "header"})
    );
    assert!(headers["www-authenticate"].to_str().unwrap().contains("invalid_token"));
}

#[tokio::test]
async fn userinfo_answers_what_the_scopes_allow() {
    let emu = start().await;
    let access = access_token(&emu, "alice@example.com", "openid email profile").await;
    let info: serde_json::Value = reqwest::Client::new()
        .get(emu.url("/v1/userinfo"))
        .bearer_auth(&access)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(info["email"], "alice@example.com");
    assert_eq!(info["email_verified"], true);
    assert_eq!(info["name"], "Alice");
    assert_eq!(info["hd"], "example.com");
    let r = reqwest::Client::new().get(emu.url("/v1/userinfo")).bearer_auth("nope").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn token_endpoint_faults_answer_what_google_auth_retries() {
    let emu = start().await;
    let tokens = connect(&emu, "alice@example.com", KEHAI_SCOPES).await;
    let (status, _) = control(&emu, "POST", "/faults", Some(json!({"target": "token", "kind": "serverError"}))).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    control(&emu, "POST", "/faults", Some(json!({"target": "token", "kind": "serviceUnavailable", "retryAfter": 3})))
        .await;
    let refresh_token = tokens["refresh_token"].as_str().unwrap();
    let (status, body) = refresh(&emu, CLIENT_ID, refresh_token).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::INTERNAL_SERVER_ERROR, Some("internal_failure")));
    let (status, body) = refresh(&emu, CLIENT_ID, refresh_token).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::SERVICE_UNAVAILABLE, Some("temporarily_unavailable")));
    assert_eq!(refresh(&emu, CLIENT_ID, refresh_token).await.0, StatusCode::OK);
}

#[tokio::test]
async fn revoking_through_the_control_api_ends_refresh() {
    let emu = start().await;
    let tokens = connect(&emu, "alice@example.com", KEHAI_SCOPES).await;
    let (status, _) =
        control(&emu, "POST", "/users/alice@example.com/revoke", Some(json!({"clientId": CLIENT_ID}))).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(refresh(&emu, CLIENT_ID, tokens["refresh_token"].as_str().unwrap()).await.1, dead());
    assert!(emu.grants("alice@example.com").unwrap().is_empty());
}
