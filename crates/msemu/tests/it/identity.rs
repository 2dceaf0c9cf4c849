//! The identity platform: discovery, sign-in, consent, tokens and their errors.

use reqwest::StatusCode;
use serde_json::Value;

use crate::support::*;

const SCOPE: &str = "openid email offline_access https://graph.microsoft.com/Presence.Read.All";

#[tokio::test]
async fn discovery_publishes_the_issuer_template_and_keys() {
    let emu = start().await;
    let get = |path: String| async move { reqwest::get(path).await.unwrap().json::<Value>().await.unwrap() };
    for tenant in ["organizations", "common"] {
        let doc = get(emu.url(&format!("/{tenant}/v2.0/.well-known/openid-configuration"))).await;
        assert_eq!(doc["issuer"], emu.url("/{tenantid}/v2.0"), "{tenant}: the literal template, as Microsoft");
        assert_eq!(doc["authorization_endpoint"], emu.url(&format!("/{tenant}/oauth2/v2.0/authorize")));
        assert_eq!(doc["token_endpoint"], emu.url(&format!("/{tenant}/oauth2/v2.0/token")));
        assert_eq!(doc["jwks_uri"], emu.url(&format!("/{tenant}/discovery/v2.0/keys")));
    }
    let contoso = emu.emulator.world.lock().directory.tenant("contoso").unwrap().id;
    let doc = get(emu.url(&format!("/{contoso}/v2.0/.well-known/openid-configuration"))).await;
    assert_eq!(doc["issuer"], emu.url(&format!("/{contoso}/v2.0")));
    for path in ["/common/discovery/v2.0/keys", "/common/discovery/keys", "/organizations/discovery/v2.0/keys"] {
        let jwks = get(emu.url(path)).await;
        let key = &jwks["keys"][0];
        for member in ["kid", "x5t", "n", "e"] {
            assert!(key[member].as_str().is_some_and(|v| !v.is_empty()), "{path}: {member}");
        }
        assert_eq!(key["kty"], "RSA");
    }
    let r = reqwest::get(emu.url("/nowhere/v2.0/.well-known/openid-configuration")).await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn authorization_code_flow_gives_documented_tokens() {
    let emu = start().await;
    let browser = browser();
    let (verifier, challenge) = pkce();
    let page = get(&browser, &authorize_url(&emu, "organizations", SCOPE, &challenge, &[])).await.page();
    assert!(page.contains("alice@example.com"), "the account picker lists accounts");
    let consent = sign_in(&emu, &browser, "organizations", &page, "alice@example.com", "alice-password").await.page();
    assert!(consent.contains("Read presence information of all users in your organization"), "{consent}");
    let params = decide(&emu, &browser, "organizations", &consent, "accept").await.redirect();
    assert_eq!(params["state"], "st-123");
    let (status, body) = redeem(&emu, "organizations", &params["code"], &verifier).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 3599);
    assert!(body["scope"].as_str().unwrap().contains("https://graph.microsoft.com/Presence.Read.All"));
    assert!(body["refresh_token"].is_string());

    let (client_id, _) = app(&emu);
    let alice = emu.emulator.world.lock().directory.user_by_email("alice@example.com").unwrap().clone();
    let tid = emu.emulator.world.lock().directory.tenant("contoso").unwrap().id.to_string();
    let id = claims(body["id_token"].as_str().unwrap());
    assert_eq!(id["iss"], emu.url(&format!("/{tid}/v2.0")));
    assert_eq!(id["aud"], client_id);
    assert_eq!(id["tid"], tid);
    assert_eq!(id["nonce"], "nonce-456");
    assert_eq!(id["ver"], "2.0");
    assert_eq!(id["email"], "alice@example.com");
    assert!(id["sub"].is_string() && id["sub"] != alice.id.to_string(), "sub is pairwise, not the object id");
    for absent in ["oid", "preferred_username", "name"] {
        assert!(id.get(absent).is_none(), "{absent} needs the profile scope");
    }
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    assert!(id["iat"].as_i64().unwrap() <= now && id["exp"].as_i64().unwrap() > now && id["nbf"].is_i64());

    let access = claims(body["access_token"].as_str().unwrap());
    assert_eq!(access["aud"], "https://graph.microsoft.com");
    assert_eq!(access["scp"], "Presence.Read.All");
    assert_eq!(access["oid"], alice.id.to_string());
    assert_eq!(access["tid"], tid);

    // The signature verifies with the published keys.
    let jwks: Value = reqwest::get(emu.url("/organizations/discovery/v2.0/keys")).await.unwrap().json().await.unwrap();
    let header = jsonwebtoken::decode_header(body["id_token"].as_str().unwrap()).unwrap();
    let key = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"].as_str() == header.kid.as_deref())
        .expect("kid published");
    let decoding =
        jsonwebtoken::DecodingKey::from_rsa_components(key["n"].as_str().unwrap(), key["e"].as_str().unwrap()).unwrap();
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.set_audience(&[client_id]);
    validation.set_issuer(&[emu.url(&format!("/{tid}/v2.0"))]);
    jsonwebtoken::decode::<Value>(body["id_token"].as_str().unwrap(), &decoding, &validation).expect("valid id token");
}

