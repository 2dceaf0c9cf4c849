//! googleemu's signing keys: RSA 2048 keys (made with aws-lc-rs through rcgen) with self-signed
//! certificates, published the two ways Google publishes its own — a JWKS at
//! `/oauth2/v3/certs` and a map of `kid` to PEM certificate at `/oauth2/v1/certs` (what
//! google-auth's `verify_oauth2_token` reads). Keys rotate on request; retired keys stay
//! published for two more rotations so that id tokens already issued still verify, as Google
//! keeps its previous key in the documents.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::Serialize;
use serde_json::{Map, Value, json};

/// How many retired keys stay published.
const RETIRED_KEPT: usize = 2;

/// One RSA signing key with its certificate.
pub struct SigningKey {
    /// 40 hex digits, like Google's `kid`s (here: the SHA-1 of the certificate).
    pub kid: String,
    cert_pem: String,
    n: String,
    e: String,
    encoding: EncodingKey,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey").field("kid", &self.kid).finish_non_exhaustive()
    }
}

impl SigningKey {
    pub fn generate() -> anyhow::Result<SigningKey> {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256)?;
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new())?;
        params.distinguished_name.push(rcgen::DnType::CommonName, "googleemu id token signing");
        let cert = params.self_signed(&key)?;
        let (n, e) = rsa_components(cert.der())?;
        let sha1 = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY, cert.der());
        let kid = sha1.as_ref().iter().map(|b| format!("{b:02x}")).collect();
        Ok(SigningKey {
            kid,
            cert_pem: cert.pem(),
            n,
            e,
            encoding: EncodingKey::from_rsa_pem(key.serialize_pem().as_bytes())?,
        })
    }

    /// The key as Google's JWKS lists it.
    pub fn jwk(&self) -> Value {
        json!({ "kty": "RSA", "alg": "RS256", "use": "sig", "kid": self.kid, "n": self.n, "e": self.e })
    }
}

/// The modulus and exponent (base64url, no leading zeros) of a certificate's RSA key.
fn rsa_components(cert_der: &[u8]) -> anyhow::Result<(String, String)> {
    let (_, cert) = x509_parser::parse_x509_certificate(cert_der)?;
    match cert.public_key().parsed()? {
        x509_parser::public_key::PublicKey::RSA(rsa) => {
            let strip = |b: &[u8]| URL_SAFE_NO_PAD.encode(&b[b.iter().take_while(|x| **x == 0).count()..]);
            Ok((strip(rsa.modulus), strip(rsa.exponent)))
        }
        _ => anyhow::bail!("not an RSA certificate"),
    }
}

/// The current key and the recently retired ones.
#[derive(Debug)]
pub struct Keys {
    current: SigningKey,
    retired: Vec<SigningKey>,
}

impl Keys {
    pub fn generate() -> anyhow::Result<Keys> {
        Ok(Keys { current: SigningKey::generate()?, retired: Vec::new() })
    }

    /// Starts signing with a new key; the old one stays published for a while.
    pub fn rotate(&mut self) -> anyhow::Result<()> {
        let old = std::mem::replace(&mut self.current, SigningKey::generate()?);
        self.retired.insert(0, old);
        self.retired.truncate(RETIRED_KEPT);
        Ok(())
    }

    pub fn current_kid(&self) -> &str {
        &self.current.kid
    }

    fn published(&self) -> impl Iterator<Item = &SigningKey> {
        std::iter::once(&self.current).chain(&self.retired)
    }

    /// `/oauth2/v3/certs`.
    pub fn jwks(&self) -> Value {
        json!({ "keys": self.published().map(SigningKey::jwk).collect::<Vec<_>>() })
    }

    /// `/oauth2/v1/certs`: `{"<kid>": "-----BEGIN CERTIFICATE-----…"}`.
    pub fn pem_map(&self) -> Value {
        Value::Object(
            self.published().map(|k| (k.kid.clone(), Value::String(k.cert_pem.clone()))).collect::<Map<_, _>>(),
        )
    }

    /// Signs `claims` as an RS256 JWT with the current key (`kid` and `typ` in the header, as
    /// Google's id tokens have).
    pub fn sign(&self, claims: &impl Serialize) -> anyhow::Result<String> {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(self.current.kid.clone());
        Ok(jsonwebtoken::encode(&header, claims, &self.current.encoding)?)
    }
}

#[cfg(test)]
mod tests {
    use jsonwebtoken::{DecodingKey, Validation};

    use super::*;

    fn verify(jwks: &Value, token: &str) -> Result<Value, jsonwebtoken::errors::Error> {
        let kid = jsonwebtoken::decode_header(token)?.kid.unwrap_or_default();
        let jwk = jwks["keys"].as_array().unwrap().iter().find(|k| k["kid"] == kid.as_str());
        let Some(jwk) = jwk else { return Err(jsonwebtoken::errors::ErrorKind::InvalidKeyFormat.into()) };
        let key = DecodingKey::from_rsa_components(jwk["n"].as_str().unwrap(), jwk["e"].as_str().unwrap())?;
        let mut validation = Validation::new(Algorithm::RS256);
        validation.validate_aud = false;
        Ok(jsonwebtoken::decode::<Value>(token, &key, &validation)?.claims)
    }

    #[test]
    fn tokens_verify_against_the_published_keys_across_rotations() {
        let mut keys = Keys::generate().unwrap();
        let exp = time::OffsetDateTime::now_utc().unix_timestamp() + 60;
        let token = keys.sign(&json!({"sub": "1", "exp": exp})).unwrap();
        assert_eq!(verify(&keys.jwks(), &token).unwrap()["sub"], "1");
        let old_kid = keys.current_kid().to_owned();
        assert_eq!(old_kid.len(), 40);
        assert!(keys.pem_map()[&old_kid].as_str().unwrap().starts_with("-----BEGIN CERTIFICATE-----"));

        keys.rotate().unwrap();
        assert_ne!(keys.current_kid(), old_kid);
        assert!(verify(&keys.jwks(), &token).is_ok(), "a retired key stays published");
        keys.rotate().unwrap();
        keys.rotate().unwrap();
        assert!(verify(&keys.jwks(), &token).is_err(), "…for two rotations");
        assert_eq!(keys.jwks()["keys"].as_array().unwrap().len(), 3);

        let mut tampered = keys.sign(&json!({"sub": "2", "exp": exp})).unwrap();
        tampered.replace_range(tampered.len() - 4.., "AAAA");
        assert!(verify(&keys.jwks(), &tampered).is_err());
    }
}
