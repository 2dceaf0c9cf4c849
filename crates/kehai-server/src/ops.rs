//! Operations: `/healthz` (the process answers), `/readyz` (the database and the bus answer), `/metrics`
//! (Prometheus text), and the HTTP metrics middleware.
//!
//! Metrics live in a registry per application (not a global recorder), so that several servers
//! in one test process count separately.

use std::{sync::Arc, time::Instant};

use axum::{
    extract::{MatchedPath, Request, State},
    http::{HeaderValue, Method, StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Response},
    routing::get,
};
use prometheus_client::{
    encoding::{EncodeLabelSet, text::encode},
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::Registry,
};

use crate::state::AppState;

pub fn router() -> axum::Router<AppState> {
    axum::Router::new().route("/healthz", get(healthz)).route("/readyz", get(readyz)).route("/metrics", get(metrics))
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(state): State<AppState>) -> Response {
    match state.store.ping().await {
        Ok(()) if state.live.bus.ready() => (StatusCode::OK, "ready\n").into_response(),
        Ok(()) => (StatusCode::SERVICE_UNAVAILABLE, "bus unavailable\n").into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "not ready: the database does not answer");
            (StatusCode::SERVICE_UNAVAILABLE, "database unavailable\n").into_response()
        }
    }
}

async fn metrics(State(state): State<AppState>) -> Response {
    // Counted when asked: the database is the truth, and a scrape a minute costs one query.
    let offered: Vec<&'static str> = state.presence.offered().map(|p| p.id()).collect();
    if !offered.is_empty() {
        match state.store.connections_by_state().await {
            Ok(counts) => state.metrics.set_connections(&offered, &counts),
            Err(e) => tracing::warn!(error = %e, "metrics: cannot count connections"),
        }
    }
    let mut text = String::new();
    if encode(&mut text, &state.metrics.registry).is_err() {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    }
    let mut response = text.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    response
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpLabels {
    method: String,
    /// The route pattern (`/s/{slug}`), never the raw path: bounded cardinality.
    route: String,
    status: u16,
}

/// Labels of the presence metrics: the provider (`msteams`), and what the metric counts by.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProviderLabels {
    provider: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    provider: &'static str,
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct GraphLabels {
    operation: &'static str,
    /// The HTTP status, or `none` when no answer came.
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TokenLabels {
    provider: &'static str,
    grant: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    provider: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    provider: &'static str,
    state: &'static str,
}

/// The token outcomes kept apart in the metric; any other error code is `other` (bounded labels).
const TOKEN_OUTCOMES: &[&str] = &[
    "ok",
    "unavailable",
    "invalid_grant",
    "interaction_required",
    "consent_required",
    "login_required",
    "invalid_client",
    "unauthorized_client",
    "invalid_request",
    "temporarily_unavailable",
];

/// kehai's metrics. Those of the presence engine are labelled by provider.
pub struct Metrics {
    registry: Registry,
    http_requests: Family<HttpLabels, Counter>,
    http_seconds: Family<HttpLabels, Histogram>,
    event_streams: Gauge,
    /// Avatars whose person has the space page open, across spaces.
    pub avatars_here: Gauge,
    /// Change notifications received at the webhooks (items, not POSTs).
    notifications_received: Family<ProviderLabels, Counter>,
    /// Notifications whose presence was applied.
    notifications_applied: Family<ProviderLabels, Counter>,
    notifications_dropped: Family<ReasonLabels, Counter>,
    /// Notification deliveries waiting for the workers.
    pub notification_queue: Gauge,
    subscription_repairs: Family<ProviderLabels, Counter>,
    presence_repairs: Family<ProviderLabels, Counter>,
    decrypt_failures: Family<ProviderLabels, Counter>,
    validation_token_failures: Family<ProviderLabels, Counter>,
    /// Time to answer a webhook POST.
    pub webhook_seconds: Histogram,
    graph_requests: Family<GraphLabels, Counter>,
    calendar_requests: Family<GraphLabels, Counter>,
    token_requests: Family<TokenLabels, Counter>,
    subscription_upkeep: Family<OutcomeLabels, Counter>,
    connections: Family<StateLabels, Gauge>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics { .. }")
    }
}

impl Metrics {
    pub fn new() -> Arc<Self> {
        let mut registry = Registry::with_prefix("kehai");
        let http_requests = Family::<HttpLabels, Counter>::default();
        let http_seconds = Family::<HttpLabels, Histogram>::new_with_constructor(|| {
            Histogram::new([0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0])
        });
        let event_streams = Gauge::default();
        let avatars_here = Gauge::default();
        registry.register("http_requests", "HTTP requests by route pattern and status", http_requests.clone());
        registry.register("http_request_duration_seconds", "HTTP answer time by route pattern", http_seconds.clone());
        registry.register("event_streams_open", "Open live event streams", event_streams.clone());
        registry.register("avatars_here", "Avatars whose person has the space open", avatars_here.clone());
        let notification_queue = Gauge::default();
        registry.register("notification_queue_depth", "Notification deliveries waiting", notification_queue.clone());
        let webhook_seconds = Histogram::new([0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 3.0]);
        registry.register(
            "webhook_answer_seconds",
            "Time to answer the providers' webhook POSTs (Graph wants under 3 s)",
            webhook_seconds.clone(),
        );
        let mut family = |name: &str, help: &str| {
            let family = Family::<ProviderLabels, Counter>::default();
            registry.register(name, help, family.clone());
            family
        };
        let notifications_received = family("notifications_received", "Change notifications received, by provider");
        let notifications_applied =
            family("notifications_applied", "Notifications whose presence was applied, by provider");
        let subscription_repairs =
            family("subscription_repairs", "Subscriptions the reconciliation made anew, by provider");
        let presence_repairs =
            family("presence_repairs", "Presences the reconciliation found changed unnoticed, by provider");
        let decrypt_failures = family(
            "notification_decrypt_failures",
            "Notifications whose content did not open (signature, certificate or decryption), by provider",
        );
        let validation_token_failures = family(
            "validation_token_failures",
            "Notification POSTs whose proof (Graph's validation tokens) was refused, by provider",
        );
        let notifications_dropped = Family::<ReasonLabels, Counter>::default();
        registry.register(
            "notifications_dropped",
            "Notifications not applied, by provider and reason",
            notifications_dropped.clone(),
        );
        let graph_requests = Family::<GraphLabels, Counter>::default();
        registry.register(
            "graph_requests",
            "Microsoft Graph requests by operation and HTTP status, retries included",
            graph_requests.clone(),
        );
        let calendar_requests = Family::<GraphLabels, Counter>::default();
        registry.register(
            "google_calendar_requests",
            "Google Calendar API requests by operation and HTTP status, retries included",
            calendar_requests.clone(),
        );
        let token_requests = Family::<TokenLabels, Counter>::default();
        registry.register(
            "token_requests",
            "Token requests (authorization_code, refresh_token) by provider and outcome",
            token_requests.clone(),
        );
        let subscription_upkeep = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "subscription_upkeep",
            "Subscription renewals by provider and outcome (renewed, recreated, failed)",
            subscription_upkeep.clone(),
        );
        let connections = Family::<StateLabels, Gauge>::default();
        registry.register("connections", "Connections by provider and state", connections.clone());
        Arc::new(Metrics {
            registry,
            http_requests,
            http_seconds,
            event_streams,
            avatars_here,
            notifications_received,
            notifications_applied,
            notifications_dropped,
            notification_queue,
            subscription_repairs,
            presence_repairs,
            decrypt_failures,
            validation_token_failures,
            webhook_seconds,
            graph_requests,
            calendar_requests,
            token_requests,
            subscription_upkeep,
            connections,
        })
    }

    /// Starts `provider`'s counters at zero, so that they are scraped from the start (a counter
    /// that is missing cannot be told from one that is not collected).
    pub fn offer(&self, provider: &'static str) {
        let labels = ProviderLabels { provider };
        for family in [
            &self.notifications_received,
            &self.notifications_applied,
            &self.subscription_repairs,
            &self.presence_repairs,
            &self.decrypt_failures,
            &self.validation_token_failures,
        ] {
            let _ = family.get_or_create(&labels);
        }
    }

    /// Counts a notification (an item, not a POST) received for `provider`.
    pub fn notification_received(&self, provider: &'static str) {
        self.notifications_received.get_or_create(&ProviderLabels { provider }).inc();
    }

    /// How many notifications were received for `provider` so far.
    pub fn notifications_received(&self, provider: &'static str) -> u64 {
        self.notifications_received.get_or_create(&ProviderLabels { provider }).get()
    }

    /// Counts a notification whose presence was applied.
    pub fn notification_applied(&self, provider: &'static str) {
        self.notifications_applied.get_or_create(&ProviderLabels { provider }).inc();
    }

    /// How many notifications for `provider` were applied so far.
    pub fn notifications_applied(&self, provider: &'static str) -> u64 {
        self.notifications_applied.get_or_create(&ProviderLabels { provider }).get()
    }

    /// Counts a notification that was not applied, by its reason's stable name.
    pub fn notification_dropped(&self, provider: &'static str, reason: &'static str) {
        self.notifications_dropped.get_or_create(&ReasonLabels { provider, reason }).inc();
    }

    /// How many notifications for `provider` were dropped for `reason` so far.
    pub fn notifications_dropped(&self, provider: &'static str, reason: &'static str) -> u64 {
        self.notifications_dropped.get_or_create(&ReasonLabels { provider, reason }).get()
    }

    /// Counts a notification whose content did not open.
    pub fn decrypt_failure(&self, provider: &'static str) {
        self.decrypt_failures.get_or_create(&ProviderLabels { provider }).inc();
    }

    /// Counts a POST whose proof was refused.
    pub fn validation_token_failure(&self, provider: &'static str) {
        self.validation_token_failures.get_or_create(&ProviderLabels { provider }).inc();
    }

    /// Counts what a reconciliation of `provider` repaired.
    pub fn repairs(&self, provider: &'static str, subscriptions: u64, presences: u64) {
        self.subscription_repairs.get_or_create(&ProviderLabels { provider }).inc_by(subscriptions);
        self.presence_repairs.get_or_create(&ProviderLabels { provider }).inc_by(presences);
    }

    /// Counts a subscription upkeep (`renewed`, `recreated` or `failed`).
    pub fn subscription_upkeep(&self, provider: &'static str, outcome: &'static str) {
        self.subscription_upkeep.get_or_create(&OutcomeLabels { provider, outcome }).inc();
    }

    /// Sets the connections-by-state gauges of `providers` (every state, zero included).
    pub fn set_connections(&self, providers: &[&'static str], counts: &[(String, kehai_store::ConnectionState, u64)]) {
        use kehai_store::ConnectionState as S;
        for provider in providers {
            for state in [S::Connected, S::NeedsReconnect, S::Error] {
                let n: u64 = counts.iter().filter(|(p, s, _)| p == provider && *s == state).map(|(_, _, n)| *n).sum();
                self.connections
                    .get_or_create(&StateLabels { provider, state: state.as_str() })
                    .set(i64::try_from(n).unwrap_or(i64::MAX));
            }
        }
    }

    /// Counts an open event stream until the returned guard drops.
    pub fn open_stream(&self) -> OpenStream {
        self.event_streams.inc();
        OpenStream(self.event_streams.clone())
    }
}

/// What `kehai-microsoft` reports of every call it makes: Graph's requests, and Microsoft Teams'
/// token requests.
impl kehai_microsoft::Observer for Metrics {
    fn graph_call(&self, operation: &'static str, status: Option<u16>) {
        let status = status.map_or_else(|| "none".to_owned(), |s| s.to_string());
        self.graph_requests.get_or_create(&GraphLabels { operation, status }).inc();
    }

    fn token_call(&self, grant: &'static str, outcome: &str) {
        self.token_request(kehai_core::presence::msteams::ID, grant, outcome);
    }
}

impl kehai_google::Observer for Metrics {
    fn calendar_call(&self, operation: &'static str, status: Option<u16>) {
        let status = status.map_or_else(|| "none".to_owned(), |s| s.to_string());
        self.calendar_requests.get_or_create(&GraphLabels { operation, status }).inc();
    }

    fn token_call(&self, grant: &'static str, outcome: &str) {
        self.token_request(kehai_core::presence::gcal::ID, grant, outcome);
    }
}

impl Metrics {
    /// A token request of `provider`'s, its outcome one of [`TOKEN_OUTCOMES`] (or `other`).
    fn token_request(&self, provider: &'static str, grant: &'static str, outcome: &str) {
        let outcome = TOKEN_OUTCOMES.iter().find(|o| **o == outcome).copied().unwrap_or("other");
        self.token_requests.get_or_create(&TokenLabels { provider, grant, outcome }).inc();
    }
}

/// An open event stream, counted in `kehai_event_streams_open`.
#[derive(Debug)]
pub struct OpenStream(Gauge);

impl Drop for OpenStream {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// Middleware: counts and times every request by route pattern.
pub async fn track_http(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let route =
        req.extensions().get::<MatchedPath>().map(|p| p.as_str().to_owned()).unwrap_or_else(|| "unmatched".to_owned());
    // Only the standard methods become labels: anything else would add series without bound.
    let method = match *req.method() {
        Method::GET | Method::HEAD | Method::POST | Method::PUT | Method::PATCH | Method::DELETE | Method::OPTIONS => {
            req.method().as_str().to_owned()
        }
        _ => "other".to_owned(),
    };
    let started = Instant::now();
    let response = next.run(req).await;
    let labels = HttpLabels { method, route, status: response.status().as_u16() };
    state.metrics.http_requests.get_or_create(&labels).inc();
    state.metrics.http_seconds.get_or_create(&labels).observe(started.elapsed().as_secs_f64());
    response
}