#[tokio::test]
async fn profile_scope_adds_the_profile_claims() {
    let emu = start().await;
    let browser = browser();
    let (verifier, challenge) = pkce();
    let code = code_for(
        &emu,
        &browser,
        "organizations",
        "openid profile offline_access User.Read",
        &challenge,
        "bob@example.com",
        "bob-password",
    )
    .await;
    let (_, body) = redeem(&emu, "organizations", &code, &verifier).await;
    let id = claims(body["id_token"].as_str().unwrap());
    assert_eq!(id["preferred_username"], "bob@example.com");
    assert_eq!(id["name"], "Bob Example");
    assert!(id["oid"].is_string());
    assert!(id.get("email").is_none(), "email needs the email scope");
}

#[tokio::test]
async fn codes_are_single_use_and_bound_to_pkce_and_the_secret() {
    let emu = start().await;
    let browser = browser();
    let (verifier, challenge) = pkce();
    let code =
        code_for(&emu, &browser, "organizations", SCOPE, &challenge, "alice@example.com", "alice-password").await;

    let (status, body) = redeem(&emu, "organizations", &code, "a-wrong-verifier-of-enough-length-000000000").await;
    assert_eq!((status, aadsts(&body)), (StatusCode::BAD_REQUEST, 501481));
    assert_eq!(body["error"], "invalid_grant");

    let (client_id, _) = app(&emu);
    let (status, body) = token(
        &emu,
        "organizations",
        &[
            ("grant_type", "authorization_code"),
            ("client_id", &client_id),
            ("client_secret", "wrong"),
            ("code", &code),
            ("redirect_uri", REDIRECT_URI),
            ("code_verifier", &verifier),
        ],
    )
    .await;
    assert_eq!((status, aadsts(&body)), (StatusCode::UNAUTHORIZED, 7000215));
    assert_eq!(body["error"], "invalid_client");

    // Redeem a fresh code properly, then reuse it.
    let (verifier, challenge) = pkce();
    let code =
        code_for(&emu, &browser, "organizations", SCOPE, &challenge, "alice@example.com", "alice-password").await;
    assert_eq!(redeem(&emu, "organizations", &code, &verifier).await.0, StatusCode::OK);
    let (status, body) = redeem(&emu, "organizations", &code, &verifier).await;
    assert_eq!((status, aadsts(&body)), (StatusCode::BAD_REQUEST, 54005));
}

