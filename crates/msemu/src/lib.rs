//! msemu: an emulator of the part of Microsoft that kehai uses — the identity platform (v2.0)
//! and Microsoft Graph presence with change notifications — built from Microsoft's documentation
//! of those protocols (the identity platform's and Graph's) and checked by Microsoft's own client
//! libraries.
//!
//! One port serves the identity paths (`/{tenant}/oauth2/v2.0/…`, `/{tenant}/v2.0/…`,
//! `/{tenant}/discovery/…`) and the Graph paths (`/v1.0/…`), so both of a client's base URLs can
//! point at it. Start it in-process with [`Emulator::start`] or as the `msemu` binary.
//!
//! msemu shares no logic with kehai's Microsoft client, on purpose: a misunderstanding of the
//! protocol in one must not hide in the other.

pub mod control;
pub mod crypto;
pub mod directory;
pub mod faults;
pub mod graph;
pub mod identity;
pub mod keys;
pub mod notify;
pub mod tls;
pub mod world;

use std::{net::SocketAddr, sync::Arc, time::Duration};

use axum::{Router, extract::Request, middleware::Next, response::Response};
pub use directory::Directory;
use tokio::net::TcpListener;
use url::Url;

/// How msemu behaves.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where the HTTP listener binds (default `127.0.0.1:8081`).
    pub listen: SocketAddr,
    /// The directory of tenants, users and apps.
    pub directory: Directory,
    /// Lifetime of access tokens (Microsoft: about an hour; default 3599 s).
    pub access_token_lifetime: Duration,
    /// Refresh tokens unused this long expire (AADSTS700082); Microsoft: 90 days.
    pub refresh_token_lifetime: Duration,
    /// Where to serve HTTPS too (with a certificate from a CA made at start), if anywhere.
    pub tls_listen: Option<SocketAddr>,
    /// Accept `http://` notification URLs (local use only: Graph demands HTTPS).
    pub allow_http_notifications: bool,
    /// Subscriptions asked for less than this are granted this long (Graph: 45 minutes for
    /// presence); shortened in tests of renewal.
    pub min_subscription_lifetime: Duration,
    /// How long a subscription's validation handshake may take (Graph: 10 s).
    pub handshake_timeout: Duration,
    /// Presence requests allowed per app and tenant in 30 s before 429 (Graph: 1,500).
    pub presence_requests_per_30s: usize,
    /// How notifications are delivered and retried.
    pub delivery: Delivery,
    /// An Available user with no activity this long becomes Away (Teams: about 5 minutes).
    pub idle_after: Duration,
    /// `reauthorizationRequired` goes out this long before a subscription's authorization (the
    /// access token it was made with) or its life ends.
    pub reauthorization_lead: Duration,
    /// How often msemu checks idle users and lapsing subscriptions.
    pub tick: Duration,
}

/// Notification delivery timing, shortened in tests; Graph's own timings are documented at
/// <https://learn.microsoft.com/graph/change-notifications-delivery-webhooks>.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// A first attempt answered 2xx within this counts as delivered (Graph: 3 s).
    pub first_timeout: Duration,
    /// Retries wait this long for an answer (Graph: 10 s).
    pub retry_timeout: Duration,
    /// The first retry waits this long; each next one twice as long (at most 180 times this).
    pub retry_base: Duration,
    /// Retries stop after this long (Graph: 4 hours).
    pub retry_for: Duration,
}

impl Default for Delivery {
    fn default() -> Self {
        Delivery {
            first_timeout: Duration::from_secs(3),
            retry_timeout: Duration::from_secs(10),
            retry_base: Duration::from_secs(10),
            retry_for: Duration::from_secs(4 * 3600),
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 8081)),
            directory: Directory::default(),
            access_token_lifetime: Duration::from_secs(3599),
            refresh_token_lifetime: Duration::from_secs(90 * 24 * 3600),
            tls_listen: None,
            allow_http_notifications: false,
            handshake_timeout: Duration::from_secs(10),
            min_subscription_lifetime: Duration::from_secs(45 * 60),
            presence_requests_per_30s: 1500,
            delivery: Delivery::default(),
            idle_after: Duration::from_secs(300),
            reauthorization_lead: Duration::from_secs(300),
            tick: Duration::from_secs(1),
        }
    }
}

