//! Google Calendar: a member's avatar shows 📅 while their calendar says they are busy, 🏝️ out
//! of office, ⛔ in focus time — from free/busy only (no title, guest or description is ever
//! asked for), exact at event boundaries.
//!
//! [`GoogleCalendar`] holds Google's clients (`kehai-google`) and implements the engine's
//! [`Provider`]: signing in (`sign_in`: work accounts only unless personal ones are allowed, the
//! configured organizations, the calendar permission required), reading a calendar (free/busy for
//! the next 24 hours and the status events, kept in memory — `days` — so that each boundary
//! flips the avatar by the clock, without a call), and push channels (`events.watch` on the
//! primary calendar; a push says only that something changed: read after a short wait, once per
//! burst — `webhook`). A channel cannot be extended: the engine replaces it before it lapses.
//! Without an https public URL Google cannot push: calendars are then read every
//! `google_poll_seconds` and at every boundary.

mod days;
mod errors;
mod sign_in;
mod status;
mod webhook;

use std::{sync::Arc, time::Duration};

use async_trait::async_trait;
use futures::StreamExt;
use kehai_core::{Millis, presence::gcal};
use kehai_google::{Calendar, GoogleError, Identity, NewChannel};
use kehai_store::{Connection, ConnectionId, SubscriptionRecord};
use secrecy::SecretString;
use time::OffsetDateTime;

pub use errors::provider_error;

use self::{days::Days, status::Day};
use crate::{
    Config,
    clock::Clock,
    ops::Metrics,
    presence::{
        CallbackParams, Content, Dropped, Observed, Outcome, Provider, ProviderError, Reading, SignIn, SignInSecrets,
        SignedIn, Subscribed, Tokens, Webhook, ingest,
    },
    state::AppState,
};

/// Google's pushes arrive at `/webhooks/gcal`.
pub const WEBHOOK: Webhook = Webhook { segment: "gcal", handshake: webhook::handshake, parse: webhook::parse };

/// Push channels are asked for a week (Google's default), and replaced a sixth of that (about a
/// day) before they lapse.
const CHANNEL_MS: Millis = 7 * 24 * 3600 * 1000;
/// Google's refresh tokens lapse after six months unused.
const REFRESH_TOKEN_MS: Millis = 182 * 24 * 3600 * 1000;
/// Calendars read at once in a reconciliation (each is one or two calls, or none when kept).
const READS_AT_ONCE: usize = 8;

/// The configured Google side.
#[derive(Debug)]
pub struct GoogleCalendar {
    identity: Identity,
    calendar: Calendar,
    /// `{public}/integrations/gcal/callback`: registered with the OAuth client.
    redirect_uri: String,
    /// `{public}/webhooks/gcal`, when Google can push there (an https public URL).
    channel_address: Option<String>,
    /// The Workspace domains taken (lower case); empty: any organization's.
    hosted_domains: Vec<String>,
    allow_personal: bool,
    /// How long a calendar read is used without reading again: with a channel (the safety
    /// interval), and without one (polling).
    poll_ms: Millis,
    unpushed_poll_ms: Millis,
    clock: Arc<dyn Clock>,
    days: Days,
}

impl GoogleCalendar {
    /// The provider, if the configuration names an OAuth client; every call to Google is
    /// counted in `metrics`.
    pub fn from_config(config: &Config, metrics: &Arc<Metrics>, clock: Arc<dyn Clock>) -> Option<Arc<Self>> {
        let google = config.google()?;
        let public = config.public_url.as_str().trim_end_matches('/').to_owned();
        Some(Arc::new(GoogleCalendar {
            identity: Identity::new(google.clone()).with_observer(metrics.clone()),
            calendar: Calendar::new(google).with_observer(metrics.clone()),
            redirect_uri: format!("{public}/integrations/{}/callback", gcal::ID),
            channel_address: config.google_push().then(|| format!("{public}/webhooks/{}", WEBHOOK.segment)),
            hosted_domains: config.google_hosted_domains(),
            allow_personal: config.google_allow_personal,
            poll_ms: i64::try_from(config.google_poll_seconds()).unwrap_or(3600).saturating_mul(1000),
            unpushed_poll_ms: i64::try_from(config.google_unpushed_poll_seconds()).unwrap_or(300).saturating_mul(1000),
            clock,
            days: Days::default(),
        }))
    }

