//! The state every handler shares.

use std::{sync::Arc, time::Duration};

use kehai_core::PersonKind;
use kehai_store::Store;
use tokio_util::sync::CancellationToken;

use crate::{
    Config,
    auth::limiter::LoginLimiter,
    clock::Clock,
    i18n::Catalogs,
    live::{Bus, Live, LiveWorker},
    ops::Metrics,
};

#[derive(Clone, Debug)]
pub struct AppState {
    pub config: Arc<Config>,
    pub store: Arc<dyn Store>,
    pub clock: Arc<dyn Clock>,
    pub live: Live,
    pub metrics: Arc<Metrics>,
    pub login_limiter: Arc<LoginLimiter>,
    /// Bounds the password checks running at once.
    pub passwords: Arc<crate::auth::password::Checker>,
    pub catalogs: Arc<Catalogs>,
    /// The presence engine and its providers.
    pub presence: Arc<crate::presence::Engine>,
    /// Change notifications waiting to be processed (the webhook answers at once).
    pub notifications: crate::webhooks::NotificationQueue,
    /// Seals tokens and client states before they are stored.
    pub secrets: Arc<kehai_store::secrets::SecretBox>,
    /// Signs what browsers hand back (pre-login CSRF tokens, device cookies).
    pub signer: Arc<kehai_store::secrets::Signer>,
    /// Cancelled when the server shuts down: event streams end, loops stop.
    pub shutdown: CancellationToken,
    /// This process's random id: the holder of the work it claims (several instances share
    /// one database; see `docs/architecture.md`, "Several instances").
    pub instance: Arc<str>,
}

/// The work that runs beside the request handlers, built with the state and started once by
/// [`crate::run`].
#[derive(Debug)]
pub struct Background {
    live: LiveWorker,
    notifications: tokio::sync::mpsc::Receiver<crate::webhooks::Queued<crate::webhooks::Delivery>>,
}

impl AppState {
    /// The state of a server with `config`, offering the providers `config` configures and
    /// `more` (tests add their own).
    pub fn new(
        config: Config,
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        bus: Arc<dyn Bus>,
        more: Vec<crate::presence::Known>,
    ) -> anyhow::Result<(Self, Background)> {
        let master_key = crate::keys::load(&config)?;
        let metrics = Metrics::new();
        let mut known = crate::providers::known(&config, &metrics, &clock);
        known.extend(more);
        let presence = Arc::new(crate::presence::Engine::new(&config, known));
        presence.offered().for_each(|p| metrics.offer(p.id()));
        let (notifications, queue) = crate::webhooks::NotificationQueue::new();
        let instance: Arc<str> = uuid::Uuid::new_v4().simple().to_string().into();
        let streams = crate::live::SessionStreams::new(
            usize::try_from(config.max_event_streams).unwrap_or(usize::MAX),
            usize::try_from(config.max_streams_per_session).unwrap_or(usize::MAX),
        );
        let (live, worker) = Live::new(Arc::clone(&instance), bus, streams, metrics.avatars_here.clone());
        let state = AppState {
            login_limiter: Arc::new(LoginLimiter::new(config.login_attempts_per_minute, config.guest_joins_per_minute)),
            passwords: Arc::default(),
            config: Arc::new(config),
            store,
            clock,
            live,
            metrics,
            catalogs: Arc::new(Catalogs::load()?),
            secrets: Arc::new(kehai_store::secrets::SecretBox::new(&master_key)),
            signer: Arc::new(kehai_store::secrets::Signer::new(&master_key)),
            presence,
            notifications,

            shutdown: CancellationToken::new(),
            instance,
        };
        Ok((state, Background { live: worker, notifications: queue }))
    }

    /// Ends expired sessions; guests among them leave their space.
    pub async fn purge_expired_sessions(&self) {
        match self.store.purge_expired_sessions(self.clock.now()).await {
            Ok(ended) => ended.iter().for_each(|s| self.session_ended(s)),
            Err(e) => tracing::warn!(error = %e, "could not purge expired sessions"),
        }
        self.login_limiter.shrink(self.clock.now());
    }

    /// Ends a session now (logout, a new login): its pages close; a guest leaves their space.
    pub async fn end_session(&self, id_hash: &str) {
        match self.store.delete_session(id_hash).await {
            Ok(Some(s)) => self.session_ended(&s),
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "could not end a session"),
        }
    }

    fn session_ended(&self, session: &kehai_store::Session) {
        // Here at once, and on every other instance through the bus: a stream open elsewhere
        // must not outlive its session.
        self.live.sessions.end(&session.id_hash);
        self.live.bus.publish(crate::live::BusMessage::SessionEnded { id_hash: session.id_hash.clone() });
        if let (PersonKind::Guest, Some(space)) = (session.kind, session.space_id) {
            self.live.publish_left(space, session.person_id);
        }
    }
}

impl Background {
    /// Starts the background work (live fan-out, session purge) until `stop` is cancelled;
    /// returns the heartbeat's task, which ends once this instance has let go of its heartbeat.
    pub fn spawn(self, state: &AppState, stop: CancellationToken) -> tokio::task::JoinHandle<()> {
        self.live.spawn(state.live.clone(), Arc::clone(&state.store), stop.clone());
        crate::webhooks::spawn_worker(state.clone(), self.notifications, stop.clone());
        crate::presence::schedule::spawn(state.clone(), stop.clone());
        let heartbeat = crate::instance::spawn_heartbeat(state.clone(), stop.clone());
        let state = state.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(60));
            loop {
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = tick.tick() => state.purge_expired_sessions().await,
                }
            }
        });
        heartbeat
    }
}
