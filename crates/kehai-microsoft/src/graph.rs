//! Microsoft Graph v1.0: the signed-in user's presence and presence subscriptions.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{MicrosoftConfig, MicrosoftError, http};

/// A user's presence as Graph reports it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Presence {
    /// The user's object id.
    pub id: String,
    pub availability: String,
    pub activity: String,
    #[serde(default)]
    pub sequence_number: Option<String>,
    #[serde(default)]
    pub out_of_office_settings: Option<OutOfOffice>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OutOfOffice {
    #[serde(default)]
    pub is_out_of_office: bool,
}

/// A presence subscription to create.
#[derive(Clone)]
pub struct NewSubscription {
    pub resource: String,
    pub notification_url: String,
    pub lifecycle_notification_url: Option<String>,
    /// RFC 3339, at most 60 minutes ahead.
    pub expiration: String,
    pub client_state: SecretString,
    /// Base64 DER of the certificate Graph encrypts resource data for; `None` for basic
    /// notifications.
    pub encryption_certificate: Option<(String, String)>,
}

impl std::fmt::Debug for NewSubscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewSubscription").field("resource", &self.resource).finish_non_exhaustive()
    }
}

/// A subscription as Graph answers it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Subscription {
    pub id: String,
    pub resource: String,
    pub expiration_date_time: String,
    #[serde(default)]
    pub creator_id: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SubscriptionBody<'a> {
    change_type: &'a str,
    resource: &'a str,
    notification_url: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    lifecycle_notification_url: Option<&'a str>,
    expiration_date_time: &'a str,
    client_state: &'a str,
    include_resource_data: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    encryption_certificate: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    encryption_certificate_id: Option<&'a str>,
}

/// Retries of a throttled or failed Graph call.
const RETRIES: u32 = 3;
/// The first backoff without `Retry-After` (then 2×, 4×, plus up to half again as jitter).
const BACKOFF: Duration = Duration::from_millis(500);
/// The longest `Retry-After` honoured in place; longer ones end the call (the caller retries later).
const MAX_WAIT: Duration = Duration::from_secs(30);

/// Graph, for calls made with one user's access token.
#[derive(Debug, Clone)]
pub struct Graph {
    config: MicrosoftConfig,
    http: reqwest::Client,
}

impl Graph {
    pub fn new(config: MicrosoftConfig) -> Self {
        Graph { config, http: http::client() }
    }

    /// One Graph call, retried on throttling (429), unavailability (503, 504) and — when
    /// repeating it is harmless — on a lost answer: after `Retry-After` when Graph gives one,
    /// else after an exponential backoff with jitter.
    async fn call(
        &self,
        method: Method,
        path: &str,
        access_token: &SecretString,
        body: Option<Value>,
    ) -> Result<Option<Value>, MicrosoftError> {
        let idempotent = method != Method::POST;
        let mut attempt = 0u32;
        loop {
            let result = self.attempt(method.clone(), path, access_token, body.clone()).await;
            let wait = match &result {
                Err(MicrosoftError::Graph { status: 429 | 503 | 504, retry_after, .. }) => *retry_after,
                Err(MicrosoftError::Transport(_)) if idempotent => None,
                _ => return result,
            };
            if attempt >= RETRIES {
                return result;
            }
            if wait.is_some_and(|w| w > MAX_WAIT) {
                return result;
            }
            let backoff = BACKOFF * 2u32.pow(attempt);
            let jitter = Duration::from_millis(rand::random_range(0..=backoff.as_millis() as u64 / 2));
            tokio::time::sleep(wait.unwrap_or(backoff + jitter)).await;
            attempt += 1;
        }
    }

