//! googleemu: an emulator of the part of Google that kehai uses — OAuth 2.0 / OpenID Connect
//! (discovery, keys, the authorization-code flow with its account chooser and granular consent,
//! the token, revocation and userinfo endpoints) and the Google Calendar API v3 (`freeBusy`,
//! `events.list`/`get`, `events.watch` with push notifications, `channels.stop`) — built from
//! Google's documentation (kehai's `google-protocol.md` cites it line by line) and checked by
//! Google's own Python client libraries (`conformance/`).
//!
//! One port serves everything, so a client's authorization, token and API base URLs can all
//! point at it. Start it in-process with [`Emulator::start`] or as the `googleemu` binary; drive
//! it through its control page and JSON API (`/_emu/`, [`control`]) or the same operations as
//! methods ([`Emulator::add_event`], [`Emulator::advance`], [`Emulator::calendar_requests`] …).
//!
//! googleemu shares no code with kehai's crates, on purpose: a misunderstanding of the protocol
//! in kehai must not hide in the emulator too.

pub mod calendar;
pub mod clock;
pub mod control;
pub mod directory;
pub mod faults;
pub mod identity;
pub mod keys;
pub mod push;
pub mod scopes;
pub mod world;

use std::{net::SocketAddr, sync::Arc, time::Duration};

use axum::{Router, extract::Request, middleware::Next, response::Response};
pub use calendar::event::{Event, EventKind, EventSpec, When};
pub use control::actions::{ControlError, Grant};
pub use directory::{Client, Directory, User};
pub use faults::{Fault, Kind as FaultKind, Target as FaultTarget};
use tokio::net::TcpListener;
use url::Url;
pub use world::{CalendarRequest, Channel, PushRecord};

/// How googleemu behaves.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where the listener binds (default `127.0.0.1:8082`; port 0 picks one).
    pub listen: SocketAddr,
    /// The `issuer` of the discovery document and the `iss` of id tokens; the base URL without
    /// its trailing slash when `None`. A test may set `https://accounts.google.com`.
    pub issuer: Option<String>,
    /// The Google accounts and OAuth clients.
    pub directory: Directory,
    /// Access-token lifetime (`expires_in`; default 3599 s).
    pub access_token_lifetime: Duration,
    /// Accept `http://` watch addresses (local use only: Google demands HTTPS).
    pub allow_http_push: bool,
    /// What `events.list`/`get` reveal to a token whose only events scope is
    /// `calendar.events.freebusy` (unverified at Google: google-protocol §2.3, §8.1).
    pub freebusy_visibility: FreeBusyVisibility,
    /// Push-notification timing.
    pub push: PushTiming,
}

/// What a free/busy-level token (`calendar.events.freebusy` alone) sees through `events.list`
/// and `events.get`. Google does not document it; kehai must cope with each answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FreeBusyVisibility {
    /// Whole events, as to the owner (a `fields` mask decides what comes back).
    Full,
    /// Only `eventType`, `status`, `transparency`, `start` and `end`: never a title,
    /// description or guest, whatever `fields` asks.
    #[default]
    Stubs,
    /// 403 `insufficientPermissions`.
    Forbidden,
}

impl std::str::FromStr for FreeBusyVisibility {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "full" => Ok(FreeBusyVisibility::Full),
            "stubs" => Ok(FreeBusyVisibility::Stubs),
            "forbidden" => Ok(FreeBusyVisibility::Forbidden),
            other => Err(format!("{other}: expected full, stubs or forbidden")),
        }
    }
}

/// How pushes are delivered and retried; shortened in tests.
#[derive(Debug, Clone)]
pub struct PushTiming {
    /// How long the receiver may take to answer (Google asks for an answer "within seconds").
    pub timeout: Duration,
    /// The wait before the first retry after a 500/502/503/504 or no answer; each next wait
    /// doubles ("exponential backoff").
    pub retry_base: Duration,
    /// Attempts in all, the first included (Google retries "up to a maximum of several days").
    pub max_attempts: u32,
}