    /// Reads the calendar from Google for the next 24 hours (and keeps it, for a connection):
    /// free/busy, then the status events — unless the busy times show they cannot have changed
    /// since the last read (one call instead of two); Google may refuse to list them at kehai's
    /// permission, and then the calendar is read by free/busy alone.
    async fn read_fresh(
        &self,
        access: &SecretString,
        connection: Option<&Connection>,
        user: &str,
        poll_ms: Millis,
    ) -> Result<Reading, GoogleError> {
        let now = self.clock.now();
        let shown = connection.and_then(|c| days::shown_read(c.last_sequence.as_deref()));
        let connection = connection.map(|c| c.id);
        let ticket = connection.map(|c| self.days.ticket(c));
        let from = instant(now);
        let to = instant(now + days::WINDOW_MS);
        let busy: Vec<(Millis, Millis)> =
            self.calendar.free_busy(access, from, to).await?.iter().map(|b| (millis(b.start), millis(b.end))).collect();
        // A safety read (no change announced since the last one) lists the status events again
        // only when the busy times say they may have changed; after a push it always does (an
        // out-of-office event put over a meeting changes no busy time).
        let kept = connection.and_then(|c| self.days.unchanged(c, shown)).and_then(|day| day.status_still(&busy, now));
        let (status, event_types) = match kept {
            Some(status) => (status, true),
            None => match self.calendar.status_events(access, from, to).await {
                Ok(events) => (events.into_iter().map(|e| (e.kind, millis(e.start), millis(e.end))).collect(), true),
                Err(GoogleError::Api { status: 403, ref reason, .. })
                    if matches!(reason.as_str(), "insufficientPermissions" | "PERMISSION_DENIED") =>
                {
                    tracing::debug!("Google does not share event types at kehai's permission");
                    (Vec::new(), false)
                }
                Err(e) => return Err(e),
            },
        };
        let day = Day { busy, status, read_at: now, until: now + days::WINDOW_MS, event_types };
        if let (Some(connection), Some(ticket)) = (connection, ticket) {
            self.days.keep(connection, day.clone(), ticket);
        }
        Ok(self.reading(&day, now, user, poll_ms))
    }

    /// How long the connection's calendar is used without reading again: the safety interval
    /// with a channel, the polling interval without one.
    fn poll_ms(&self, connection: &Connection) -> Millis {
        if connection.subscription.is_some() { self.poll_ms } else { self.unpushed_poll_ms }
    }

    /// What `day` shows at `now`, and when to look again: the next boundary, or when the
    /// calendar must be read again (after `poll_ms`, or at the end of the window).
    fn reading(&self, day: &Day, now: Millis, user: &str, poll_ms: Millis) -> Reading {
        let shown = day.status_at(now).map(|status| Observed {
            availability: status.as_str().to_owned(),
            activity: status.as_str().to_owned(),
            shown: gcal::shown(status),
        });
        let next = day.next_boundary(now).into_iter().chain([Days::due(day, poll_ms)]).min();
        Reading { user: user.to_owned(), shown, order: Some(days::order(day, now)), next_change_at: next }
    }
}

/// The time of the read the connection's presence shown came from (on any instance).
fn shown_read(connection: &Connection) -> Option<Millis> {
    days::shown_read(connection.last_sequence.as_deref())
}

fn instant(ms: Millis) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

fn millis(t: OffsetDateTime) -> Millis {
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or(Millis::MAX)
}

