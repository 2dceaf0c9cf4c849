//! One reqwest client configuration for every call to a provider, and the adapter that lets the
//! `oauth2` crate send its token requests through it.

use std::{future::Future, pin::Pin, time::Duration};

use crate::retry;

/// Every call to a provider has a timeout.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// The client for calls to a provider: with [`TIMEOUT`], and following no redirect (a token
/// endpoint that redirected could carry the code or the secret elsewhere).
pub fn client() -> reqwest::Client {
    reqwest::Client::builder().timeout(TIMEOUT).redirect(reqwest::redirect::Policy::none()).build().unwrap_or_default()
}

/// A token request that got no readable answer (the text names no URL: it goes to logs).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TransportError(String);

impl TransportError {
    pub fn message(&self) -> &str {
        &self.0
    }
}

type Answer = Pin<Box<dyn Future<Output = Result<oauth2::HttpResponse, TransportError>> + Send>>;

/// `oauth2`'s HTTP client, on our reqwest, retrying ([`retry`]) a throttled or unavailable token
/// endpoint and — when `idempotent` (a refresh, not a one-time code) — a lost answer.
pub fn for_oauth(client: &reqwest::Client, idempotent: bool) -> impl Fn(oauth2::HttpRequest) -> Answer + '_ {
    move |request| {
        let client = client.clone();
        Box::pin(async move {
            let (parts, body) = request.into_parts();
            let mut attempt = 0;
            let response = loop {
                let sent = client
                    .request(parts.method.clone(), parts.uri.to_string())
                    .headers(parts.headers.clone())
                    .body(body.clone())
                    .send()
                    .await;
                let retry_after = match &sent {
                    Ok(r) if retry::transient(r.status().as_u16()) => retry::retry_after(r.headers()),
                    Err(_) if idempotent => None,
                    _ => break sent,
                };
                let Some(wait) = retry::wait(attempt, retry_after) else { break sent };
                tokio::time::sleep(wait).await;
                attempt += 1;
            };
            let response = response.map_err(|e| TransportError(e.without_url().to_string()))?;
            let mut builder = http::Response::builder().status(response.status());
            for (name, value) in response.headers() {
                builder = builder.header(name, value);
            }
            let bytes = response.bytes().await.map_err(|e| TransportError(e.without_url().to_string()))?;
            builder.body(bytes.to_vec()).map_err(|e| TransportError(e.to_string()))
        })
    }
}
