//! Microsoft Graph v1.0: the signed-in user's presence and presence subscriptions.

use std::sync::Arc;

use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use kehai_oauth::retry;

use crate::{MicrosoftConfig, MicrosoftError, Observer, PresenceLimit, Unobserved};

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

/// Graph, for calls made with one user's access token.
#[derive(Debug, Clone)]
pub struct Graph {
    config: MicrosoftConfig,
    http: reqwest::Client,
    observer: Arc<dyn Observer>,
    presence_limit: Arc<PresenceLimit>,
}

/// A Graph operation: its stable name for metrics, and for presence reads the tenant whose
/// limit they count against.
#[derive(Debug, Clone, Copy)]
struct Operation<'a> {
    name: &'static str,
    presence_of_tenant: Option<&'a str>,
}

impl<'a> Operation<'a> {
    fn named(name: &'static str) -> Self {
        Operation { name, presence_of_tenant: None }
    }

    fn presence(name: &'static str, tenant: &'a str) -> Self {
        Operation { name, presence_of_tenant: Some(tenant) }
    }
}

impl Graph {
    pub fn new(config: MicrosoftConfig) -> Self {
        Graph {
            config,
            http: kehai_oauth::client(),
            observer: Arc::new(Unobserved),
            presence_limit: Arc::new(PresenceLimit::default()),
        }
    }

    /// Tells `observer` of every request.
    pub fn with_observer(self, observer: Arc<dyn Observer>) -> Self {
        Graph { observer, ..self }
    }

    /// Holds presence requests under `per_30s` per tenant (default: Graph's 1,500).
    pub fn with_presence_limit(self, per_30s: u32) -> Self {
        Graph { presence_limit: Arc::new(PresenceLimit::new(per_30s)), ..self }
    }

    /// One Graph call, retried ([`retry`]) on throttling (429), unavailability (503, 504) and —
    /// when repeating it is harmless — on a lost answer. Presence reads wait for their tenant's
    /// limit first, every attempt.
    async fn call(
        &self,
        operation: Operation<'_>,
        method: Method,
        path: &str,
        access_token: &SecretString,
        body: Option<Value>,
    ) -> Result<Option<Value>, MicrosoftError> {
        let idempotent = method != Method::POST;
        let mut attempt = 0u32;
        loop {
            if let Some(tenant) = operation.presence_of_tenant
                && let Err(wait) = self.presence_limit.until_ready(tenant, retry::MAX_WAIT).await
            {
                // Graph asked this tenant to wait longer than kehai waits in place: no request.
                return Err(MicrosoftError::Graph {
                    status: 429,
                    code: "TooManyRequests".into(),
                    message: "Graph throttled this tenant's presence requests a moment ago".into(),
                    retry_after: Some(wait),
                });
            }
            let result = self.attempt(operation.name, method.clone(), path, access_token, body.clone()).await;
            if let (Some(tenant), Err(MicrosoftError::Graph { status: 429, retry_after: Some(wait), .. })) =
                (operation.presence_of_tenant, &result)
            {
                self.presence_limit.throttled(tenant, *wait);
            }
            let retry_after = match &result {
                Err(MicrosoftError::Graph { status: 429 | 503 | 504, retry_after, .. }) => *retry_after,
                Err(MicrosoftError::Transport(_)) if idempotent => None,
                _ => return result,
            };
            let Some(wait) = retry::wait(attempt, retry_after) else { return result };
            tokio::time::sleep(wait).await;
            attempt += 1;
        }
    }

