//! What kehai's fuzz targets share: one RSA key (the private key of Microsoft's own
//! rich-notification test vector, `testdata/`) that signs tokens and wraps content keys as
//! Microsoft would, so that the fuzzer reaches the code behind the signature and HMAC checks,
//! and the expectations kehai's checks are made with.

use std::sync::LazyLock;

use aws_lc_rs::{
    cipher::{AES_256, EncryptionContext, PaddedBlockEncryptingKey, UnboundCipherKey},
    hmac,
    rand::SystemRandom,
    rsa::{OAEP_SHA1_MGF1SHA1, OaepPublicEncryptingKey, PrivateDecryptingKey},
    signature::{KeyPair, RSA_PKCS1_SHA256, RsaKeyPair},
};
use base64::{Engine, engine::general_purpose::STANDARD, engine::general_purpose::URL_SAFE_NO_PAD};
use jsonwebtoken::DecodingKey;
use kehai_microsoft::{MicrosoftConfig, notifications::DecryptionKey};

/// This app's client id, the `aud` every token must carry.
pub const CLIENT_ID: &str = "11111111-2222-3333-4444-555555555555";
/// The key id the fuzz key is published under.
pub const KID: &str = "fuzz-key";
/// The sign-in's nonce.
pub const NONCE: &str = "nonce-of-this-sign-in";
/// The issuer template of Microsoft's multi-tenant metadata.
pub const ISSUER: &str = "https://login.microsoftonline.com/{tenantid}/v2.0";

/// The key in every form the targets need.
pub struct Key {
    pub decryption: DecryptionKey,
    pub decoding: DecodingKey,
    signing: RsaKeyPair,
    wrapping: OaepPublicEncryptingKey,
}

pub static KEY: LazyLock<Key> = LazyLock::new(|| {
    let vector: serde_json::Value =
        serde_json::from_str(include_str!("../../testdata/graph-rich-notification-vector.json")).unwrap();
    let pem = vector["private_key_pkcs8_pem"].as_str().unwrap();
    let der = STANDARD.decode(pem.lines().filter(|l| !l.starts_with("-----")).collect::<String>()).unwrap();
    let signing = RsaKeyPair::from_pkcs8(&der).unwrap();
    let decoding = DecodingKey::from_rsa_der(signing.public_key().as_ref());
    let public = PrivateDecryptingKey::from_pkcs8(&der).unwrap().public_key();
    Key {
        decryption: DecryptionKey::from_pkcs8(&der).unwrap(),
        decoding,
        signing,
        wrapping: OaepPublicEncryptingKey::new(public).unwrap(),
    }
});

/// Where Microsoft is and who kehai is, for validation tokens.
pub static CONFIG: LazyLock<MicrosoftConfig> = LazyLock::new(|| MicrosoftConfig {
    login_url: "https://login.microsoftonline.com".parse().unwrap(),
    graph_url: "https://graph.microsoft.com".parse().unwrap(),
    tenant: "organizations".into(),
    client_id: CLIENT_ID.into(),
    client_secret: "unused".into(),
});

impl Key {
    /// A JWT of these header and claims bytes (not necessarily JSON), RS256-signed with the key.
    pub fn sign(&self, header: &[u8], claims: &[u8]) -> String {
        let input = format!("{}.{}", URL_SAFE_NO_PAD.encode(header), URL_SAFE_NO_PAD.encode(claims));
        let mut signature = vec![0; self.signing.public_modulus_len()];
        self.signing.sign(&RSA_PKCS1_SHA256, &SystemRandom::new(), input.as_bytes(), &mut signature).unwrap();
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature))
    }

    /// A JWT of these claims with the header Microsoft's tokens have.
    pub fn sign_claims(&self, claims: &serde_json::Value) -> String {
        let header = serde_json::json!({ "typ": "JWT", "alg": "RS256", "kid": KID });
        self.sign(header.to_string().as_bytes(), claims.to_string().as_bytes())
    }

    /// A content key wrapped with RSA-OAEP (SHA-1) as Graph wraps it, if it fits.
    pub fn wrap(&self, content_key: &[u8]) -> Option<Vec<u8>> {
        let mut out = vec![0; self.wrapping.ciphertext_size()];
        let wrapped = self.wrapping.encrypt(&OAEP_SHA1_MGF1SHA1, content_key, &mut out, None).ok()?;
        Some(wrapped.to_vec())
    }
}

/// AES-256-CBC with PKCS#7 padding and the IV = the key's first 16 bytes, as Graph encrypts.
pub fn encrypt(key: &[u8; 32], plaintext: &[u8]) -> Vec<u8> {
    let cipher = PaddedBlockEncryptingKey::cbc_pkcs7(UnboundCipherKey::new(&AES_256, key).unwrap()).unwrap();
    let mut iv = [0u8; 16];
    iv.copy_from_slice(&key[..16]);
    let mut data = plaintext.to_vec();
    cipher.less_safe_encrypt(&mut data, EncryptionContext::Iv128(iv.into())).unwrap();
    data
}

/// HMAC-SHA256 of `data` with `key`, as Graph signs the ciphertext.
pub fn sign_data(key: &[u8], data: &[u8]) -> Vec<u8> {
    hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), data).as_ref().to_vec()
}

/// Seconds since the epoch.
pub fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}
