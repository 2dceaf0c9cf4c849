//! Secrets at rest: tokens and client states are sealed with AES-256-GCM under the master key
//! before they reach the database, with the identity of their row as associated data — so a
//! ciphertext copied into another row (another person's connection) does not open there.
//!
//! Sealed form: `v1.<base64(nonce ‖ ciphertext ‖ tag)>`, the version naming the format. The
//! associated data is the value's [`Place`]: `{kind}:{id}:{column}`.
//!
//! What kehai hands to browsers and must recognise later (a pre-login CSRF token, a device
//! cookie) is signed with a [`Signer`]: HMAC-SHA256 under a key derived from the master key.

use aws_lc_rs::{
    aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey},
    hmac,
    rand::{SecureRandom, SystemRandom},
};
use base64::{
    Engine,
    engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD},
};
use secrecy::{ExposeSecret, SecretString};

use crate::ConnectionId;

const PREFIX: &str = "v1.";

/// Where a sealed value is kept: a column of one row, to which its seal binds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place<'a> {
    /// A connection's tokens and subscription secret.
    Connection(ConnectionId, ConnectionSecret),
    /// A sign-in in progress, by the hash of its state.
    SignIn(&'a str, SignInSecret),
    /// An encryption certificate's private key, by the certificate's id.
    CertificateKey(&'a str),
}

/// The sealed columns of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionSecret {
    AccessToken,
    RefreshToken,
    /// The secret the provider's notifications carry (Graph's clientState).
    ClientState,
}

/// The sealed columns of a sign-in in progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignInSecret {
    Nonce,
    PkceVerifier,
}

impl Place<'_> {
    /// The associated data that binds a sealed value to its place: `{kind}:{id}:{column}`, e.g.
    /// `connection:<uuid>:refresh_token` (the columns' names in the database).
    pub fn label(&self) -> String {
        let (kind, id, column) = match self {
            Place::Connection(id, secret) => (
                "connection",
                id.0.to_string(),
                match secret {
                    ConnectionSecret::AccessToken => "access_token",
                    ConnectionSecret::RefreshToken => "refresh_token",
                    ConnectionSecret::ClientState => "client_state",
                },
            ),
            Place::SignIn(state_hash, secret) => (
                "oauth",
                (*state_hash).to_owned(),
                match secret {
                    SignInSecret::Nonce => "nonce",
                    SignInSecret::PkceVerifier => "pkce_verifier",
                },
            ),
            Place::CertificateKey(id) => ("certificate", (*id).to_owned(), "private_key"),
        };
        format!("{kind}:{id}:{column}")
    }
}

/// Why a master key or a sealed value is unusable. Never includes key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error("the master key must be 32 bytes, base64-encoded")]
    BadKey,
    #[error("a sealed secret does not open (wrong key, wrong row, or altered)")]
    DoesNotOpen,
    #[error("no randomness available")]
    NoRandomness,
}

/// The 32-byte master key. `Debug` shows nothing of it.
#[derive(Clone)]
pub struct MasterKey([u8; 32]);

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(<redacted>)")
    }
}

impl MasterKey {
    pub fn generate() -> Result<MasterKey, SecretError> {
        let mut key = [0u8; 32];
        SystemRandom::new().fill(&mut key).map_err(|_| SecretError::NoRandomness)?;
        Ok(MasterKey(key))
    }

    pub fn from_base64(text: &str) -> Result<MasterKey, SecretError> {
        let bytes = STANDARD.decode(text.trim()).map_err(|_| SecretError::BadKey)?;
        Ok(MasterKey(bytes.try_into().map_err(|_| SecretError::BadKey)?))
    }

    /// The key as base64, for writing the key file.
    pub fn to_base64(&self) -> SecretString {
        SecretString::from(STANDARD.encode(self.0))
    }
}

/// Signs values for one purpose each, under a key derived from the master key: every instance
/// sharing the master key agrees, and `kehai keys rotate` voids every signature made before.
/// `Debug` shows nothing of the key.
pub struct Signer {
    key: hmac::Key,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Signer { .. }")
    }
}

