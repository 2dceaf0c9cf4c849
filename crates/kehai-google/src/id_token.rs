//! Id-token validation: RS256 against the keys the discovery document names (cached, fetched
//! again when a token names an unknown key), `iss` (Google's own tokens may say
//! `accounts.google.com` without the scheme), `aud` (kehai's client id), `nonce`, and
//! `exp`/`iat` with a small skew. What it returns says whether the account belongs to an
//! organization (`hd`): the caller decides whether that is required.

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use subtle::ConstantTimeEq;

use crate::{GOOGLE_ISSUER, GoogleError};

/// Clocks may disagree this much.
const SKEW_SECONDS: u64 = 120;

/// What kehai takes from a Google id token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GoogleClaims {
    /// The account: "unique among all Google accounts and never reused".
    pub sub: String,
    /// The account's organization (Google Workspace or Cloud Identity domain); `None` for a
    /// personal account.
    pub hd: Option<String>,
    pub email: Option<String>,
    pub email_verified: bool,
}

fn refuse(why: impl Into<String>) -> GoogleError {
    GoogleError::IdToken(why.into())
}

/// What a sign-in's id token must say.
pub struct IdExpectations<'a> {
    /// kehai's client id: the token's `aud`.
    pub client_id: &'a str,
    /// The discovery document's `issuer`.
    pub issuer: &'a str,
    /// The nonce of the sign-in (compared in constant time).
    pub nonce: &'a SecretString,
}

/// The key id (`kid`) of an RS256 token, read before any key is looked up.
pub(crate) fn key_id(token: &str) -> Result<String, GoogleError> {
    let header = jsonwebtoken::decode_header(token).map_err(|e| refuse(format!("malformed: {e}")))?;
    if header.alg != Algorithm::RS256 {
        return Err(refuse("not RS256"));
    }
    header.kid.ok_or_else(|| refuse("no kid"))
}

/// Checks an id token signed with `key`. No I/O (a fuzzer can call it).
pub fn check_id_token(token: &str, key: &DecodingKey, expected: &IdExpectations) -> Result<GoogleClaims, GoogleError> {
    let mut validation = Validation::new(Algorithm::RS256);
    validation.set_audience(&[expected.client_id]);
    validation.leeway = SKEW_SECONDS;
    validation.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
    let claims = jsonwebtoken::decode::<Value>(token, key, &validation).map_err(|e| refuse(format!("{e}")))?.claims;
    let text = |name: &str| claims.get(name).and_then(Value::as_str);
    let issuer = expected.issuer.trim_end_matches('/');
    let iss = text("iss").unwrap_or("");
    if iss != issuer && !(issuer == GOOGLE_ISSUER && iss == "accounts.google.com") {
        return Err(refuse("wrong issuer"));
    }
    let given = text("nonce").unwrap_or("");
    if !bool::from(given.as_bytes().ct_eq(expected.nonce.expose_secret().as_bytes())) {
        return Err(refuse("wrong nonce"));
    }
    let sub = text("sub").filter(|s| !s.is_empty()).ok_or_else(|| refuse("no sub"))?;
    // A boolean in real tokens; Google's own documentation quotes it as a string.
    let email_verified = match claims.get("email_verified") {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => s == "true",
        _ => false,
    };
    Ok(GoogleClaims {
        sub: sub.to_owned(),
        hd: text("hd").filter(|d| !d.is_empty()).map(str::to_owned),
        email: text("email").map(str::to_owned),
        email_verified,
    })
}
