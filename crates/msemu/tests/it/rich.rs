//! Rich notifications: encrypted as Graph does (checked against Microsoft's own test vector),
//! with validation tokens signed by msemu's published keys.

use aws_lc_rs::{
    cipher::{AES_256, DecryptionContext, PaddedBlockDecryptingKey, UnboundCipherKey},
    hmac,
    rsa::{OAEP_SHA1_MGF1SHA1, OaepPrivateDecryptingKey, PrivateDecryptingKey},
};
use base64::{Engine, engine::general_purpose::STANDARD};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::{support::*, webhook::Webhook};

const VECTOR: &str = include_str!("../../../../testdata/graph-rich-notification-vector.json");

/// Decrypts an `encryptedContent` with a PKCS#8 RSA key: unwrap, check the HMAC, decrypt.
pub fn decrypt(pkcs8_der: &[u8], content: &Value) -> Vec<u8> {
    let b64 = |k: &str| STANDARD.decode(content[k].as_str().unwrap()).unwrap();
    let private = OaepPrivateDecryptingKey::new(PrivateDecryptingKey::from_pkcs8(pkcs8_der).unwrap()).unwrap();
    let mut key = vec![0u8; private.min_output_size()];
    let key = private.decrypt(&OAEP_SHA1_MGF1SHA1, &b64("dataKey"), &mut key, None).unwrap().to_vec();
    assert_eq!(key.len(), 32);
    let data = b64("data");
    hmac::verify(&hmac::Key::new(hmac::HMAC_SHA256, &key), &data, &b64("dataSignature")).expect("the HMAC matches");
    let mut iv = [0u8; 16];
    iv.copy_from_slice(&key[..16]);
    let cipher = PaddedBlockDecryptingKey::cbc_pkcs7(UnboundCipherKey::new(&AES_256, &key).unwrap()).unwrap();
    let mut buf = data.clone();
    cipher.decrypt(&mut buf, DecryptionContext::Iv128(iv.into())).unwrap().to_vec()
}

fn pem_body(pem: &str) -> Vec<u8> {
    let b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    STANDARD.decode(b64).unwrap()
}

#[test]
fn known_answer_microsofts_vector() {
    let v: Value = serde_json::from_str(VECTOR).unwrap();
    let key = pem_body(v["private_key_pkcs8_pem"].as_str().unwrap());
    let cert = STANDARD.decode(v["certificate_der_base64"].as_str().unwrap()).unwrap();
    // This test's decryptor reads Microsoft's own notification…
    let plain = decrypt(&key, &v["encryptedContent"]);
    let expected: Value = serde_json::from_str(v["expected_plaintext_json"].as_str().unwrap()).unwrap();
    assert_eq!(serde_json::from_slice::<Value>(&plain).unwrap(), expected);
    // …and msemu's encryption for that certificate round-trips through it.
    let payload = br#"{"availability":"Busy","activity":"InAMeeting"}"#;
    let encrypted = msemu::crypto::encrypt(&cert, "custom-id-for-testing", payload).unwrap();
    let encrypted = serde_json::to_value(&encrypted).unwrap();
    assert_eq!(decrypt(&key, &encrypted), payload);
    assert_eq!(encrypted["encryptionCertificateThumbprint"], v["encryptedContent"]["encryptionCertificateThumbprint"]);
    assert_eq!(encrypted["encryptionCertificateId"], "custom-id-for-testing");
}

#[tokio::test]
async fn rich_notifications_carry_encrypted_presence_and_validation_tokens() {
    let emu = start().await;
    let mut hook = Webhook::start().await;
    let scope = "openid email offline_access https://graph.microsoft.com/Presence.Read.All";
    let token = access_token(&emu, "alice@example.com", "alice-password", scope).await;
    let alice = emu.emulator.world.lock().directory.user_by_email("alice@example.com").unwrap().id.to_string();

    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).unwrap();
    let cert = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap().self_signed(&key).unwrap();
    let expiry = (time::OffsetDateTime::now_utc() + time::Duration::minutes(59))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let r = reqwest::Client::new()
        .post(emu.url("/v1.0/subscriptions"))
        .bearer_auth(&token)
        .json(&json!({
            "changeType": "updated",
            "notificationUrl": hook.url,
            "resource": format!("/communications/presences?$filter=id in ('{alice}')"),
            "expirationDateTime": expiry,
            "clientState": "rich-state",
            "includeResourceData": true,
            "encryptionCertificate": STANDARD.encode(cert.der()),
            "encryptionCertificateId": "kehai-cert-1",
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let sub: Value = r.json().await.unwrap();
    assert_eq!(sub["includeResourceData"], true);
    assert_eq!(sub["encryptionCertificateId"], "kehai-cert-1");
    assert_eq!(sub["encryptionCertificate"], Value::Null, "the certificate is not echoed");

    let changed = set_status(&emu, "alice@example.com", "Presenting").await;
    let n = hook.next().await;
    let item = &n["value"][0];
    assert_eq!(item["encryptedContent"]["encryptionCertificateId"], "kehai-cert-1");
    let presence: Value = serde_json::from_slice(&decrypt(&key.serialize_der(), &item["encryptedContent"])).unwrap();
    assert_eq!(
        (presence["availability"].as_str(), presence["activity"].as_str()),
        (Some("DoNotDisturb"), Some("Presenting"))
    );
    assert_eq!(presence["id"], alice);
    assert_eq!(presence["sequenceNumber"], changed["sequenceNumber"]);

    // The validation token: signed by a published key, for this app, from Graph's publisher.
    let jwt = n["validationTokens"][0].as_str().expect("a validation token");
    let jwks: Value = reqwest::get(emu.url("/common/discovery/v2.0/keys")).await.unwrap().json().await.unwrap();
    let kid = jsonwebtoken::decode_header(jwt).unwrap().kid.unwrap();
    let jwk = jwks["keys"].as_array().unwrap().iter().find(|k| k["kid"] == kid).expect("published");
    let decoding =
        jsonwebtoken::DecodingKey::from_rsa_components(jwk["n"].as_str().unwrap(), jwk["e"].as_str().unwrap()).unwrap();
    let (client_id, _) = app(&emu);
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.set_audience(&[client_id]);
    let claims = jsonwebtoken::decode::<Value>(jwt, &decoding, &validation).unwrap().claims;
    assert_eq!(claims["azp"], msemu::notify::PUBLISHER);
    let tenant = emu.emulator.world.lock().directory.tenant("contoso").unwrap().id.to_string();
    assert_eq!(claims["iss"], emu.url(&format!("/{tenant}/v2.0")));
    assert_eq!(claims["tid"], tenant);
}
