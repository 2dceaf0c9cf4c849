//! msemu's signing keys: RS256 keys with self-signed certificates, published as JWKS and used
//! for id tokens, access tokens and change-notification validation tokens. Keys rotate on
//! request; the previous keys stay published (and valid) so tokens already issued still verify,
//! as Microsoft does.

use base64::{
    Engine,
    engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD},
};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Serialize, de::DeserializeOwned};
use serde_json::{Value, json};

/// How many retired keys stay published.
const RETIRED_KEPT: usize = 2;

/// One RSA signing key with its certificate.
pub struct SigningKey {
    /// `kid` and `x5t`: base64url of the certificate's SHA-1 (Microsoft uses the same value).
    pub kid: String,
    cert_der: Vec<u8>,
    n: String,
    e: String,
    encoding: EncodingKey,
    decoding: DecodingKey,
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
        params.distinguished_name.push(rcgen::DnType::CommonName, "msemu token signing");
        let cert = params.self_signed(&key)?;
        let cert_der = cert.der().to_vec();
        let (n, e) = rsa_components(&cert_der)?;
        let sha1 = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY, &cert_der);
        let kid = URL_SAFE_NO_PAD.encode(sha1.as_ref());
        Ok(SigningKey {
            kid,
            encoding: EncodingKey::from_rsa_pem(key.serialize_pem().as_bytes())?,
            decoding: DecodingKey::from_rsa_components(&n, &e)?,
            cert_der,
            n,
            e,
        })
    }

    /// The key as a JWK, with the `issuer` member Microsoft adds for multi-tenant endpoints.
    pub fn jwk(&self, issuer: Option<&str>) -> Value {
        let mut jwk = json!({
            "kty": "RSA",
            "use": "sig",
            "kid": self.kid,
            "x5t": self.kid,
            "n": self.n,
            "e": self.e,
            "x5c": [STANDARD.encode(&self.cert_der)],
        });
        if let Some(issuer) = issuer {
            jwk["issuer"] = Value::String(issuer.to_owned());
        }
        jwk
    }
}

/// The modulus and exponent (base64url, no leading zeros) of a certificate's RSA key.
pub fn rsa_components(cert_der: &[u8]) -> anyhow::Result<(String, String)> {
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

    /// The JWKS document.
    pub fn jwks(&self, issuer: Option<&str>) -> Value {
        let keys: Vec<Value> = std::iter::once(&self.current).chain(&self.retired).map(|k| k.jwk(issuer)).collect();
        json!({ "keys": keys })
    }

    /// Signs `claims` as an RS256 JWT with the current key.
    pub fn sign(&self, claims: &impl Serialize) -> anyhow::Result<String> {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(self.current.kid.clone());
        header.x5t = Some(self.current.kid.clone());
        Ok(jsonwebtoken::encode(&header, claims, &self.current.encoding)?)
    }

    /// Verifies a JWT signed by one of the published keys (signature and `exp`/`nbf` only:
    /// callers check the claims they care about).
    pub fn verify<T: DeserializeOwned>(&self, token: &str) -> Result<T, jsonwebtoken::errors::Error> {
        let kid = jsonwebtoken::decode_header(token)?.kid.unwrap_or_default();
        let key = std::iter::once(&self.current)
            .chain(&self.retired)
            .find(|k| k.kid == kid)
            .ok_or_else(|| jsonwebtoken::errors::Error::from(jsonwebtoken::errors::ErrorKind::InvalidKeyFormat))?;
        let mut validation = Validation::new(Algorithm::RS256);
        validation.validate_aud = false;
        validation.validate_nbf = true;
        validation.leeway = 0;
        validation.required_spec_claims.clear();
        Ok(jsonwebtoken::decode::<T>(token, &key.decoding, &validation)?.claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_verify_and_rotate() {
        let mut keys = Keys::generate().unwrap();
        let exp = time::OffsetDateTime::now_utc().unix_timestamp() + 60;
        let token = keys.sign(&json!({"sub": "x", "exp": exp})).unwrap();
        let claims: Value = keys.verify(&token).unwrap();
        assert_eq!(claims["sub"], "x");
        let header = jsonwebtoken::decode_header(&token).unwrap();
        assert_eq!(header.kid.as_deref(), Some(keys.current_kid()));

        keys.rotate().unwrap();
        assert_ne!(header.kid.as_deref(), Some(keys.current_kid()));
        assert!(keys.verify::<Value>(&token).is_ok(), "tokens of the previous key still verify");
        let jwks = keys.jwks(Some("https://login.microsoftonline.com/{tenantid}/v2.0"));
        let kids: Vec<_> = jwks["keys"].as_array().unwrap().iter().map(|k| k["kid"].as_str().unwrap()).collect();
        assert_eq!(kids.len(), 2);
        assert!(kids.contains(&header.kid.as_deref().unwrap()));

        let mut tampered = token.clone();
        tampered.replace_range(token.len() - 4.., "AAAA");
        assert!(keys.verify::<Value>(&tampered).is_err());
        let expired = keys.sign(&json!({"exp": exp - 120})).unwrap();
        assert!(keys.verify::<Value>(&expired).is_err());
    }
}