impl Signer {
    pub fn new(key: &MasterKey) -> Signer {
        // Its own key, never the sealing key itself.
        let derived = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, &key.0), b"kehai-signer-v1");
        Signer { key: hmac::Key::new(hmac::HMAC_SHA256, derived.as_ref()) }
    }

    /// The signature of `parts` for `purpose`, as base64url text.
    pub fn sign(&self, purpose: &str, parts: &[&[u8]]) -> String {
        URL_SAFE_NO_PAD.encode(hmac::sign(&self.key, &Self::message(purpose, parts)))
    }

    /// Whether `given` is the signature of `parts` for `purpose` (compared in constant time).
    pub fn verify(&self, purpose: &str, parts: &[&[u8]], given: &str) -> bool {
        URL_SAFE_NO_PAD
            .decode(given)
            .is_ok_and(|tag| hmac::verify(&self.key, &Self::message(purpose, parts), &tag).is_ok())
    }

    /// Each piece with its length first: no two lists of parts sign alike.
    fn message(purpose: &str, parts: &[&[u8]]) -> Vec<u8> {
        let mut message = Vec::new();
        for part in std::iter::once(purpose.as_bytes()).chain(parts.iter().copied()) {
            message.extend_from_slice(&(part.len() as u64).to_le_bytes());
            message.extend_from_slice(part);
        }
        message
    }
}

/// Seals and opens secrets under one master key.
pub struct SecretBox {
    key: LessSafeKey,
}

impl std::fmt::Debug for SecretBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretBox { .. }")
    }
}

impl SecretBox {
    pub fn new(key: &MasterKey) -> SecretBox {
        let unbound = UnboundKey::new(&AES_256_GCM, &key.0).expect("AES-256 takes 32-byte keys");
        SecretBox { key: LessSafeKey::new(unbound) }
    }

    /// Seals `secret` for its `place`: it opens there only.
    pub fn seal(&self, secret: &SecretString, place: Place<'_>) -> Result<String, SecretError> {
        self.seal_labelled(secret, &place.label())
    }

    /// Opens what [`SecretBox::seal`] sealed for the same `place`.
    pub fn open(&self, sealed: &str, place: Place<'_>) -> Result<SecretString, SecretError> {
        self.open_labelled(sealed, &place.label())
    }