/// The emulator's shared state.
#[derive(Debug)]
pub struct Emulator {
    pub config: Config,
    pub world: world::World,
    /// For handshakes and notifications.
    pub http: reqwest::Client,
}

/// The base URL a request reached msemu at (scheme and host of its listener), from which every
/// URL msemu hands out is built — as Microsoft's documents name `login.microsoftonline.com`.
#[derive(Debug, Clone)]
pub struct BaseUrl(pub Url);

impl BaseUrl {
    /// `base` + `path` (path starting with `/`).
    pub fn join(&self, path: &str) -> String {
        format!("{}{path}", self.0.as_str().trim_end_matches('/'))
    }
}

/// A running emulator.
#[derive(Debug)]
pub struct Running {
    pub emulator: Arc<Emulator>,
    /// `http://127.0.0.1:<port>`.
    pub base_url: Url,
    /// `https://127.0.0.1:<port>` when a TLS listener was asked for.
    pub tls_base_url: Option<Url>,
    /// The CA certificate (PEM) that the TLS listener's certificate chains to.
    pub ca_pem: Option<String>,
    servers: Vec<tokio::task::JoinHandle<()>>,
}

impl Running {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url.as_str().trim_end_matches('/'))
    }

    /// Stops the listeners.
    pub fn stop(&self) {
        self.servers.iter().for_each(|s| s.abort());
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop();
    }
}

impl Emulator {
    pub fn new(config: Config) -> anyhow::Result<Arc<Emulator>> {
        let world = world::World::new(config.directory.clone())?;
        let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build()?;
        Ok(Arc::new(Emulator { config, world, http }))
    }

    /// Builds the emulator and serves it on its configured address (port 0 picks one), and on
    /// its TLS address if one is configured.
    pub async fn start(config: Config) -> anyhow::Result<Running> {
        let listener = TcpListener::bind(config.listen).await?;
        let tls_listener = match config.tls_listen {
            Some(addr) => Some(TcpListener::bind(addr).await?),
            None => None,
        };
        let emulator = Emulator::new(config)?;
        let base_url = Url::parse(&format!("http://{}", listener.local_addr()?))?;
        let app = router(Arc::clone(&emulator), BaseUrl(base_url.clone()));
        let mut servers = vec![tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!(error = %e, "msemu stopped");
            }
        })];
        let (mut tls_base_url, mut ca_pem) = (None, None);
        if let Some(tls_listener) = tls_listener {
            let ca = tls::LocalCa::generate()?;
            let url = Url::parse(&format!("https://{}", tls_listener.local_addr()?))?;
            let app = router(Arc::clone(&emulator), BaseUrl(url.clone()));
            ca_pem = Some(ca.ca_pem.clone());
            tls_base_url = Some(url);
            servers.push(tokio::spawn(async move { ca.serve(tls_listener, app).await }));
        }
        // msemu's clock: idle users, lapsing subscriptions.
        let ticker = Arc::clone(&emulator);
        servers.push(tokio::spawn(async move {
            let mut interval = tokio::time::interval(ticker.config.tick);
            loop {
                interval.tick().await;
                notify::tick(&ticker);
            }
        }));
        Ok(Running { emulator, base_url, tls_base_url, ca_pem, servers })
    }
}

/// Every route of msemu, for one listener reached at `base`.
pub fn router(emulator: Arc<Emulator>, base: BaseUrl) -> Router {
    identity::router()
        .merge(graph::router())
        .route_layer(axum::middleware::from_fn_with_state(Arc::clone(&emulator), faults::requests))
        .merge(control::router())
        .with_state(emulator)
        .layer(axum::middleware::from_fn(move |mut req: Request, next: Next| {
            let base = base.clone();
            async move {
                req.extensions_mut().insert(base);
                let response: Response = next.run(req).await;
                response
            }
        }))
}
