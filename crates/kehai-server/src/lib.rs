//! kehai's HTTP server.
//!
//! [`run`] serves one [`App`] on a listener until a shutdown signal, so that the binary and the
//! tests start exactly the same server (tests bind `127.0.0.1:0`).
//!
//! How the pieces talk:
//! - **Pages** ([`pages`]) are server-rendered askama templates in the visitor's language
//!   ([`i18n`]); the space page's small script talks to the **JSON API** ([`api`]) and listens to
//!   the space's **event stream** ([`live`]).
//! - Every change to an avatar goes through [`live::Live::publish`]: it is put on the
//!   [`live::Bus`] (in-process for one instance, NATS for several); each instance's hub
//!   numbers the events per space and fans them out to the open pages.
//! - **Who is here** is counted from open event streams ([`live::Attendance`]).
//! - **Presence**: members connect their accounts at presence providers ([`providers`]); the
//!   engine ([`presence`]) keeps their subscriptions alive and shows what they push on the
//!   avatars.
//! - [`auth`] holds sessions, CSRF tokens, password hashing and login rate limits; [`ops`] the
//!   health, readiness and metrics endpoints; [`security`] the response headers.

pub mod access;
pub mod admin;
pub mod api;
pub mod auth;
pub mod clock;
pub mod config;
pub mod error;
pub mod http;
pub mod i18n;
pub mod instance;
pub mod keys;
pub mod live;
mod opaque;
pub mod ops;
pub mod pages;
pub mod presence;
pub mod providers;
pub mod security;
pub mod state;
pub mod view;
pub mod webhooks;

use std::{future::Future, sync::Arc, time::Duration};

pub use config::{Config, LogFormat};
pub use state::AppState;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// A built application: its state (for tests and admin commands) and its router.
pub struct App {
    pub state: AppState,
    pub router: axum::Router,
    background: state::Background,
}

impl App {
    /// Opens and migrates the database and builds the router.
    pub async fn build(config: Config) -> anyhow::Result<App> {
        let store = admin::open_store(&config).await?;
        let bus = live::bus::connect(&config).await?;
        let app = Self::with_bus(config, store, Arc::new(clock::SystemClock), bus)?;
        keys::check_opens(&app.state).await?;
        for provider in app.state.presence.offered() {
            provider.prepare(&app.state).await?;
        }
        Ok(app)
    }

    /// Builds the application on an already opened store and a clock, with the bus of one
    /// instance.
    pub fn with_store(
        config: Config,
        store: Arc<dyn kehai_store::Store>,
        clock: Arc<dyn clock::Clock>,
    ) -> anyhow::Result<App> {
        Self::with_store_offering(config, store, clock, Vec::new())
    }

    /// [`App::with_store`], offering `more` providers beside those the configuration names.
    pub fn with_store_offering(
        config: Config,
        store: Arc<dyn kehai_store::Store>,
        clock: Arc<dyn clock::Clock>,
        more: Vec<presence::Known>,
    ) -> anyhow::Result<App> {
        Self::with_providers(config, store, clock, Arc::new(live::InProcessBus::new(4096)), more)
    }

    /// Builds the application on an already opened store, a clock and a bus.
    pub fn with_bus(
        config: Config,
        store: Arc<dyn kehai_store::Store>,
        clock: Arc<dyn clock::Clock>,
        bus: Arc<dyn live::Bus>,
    ) -> anyhow::Result<App> {
        Self::with_providers(config, store, clock, bus, Vec::new())
    }

    /// Builds the application on an already opened store, a clock and a bus, offering `more`
    /// providers beside those the configuration names.
    pub fn with_providers(
        config: Config,
        store: Arc<dyn kehai_store::Store>,
        clock: Arc<dyn clock::Clock>,
        bus: Arc<dyn live::Bus>,
        more: Vec<presence::Known>,
    ) -> anyhow::Result<App> {
        let (state, background) = AppState::new(config, store, clock, bus, more)?;
        // Every route but the event streams, which are meant to stay open, is answered in time.
        let answered_in_time = pages::router()
            .merge(api::router())
            .merge(ops::router())
            .merge(webhooks::router(&state.presence))
            .merge(presence::connect::router(&state.presence))
            .layer(axum::middleware::from_fn_with_state(state.clone(), http::timeout));
        let router = answered_in_time
            .merge(live::router())
            .fallback(error::fallback)
            .method_not_allowed_fallback(error::method_not_allowed);
        let router = security::layers(router, &state).with_state(state.clone());
        Ok(App { state, router, background })
    }
}