    /// One request, told to the observer with its status.
    async fn attempt(
        &self,
        operation: &'static str,
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
        let response = request.send().await.map_err(|e| {
            self.observer.graph_call(operation, None);
            MicrosoftError::Transport(e.without_url().to_string())
        })?;
        let status = response.status();
        self.observer.graph_call(operation, Some(status.as_u16()));
        let retry_after = retry::retry_after(response.headers());
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

    /// The signed-in user's presence; its `id` is their object id, which kehai's scopes (without
    /// `profile`) give no other way to learn.
    pub async fn my_presence(&self, access_token: &SecretString, tenant: &str) -> Result<Presence, MicrosoftError> {
        let operation = Operation::presence("get_my_presence", tenant);
        Self::parse(self.call(operation, Method::GET, "/me/presence", access_token, None).await?)
    }

    /// A user's presence (for basic notifications, which carry none).
    pub async fn presence_of(
        &self,
        access_token: &SecretString,
        tenant: &str,
        user_id: &str,
    ) -> Result<Presence, MicrosoftError> {
        let operation = Operation::presence("get_presence", tenant);
        Self::parse(self.call(operation, Method::GET, &format!("/users/{user_id}/presence"), access_token, None).await?)
    }

    /// Most ids `POST /communications/getPresencesByUserId` accepts at once.
    pub const PRESENCE_BATCH: usize = 650;

    /// Several users' presences in one request (at most [`Self::PRESENCE_BATCH`] ids, all of the
    /// token's tenant); users Graph does not know are left out of the answer.
    pub async fn presences_by_user_id(
        &self,
        access_token: &SecretString,
        tenant: &str,
        user_ids: &[String],
    ) -> Result<Vec<Presence>, MicrosoftError> {
        #[derive(Deserialize)]
        struct List {
            value: Vec<Presence>,
        }
        let body = serde_json::json!({ "ids": user_ids });
        let operation = Operation::presence("get_presences_by_user_id", tenant);
        let answer = self
            .call(operation, Method::POST, "/communications/getPresencesByUserId", access_token, Some(body))
            .await?;
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
        Self::parse(
            self.call(
                Operation::named("create_subscription"),
                Method::POST,
                "/subscriptions",
                access_token,
                Some(body),
            )
            .await?,
        )
    }

    /// The calling app's subscriptions for the signed-in user.
    pub async fn subscriptions(&self, access_token: &SecretString) -> Result<Vec<Subscription>, MicrosoftError> {
        #[derive(Deserialize)]
        struct List {
            value: Vec<Subscription>,
        }
        let operation = Operation::named("list_subscriptions");
        Ok(Self::parse::<List>(self.call(operation, Method::GET, "/subscriptions", access_token, None).await?)?.value)
    }

    /// Renews a subscription to `expiration` (which also reauthorizes it).
    pub async fn renew_subscription(
        &self,
        access_token: &SecretString,
        id: &str,
        expiration: &str,
    ) -> Result<Subscription, MicrosoftError> {
        let body = serde_json::json!({ "expirationDateTime": expiration });
        self.patch_subscription(Operation::named("renew_subscription"), access_token, id, body).await
    }

    /// Renews a subscription and has Graph encrypt its notifications for another certificate
    /// (`(base64 DER, id)`) from now on: kehai's certificate rotation.
    pub async fn move_subscription(
        &self,
        access_token: &SecretString,
        id: &str,
        expiration: &str,
        certificate: (&str, &str),
    ) -> Result<Subscription, MicrosoftError> {
        let body = serde_json::json!({
            "expirationDateTime": expiration,
            "encryptionCertificate": certificate.0,
            "encryptionCertificateId": certificate.1,
        });
        self.patch_subscription(Operation::named("move_subscription"), access_token, id, body).await
    }

    async fn patch_subscription(
        &self,
        operation: Operation<'_>,
        access_token: &SecretString,
        id: &str,
        body: Value,
    ) -> Result<Subscription, MicrosoftError> {
        Self::parse(
            self.call(operation, Method::PATCH, &format!("/subscriptions/{id}"), access_token, Some(body)).await?,
        )
    }

    pub async fn delete_subscription(&self, access_token: &SecretString, id: &str) -> Result<(), MicrosoftError> {
        let operation = Operation::named("delete_subscription");
        self.call(operation, Method::DELETE, &format!("/subscriptions/{id}"), access_token, None).await.map(|_| ())
    }
}
