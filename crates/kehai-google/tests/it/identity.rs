//! Signing in, refreshing and revoking.

use kehai_google::{GoogleError, scopes};
use secrecy::{ExposeSecret, SecretString};

use super::*;

#[tokio::test]
async fn a_workspace_account_signs_in_with_exactly_kehais_scopes() {
    let emu = googleemu().await;
    let identity = Identity::new(config(&emu));
    let request = identity.authorization_request(REDIRECT, Some("example.com")).await.unwrap();
    let query: HashMap<String, String> = request.url.query_pairs().into_owned().collect();
    assert_eq!(query["scope"], "openid email https://www.googleapis.com/auth/calendar.events.freebusy");
    assert_eq!(query["access_type"], "offline");
    assert_eq!(query["prompt"], "consent select_account");
    assert_eq!(query["include_granted_scopes"], "true");
    assert_eq!(query["code_challenge_method"], "S256");
    assert_eq!(query["hd"], "example.com");
    assert_eq!(query["state"], request.state.expose_secret());
    assert_eq!(query["nonce"], request.nonce.expose_secret());
    assert!(request.url.as_str().starts_with(&emu.url("/o/oauth2/v2/auth")), "from the discovery document");

    let Landing::Back(back) = walk(&emu, &request.url, "alice@example.com", "alice-password", |_| true).await else {
        panic!("not back")
    };
    assert_eq!(back["state"], request.state.expose_secret());
    let tokens = identity.exchange_code(&back["code"], &request.pkce_verifier, REDIRECT).await.unwrap();
    assert!(tokens.refresh_token.is_some(), "offline access with consent");
    let scope = tokens.scope.clone().unwrap();
    assert!(scopes::granted(&scope, scopes::CALENDAR) && scopes::granted(&scope, "email"), "{scope}");
    let claims = identity.validate(tokens.id_token.as_deref().unwrap(), &request.nonce).await.unwrap();
    assert_eq!(claims.hd.as_deref(), Some("example.com"));
    assert_eq!(claims.email.as_deref(), Some("alice@example.com"));
    assert!(claims.email_verified && !claims.sub.is_empty());
    // The nonce of another sign-in does not do.
    let other = SecretString::from("another-nonce");
    assert!(matches!(
        identity.validate(tokens.id_token.as_deref().unwrap(), &other).await,
        Err(GoogleError::IdToken(_))
    ));
    // Nor does a code twice, or the wrong verifier.
    let again = identity.exchange_code(&back["code"], &request.pkce_verifier, REDIRECT).await.unwrap_err();
    assert!(again.is_invalid_grant(), "{again}");
    assert!(format!("{tokens:?}").find(tokens.access_token.expose_secret()).is_none(), "Debug shows no token");
}

#[tokio::test]
async fn a_personal_account_has_no_organization_and_an_unticked_scope_is_missing() {
    let emu = googleemu().await;
    let identity = Identity::new(config(&emu));
    let request = identity.authorization_request(REDIRECT, None).await.unwrap();
    let Landing::Back(back) = walk(&emu, &request.url, "carol@gmail.com", "carol-password", |_| true).await else {
        panic!("not back")
    };
    let tokens = identity.exchange_code(&back["code"], &request.pkce_verifier, REDIRECT).await.unwrap();
    let claims = identity.validate(tokens.id_token.as_deref().unwrap(), &request.nonce).await.unwrap();
    assert_eq!(claims.hd, None, "a gmail.com account belongs to no organization");

    let request = identity.authorization_request(REDIRECT, None).await.unwrap();
    let unticked = |s: &str| s != scopes::CALENDAR;
    let Landing::Back(back) = walk(&emu, &request.url, "alice@example.com", "alice-password", unticked).await else {
        panic!("not back")
    };
    let tokens = identity.exchange_code(&back["code"], &request.pkce_verifier, REDIRECT).await.unwrap();
    let scope = tokens.scope.unwrap();
    assert!(!scopes::granted(&scope, scopes::CALENDAR), "{scope}");
    assert!(scopes::granted(&scope, "email"), "the rest is granted: {scope}");
}

#[tokio::test]
async fn refresh_keeps_working_until_the_grant_is_revoked() {
    let emu = googleemu().await;
    let identity = Identity::new(config(&emu));
    let tokens = connected(&emu, "alice@example.com", "alice-password").await;
    let refresh = tokens.refresh_token.clone().unwrap();
    let renewed = identity.refresh(&refresh, REDIRECT).await.unwrap();
    assert_ne!(renewed.access_token.expose_secret(), tokens.access_token.expose_secret());
    assert!(renewed.expires_in > 3000);
    identity.revoke(&refresh).await.unwrap();
    let dead = identity.refresh(&refresh, REDIRECT).await.unwrap_err();
    assert!(dead.is_invalid_grant(), "{dead}");
    // A token Google no longer knows counts as revoked.
    identity.revoke(&refresh).await.unwrap();
    identity.revoke(&SecretString::from("never-issued")).await.unwrap();
}

#[tokio::test]
async fn a_discovery_document_of_another_issuer_is_refused() {
    let emu = googleemu().await;
    let mut wrong = config(&emu);
    wrong.issuer = format!("{}other", emu.base_url).parse().unwrap();
    let identity = Identity::new(wrong);
    assert!(matches!(identity.authorization_request(REDIRECT, None).await, Err(GoogleError::Transport(_))));
}
