//! Id-token validation: RS256 against the tenant's published keys (cached, re-fetched once when
//! a token names an unknown key), `iss` equal to the metadata's issuer template with the token's
//! own `tid` (Microsoft's multi-tenant endpoints publish `…/{tenantid}/v2.0` literally), `aud`,
//! `nonce`, and `exp`/`nbf` with a small skew.

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use kehai_oauth::{KeyError, KeySet};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::Value;
use subtle::ConstantTimeEq;
use tokio::sync::OnceCell;

use crate::{MicrosoftConfig, MicrosoftError};

/// Clocks may disagree this much.
const SKEW_SECONDS: u64 = 120;

/// What kehai takes from an id token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdClaims {
    /// The tenant of the account (`9188040d-…` for personal accounts).
    pub tid: String,
    /// Pairwise subject.
    pub sub: String,
    pub email: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
struct Metadata {
    issuer: String,
    jwks_uri: String,
}

/// Validates id tokens of one app; keeps the metadata and keys it fetched.
#[derive(Clone)]
pub struct IdTokenValidator {
    config: MicrosoftConfig,
    http: reqwest::Client,
    published: std::sync::Arc<OnceCell<(Metadata, KeySet)>>,
}

impl std::fmt::Debug for IdTokenValidator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdTokenValidator").field("tenant", &self.config.tenant).finish_non_exhaustive()
    }
}

fn refuse(why: impl Into<String>) -> MicrosoftError {
    MicrosoftError::IdToken(why.into())
}

impl IdTokenValidator {
    pub fn new(config: MicrosoftConfig) -> Self {
        IdTokenValidator { config, http: kehai_oauth::client(), published: Default::default() }
    }

    /// The tenant's metadata and its key set, fetched once.
    async fn published(&self) -> Result<&(Metadata, KeySet), MicrosoftError> {
        self.published
            .get_or_try_init(|| async {
                let url = self.config.login(&format!("/{}/v2.0/.well-known/openid-configuration", self.config.tenant));
                let transport = |e: reqwest::Error| MicrosoftError::Transport(e.without_url().to_string());
                let response = self.http.get(&url).send().await.map_err(transport)?;
                if !response.status().is_success() {
                    return Err(MicrosoftError::Transport(format!("{url} answered {}", response.status())));
                }
                let metadata: Metadata = response.json().await.map_err(transport)?;
                let keys = KeySet::new(self.http.clone(), metadata.jwks_uri.clone());
                Ok((metadata, keys))
            })
            .await
    }

    /// Checks an id token for this app and the `nonce` of its sign-in.
    pub async fn validate(&self, token: &str, nonce: &SecretString) -> Result<IdClaims, MicrosoftError> {
        let kid = key_id(token)?;
        let (metadata, keys) = self.published().await?;
        let key = keys.key(&kid).await.map_err(|e| match e {
            KeyError::Unavailable(why) => MicrosoftError::Transport(why),
            KeyError::Unknown(_) => refuse(e.to_string()),
        })?;
        check_id_token(
            token,
            &key,
            &IdExpectations { client_id: &self.config.client_id, issuer: &metadata.issuer, nonce },
        )
    }
}

/// The key id (`kid`) in a token's header, read before any key is looked up; only RS256 tokens
/// have one worth looking up.
pub fn key_id(token: &str) -> Result<String, MicrosoftError> {
    let header = jsonwebtoken::decode_header(token).map_err(|e| refuse(format!("malformed: {e}")))?;
    if header.alg != Algorithm::RS256 {
        return Err(refuse("not RS256"));
    }
    header.kid.ok_or_else(|| refuse("no kid"))
}

/// What a sign-in's id token must say.
pub struct IdExpectations<'a> {
    /// This app: the token's `aud`.
    pub client_id: &'a str,
    /// The metadata's `issuer`, `{tenantid}` standing for the token's `tid`.
    pub issuer: &'a str,
    /// The nonce of the sign-in (compared in constant time).
    pub nonce: &'a SecretString,
}

/// Checks an id token signed with `key`: the signature, `exp`/`nbf`, `aud`, `iss` with the
/// token's own `tid`, and the nonce. No I/O: [`IdTokenValidator::validate`] finds the key and
/// the issuer, then calls this (and so can a fuzzer).
pub fn check_id_token(token: &str, key: &DecodingKey, expected: &IdExpectations) -> Result<IdClaims, MicrosoftError> {
    let mut validation = Validation::new(Algorithm::RS256);
    validation.set_audience(&[expected.client_id]);
    validation.leeway = SKEW_SECONDS;
    validation.validate_nbf = true;
    validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    let claims = jsonwebtoken::decode::<Value>(token, key, &validation).map_err(|e| refuse(format!("{e}")))?.claims;
    let text = |name: &str| claims.get(name).and_then(Value::as_str);
    let tid = text("tid").ok_or_else(|| refuse("no tid"))?;
    let expected_issuer = expected.issuer.replace("{tenantid}", tid);
    if text("iss") != Some(expected_issuer.as_str()) {
        return Err(refuse("wrong issuer"));
    }
    let given = text("nonce").unwrap_or("");
    if !bool::from(given.as_bytes().ct_eq(expected.nonce.expose_secret().as_bytes())) {
        return Err(refuse("wrong nonce"));
    }
    Ok(IdClaims {
        tid: tid.to_owned(),
        sub: text("sub").unwrap_or_default().to_owned(),
        email: text("email").map(str::to_owned),
    })
}
