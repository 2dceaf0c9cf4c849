//! Encryption of rich notifications' resource data, as Graph does it: a fresh 32-byte
//! key per item wrapped with RSA-OAEP-SHA1 for the subscription's certificate, the data
//! AES-256-CBC/PKCS#7 encrypted with IV = the key's first 16 bytes, and an HMAC-SHA256 of the
//! ciphertext under the same key.

use aws_lc_rs::{
    cipher::{AES_256, EncryptionContext, PaddedBlockEncryptingKey, UnboundCipherKey},
    digest, hmac,
    rand::{SecureRandom, SystemRandom},
    rsa::{OAEP_SHA1_MGF1SHA1, OaepPublicEncryptingKey, PublicEncryptingKey},
};
use base64::{Engine, engine::general_purpose::STANDARD};
use serde::Serialize;

/// The `encryptedContent` of a change notification.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EncryptedContent {
    pub data: String,
    pub data_signature: String,
    pub data_key: String,
    pub encryption_certificate_id: String,
    pub encryption_certificate_thumbprint: String,
}

/// The thumbprint Graph reports: upper-case hex SHA-1 of the certificate's DER.
pub fn thumbprint(cert_der: &[u8]) -> String {
    digest::digest(&digest::SHA1_FOR_LEGACY_USE_ONLY, cert_der).as_ref().iter().map(|b| format!("{b:02X}")).collect()
}

/// Encrypts `plaintext` for the holder of the private key of `cert_der`.
pub fn encrypt(cert_der: &[u8], certificate_id: &str, plaintext: &[u8]) -> anyhow::Result<EncryptedContent> {
    let (_, cert) = x509_parser::parse_x509_certificate(cert_der)?;
    let public =
        PublicEncryptingKey::from_der(cert.public_key().raw).map_err(|e| anyhow::anyhow!("certificate key: {e}"))?;
    let oaep = OaepPublicEncryptingKey::new(public).map_err(|e| anyhow::anyhow!("{e}"))?;

    let mut key = [0u8; 32];
    SystemRandom::new().fill(&mut key).map_err(|_| anyhow::anyhow!("no randomness"))?;
    let mut wrapped = vec![0u8; oaep.ciphertext_size()];
    let wrapped = oaep
        .encrypt(&OAEP_SHA1_MGF1SHA1, &key, &mut wrapped, None)
        .map_err(|e| anyhow::anyhow!("RSA-OAEP: {e}"))?
        .to_vec();

    let mut iv = [0u8; 16];
    iv.copy_from_slice(&key[..16]);
    let cipher =
        PaddedBlockEncryptingKey::cbc_pkcs7(UnboundCipherKey::new(&AES_256, &key).map_err(|e| anyhow::anyhow!("{e}"))?)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut data = plaintext.to_vec();
    cipher
        .less_safe_encrypt(&mut data, EncryptionContext::Iv128(iv.into()))
        .map_err(|e| anyhow::anyhow!("AES-CBC: {e}"))?;
    let signature = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, &key), &data);

    Ok(EncryptedContent {
        data: STANDARD.encode(&data),
        data_signature: STANDARD.encode(signature.as_ref()),
        data_key: STANDARD.encode(wrapped),
        encryption_certificate_id: certificate_id.to_owned(),
        encryption_certificate_thumbprint: thumbprint(cert_der),
    })
}