    fn seal_labelled(&self, secret: &SecretString, row: &str) -> Result<String, SecretError> {
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new().fill(&mut nonce).map_err(|_| SecretError::NoRandomness)?;
        let mut data = secret.expose_secret().as_bytes().to_vec();
        self.key
            .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(row.as_bytes()), &mut data)
            .map_err(|_| SecretError::DoesNotOpen)?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&data);
        Ok(format!("{PREFIX}{}", STANDARD.encode(out)))
    }

    fn open_labelled(&self, sealed: &str, row: &str) -> Result<SecretString, SecretError> {
        let bytes =
            sealed.strip_prefix(PREFIX).and_then(|b| STANDARD.decode(b).ok()).ok_or(SecretError::DoesNotOpen)?;
        if bytes.len() < NONCE_LEN {
            return Err(SecretError::DoesNotOpen);
        }
        let (nonce, rest) = bytes.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| SecretError::DoesNotOpen)?;
        let mut data = rest.to_vec();
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(row.as_bytes()), &mut data)
            .map_err(|_| SecretError::DoesNotOpen)?;
        String::from_utf8(plain.to_vec()).map(SecretString::from).map_err(|_| SecretError::DoesNotOpen)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(s: &str) -> SecretString {
        SecretString::from(s.to_owned())
    }

    #[test]
    fn seals_and_opens_for_the_same_row_only() {
        let key = MasterKey::generate().unwrap();
        let b = SecretBox::new(&key);
        let sealed = b.seal_labelled(&secret("refresh-token-value"), "connection:1:refresh_token").unwrap();
        assert!(sealed.starts_with("v1.") && !sealed.contains("refresh-token-value"));
        assert_eq!(
            b.open_labelled(&sealed, "connection:1:refresh_token").unwrap().expose_secret(),
            "refresh-token-value"
        );
        assert_eq!(
            b.open_labelled(&sealed, "connection:2:refresh_token").unwrap_err(),
            SecretError::DoesNotOpen,
            "another row"
        );
        let again = b.seal_labelled(&secret("refresh-token-value"), "connection:1:refresh_token").unwrap();
        assert_ne!(sealed, again, "a fresh nonce every time");
    }

    #[test]
    fn altered_or_foreign_ciphertexts_do_not_open() {
        let b = SecretBox::new(&MasterKey::generate().unwrap());
        let sealed = b.seal_labelled(&secret("x"), "row").unwrap();
        let mut raw = STANDARD.decode(&sealed[3..]).unwrap();
        let last = raw.len() - 1;
        raw[last] ^= 1;
        assert!(b.open_labelled(&format!("v1.{}", STANDARD.encode(raw)), "row").is_err());
        assert!(SecretBox::new(&MasterKey::generate().unwrap()).open_labelled(&sealed, "row").is_err(), "another key");
        for junk in ["", "v1.", "v1.AAAA", "v2.whatever", "plain text"] {
            assert!(b.open_labelled(junk, "row").is_err(), "{junk:?}");
        }
    }

    /// The labels are the rows' and columns' names, as sealed values were always bound.
    #[test]
    fn places_are_labelled_by_row_and_column() {
        let id = ConnectionId(uuid::Uuid::nil());
        let nil = "00000000-0000-0000-0000-000000000000";
        assert_eq!(
            Place::Connection(id, ConnectionSecret::AccessToken).label(),
            format!("connection:{nil}:access_token")
        );
        assert_eq!(
            Place::Connection(id, ConnectionSecret::RefreshToken).label(),
            format!("connection:{nil}:refresh_token")
        );
        assert_eq!(
            Place::Connection(id, ConnectionSecret::ClientState).label(),
            format!("connection:{nil}:client_state")
        );
        assert_eq!(Place::SignIn("h", SignInSecret::Nonce).label(), "oauth:h:nonce");
        assert_eq!(Place::SignIn("h", SignInSecret::PkceVerifier).label(), "oauth:h:pkce_verifier");
        assert_eq!(Place::CertificateKey("kehai-1").label(), "certificate:kehai-1:private_key");
        let b = SecretBox::new(&MasterKey::generate().unwrap());
        let sealed = b.seal(&secret("t"), Place::Connection(id, ConnectionSecret::AccessToken)).unwrap();
        assert!(b.open(&sealed, Place::Connection(id, ConnectionSecret::RefreshToken)).is_err(), "another column");
        assert_eq!(b.open(&sealed, Place::Connection(id, ConnectionSecret::AccessToken)).unwrap().expose_secret(), "t");
    }

    #[test]
    fn keys_come_as_32_bytes_of_base64_and_never_print() {
        let key = MasterKey::generate().unwrap();
        let text = key.to_base64();
        let again = MasterKey::from_base64(text.expose_secret()).unwrap();
        let sealed = SecretBox::new(&key).seal_labelled(&secret("v"), "r").unwrap();
        assert_eq!(SecretBox::new(&again).open_labelled(&sealed, "r").unwrap().expose_secret(), "v");
        assert_eq!(MasterKey::from_base64("c2hvcnQ=").unwrap_err(), SecretError::BadKey);
        assert_eq!(MasterKey::from_base64("not base64!").unwrap_err(), SecretError::BadKey);
        assert!(!format!("{key:?}").contains(text.expose_secret()));
    }

    proptest::proptest! {
        /// Any value sealed for a row opens for that row, to the same value, and for no other.
        #[test]
        fn any_value_round_trips_for_its_row_only(value in ".*", row in "[a-z0-9:_-]{1,40}", other in "[a-z0-9:_-]{1,40}") {
            let b = SecretBox::new(&MasterKey::generate().unwrap());
            let sealed = b.seal_labelled(&secret(&value), &row).unwrap();
            let opened = b.open_labelled(&sealed, &row).unwrap();
            proptest::prop_assert_eq!(opened.expose_secret(), value.as_str());
            if other != row {
                proptest::prop_assert!(b.open_labelled(&sealed, &other).is_err());
            }
        }
    }

    #[test]
    fn signatures_bind_their_purpose_parts_and_key() {
        let key = MasterKey::generate().unwrap();
        let signer = Signer::new(&key);
        let tag = signer.sign("csrf", &[b"seed", b"123"]);
        assert!(signer.verify("csrf", &[b"seed", b"123"], &tag));
        assert!(!signer.verify("device", &[b"seed", b"123"], &tag), "another purpose");
        assert!(!signer.verify("csrf", &[b"seed1", b"23"], &tag), "parts split elsewhere");
        assert!(!signer.verify("csrf", &[b"seed", b"124"], &tag));
        assert!(!signer.verify("csrf", &[b"seed", b"123"], "not base64!"));
        assert!(!Signer::new(&MasterKey::generate().unwrap()).verify("csrf", &[b"seed", b"123"], &tag), "another key");
        assert!(!tag.contains(&key.to_base64().expose_secret()[..8]));
    }
}
