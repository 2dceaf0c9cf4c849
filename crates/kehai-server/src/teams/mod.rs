//! The Microsoft Teams integration (S1–S22): a member connects their work or school Microsoft
//! account in a popup ([`connect`]), kehai subscribes to their presence with Graph, and their
//! avatar follows it.
//!
//! [`Teams`] holds the Microsoft clients (from `kehai-microsoft`) and the URLs Microsoft calls
//! back; it exists only when the server is configured with an app registration.

pub mod certificates;
pub mod commit;
pub mod connect;
pub mod heal;
pub(crate) mod reread;
pub mod sync;
pub mod tokens;
pub mod upkeep;

use std::{collections::HashMap, sync::Arc};

use kehai_core::{PersonId, PresenceOverride, presence::msteams};
use kehai_microsoft::{Graph, IdTokenValidator, Identity, MicrosoftConfig, Presence, notifications::ValidationTokens};
use kehai_store::{Connection, ConnectionId};

use crate::{Config, state::AppState};

pub fn router() -> axum::Router<AppState> {
    axum::Router::new()
        .route("/integrations/msteams/connect", axum::routing::get(connect::start))
        .route("/integrations/msteams/callback", axum::routing::get(connect::callback))
}

/// The configured Microsoft side.
#[derive(Debug)]
pub struct Teams {
    pub identity: Identity,
    pub id_tokens: IdTokenValidator,
    pub graph: Graph,
    pub validation_tokens: ValidationTokens,
    /// `{public}/integrations/msteams/callback`: registered with the app.
    pub redirect_uri: String,
    /// `{public}/webhooks/msgraph` and `…/lifecycle`.
    pub notification_url: String,
    pub lifecycle_url: String,
    /// Whether new subscriptions ask for encrypted resource data.
    pub rich: bool,
    /// How long subscriptions are made and renewed for, in milliseconds.
    pub subscription_ms: i64,
    /// How often every presence is read again (`ms_reconcile_seconds`).
    pub reconcile_every: std::time::Duration,
    /// One token refresh at a time per connection.
    pub(crate) refreshing: Gates,
    /// One presence applied at a time per connection (the sequence check and the avatars).
    pub(crate) applying: Gates,
    /// Presences applied at once are written in one transaction.
    pub(crate) presences: Arc<commit::GroupCommit>,
    /// The encryption certificates' private keys, parsed.
    pub keys: certificates::Keys,
    /// Presences to read again, their notification having failed.
    pub(crate) rereads: reread::Rereads,
    /// RSA unwraps at once: two per core (one per core leaves the cores idle while a thread
    /// waits; dozens would share them with the threads that answer the webhooks, and a flood's
    /// answers would wait behind its own decryption — measured in benchmark f).
    pub(crate) decrypting: tokio::sync::Semaphore,
}

/// One async lock per connection, made on first use.
#[derive(Debug, Default)]
pub(crate) struct Gates(std::sync::Mutex<HashMap<ConnectionId, Arc<tokio::sync::Mutex<()>>>>);

impl Gates {
    /// Locks held by nobody are forgotten once this many exist.
    const KEEP: usize = 4096;

    /// The lock for `connection`.
    pub(crate) fn of(&self, connection: ConnectionId) -> Arc<tokio::sync::Mutex<()>> {
        let mut gates = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if gates.len() >= Self::KEEP {
            gates.retain(|_, gate| Arc::strong_count(gate) > 1);
        }
        Arc::clone(gates.entry(connection).or_default())
    }
}

impl Teams {
    /// The integration, if the configuration names an app registration; every call to Microsoft
    /// is counted in `metrics`.
    pub fn from_config(config: &Config, metrics: Arc<crate::ops::Metrics>) -> Option<Arc<Teams>> {
        let microsoft: MicrosoftConfig = config.microsoft()?;
        let public = config.public_url.as_str().trim_end_matches('/').to_owned();
        Some(Arc::new(Teams {
            identity: Identity::new(microsoft.clone()).with_observer(metrics.clone()),
            id_tokens: IdTokenValidator::new(microsoft.clone()),
            graph: Graph::new(microsoft.clone()).with_observer(metrics),
            validation_tokens: ValidationTokens::new(microsoft),
            redirect_uri: format!("{public}/integrations/msteams/callback"),
            notification_url: format!("{public}/webhooks/msgraph"),
            lifecycle_url: format!("{public}/webhooks/msgraph/lifecycle"),
            rich: config.ms_notifications == crate::config::NotificationMode::Rich,
            subscription_ms: i64::try_from(config.ms_subscription_seconds).unwrap_or(3540) * 1000,
            // At least a second, even from a configuration that was not validated.
            reconcile_every: std::time::Duration::from_secs(config.ms_reconcile_seconds.max(1)),
            refreshing: Gates::default(),
            applying: Gates::default(),
            presences: Arc::new(commit::GroupCommit::new(commit::flushes_for(config.database().as_ref()))),
            keys: certificates::Keys::default(),
            rereads: reread::Rereads::default(),
            decrypting: tokio::sync::Semaphore::new(2 * std::thread::available_parallelism().map_or(1, |n| n.get())),
        }))
    }
}

/// The avatar override a Teams presence gives (`None`: the own emoji shows).
pub fn override_for(presence: &Presence, since: i64) -> Option<PresenceOverride> {
    let ooo = presence.out_of_office_settings.as_ref().is_some_and(|o| o.is_out_of_office);
    msteams::shown(&presence.availability, &presence.activity, ooo).map(|shown| PresenceOverride {
        provider: msteams::ID.to_owned(),
        availability: presence.availability.clone(),
        activity: presence.activity.clone(),
        label: shown.label(msteams::NAME),
        emoji: shown.emoji,
        since,
    })
}

/// The connection's current presence, read from Graph with its own (refreshed if need be)
/// token. Errors are described for the log.
pub async fn read_presence(state: &AppState, teams: &Teams, connection: &mut Connection) -> Result<Presence, String> {
    let (tenant, user) = (&connection.external_tenant.clone(), &connection.external_user.clone());
    tokens::authorized(
        state,
        teams,
        connection,
        |token| async move { teams.graph.presence_of(&token, tenant, user).await },
    )
    .await
    .map_err(|e| e.to_string())
}

/// Shows `presence` on the member's avatar in every space where the connection is ON; false if
/// the database failed somewhere (logged).
pub async fn show_presence(state: &AppState, connection: ConnectionId, account: PersonId, presence: &Presence) -> bool {
    let over = override_for(presence, state.clock.now());
    set_override(state, connection, account, over.as_ref()).await
}

/// Sets (or with `None` removes) the presence override in every space where the connection is
/// ON; false if the database failed somewhere (logged).
pub async fn set_override(
    state: &AppState,
    connection: ConnectionId,
    account: PersonId,
    over: Option<&PresenceOverride>,
) -> bool {
    let now = state.clock.now();
    let spaces = match state.store.connection_spaces(connection).await {
        Ok(spaces) => spaces,
        Err(e) => {
            tracing::warn!(error = %e, "could not list the connection's spaces");
            return false;
        }
    };
    let mut all = true;
    for (space, _) in spaces.into_iter().filter(|(_, on)| *on) {
        match state.store.set_presence(space, account, over, now).await {
            Ok(Some(avatar)) => state.live.publish_avatar(&avatar),
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(error = %e, "could not show a presence");
                all = false;
            }
        }
    }
    all
}
