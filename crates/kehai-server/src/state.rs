//! The state every handler shares.

use std::{sync::Arc, time::Duration};

use kehai_store::Store;
use tokio_util::sync::CancellationToken;

use crate::{
    Config,
    auth::limiter::LoginLimiter,
    clock::Clock,
    i18n::Catalogs,
    live::{Attendance, Hub, InProcessBus, Live},
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
    pub catalogs: Arc<Catalogs>,
    /// Cancelled when the server shuts down: event streams end, loops stop.
    pub shutdown: CancellationToken,
    departures:
        Arc<std::sync::Mutex<Option<tokio::sync::mpsc::UnboundedReceiver<crate::live::Departure>>>>,
}

impl AppState {
    pub fn new(
        config: Config,
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
    ) -> anyhow::Result<Self> {
        let metrics = Metrics::new();
        let (attendance, departures) = Attendance::new(metrics.avatars_here.clone());
        let live = Live {
            bus: Arc::new(InProcessBus::new(4096)),
            hub: Arc::new(Hub::default()),
            attendance,
        };
        Ok(AppState {
            login_limiter: Arc::new(LoginLimiter::new(config.login_attempts_per_minute)),
            config: Arc::new(config),
            store,
            clock,
            live,
            metrics,
            catalogs: Arc::new(Catalogs::load()?),
            shutdown: CancellationToken::new(),
            departures: Arc::new(std::sync::Mutex::new(Some(departures))),
        })
    }

    /// Starts the background work (live fan-out, session purge); stops when the returned token
    /// is cancelled. Call once.
    pub fn spawn_background(&self) -> CancellationToken {
        let stop = CancellationToken::new();
        if let Some(departures) = self
            .departures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            self.live
                .spawn(Arc::clone(&self.store), departures, stop.clone());
        }
        let state = self.clone();
        let purge_stop = stop.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(60));
            loop {
                tokio::select! {
                    _ = purge_stop.cancelled() => break,
                    _ = tick.tick() => state.purge_expired_sessions().await,
                }
            }
        });
        stop
    }

    /// Ends expired sessions; guests among them leave their space.
    pub async fn purge_expired_sessions(&self) {
        match self.store.purge_expired_sessions(self.clock.now()).await {
            Ok(ended) => {
                for s in ended
                    .iter()
                    .filter(|s| s.kind == kehai_core::PersonKind::Guest)
                {
                    if let Some(space) = s.space_id {
                        self.live.publish_left(space, s.person_id);
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "could not purge expired sessions"),
        }
        self.login_limiter.shrink();
    }
}
