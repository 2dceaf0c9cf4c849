//! One reqwest client for everything, and the adapter that lets the `oauth2` crate use it.

use std::{future::Future, pin::Pin, time::Duration};

use crate::{MicrosoftError, retry};

/// Every call to Microsoft has a timeout.
pub(crate) const TIMEOUT: Duration = Duration::from_secs(10);

pub(crate) fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(TIMEOUT)
        // Token endpoints must not redirect; following one could leak the code or secret.
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap_or_default()
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct TransportError(String);

impl From<TransportError> for MicrosoftError {
    fn from(e: TransportError) -> Self {
        MicrosoftError::Transport(e.0)
    }
}

type Answer = Pin<Box<dyn Future<Output = Result<oauth2::HttpResponse, TransportError>> + Send>>;

/// `oauth2`'s HTTP client, on our reqwest, retrying ([`retry`]) a throttled or unavailable token
/// endpoint and — when `idempotent` (a refresh, not a one-time code) — a lost answer.
pub(crate) fn for_oauth(client: &reqwest::Client, idempotent: bool) -> impl Fn(oauth2::HttpRequest) -> Answer + '_ {
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
            // Without the URL: error text goes to logs.
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