impl Default for PushTiming {
    fn default() -> Self {
        PushTiming { timeout: Duration::from_secs(5), retry_base: Duration::from_secs(1), max_attempts: 8 }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 8082)),
            issuer: None,
            directory: Directory::default(),
            access_token_lifetime: Duration::from_secs(3599),
            allow_http_push: false,
            freebusy_visibility: FreeBusyVisibility::default(),
            push: PushTiming::default(),
        }
    }
}

/// The emulator's shared state.
#[derive(Debug)]
pub struct Emulator {
    /// The emulator itself, for the background tasks its methods start (pushes).
    me: std::sync::Weak<Emulator>,
    pub config: Config,
    pub world: world::World,
    pub clock: clock::Clock,
    /// For pushes: no redirects followed, as a webhook sender would not.
    pub http: reqwest::Client,
}

/// The base URL a request reached googleemu at, from which every URL it hands out is built.
#[derive(Debug, Clone)]
pub struct BaseUrl(pub Url);

impl BaseUrl {
    /// `base` + `path` (path starting with `/`).
    pub fn join(&self, path: &str) -> String {
        format!("{}{path}", self.0.as_str().trim_end_matches('/'))
    }
}

/// A running emulator. It dereferences to the [`Emulator`], whose methods are the control
/// operations (`emu.add_event(…)`, `emu.advance(…)`, `emu.pushes()` …).
#[derive(Debug)]
pub struct Running {
    pub emulator: Arc<Emulator>,
    /// `http://127.0.0.1:<port>/`.
    pub base_url: Url,
    server: tokio::task::JoinHandle<()>,
}

impl Running {
    /// `base_url` + `path` (path starting with `/`).
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url.as_str().trim_end_matches('/'))
    }

    /// The `iss` of id tokens and the discovery document's `issuer`.
    pub fn issuer(&self) -> String {
        self.emulator.issuer(&BaseUrl(self.base_url.clone()))
    }

    /// Stops the listener.
    pub fn stop(&self) {
        self.server.abort();
    }
}

impl std::ops::Deref for Running {
    type Target = Emulator;

    fn deref(&self) -> &Emulator {
        &self.emulator
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop();
    }
}

impl Emulator {
    pub fn new(config: Config) -> anyhow::Result<Arc<Emulator>> {
        config.directory.check()?;
        let world = world::World::new(config.directory.clone())?;
        let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build()?;
        Ok(Arc::new_cyclic(|me| Emulator { me: me.clone(), config, world, clock: clock::Clock::default(), http }))
    }

    /// Builds the emulator and serves it on its configured address (port 0 picks one).
    pub async fn start(config: Config) -> anyhow::Result<Running> {
        let listener = TcpListener::bind(config.listen).await?;
        let emulator = Emulator::new(config)?;
        let base_url = Url::parse(&format!("http://{}/", listener.local_addr()?))?;
        let app = router(Arc::clone(&emulator), BaseUrl(base_url.clone()));
        let server = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!(error = %e, "googleemu stopped");
            }
        });
        Ok(Running { emulator, base_url, server })
    }

    /// This emulator as an `Arc` (it always lives in one: [`Emulator::new`] makes it so).
    pub fn arc(&self) -> Arc<Emulator> {
        self.me.upgrade().expect("an Emulator lives in the Arc that Emulator::new made")
    }

    /// The issuer for requests that reached googleemu at `base`.
    pub fn issuer(&self, base: &BaseUrl) -> String {
        self.config.issuer.clone().unwrap_or_else(|| base.0.as_str().trim_end_matches('/').to_owned())
    }
}

/// Every route of googleemu, for one listener reached at `base`.
pub fn router(emulator: Arc<Emulator>, base: BaseUrl) -> Router {
    identity::router()
        .merge(calendar::router(Arc::clone(&emulator)))
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
