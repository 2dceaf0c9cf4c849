//! The issuer's discovery document (`/.well-known/openid-configuration`): where its
//! authorization, token and revocation endpoints and its keys are. Google asks clients to read
//! them there rather than hard-code them; fetched when first needed and kept, with the key set
//! it names.

use std::sync::Arc;

use kehai_oauth::KeySet;
use serde::Deserialize;
use tokio::sync::OnceCell;

use crate::{GoogleConfig, GoogleError};

/// What kehai reads of the discovery document.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Endpoints {
    pub issuer: String,
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    pub revocation_endpoint: String,
    pub jwks_uri: String,
}

#[derive(Debug)]
pub(crate) struct Published {
    pub endpoints: Endpoints,
    pub keys: KeySet,
}

/// The issuer's endpoints and keys, fetched once (a failed fetch is tried again next time).
#[derive(Debug, Clone)]
pub(crate) struct Discovery {
    config: GoogleConfig,
    http: reqwest::Client,
    published: Arc<OnceCell<Published>>,
}

impl Discovery {
    pub fn new(config: GoogleConfig, http: reqwest::Client) -> Self {
        Discovery { config, http, published: Arc::default() }
    }

    pub async fn get(&self) -> Result<&Published, GoogleError> {
        self.published
            .get_or_try_init(|| async {
                let url = format!("{}/.well-known/openid-configuration", self.config.issuer());
                let transport = |e: reqwest::Error| GoogleError::Transport(e.without_url().to_string());
                let response = self.http.get(&url).send().await.map_err(transport)?;
                if !response.status().is_success() {
                    return Err(GoogleError::Transport(format!("{url} answered {}", response.status())));
                }
                let endpoints: Endpoints = response.json().await.map_err(transport)?;
                // A document naming another issuer is not this one's (a misconfigured URL).
                if endpoints.issuer.trim_end_matches('/') != self.config.issuer() {
                    return Err(GoogleError::Transport(format!(
                        "{url} names the issuer {}, not {}",
                        endpoints.issuer,
                        self.config.issuer()
                    )));
                }
                let keys = KeySet::new(self.http.clone(), endpoints.jwks_uri.clone());
                Ok(Published { endpoints, keys })
            })
            .await
    }
}
