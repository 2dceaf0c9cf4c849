//! The authorization-code flow with PKCE against the Microsoft identity platform v2.0:
//! building the authorize URL, redeeming the code, refreshing.

use std::sync::Arc;

use kehai_oauth::{AuthorizationRequest, OidcClient, TokenFailure, TokenResult, Tokens};
use oauth2::{
    AuthType, AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, PkceCodeChallenge, PkceCodeVerifier,
    RedirectUrl, RefreshToken, Scope, TokenUrl,
};
use secrecy::{ExposeSecret, SecretString};

use crate::{MicrosoftConfig, MicrosoftError, Observer, SCOPES, Unobserved};

/// The identity platform for one app registration.
#[derive(Debug, Clone)]
pub struct Identity {
    config: MicrosoftConfig,
    http: reqwest::Client,
    observer: Arc<dyn Observer>,
}

impl Identity {
    pub fn new(config: MicrosoftConfig) -> Self {
        Identity { config, http: kehai_oauth::client(), observer: Arc::new(Unobserved) }
    }

    /// Tells `observer` how every token request ends.
    pub fn with_observer(self, observer: Arc<dyn Observer>) -> Self {
        Identity { observer, ..self }
    }

    fn client(&self, redirect_uri: &str) -> Result<OidcClient, MicrosoftError> {
        let bad = |what: &str| MicrosoftError::Transport(format!("invalid {what} URL"));
        let tenant = &self.config.tenant;
        Ok(oauth2::Client::new(ClientId::new(self.config.client_id.clone()))
            .set_client_secret(ClientSecret::new(self.config.client_secret.expose_secret().to_owned()))
            .set_auth_uri(
                AuthUrl::new(self.config.login(&format!("/{tenant}/oauth2/v2.0/authorize")))
                    .map_err(|_| bad("authorize"))?,
            )
            .set_token_uri(
                TokenUrl::new(self.config.login(&format!("/{tenant}/oauth2/v2.0/token"))).map_err(|_| bad("token"))?,
            )
            .set_redirect_uri(RedirectUrl::new(redirect_uri.to_owned()).map_err(|_| bad("redirect"))?)
            // client_secret_post, as Microsoft documents it.
            .set_auth_type(AuthType::RequestBody))
    }

    /// The authorize URL for kehai's scopes with a fresh state, nonce and PKCE (S256) pair, and
    /// `prompt=select_account` so that a person can always pick another account, without first
    /// signing out at Microsoft.
    pub fn authorization_request(&self, redirect_uri: &str) -> Result<AuthorizationRequest, MicrosoftError> {
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let nonce = CsrfToken::new_random().secret().to_owned();
        let (url, state) = self
            .client(redirect_uri)?
            .authorize_url(CsrfToken::new_random)
            .add_scopes(SCOPES.iter().map(|s| Scope::new((*s).to_owned())))
            .set_pkce_challenge(challenge)
            .add_extra_param("nonce", &nonce)
            .add_extra_param("prompt", "select_account")
            .add_extra_param("response_mode", "query")
            .url();
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
    ) -> Result<Tokens, MicrosoftError> {
        let response = self
            .client(redirect_uri)?
            .exchange_code(AuthorizationCode::new(code.to_owned()))
            .set_pkce_verifier(PkceCodeVerifier::new(pkce_verifier.expose_secret().to_owned()))
            .request_async(&kehai_oauth::for_oauth(&self.http, false))
            .await;
        self.observed("authorization_code", tokens(response))
    }

    /// Trades a refresh token for new tokens (including a new refresh token).
    pub async fn refresh(&self, refresh_token: &SecretString, redirect_uri: &str) -> Result<Tokens, MicrosoftError> {
        let refresh = RefreshToken::new(refresh_token.expose_secret().to_owned());
        let response = self
            .client(redirect_uri)?
            .exchange_refresh_token(&refresh)
            .add_scopes(SCOPES.iter().map(|s| Scope::new((*s).to_owned())))
            .request_async(&kehai_oauth::for_oauth(&self.http, true))
            .await;
        self.observed("refresh_token", tokens(response))
    }

    /// Tells the observer how a token request ended.
    fn observed(&self, grant: &'static str, result: Result<Tokens, MicrosoftError>) -> Result<Tokens, MicrosoftError> {
        let outcome = match &result {
            Ok(_) => "ok",
            Err(MicrosoftError::Identity { error, .. }) => error.as_str(),
            Err(_) => "unavailable",
        };
        self.observer.token_call(grant, outcome);
        result
    }

    /// The admin-consent URL an administrator opens to approve kehai for their organization, for
    /// people whose sign-in stops at Microsoft's "Need admin approval".
    pub fn admin_consent_url(&self, redirect_uri: &str, state: &str) -> String {
        let mut url = url::Url::parse(&self.config.login(&format!("/{}/v2.0/adminconsent", self.config.tenant)))
            .unwrap_or_else(|_| self.config.login_url.clone());
        url.query_pairs_mut()
            .append_pair("client_id", &self.config.client_id)
            .append_pair("scope", "https://graph.microsoft.com/Presence.Read.All")
            .append_pair("redirect_uri", redirect_uri)
            .append_pair("state", state);
        url.to_string()
    }
}

fn tokens(result: TokenResult) -> Result<Tokens, MicrosoftError> {
    kehai_oauth::tokens(result).map_err(|failure| match failure {
        TokenFailure::Refused { error, description } => MicrosoftError::identity(&error, &description),
        TokenFailure::Transport(why) => MicrosoftError::Transport(why),
    })
}
