//! What a sign-in with an OpenID Connect provider starts with and ends with, the same at
//! Microsoft and Google: the authorization request kehai keeps to finish it, the `oauth2`
//! client for a provider's endpoints, and the tokens its token endpoint answers with (the
//! standard fields plus the `id_token`).

use oauth2::{
    EndpointNotSet, EndpointSet, ExtraTokenFields, RequestTokenError, StandardRevocableToken, StandardTokenResponse,
    TokenResponse,
    basic::{BasicErrorResponse, BasicRevocationErrorResponse, BasicTokenIntrospectionResponse, BasicTokenType},
};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use crate::TransportError;

/// What an OpenID Connect token response adds to OAuth's standard fields.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IdTokenField {
    #[serde(default)]
    id_token: Option<String>,
}

impl ExtraTokenFields for IdTokenField {}

type TokenBody = StandardTokenResponse<IdTokenField, BasicTokenType>;

/// An `oauth2` client with an authorization and a token endpoint.
pub type OidcClient = oauth2::Client<
    BasicErrorResponse,
    TokenBody,
    BasicTokenIntrospectionResponse,
    StandardRevocableToken,
    BasicRevocationErrorResponse,
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointSet,
>;

/// How a token request of an [`OidcClient`] ended.
pub type TokenResult = Result<TokenBody, RequestTokenError<TransportError, BasicErrorResponse>>;

/// Tokens from a token endpoint. `Debug` shows none of them.
#[derive(Clone)]
pub struct Tokens {
    pub access_token: SecretString,
    /// A refresh token, when one was given (Microsoft rotates it on every refresh: store the
    /// new one; Google gives one on a consent and keeps it).
    pub refresh_token: Option<SecretString>,
    pub id_token: Option<String>,
    /// The scopes granted, space-separated, in the provider's spelling.
    pub scope: Option<String>,
    /// Seconds the access token lives.
    pub expires_in: u64,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokens")
            .field("expires_in", &self.expires_in)
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

/// Why a token request gave no tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenFailure {
    /// The endpoint refused: its `error` and `error_description`.
    Refused { error: String, description: String },
    /// No readable answer.
    Transport(String),
}

/// The tokens of a token request, or why there are none.
pub fn tokens(result: TokenResult) -> Result<Tokens, TokenFailure> {
    match result {
        Ok(body) => Ok(Tokens {
            access_token: SecretString::from(body.access_token().secret().to_owned()),
            refresh_token: body.refresh_token().map(|r| SecretString::from(r.secret().to_owned())),
            id_token: body.extra_fields().id_token.clone(),
            scope: body.scopes().map(|s| s.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(" ")),
            expires_in: body.expires_in().map_or(3600, |d| d.as_secs()),
        }),
        Err(RequestTokenError::ServerResponse(e)) => Err(TokenFailure::Refused {
            error: e.error().as_ref().to_owned(),
            description: e.error_description().cloned().unwrap_or_default(),
        }),
        Err(RequestTokenError::Request(e)) => Err(TokenFailure::Transport(e.message().to_owned())),
        Err(RequestTokenError::Parse(e, _)) => Err(TokenFailure::Transport(format!("unreadable token response: {e}"))),
        Err(RequestTokenError::Other(e)) => Err(TokenFailure::Transport(e)),
    }
}

/// A sign-in about to start: the URL to send the browser to, and what to keep (server side)
/// to finish it. `Debug` shows only the URL's host.
pub struct AuthorizationRequest {
    pub url: url::Url,
    pub state: SecretString,
    pub nonce: SecretString,
    pub pkce_verifier: SecretString,
}

impl std::fmt::Debug for AuthorizationRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthorizationRequest").field("host", &self.url.host_str()).finish_non_exhaustive()
    }
}
