//! Discovery and keys: the document's URLs and fields, the JWKS and PEM maps, rotation.

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use reqwest::StatusCode;
use serde_json::Value;

use crate::support::*;

async fn json(url: &str) -> Value {
    let r = reqwest::get(url).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK, "{url}");
    r.json().await.unwrap()
}

#[tokio::test]
async fn the_discovery_document_points_at_the_emulator() {
    let emu = start().await;
    let base = emu.url("");
    let doc = json(&emu.url("/.well-known/openid-configuration")).await;
    assert_eq!(doc["issuer"], base);
    assert!(!base.ends_with('/'));
    assert_eq!(doc["authorization_endpoint"], format!("{base}/o/oauth2/v2/auth"));
    assert_eq!(doc["token_endpoint"], format!("{base}/token"));
    assert_eq!(doc["revocation_endpoint"], format!("{base}/revoke"));
    assert_eq!(doc["userinfo_endpoint"], format!("{base}/v1/userinfo"));
    assert_eq!(doc["jwks_uri"], format!("{base}/oauth2/v3/certs"));
    assert_eq!(doc["id_token_signing_alg_values_supported"], serde_json::json!(["RS256"]));
    assert_eq!(doc["code_challenge_methods_supported"], serde_json::json!(["plain", "S256"]));
    assert_eq!(
        doc["token_endpoint_auth_methods_supported"],
        serde_json::json!(["client_secret_post", "client_secret_basic"])
    );
    assert_eq!(doc["scopes_supported"], serde_json::json!(["openid", "email", "profile"]));
    assert_eq!(doc["subject_types_supported"], serde_json::json!(["public"]));
    assert!(doc["claims_supported"].as_array().unwrap().iter().any(|c| c == "email_verified"));
    assert_eq!(doc["response_types_supported"].as_array().unwrap().len(), 8);
}

#[tokio::test]
async fn a_configured_issuer_is_used_in_discovery_and_id_tokens() {
    let emu = start_with(|c| c.issuer = Some("https://accounts.google.com".into())).await;
    let doc = json(&emu.url("/.well-known/openid-configuration")).await;
    assert_eq!(doc["issuer"], "https://accounts.google.com");
    assert_eq!(doc["token_endpoint"], emu.url("/token"), "endpoints stay on the emulator");
    let tokens = connect(&emu, "alice@example.com", KEHAI_SCOPES).await;
    assert_eq!(claims(tokens["id_token"].as_str().unwrap())["iss"], "https://accounts.google.com");
}

fn verify(jwks: &Value, token: &str) -> Result<Value, jsonwebtoken::errors::Error> {
    let kid = jsonwebtoken::decode_header(token)?.kid.unwrap();
    let jwk = jwks["keys"].as_array().unwrap().iter().find(|k| k["kid"] == kid.as_str());
    let Some(jwk) = jwk else { return Err(jsonwebtoken::errors::ErrorKind::InvalidKeyFormat.into()) };
    assert_eq!(
        (jwk["kty"].as_str(), jwk["alg"].as_str(), jwk["use"].as_str()),
        (Some("RSA"), Some("RS256"), Some("sig"))
    );
    let key = DecodingKey::from_rsa_components(jwk["n"].as_str().unwrap(), jwk["e"].as_str().unwrap())?;
    let mut validation = Validation::new(Algorithm::RS256);
    validation.set_audience(&[CLIENT_ID]);
    Ok(jsonwebtoken::decode::<Value>(token, &key, &validation)?.claims)
}

#[tokio::test]
async fn id_tokens_verify_against_the_jwks_before_and_after_a_rotation() {
    let emu = start().await;
    let tokens = connect(&emu, "alice@example.com", KEHAI_SCOPES).await;
    let id_token = tokens["id_token"].as_str().unwrap();
    let jwks = json(&emu.url("/oauth2/v3/certs")).await;
    assert_eq!(verify(&jwks, id_token).unwrap()["email"], "alice@example.com");
    let pem = json(&emu.url("/oauth2/v1/certs")).await;
    let kid = jsonwebtoken::decode_header(id_token).unwrap().kid.unwrap();
    assert!(pem[&kid].as_str().unwrap().starts_with("-----BEGIN CERTIFICATE-----"), "{pem}");

    let (status, rotated) = control(&emu, "POST", "/keys/rotate", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_ne!(rotated["kid"], kid.as_str());
    let jwks = json(&emu.url("/oauth2/v3/certs")).await;
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 2);
    assert!(verify(&jwks, id_token).is_ok(), "the retired key stays published");
    let fresh = connect(&emu, "alice@example.com", KEHAI_SCOPES).await;
    let fresh_kid = jsonwebtoken::decode_header(fresh["id_token"].as_str().unwrap()).unwrap().kid.unwrap();
    assert_eq!(rotated["kid"], fresh_kid.as_str(), "new tokens use the new key");
    let pem = json(&emu.url("/oauth2/v1/certs")).await;
    assert_eq!(pem.as_object().unwrap().len(), 2);
}
