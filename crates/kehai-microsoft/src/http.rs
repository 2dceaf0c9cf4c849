//! One reqwest client for everything, and the adapter that lets the `oauth2` crate use it.

use std::{future::Future, pin::Pin, time::Duration};

use crate::MicrosoftError;

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

/// `oauth2`'s HTTP client, on our reqwest.
pub(crate) fn for_oauth(client: &reqwest::Client) -> impl Fn(oauth2::HttpRequest) -> Answer + '_ {
    move |request| {
        let client = client.clone();
        Box::pin(async move {
            let (parts, body) = request.into_parts();
            let response = client
                .request(parts.method, parts.uri.to_string())
                .headers(parts.headers)
                .body(body)
                .send()
                .await
                // Without the URL: error text goes to logs.
                .map_err(|e| TransportError(e.without_url().to_string()))?;
            let mut builder = http::Response::builder().status(response.status());
            for (name, value) in response.headers() {
                builder = builder.header(name, value);
            }
            let bytes = response.bytes().await.map_err(|e| TransportError(e.without_url().to_string()))?;
            builder.body(bytes.to_vec()).map_err(|e| TransportError(e.to_string()))
        })
    }
}
