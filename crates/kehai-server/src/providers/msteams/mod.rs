//! Microsoft Teams: presence through Microsoft Graph, for work and school accounts.
//!
//! [`Teams`] holds the Microsoft clients (`kehai-microsoft`) and the URLs Microsoft calls back,
//! and implements the engine's [`Provider`]: signing in at the identity platform (the admin
//! consent flow, personal accounts refused, AADSTS codes shown — `sign_in`), presence
//! subscriptions (rich ones encrypted for kehai's own certificates, [`certificates`]), presence
//! reads (a tenant's presences in batches of 650 through one member's token — `read`), and
//! Graph's change notifications (validation tokens, then the HMAC, then RSA —
//! `notifications`). It exists only when the server is configured with an app registration.

pub mod certificates;
mod errors;
mod notifications;
mod read;
mod sign_in;

use std::{any::Any, sync::Arc};

use async_trait::async_trait;
use kehai_core::{Millis, presence::msteams};
use kehai_microsoft::{Graph, IdTokenValidator, Identity, MicrosoftConfig, NewSubscription, Presence};
use kehai_store::{Claim, Connection, ConnectionId, SubscriptionRecord};
use secrecy::SecretString;
use time::{OffsetDateTime, format_description::well_known::Rfc3339};

pub use errors::provider_error;
pub use notifications::inbound;

use crate::{
    Config,
    config::NotificationMode,
    ops::Metrics,
    presence::{
        CallbackParams, Content, Dropped, Inbound, Observed, Outcome, Proven, Provider, ProviderError, Reading, SignIn,
        SignInSecrets, SignedIn, Subscribed, Tokens, Webhook,
    },
    state::AppState,
};

/// Graph's change notifications arrive at `/webhooks/msgraph` (and `…/lifecycle`).
pub const WEBHOOK: Webhook =
    Webhook { segment: "msgraph", handshake: notifications::handshake, parse: notifications::parse };

/// Microsoft's refresh tokens lapse after 90 days unused.
const REFRESH_TOKEN_MS: Millis = 90 * 24 * 3600 * 1000;

/// The configured Microsoft side.
#[derive(Debug)]
pub struct Teams {
    pub identity: Identity,
    pub id_tokens: IdTokenValidator,
    pub graph: Graph,
    pub validation_tokens: kehai_microsoft::notifications::ValidationTokens,
    /// `{public}/integrations/msteams/callback`: registered with the app.
    pub redirect_uri: String,
    /// `{public}/webhooks/msgraph` and `…/lifecycle`.
    pub notification_url: String,
    pub lifecycle_url: String,
    /// Whether new subscriptions ask for encrypted resource data.
    pub rich: bool,
    /// How long subscriptions are made and renewed for, in milliseconds.
    pub subscription_ms: i64,
    /// The encryption certificates' private keys, parsed.
    pub keys: certificates::Keys,
    /// Each tenant's reading token, for batch reads.
    readers: read::Readers,
    /// RSA unwraps at once: two per core (one per core leaves the cores idle while a thread
    /// waits; dozens would share them with the threads that answer the webhooks, and a flood's
    /// answers would wait behind its own decryption — measured in benchmark f).
    decrypting: tokio::sync::Semaphore,
}

impl Teams {
    /// The provider, if the configuration names an app registration; every call to Microsoft is
    /// counted in `metrics`.
    pub fn from_config(config: &Config, metrics: &Arc<Metrics>) -> Option<Arc<Teams>> {
        let microsoft: MicrosoftConfig = config.microsoft()?;
        let public = config.public_url.as_str().trim_end_matches('/').to_owned();
        Some(Arc::new(Teams {
            identity: Identity::new(microsoft.clone()).with_observer(metrics.clone()),
            id_tokens: IdTokenValidator::new(microsoft.clone()),
            graph: Graph::new(microsoft.clone()).with_observer(metrics.clone()),
            validation_tokens: kehai_microsoft::notifications::ValidationTokens::new(microsoft),
            redirect_uri: format!("{public}/integrations/{}/callback", msteams::ID),
            notification_url: format!("{public}/webhooks/msgraph"),
            lifecycle_url: format!("{public}/webhooks/msgraph/lifecycle"),
            rich: config.ms_notifications == NotificationMode::Rich,
            subscription_ms: i64::try_from(config.ms_subscription_seconds).unwrap_or(3540) * 1000,
            keys: certificates::Keys::default(),
            readers: read::Readers::default(),
            decrypting: tokio::sync::Semaphore::new(2 * std::thread::available_parallelism().map_or(1, |n| n.get())),
        }))
    }

