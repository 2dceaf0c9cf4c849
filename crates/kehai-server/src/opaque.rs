//! Random opaque values and their hashes, as kehai makes them everywhere (session cookies, OAuth
//! states and nonces, subscription secrets): base64url without padding.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use rand::RngCore;
use secrecy::SecretString;
use sha2::{Digest, Sha256};

/// `bytes` random bytes (from the operating system's generator, through `rand`), as text.
pub fn random(bytes: usize) -> SecretString {
    let mut buf = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut buf);
    SecretString::from(URL_SAFE_NO_PAD.encode(buf))
}

/// The SHA-256 of the concatenated `parts`, as text: what is stored instead of a secret that must
/// be recognized later (a session cookie, an OAuth state).
pub fn hash(parts: &[&[u8]]) -> String {
    let mut digest = Sha256::new();
    for part in parts {
        digest.update(part);
    }
    URL_SAFE_NO_PAD.encode(digest.finalize())
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;

    use super::*;

    #[test]
    fn random_values_differ_and_hashes_are_sha256_in_base64url() {
        let (a, b) = (random(32), random(32));
        assert_eq!(a.expose_secret().len(), 43, "32 bytes in unpadded base64");
        assert_ne!(a.expose_secret(), b.expose_secret());
        // SHA-256("abc"), a published test vector.
        assert_eq!(hash(&[b"abc"]), "ungWv48Bz-pBQUDeXa4iI7ADYaOWF3qctBD_YfIAFa0");
        assert_eq!(hash(&[b"a", b"bc"]), hash(&[b"abc"]), "the parts are concatenated");
    }
}