/// An application with its address bound and its database claimed, not serving yet.
pub struct Bound {
    pub app: App,
    pub listener: TcpListener,
    /// SQLite: this process's claim on the database, held while serving.
    _instance: Option<instance::InstanceLock>,
}

/// Claims the database for this instance (SQLite: one at a time), builds the application and
/// binds its address (a taken one is named, with how to choose another), without serving yet:
/// `kehai serve` and `kehai demo` print nothing until both addresses are theirs.
pub async fn bind(config: Config) -> anyhow::Result<Bound> {
    instance::prepare_data_dir(&config)?;
    let lock = instance::claim(&config)?;
    let listen = config.listen;
    let listener = listen_on(listen).map_err(|e| {
        anyhow::anyhow!(
            "cannot listen on {listen} ({e}); choose another address with KEHAI_LISTEN or `listen` in the config file"
        )
    })?;
    let app = App::build(config).await?;
    instance::arrive(&app.state).await?;
    Ok(Bound { app, listener, _instance: lock })
}

/// Connections waiting to be accepted at most (Linux caps it at `net.core.somaxconn`). A burst
/// of notifications — Graph opens many connections at once — must not overflow the queue: a
/// dropped SYN is retried by the client only after 1, then 3, then 7 s, past Graph's 3 s limit.
pub const LISTEN_BACKLOG: u32 = 4096;

/// A listener on `addr` with [`LISTEN_BACKLOG`] (tokio's `TcpListener::bind` takes 1,024).
pub fn listen_on(addr: std::net::SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// Serves a bound application until SIGTERM/SIGINT.
pub async fn serve_bound(bound: Bound) -> anyhow::Result<()> {
    let Bound { app, listener, _instance } = bound;
    let address = listener.local_addr()?;
    tracing::info!(%address, public_url = %app.state.config.public_url, "kehai is serving");
    run(app, listener, shutdown_signal()).await
}

/// `kehai serve`: binds the configured address and serves until SIGTERM/SIGINT.
pub async fn serve(config: Config) -> anyhow::Result<()> {
    serve_bound(bind(config).await?).await
}

/// Serves `app` on `listener` until `shutdown` resolves, then lets in-flight requests finish
/// (up to the configured grace) and closes every event stream.
pub async fn run(
    app: App,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let App { state, router, background } = app;
    let stop = state.shutdown.clone();
    let grace = Duration::from_secs(state.config.shutdown_grace_seconds);
    let stop_background = CancellationToken::new();
    let heartbeat = background.spawn(&state, stop_background.clone());
    let header_read_timeout = Duration::from_secs(state.config.header_read_timeout_seconds);
    let server = http::serve(listener, router, header_read_timeout, async move {
        shutdown.await;
        tracing::info!("shutting down: finishing in-flight requests");
        // Event streams never end by themselves: ending them is what lets the server drain.
        stop.cancel();
    });
    let serve = tokio::spawn(server);
    let finished = stop_after(&state.shutdown, grace, serve).await;
    stop_background.cancel();
    // Let go of the heartbeat before the process ends (briefly: a database that does not
    // answer must not hold up the exit; the claim then lapses by itself).
    if tokio::time::timeout(Duration::from_secs(2), heartbeat).await.is_err() {
        tracing::warn!("could not let go of this instance's heartbeat in time: it lapses by itself");
    }
    finished
}

async fn stop_after(
    stop: &CancellationToken,
    grace: Duration,
    serve: tokio::task::JoinHandle<std::io::Result<()>>,
) -> anyhow::Result<()> {
    let mut serve = serve;
    tokio::select! {
        res = &mut serve => return Ok(res??),
        _ = stop.cancelled() => {}
    }
    match tokio::time::timeout(grace, &mut serve).await {
        Ok(res) => Ok(res??),
        Err(_) => {
            tracing::warn!(grace_seconds = grace.as_secs(), "requests still running after the grace period; exiting");
            serve.abort();
            Ok(())
        }
    }
}

/// Resolves on SIGTERM or SIGINT (Ctrl-C).
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}