#[async_trait]
impl Provider for GoogleCalendar {
    fn id(&self) -> &'static str {
        gcal::ID
    }

    fn name(&self) -> &'static str {
        gcal::NAME
    }

    fn subscription_ms(&self) -> Millis {
        CHANNEL_MS
    }

    fn refresh_token_ms(&self) -> Millis {
        REFRESH_TOKEN_MS
    }

    fn batch(&self) -> u32 {
        200
    }

    async fn sign_in(&self) -> Result<SignIn, ProviderError> {
        // With one organization, its accounts are offered first (a hint: the id token decides).
        let hd = match self.hosted_domains.as_slice() {
            [one] => Some(one.as_str()),
            _ => None,
        };
        let request = self.identity.authorization_request(&self.redirect_uri, hd).await.map_err(provider_error)?;
        Ok(SignIn {
            url: request.url,
            state: request.state,
            secrets: SignInSecrets { nonce: request.nonce, pkce_verifier: request.pkce_verifier },
        })
    }

    fn refusal(&self, params: &CallbackParams, _state: &str) -> Outcome {
        sign_in::refusal(params.get("error").unwrap_or(""))
    }

    async fn finish(
        &self,
        _state: &AppState,
        code: &str,
        secrets: &SignInSecrets,
        _state_param: &str,
    ) -> Result<SignedIn, Outcome> {
        sign_in::finish(self, code, secrets).await
    }

    async fn refresh(&self, refresh_token: &SecretString) -> Result<Tokens, ProviderError> {
        let tokens = self.identity.refresh(refresh_token, &self.redirect_uri).await.map_err(provider_error)?;
        Ok(Tokens {
            access_token: tokens.access_token,
            refresh_token: tokens.refresh_token,
            expires_in: tokens.expires_in,
        })
    }

    async fn revoke(&self, refresh_token: &SecretString) -> Result<(), ProviderError> {
        self.identity.revoke(refresh_token).await.map_err(provider_error)
    }

    fn subscribes(&self) -> bool {
        self.channel_address.is_some()
    }

    fn renews_in_place(&self) -> bool {
        false
    }

    /// A calendar is polled where Google would not make a channel (or could not be reached):
    /// nothing is lost but speed.
    fn reads_unsubscribed(&self) -> bool {
        true
    }

    /// Channel ids are kehai's: a UUID (the webhook takes nothing else).
    fn new_subscription_id(&self) -> Option<String> {
        Some(uuid::Uuid::new_v4().to_string())
    }

    /// A push channel on the member's primary calendar, with the secret as its token.
    async fn subscribe(
        &self,
        _state: &AppState,
        access: &SecretString,
        _connection: &Connection,
        id: Option<&str>,
        secret: &SecretString,
        expires_at: Millis,
    ) -> Result<Subscribed, ProviderError> {
        let address = self.channel_address.clone().ok_or_else(|| ProviderError::Refused("no https address".into()))?;
        let ttl = u64::try_from((expires_at - self.clock.now()) / 1000).unwrap_or(0).max(60);
        let channel = NewChannel {
            id: id.map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_owned),
            token: secret.clone(),
            address,
            ttl: Duration::from_secs(ttl),
        };
        let made = self.calendar.watch(access, &channel).await.map_err(provider_error)?;
        Ok(Subscribed {
            id: made.id,
            expires_at: made.expiration.map(millis),
            certificate_id: None,
            resource: Some(made.resource_id),
        })
    }

    /// Never asked ([`Provider::renews_in_place`] is false): a channel cannot be extended.
    async fn renew(
        &self,
        _state: &AppState,
        _access: &SecretString,
        _subscription: &SubscriptionRecord,
        _expires_at: Millis,
    ) -> Result<Subscribed, ProviderError> {
        Err(ProviderError::NotFound)
    }

    async fn unsubscribe(&self, access: &SecretString, subscription: &SubscriptionRecord) -> Result<(), ProviderError> {
        let Some(resource) = &subscription.resource else { return Ok(()) };
        match self.calendar.stop(access, &subscription.id, resource).await.map_err(provider_error) {
            // Lapsed or stopped already.
            Err(ProviderError::NotFound) => Ok(()),
            other => other,
        }
    }

    async fn read(&self, access: &SecretString, connection: &Connection) -> Result<Reading, ProviderError> {
        let now = self.clock.now();
        let poll_ms = self.poll_ms(connection);
        if let Some(day) = self.days.usable(connection.id, now, poll_ms, shown_read(connection)) {
            return Ok(self.reading(&day, now, &connection.external_user, poll_ms));
        }
        self.read_fresh(access, Some(connection), &connection.external_user, poll_ms).await.map_err(provider_error)
    }

    /// The calendars due to be read from Google (a reconciliation's page): those kept and fresh
    /// are left out, since what they say was shown at their last boundary already (a wake-up
    /// that failed is tried again by itself), and showing it again would only rewrite avatars.
    async fn read_many(&self, state: &AppState, connections: &mut [Connection]) -> Vec<(ConnectionId, Reading)> {
        let now = self.clock.now();
        let due: Vec<Connection> = connections
            .iter()
            .filter(|c| self.days.usable(c.id, now, self.poll_ms(c), shown_read(c)).is_none())
            .cloned()
            .collect();
        futures::stream::iter(due)
            .map(|mut connection| async move {
                match ingest::read(state, self, &mut connection).await {
                    Ok(reading) => Some((connection.id, reading)),
                    Err(e) => {
                        tracing::info!(connection = %connection.id.0, error = %e, "a Google calendar could not be read");
                        None
                    }
                }
            })
            .buffer_unordered(READS_AT_ONCE)
            .filter_map(|read| async move { read })
            .collect()
            .await
    }

    fn debounced(&self) -> bool {
        true
    }

    fn changed(&self, connection: &Connection) {
        self.days.changed(connection.id);
    }

    fn notes(&self, connection: &Connection) -> Vec<&'static str> {
        let mut notes = Vec::new();
        if !self.subscribes() {
            notes.push("polling");
        } else if connection.subscription.is_none() {
            notes.push("channel_refused");
        }
        if self.days.event_types(connection.id) == Some(false) {
            notes.push("no_event_types");
        }
        notes
    }

    /// Never asked: Google's pushes carry nothing to open.
    async fn open(&self, _state: &AppState, _content: &Content, _connection: &Connection) -> Result<Reading, Dropped> {
        Err(Dropped::Decryption)
    }
}
