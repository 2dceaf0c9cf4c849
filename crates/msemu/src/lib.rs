//! msemu: an emulator of the part of Microsoft that kehai uses — the identity platform (v2.0)
//! and Microsoft Graph presence with change notifications — built from the documented protocol
//! (`shared/docs/microsoft-protocol.md`) and checked by Microsoft's own client libraries.
//!
//! One port serves the identity paths (`/{tenant}/oauth2/v2.0/…`, `/{tenant}/v2.0/…`,
//! `/{tenant}/discovery/…`) and the Graph paths (`/v1.0/…`), so both of a client's base URLs can
//! point at it. Start it in-process with [`Emulator::start`] or as the `msemu` binary.
//!
//! msemu shares no logic with kehai's Microsoft client, on purpose: a misunderstanding of the
//! protocol in one must not hide in the other.

pub mod directory;
pub mod identity;
pub mod keys;
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
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 8081)),
            directory: Directory::default(),
            access_token_lifetime: Duration::from_secs(3599),
            refresh_token_lifetime: Duration::from_secs(90 * 24 * 3600),
        }
    }
}

/// The emulator's shared state.
#[derive(Debug)]
pub struct Emulator {
    pub config: Config,
    pub world: world::World,
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
    server: tokio::task::JoinHandle<()>,
}

impl Running {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url.as_str().trim_end_matches('/'))
    }

    /// Stops the listener.
    pub fn stop(&self) {
        self.server.abort();
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl Emulator {
    pub fn new(config: Config) -> anyhow::Result<Arc<Emulator>> {
        let world = world::World::new(config.directory.clone())?;
        Ok(Arc::new(Emulator { config, world }))
    }

    /// Builds the emulator and serves it on its configured address (port 0 picks one).
    pub async fn start(config: Config) -> anyhow::Result<Running> {
        let listener = TcpListener::bind(config.listen).await?;
        let emulator = Emulator::new(config)?;
        Self::serve(emulator, listener).await
    }

    /// Serves an emulator on a bound listener.
    pub async fn serve(emulator: Arc<Emulator>, listener: TcpListener) -> anyhow::Result<Running> {
        let addr = listener.local_addr()?;
        let base_url = Url::parse(&format!("http://{addr}"))?;
        let app = router(Arc::clone(&emulator), BaseUrl(base_url.clone()));
        let server = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!(error = %e, "msemu stopped");
            }
        });
        Ok(Running {
            emulator,
            base_url,
            server,
        })
    }
}

/// Every route of msemu, for one listener reached at `base`.
pub fn router(emulator: Arc<Emulator>, base: BaseUrl) -> Router {
    identity::router()
        .with_state(emulator)
        .layer(axum::middleware::from_fn(
            move |mut req: Request, next: Next| {
                let base = base.clone();
                async move {
                    req.extensions_mut().insert(base);
                    let response: Response = next.run(req).await;
                    response
                }
            },
        ))
}