#[tokio::test]
async fn refresh_tokens_rotate_and_can_be_revoked_or_expire() {
    let emu = start().await;
    let browser = browser();
    let (verifier, challenge) = pkce();
    let code =
        code_for(&emu, &browser, "organizations", SCOPE, &challenge, "alice@example.com", "alice-password").await;
    let (_, first) = redeem(&emu, "organizations", &code, &verifier).await;
    let (client_id, secret) = app(&emu);
    let refresh = |rt: String| {
        let (client_id, secret, emu) = (client_id.clone(), secret.clone(), &emu);
        async move {
            token(
                emu,
                "organizations",
                &[
                    ("grant_type", "refresh_token"),
                    ("client_id", &client_id),
                    ("client_secret", &secret),
                    ("refresh_token", &rt),
                ],
            )
            .await
        }
    };
    let rt1 = first["refresh_token"].as_str().unwrap().to_owned();
    let (status, second) = refresh(rt1.clone()).await;
    assert_eq!(status, StatusCode::OK, "{second}");
    let rt2 = second["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(rt1, rt2, "refresh tokens rotate");
    assert_eq!(refresh(rt1.clone()).await.0, StatusCode::OK, "the old one stays valid until revoked");

    let r = reqwest::Client::new().post(emu.url("/_emu/api/users/alice@example.com/revoke")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let (status, body) = refresh(rt2).await;
    assert_eq!((status, aadsts(&body)), (StatusCode::BAD_REQUEST, 50173));
    let (_, body) = refresh("not-a-token".into()).await;
    assert_eq!(body["error"], "invalid_grant");

    // Idle refresh tokens expire.
    let emu = start_with(|c| c.refresh_token_lifetime = std::time::Duration::ZERO).await;
    let (verifier, challenge) = pkce();
    let code = code_for(
        &emu,
        &crate::support::browser(),
        "organizations",
        SCOPE,
        &challenge,
        "alice@example.com",
        "alice-password",
    )
    .await;
    let (_, first) = redeem(&emu, "organizations", &code, &verifier).await;
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let (client_id, secret) = app(&emu);
    let (_, body) = token(
        &emu,
        "organizations",
        &[
            ("grant_type", "refresh_token"),
            ("client_id", &client_id),
            ("client_secret", &secret),
            ("refresh_token", first["refresh_token"].as_str().unwrap()),
        ],
    )
    .await;
    assert_eq!(aadsts(&body), 700082);
}

#[tokio::test]
async fn personal_accounts_are_refused_on_organizations_and_marked_on_common() {
    let emu = start().await;
    let (_, challenge) = pkce();
    let b = browser();
    let page = get(&b, &authorize_url(&emu, "organizations", SCOPE, &challenge, &[])).await.page();
    let params = sign_in(&emu, &b, "organizations", &page, "pat@outlook.example", "pat-password").await.redirect();
    assert_eq!(params["state"], "st-123");
    assert!(params["error_description"].starts_with("AADSTS500208: "), "{params:?}");
    assert!(!params.contains_key("code"));

    let (verifier, challenge) = pkce();
    let code = code_for(&emu, &browser(), "common", SCOPE, &challenge, "pat@outlook.example", "pat-password").await;
    let (_, body) = redeem(&emu, "common", &code, &verifier).await;
    assert_eq!(claims(body["id_token"].as_str().unwrap())["tid"], CONSUMER_TENANT);
}

#[tokio::test]
async fn admin_consent_tenants_need_an_admin_first() {
    let emu = start().await;
    let b = browser();
    let (verifier, challenge) = pkce();
    let page = get(&b, &authorize_url(&emu, "organizations", SCOPE, &challenge, &[])).await.page();
    let approval = sign_in(&emu, &b, "organizations", &page, "erin@fabrikam.example", "erin-password").await.page();
    assert!(approval.contains("Need admin approval"));
    let params = decide(&emu, &b, "organizations", &approval, "back").await.redirect();
    assert_eq!(params["error"], "consent_required");
    assert!(params["error_description"].starts_with("AADSTS90094: "));

    // An administrator grants consent for the organization.
    let (client_id, _) = app(&emu);
    let mut url = url::Url::parse(&emu.url("/organizations/v2.0/adminconsent")).unwrap();
    url.query_pairs_mut()
        .append_pair("client_id", &client_id)
        .append_pair("scope", "https://graph.microsoft.com/Presence.Read.All")
        .append_pair("redirect_uri", REDIRECT_URI)
        .append_pair("state", "admin-1");
    let page = get(&b, url.as_str()).await.page();
    let request = input(&page, "request").unwrap().replace("&quot;", "\"").replace("&#34;", "\"");
    let consent_as = |email: &'static str, password: &'static str, decision: &'static str| {
        let (b, request, url) = (&b, request.clone(), emu.url("/organizations/v2.0/adminconsent"));
        async move {
            post(b, &url, &[("request", &request), ("email", email), ("password", password), ("decision", decision)])
                .await
        }
    };
    // An ordinary user cannot consent for the organization…
    let refused = consent_as("erin@fabrikam.example", "erin-password", "accept").await.page();
    assert!(refused.contains("AADSTS90093"), "{refused}");
    // …declining comes back as Microsoft documents it (`admin_consent=True&error=consent_required`,
    // AADSTS65004)…
    let declined = consent_as("admin@fabrikam.example", "admin-password", "cancel").await.redirect();
    assert_eq!((declined["admin_consent"].as_str(), declined["error"].as_str()), ("True", "consent_required"));
    assert!(declined["error_description"].starts_with("AADSTS65004: "));
    // …and the administrator's acceptance grants it.
    let params = consent_as("admin@fabrikam.example", "admin-password", "accept").await.redirect();
    let fabrikam = emu.emulator.world.lock().directory.tenant("fabrikam").unwrap().id.to_string();
    assert_eq!(
        (params["admin_consent"].as_str(), params["tenant"].as_str(), params["state"].as_str()),
        ("True", fabrikam.as_str(), "admin-1")
    );

    // Now Erin connects without any consent page.
    let code =
        code_for(&emu, &browser(), "organizations", SCOPE, &challenge, "erin@fabrikam.example", "erin-password").await;
    assert_eq!(redeem(&emu, "organizations", &code, &verifier).await.0, StatusCode::OK);
}

#[tokio::test]
async fn bad_requests_get_microsofts_answers() {
    let emu = start().await;
    let (_, challenge) = pkce();
    let b = browser();
    // Not redirected: the redirect URI is not the app's.
    let url = authorize_url(&emu, "organizations", SCOPE, &challenge, &[]).replace("app.test", "evil.test");
    let r = b.get(url).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(r.text().await.unwrap().contains("AADSTS50011"));
    let url = authorize_url(&emu, "organizations", SCOPE, &challenge, &[]).replace("client_id=", "client_id=0000");
    let r = b.get(url).send().await.unwrap();
    assert!(r.text().await.unwrap().contains("AADSTS700016"));
    // Redirected with the error.
    let params = get(&b, &authorize_url(&emu, "organizations", SCOPE, "", &[])).await.redirect();
    assert_eq!(params["error"], "invalid_request");
    let params = get(&b, &authorize_url(&emu, "organizations", "openid Mail.Send", &challenge, &[])).await.redirect();
    assert_eq!(params["error"], "invalid_scope");
    assert!(params["error_description"].starts_with("AADSTS70011: "));
    let params =
        get(&b, &authorize_url(&emu, "organizations", SCOPE, &challenge, &[("prompt", "none")])).await.redirect();
    assert_eq!(params["error"], "login_required");
    // Wrong password stays on the sign-in page.
    let page = get(&b, &authorize_url(&emu, "organizations", SCOPE, &challenge, &[])).await.page();
    let again = sign_in(&emu, &b, "organizations", &page, "alice@example.com", "nope").await.page();
    assert!(again.contains("AADSTS50126"));
    // Cancelling consent.
    let consent = sign_in(&emu, &b, "organizations", &again, "alice@example.com", "alice-password").await.page();
    let params = decide(&emu, &b, "organizations", &consent, "cancel").await.redirect();
    assert_eq!((params["error"].as_str(), params["error_subcode"].as_str()), ("access_denied", "cancel"));
    assert!(params["error_description"].starts_with("AADSTS65004: "));
}

#[tokio::test]
async fn prompts_follow_the_browser_session() {
    let emu = start().await;
    let b = browser();
    let (_, challenge) = pkce();
    // First sign-in and consent: afterwards the browser is signed in at msemu.
    code_for(&emu, &b, "organizations", SCOPE, &challenge, "alice@example.com", "alice-password").await;
    let params =
        get(&b, &authorize_url(&emu, "organizations", SCOPE, &challenge, &[("prompt", "none")])).await.redirect();
    assert!(params.contains_key("code"), "silent sign-in with a session and consent: {params:?}");
    let page =
        get(&b, &authorize_url(&emu, "organizations", SCOPE, &challenge, &[("prompt", "select_account")])).await.page();
    assert!(page.contains("Pick an account"), "select_account always shows the picker");
    let page = get(
        &b,
        &authorize_url(
            &emu,
            "organizations",
            SCOPE,
            &challenge,
            &[("prompt", "login"), ("login_hint", "alice@example.com")],
        ),
    )
    .await
    .page();
    assert!(!page.contains("Pick an account"), "login asks for credentials");
    assert!(page.contains("value=\"alice@example.com\""), "login_hint fills the email");
    let consent =
        get(&b, &authorize_url(&emu, "organizations", SCOPE, &challenge, &[("prompt", "consent")])).await.page();
    assert!(consent.contains("Permissions requested"));
}