    async fn attempt(
        &self,
        method: Method,
        path: &str,
        access_token: &SecretString,
        body: Option<Value>,
    ) -> Result<Option<Value>, MicrosoftError> {
        let mut request = self
            .http
            .request(method, self.config.graph(&format!("/v1.0{path}")))
            .bearer_auth(access_token.expose_secret());
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.map_err(|e| MicrosoftError::Transport(e.without_url().to_string()))?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<f64>().ok())
            .map(Duration::from_secs_f64);
        let text = response.text().await.map_err(|e| MicrosoftError::Transport(e.without_url().to_string()))?;
        if status.is_success() {
            return Ok(if text.is_empty() || status == StatusCode::NO_CONTENT {
                None
            } else {
                Some(
                    serde_json::from_str(&text)
                        .map_err(|e| MicrosoftError::Transport(format!("unreadable answer: {e}")))?,
                )
            });
        }
        let error: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        Err(MicrosoftError::Graph {
            status: status.as_u16(),
            code: error["error"]["code"].as_str().unwrap_or("unknown").to_owned(),
            message: error["error"]["message"].as_str().unwrap_or("").to_owned(),
            retry_after,
        })
    }

    fn parse<T: serde::de::DeserializeOwned>(value: Option<Value>) -> Result<T, MicrosoftError> {
        serde_json::from_value(value.unwrap_or(Value::Null))
            .map_err(|e| MicrosoftError::Transport(format!("unexpected answer: {e}")))
    }

    /// The signed-in user's presence; its `id` is their object id, which the seed's scopes
    /// give no other way to learn.
    pub async fn my_presence(&self, access_token: &SecretString) -> Result<Presence, MicrosoftError> {
        Self::parse(self.call(Method::GET, "/me/presence", access_token, None).await?)
    }

    /// A user's presence (for basic notifications, which carry none).
    pub async fn presence_of(&self, access_token: &SecretString, user_id: &str) -> Result<Presence, MicrosoftError> {
        Self::parse(self.call(Method::GET, &format!("/users/{user_id}/presence"), access_token, None).await?)
    }

    /// Most ids `POST /communications/getPresencesByUserId` accepts at once.
    pub const PRESENCE_BATCH: usize = 650;

    /// Several users' presences in one request (at most [`Self::PRESENCE_BATCH`] ids, all of the
    /// token's tenant); users Graph does not know are left out of the answer.
    pub async fn presences_by_user_id(
        &self,
        access_token: &SecretString,
        user_ids: &[String],
    ) -> Result<Vec<Presence>, MicrosoftError> {
        #[derive(Deserialize)]
        struct List {
            value: Vec<Presence>,
        }
        let body = serde_json::json!({ "ids": user_ids });
        let answer = self.call(Method::POST, "/communications/getPresencesByUserId", access_token, Some(body)).await?;
        Ok(Self::parse::<List>(answer)?.value)
    }

    pub async fn create_subscription(
        &self,
        access_token: &SecretString,
        new: &NewSubscription,
    ) -> Result<Subscription, MicrosoftError> {
        let body = SubscriptionBody {
            change_type: "updated",
            resource: &new.resource,
            notification_url: &new.notification_url,
            lifecycle_notification_url: new.lifecycle_notification_url.as_deref(),
            expiration_date_time: &new.expiration,
            client_state: new.client_state.expose_secret(),
            include_resource_data: new.encryption_certificate.is_some(),
            encryption_certificate: new.encryption_certificate.as_ref().map(|(c, _)| c.as_str()),
            encryption_certificate_id: new.encryption_certificate.as_ref().map(|(_, id)| id.as_str()),
        };
        let body = serde_json::to_value(body).map_err(|e| MicrosoftError::Transport(e.to_string()))?;
        Self::parse(self.call(Method::POST, "/subscriptions", access_token, Some(body)).await?)
    }

    /// The calling app's subscriptions for the signed-in user.
    pub async fn subscriptions(&self, access_token: &SecretString) -> Result<Vec<Subscription>, MicrosoftError> {
        #[derive(Deserialize)]
        struct List {
            value: Vec<Subscription>,
        }
        Ok(Self::parse::<List>(self.call(Method::GET, "/subscriptions", access_token, None).await?)?.value)
    }

    /// Renews a subscription to `expiration` (which also reauthorizes it).
    pub async fn renew_subscription(
        &self,
        access_token: &SecretString,
        id: &str,
        expiration: &str,
    ) -> Result<Subscription, MicrosoftError> {
        let body = serde_json::json!({ "expirationDateTime": expiration });
        Self::parse(self.call(Method::PATCH, &format!("/subscriptions/{id}"), access_token, Some(body)).await?)
    }

    pub async fn delete_subscription(&self, access_token: &SecretString, id: &str) -> Result<(), MicrosoftError> {
        self.call(Method::DELETE, &format!("/subscriptions/{id}"), access_token, None).await.map(|_| ())
    }
}
