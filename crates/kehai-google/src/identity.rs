//! Signing in with Google: the authorization code with PKCE (the endpoints from the issuer's
//! discovery document), id tokens, refresh and revocation.

use std::sync::Arc;

use kehai_oauth::{AuthorizationRequest, OidcClient, TokenFailure, TokenResult, Tokens};
use oauth2::{
    AuthType, AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, PkceCodeChallenge, PkceCodeVerifier,
    RedirectUrl, RefreshToken, Scope, TokenUrl,
};
use secrecy::{ExposeSecret, SecretString};

use crate::{
    GoogleClaims, GoogleConfig, GoogleError, IdExpectations, Observer, Unobserved, check_id_token,
    discovery::Discovery, id_token::key_id, scopes,
};

/// Google sign-in for one OAuth client.
#[derive(Debug, Clone)]
pub struct Identity {
    config: GoogleConfig,
    http: reqwest::Client,
    discovery: Discovery,
    observer: Arc<dyn Observer>,
}

impl Identity {
    pub fn new(config: GoogleConfig) -> Self {
        let http = kehai_oauth::client();
        Identity {
            discovery: Discovery::new(config.clone(), http.clone()),
            config,
            http,
            observer: Arc::new(Unobserved),
        }
    }

    /// Tells `observer` how every token request ends.
    pub fn with_observer(self, observer: Arc<dyn Observer>) -> Self {
        Identity { observer, ..self }
    }

    async fn client(&self, redirect_uri: &str) -> Result<OidcClient, GoogleError> {
        let endpoints = &self.discovery.get().await?.endpoints;
        let bad = |what: &str| GoogleError::Transport(format!("invalid {what} URL"));
        Ok(oauth2::Client::new(ClientId::new(self.config.client_id.clone()))
            .set_client_secret(ClientSecret::new(self.config.client_secret.expose_secret().to_owned()))
            .set_auth_uri(AuthUrl::new(endpoints.authorization_endpoint.clone()).map_err(|_| bad("authorization"))?)
            .set_token_uri(TokenUrl::new(endpoints.token_endpoint.clone()).map_err(|_| bad("token"))?)
            .set_redirect_uri(RedirectUrl::new(redirect_uri.to_owned()).map_err(|_| bad("redirect"))?)
            .set_auth_type(AuthType::RequestBody))
    }

    /// The authorization URL for kehai's scopes exactly, with a fresh state, nonce and PKCE
    /// (S256) pair: `access_type=offline` and `prompt=consent select_account` (a refresh token
    /// on every consent, and the account chooser, so that a person can pick their work account),
    /// `include_granted_scopes=true`, and `hd` — only a hint to the chooser, the id token's `hd`
    /// is what counts — when kehai takes one organization's accounts.
    pub async fn authorization_request(
        &self,
        redirect_uri: &str,
        hd: Option<&str>,
    ) -> Result<AuthorizationRequest, GoogleError> {
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let nonce = CsrfToken::new_random().secret().to_owned();
        let client = self.client(redirect_uri).await?;
        let mut request = client
            .authorize_url(CsrfToken::new_random)
            .add_scopes(scopes::REQUESTED.iter().map(|s| Scope::new((*s).to_owned())))
            .set_pkce_challenge(challenge)
            .add_extra_param("nonce", &nonce)
            .add_extra_param("access_type", "offline")
            .add_extra_param("prompt", "consent select_account")
            .add_extra_param("include_granted_scopes", "true");
        if let Some(hd) = hd {
            request = request.add_extra_param("hd", hd);
        }
        let (url, state) = request.url();
        Ok(AuthorizationRequest {
            url,
            state: SecretString::from(state.secret().to_owned()),
            nonce: SecretString::from(nonce),
            pkce_verifier: SecretString::from(verifier.secret().to_owned()),
        })
    }

    /// Redeems an authorization code (with the PKCE verifier and the client secret).
    pub async fn exchange_code(
        &self,
        code: &str,
        pkce_verifier: &SecretString,
        redirect_uri: &str,
    ) -> Result<Tokens, GoogleError> {
        let result = match self.client(redirect_uri).await {
            Ok(client) => tokens(
                client
                    .exchange_code(AuthorizationCode::new(code.to_owned()))
                    .set_pkce_verifier(PkceCodeVerifier::new(pkce_verifier.expose_secret().to_owned()))
                    .request_async(&kehai_oauth::for_oauth(&self.http, false))
                    .await,
            ),
            Err(e) => Err(e),
        };
        self.observed("authorization_code", result)
    }

    /// New access token for a refresh token (Google keeps the refresh token: none comes back).
    pub async fn refresh(&self, refresh_token: &SecretString, redirect_uri: &str) -> Result<Tokens, GoogleError> {
        let refresh = RefreshToken::new(refresh_token.expose_secret().to_owned());
        let result = match self.client(redirect_uri).await {
            Ok(client) => tokens(
                client.exchange_refresh_token(&refresh).request_async(&kehai_oauth::for_oauth(&self.http, true)).await,
            ),
            Err(e) => Err(e),
        };
        self.observed("refresh_token", result)
    }

    /// Revokes a token at the revocation endpoint (a refresh token: the whole grant). A token
    /// Google no longer knows (`invalid_token`) counts as revoked.
    pub async fn revoke(&self, token: &SecretString) -> Result<(), GoogleError> {
        let endpoint = self.discovery.get().await?.endpoints.revocation_endpoint.clone();
        let response = self
            .http
            .post(endpoint)
            .form(&[("token", token.expose_secret())])
            .send()
            .await
            .map_err(|e| GoogleError::Transport(e.without_url().to_string()))?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let body: serde_json::Value = response.json().await.unwrap_or_default();
        let error = body["error"].as_str().unwrap_or("").to_owned();
        if status.as_u16() == 400 && error == "invalid_token" {
            return Ok(());
        }
        Err(GoogleError::OAuth {
            error: if error.is_empty() { format!("http_{}", status.as_u16()) } else { error },
            description: body["error_description"].as_str().unwrap_or("").to_owned(),
        })
    }

    /// Checks the id token of a sign-in: its signature, issuer, audience, expiry and nonce.
    pub async fn validate(&self, id_token: &str, nonce: &SecretString) -> Result<GoogleClaims, GoogleError> {
        let kid = key_id(id_token)?;
        let published = self.discovery.get().await?;
        let key = published.keys.key(&kid).await.map_err(|e| match e {
            kehai_oauth::KeyError::Unavailable(why) => GoogleError::Transport(why),
            unknown @ kehai_oauth::KeyError::Unknown(_) => GoogleError::IdToken(unknown.to_string()),
        })?;
        let expected = IdExpectations { client_id: &self.config.client_id, issuer: &published.endpoints.issuer, nonce };
        check_id_token(id_token, &key, &expected)
    }

    /// Tells the observer how a token request ended.
    fn observed(&self, grant: &'static str, result: Result<Tokens, GoogleError>) -> Result<Tokens, GoogleError> {
        let outcome = match &result {
            Ok(_) => "ok",
            Err(GoogleError::OAuth { error, .. }) => error.as_str(),
            Err(_) => "unavailable",
        };
        self.observer.token_call(grant, outcome);
        result
    }
}

fn tokens(result: TokenResult) -> Result<Tokens, GoogleError> {
    kehai_oauth::tokens(result).map_err(|failure| match failure {
        TokenFailure::Refused { error, description } => GoogleError::OAuth { error, description },
        TokenFailure::Transport(why) => GoogleError::Transport(why),
    })
}