    /// The provider this server offers, if it offers Microsoft Teams.
    pub fn offered(state: &AppState) -> Option<Arc<Teams>> {
        let provider: Arc<dyn Any + Send + Sync> = Arc::clone(state.presence.provider(msteams::ID)?) as _;
        provider.downcast().ok()
    }

    /// The current encryption certificate as Graph takes it: (base64 DER, id).
    async fn encryption_certificate(&self, state: &AppState) -> Result<(String, String), ProviderError> {
        let (id, cert) = certificates::current(state).await.map_err(|e| ProviderError::Unavailable(e.to_string()))?;
        Ok((cert, id))
    }
}

/// What a Graph presence shows.
pub fn reading_of(presence: &Presence) -> Reading {
    let ooo = presence.out_of_office_settings.as_ref().is_some_and(|o| o.is_out_of_office);
    Reading {
        user: presence.id.clone(),
        shown: msteams::shown(&presence.availability, &presence.activity, ooo).map(|shown| Observed {
            availability: presence.availability.clone(),
            activity: presence.activity.clone(),
            shown,
        }),
        order: presence.sequence_number.clone(),
        next_change_at: None,
    }
}

#[async_trait]
impl Provider for Teams {
    fn id(&self) -> &'static str {
        msteams::ID
    }

    fn name(&self) -> &'static str {
        msteams::NAME
    }

    fn subscription_ms(&self) -> Millis {
        self.subscription_ms
    }

    fn refresh_token_ms(&self) -> Millis {
        REFRESH_TOKEN_MS
    }

    fn batch(&self) -> u32 {
        Graph::PRESENCE_BATCH as u32
    }

    async fn prepare(&self, state: &AppState) -> anyhow::Result<()> {
        // The encryption certificate exists from the first start on (its id goes to Graph with
        // every subscription).
        certificates::current(state)
            .await
            .map_err(|e| anyhow::anyhow!("cannot make the encryption certificate: {e}"))?;
        Ok(())
    }

    async fn tidy(&self, state: &AppState) {
        certificates::remove_unused(state, &self.keys).await;
    }

    async fn sign_in(&self) -> Result<SignIn, ProviderError> {
        let request = self.identity.authorization_request(&self.redirect_uri).map_err(provider_error)?;
        Ok(SignIn {
            url: request.url,
            state: request.state,
            secrets: SignInSecrets { nonce: request.nonce, pkce_verifier: request.pkce_verifier },
        })
    }

    fn early_answer(&self, params: &CallbackParams) -> Option<Outcome> {
        // An administrator coming back from the admin-consent page.
        params.get("admin_consent")?;
        Some(if params.get("error").is_none() { Outcome::Approved } else { Outcome::Cancelled })
    }

    fn refusal(&self, params: &CallbackParams, state: &str) -> Outcome {
        sign_in::refusal(
            self,
            params.get("error").unwrap_or(""),
            params.get("error_description").unwrap_or(""),
            params.get("error_subcode"),
            state,
        )
    }

    async fn finish(
        &self,
        _state: &AppState,
        code: &str,
        secrets: &SignInSecrets,
        state_param: &str,
    ) -> Result<SignedIn, Outcome> {
        sign_in::finish(self, code, secrets, state_param).await
    }

    async fn refresh(&self, refresh_token: &SecretString) -> Result<Tokens, ProviderError> {
        let tokens = self.identity.refresh(refresh_token, &self.redirect_uri).await.map_err(provider_error)?;
        Ok(Tokens {
            access_token: tokens.access_token,
            refresh_token: tokens.refresh_token,
            expires_in: tokens.expires_in,
        })
    }

    /// Creates the presence subscription (rich: encrypted for kehai's certificate). A 409 means
    /// one exists already (after a crash, say): it is replaced, as its clientState is unknown.
    async fn subscribe(
        &self,
        state: &AppState,
        access: &SecretString,
        connection: &Connection,
        _id: Option<&str>,
        secret: &SecretString,
        expires_at: Millis,
    ) -> Result<Subscribed, ProviderError> {
        let user = &connection.external_user;
        let encryption_certificate = if self.rich { Some(self.encryption_certificate(state).await?) } else { None };
        let certificate_id = encryption_certificate.as_ref().map(|(_, id)| id.clone());
        let new = NewSubscription {
            resource: format!("communications/presences/{user}"),
            notification_url: self.notification_url.clone(),
            lifecycle_notification_url: Some(self.lifecycle_url.clone()),
            expiration: rfc3339(expires_at),
            client_state: secret.clone(),
            encryption_certificate,
        };
        let created = match self.graph.create_subscription(access, &new).await {
            Err(kehai_microsoft::MicrosoftError::Graph { status: 409, .. }) => {
                for old in self.graph.subscriptions(access).await.map_err(provider_error)? {
                    if old.resource.contains(user.as_str()) {
                        self.graph.delete_subscription(access, &old.id).await.map_err(provider_error)?;
                    }
                }
                self.graph.create_subscription(access, &new).await
            }
            other => other,
        }
        .map_err(provider_error)?;
        Ok(Subscribed {
            id: created.id,
            expires_at: millis(&created.expiration_date_time),
            certificate_id,
            resource: None,
        })
    }

    /// A `PATCH` of the expiry, which also reauthorizes the subscription; one encrypted for a
    /// retired certificate moves to the current one as it renews.
    async fn renew(
        &self,
        state: &AppState,
        access: &SecretString,
        subscription: &SubscriptionRecord,
        expires_at: Millis,
    ) -> Result<Subscribed, ProviderError> {
        let moving = match &subscription.certificate_id {
            Some(on) if self.rich => Some(self.encryption_certificate(state).await?).filter(|(_, id)| id != on),
            _ => None,
        };
        let expiry = rfc3339(expires_at);
        let renewed = match &moving {
            Some((cert, cert_id)) => {
                self.graph.move_subscription(access, &subscription.id, &expiry, (cert, cert_id)).await
            }
            None => self.graph.renew_subscription(access, &subscription.id, &expiry).await,
        }
        .map_err(provider_error)?;
        Ok(Subscribed {
            id: subscription.id.clone(),
            expires_at: millis(&renewed.expiration_date_time),
            certificate_id: moving.map(|(_, id)| id).or_else(|| subscription.certificate_id.clone()),
            resource: None,
        })
    }

    async fn unsubscribe(&self, access: &SecretString, subscription: &SubscriptionRecord) -> Result<(), ProviderError> {
        self.graph.delete_subscription(access, &subscription.id).await.map_err(provider_error)
    }

    /// After `kehai keys rotate-cert`, the subscriptions it could not move (or all of them, when
    /// it ran while kehai was stopped): a renewal moves them to the current certificate.
    async fn outdated(&self, state: &AppState, claim: Claim<'_>, limit: u32) -> Vec<Connection> {
        if !self.rich {
            return Vec::new();
        }
        let Ok(Some(current)) = state.store.current_certificate().await else { return Vec::new() };
        state.store.claim_on_other_certificates(msteams::ID, &current.id, claim, limit).await.unwrap_or_else(|e| {
            tracing::warn!(error = %e, "cannot claim subscriptions on retired certificates");
            Vec::new()
        })
    }

    async fn read(&self, access: &SecretString, connection: &Connection) -> Result<Reading, ProviderError> {
        let presence = self
            .graph
            .presence_of(access, &connection.external_tenant, &connection.external_user)
            .await
            .map_err(provider_error)?;
        Ok(reading_of(&presence))
    }

    async fn read_many(&self, state: &AppState, connections: &mut [Connection]) -> Vec<(ConnectionId, Reading)> {
        read::many(self, state, connections).await
    }

    async fn verify(&self, state: &AppState, delivery: &Inbound) -> Result<Proven, Dropped> {
        notifications::verify(self, state, delivery).await
    }

    async fn open(&self, state: &AppState, content: &Content, _connection: &Connection) -> Result<Reading, Dropped> {
        notifications::open(self, state, content).await
    }
}

/// Graph's expiry format.
fn rfc3339(at_ms: i64) -> String {
    OffsetDateTime::from_unix_timestamp(at_ms / 1000).ok().and_then(|t| t.format(&Rfc3339).ok()).unwrap_or_default()
}

fn millis(rfc3339: &str) -> Option<i64> {
    let t = OffsetDateTime::parse(rfc3339, &Rfc3339).ok()?;
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiries_round_trip() {
        let at = 1_790_000_000_000;
        assert_eq!(millis(&rfc3339(at)), Some(at));
        assert_eq!(millis("2026-11-26T10:00:00.1234567Z"), Some(1_795_687_200_123));
        assert_eq!(millis("tomorrow"), None);
    }
}
