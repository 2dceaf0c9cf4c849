//! The providers' webhooks: `POST /webhooks/{webhook}` (change notifications) and
//! `POST /webhooks/{webhook}/lifecycle` (lifecycle notifications), `{webhook}` being each offered
//! provider's (`msgraph` for Microsoft Teams).
//!
//! The provider parses the delivery (at most 1 MiB, and at most as many items as it ever
//! batches: 413 beyond): a handshake is answered with 200, `text/plain` and the text the
//! provider gives (Graph's validation token); items are handed to a queue bounded in deliveries
//! and in the memory their parsed items hold ([`queue`]), and the answer is 202 at once — Graph
//! slows and then drops endpoints slower than 3 s. A full queue answers 503 so that the provider
//! retries: nothing is dropped silently. Workers take deliveries from the queue, a few at once,
//! so a slow provider delays only the notifications that wait on it
//! ([`crate::presence::ingest`]).

use std::sync::Arc;

use axum::{
    body::Bytes,
    extract::{DefaultBodyLimit, Query, State, rejection::BytesRejection},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
    routing::post,
};
use tokio::{
    sync::{Semaphore, mpsc},
    task::JoinSet,
};

pub use queue::{Queued, Refused};

/// A delivery to an offered provider, waiting to be processed.
#[derive(Debug)]
pub struct Delivery {
    pub provider: Arc<dyn Provider>,
    pub inbound: Inbound,
}

/// The queue of deliveries between the webhooks and the workers.
pub type NotificationQueue = queue::NotificationQueue<Delivery>;
use tokio_util::sync::CancellationToken;

use crate::{
    error::ApiError,
    presence::{Engine, Inbound, Provider, Webhook, WebhookRequest},
    state::AppState,
};

mod queue;

/// Notification bodies are small; Graph batches at most a few hundred items.
const MAX_BODY: usize = 1024 * 1024;

/// A route pair for every provider kehai knows that posts notifications (its webhook known even
/// unconfigured, so that its handshake is answered), each its own route: request metrics keep
/// its path (`/webhooks/msgraph`).
pub fn router(engine: &Engine) -> axum::Router<AppState> {
    let mut router = axum::Router::new();
    for (segment, webhook) in engine.known().iter().filter_map(|k| k.webhook.map(|w| (w.segment, w))) {
        router = router
            .route(
                &format!("/webhooks/{segment}"),
                post(move |state, query, headers, body| notification(state, webhook, false, query, headers, body)),
            )
            .route(
                &format!("/webhooks/{segment}/lifecycle"),
                post(move |state, query, headers, body| notification(state, webhook, true, query, headers, body)),
            );
    }
    router.layer(DefaultBodyLimit::max(MAX_BODY))
}

async fn notification(
    State(state): State<AppState>,
    webhook: Webhook,
    lifecycle: bool,
    Query(query): Query<Vec<(String, String)>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    delivery(state, webhook, lifecycle, &query, &headers, body)
}

fn delivery(
    state: AppState,
    webhook: Webhook,
    lifecycle: bool,
    query: &[(String, String)],
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let provider = state.presence.by_webhook(webhook.segment).and_then(|(known, _)| known.offered.clone());
    let body = match body {
        Ok(body) => body,
        Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            return ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", "the body is over 1 MiB")
                .into_response();
        }
        Err(rejection) => {
            return ApiError::new(rejection.status(), "invalid_body", rejection.body_text()).into_response();
        }
    };
    let started = std::time::Instant::now();
    let request = WebhookRequest { lifecycle, query, headers, body: &body };
    let answer = answer(&state, provider, webhook, &request);
    state.metrics.webhook_seconds.observe(started.elapsed().as_secs_f64());
    answer
}

fn answer(
    state: &AppState,
    provider: Option<Arc<dyn Provider>>,
    webhook: Webhook,
    request: &WebhookRequest<'_>,
) -> Response {
    if let Some(text) = (webhook.handshake)(request) {
        // Plain text, never markup.
        return ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], text).into_response();
    }
    // What would be refused is refused before it is parsed (a flood is answered as cheaply as it
    // can be).
    if state.notifications.is_full(request.body.len()) {
        return refuse(state);
    }
    let inbound = match (webhook.parse)(request) {
        Ok(inbound) => inbound,
        Err(refusal) => return ApiError::new(refusal.status, refusal.code, refusal.message).into_response(),
    };
    // A provider this server does not offer (any more): what its leftover subscriptions post is
    // accepted and left unread.
    let Some(provider) = provider else { return StatusCode::ACCEPTED.into_response() };
    // Bounded by what the parsed items hold, not only by the bytes that carried them.
    let weight = inbound.weight(request.body.len());
    match state.notifications.push(Delivery { provider, inbound }, weight) {
        Ok(()) => {
            queue_depth(state);
            StatusCode::ACCEPTED.into_response()
        }
        Err(Refused::Full) => refuse(state),
        Err(Refused::Closed) => StatusCode::SERVICE_UNAVAILABLE.into_response(),
    }
}

/// The queue is full: Graph is asked to come again (and the operator told, now and then).
fn refuse(state: &AppState) -> Response {
    if let Some(refused) = state.notifications.refused() {
        tracing::warn!(refused, "the notification queue is full: asking the provider to retry");
    }
    (StatusCode::SERVICE_UNAVAILABLE, [(header::RETRY_AFTER, "1")]).into_response()
}

/// How long the worker may go on with accepted notifications after `stop`.
const DRAIN: std::time::Duration = std::time::Duration::from_secs(5);
/// Deliveries processed at once: a slow or throttled provider (basic notifications read the
/// presence, lifecycle events renew) holds up only the deliveries waiting on it, and the
/// presences of the deliveries being processed are written together (group commit): the more at
/// once, the fewer transactions per notification under a flood.
pub const WORKERS: usize = 64;

/// Processes queued notifications — up to [`WORKERS`] batches at once — until `stop`, then what
/// was already accepted (Graph got 202 for it and will not send it again) for at most a few
/// seconds. Order between batches does not matter: presences are applied by sequence number.
pub fn spawn_worker(state: AppState, mut queue: mpsc::Receiver<Queued<Delivery>>, stop: CancellationToken) {
    tokio::spawn(async move {
        let permits = Arc::new(Semaphore::new(WORKERS));
        let mut running = JoinSet::new();
        let start = |batch, running: &mut JoinSet<()>, permit| {
            let state = state.clone();
            running.spawn(async move {
                handle(&state, batch).await;
                drop(permit);
            });
        };
        loop {
            let batch = tokio::select! {
                _ = stop.cancelled() => break,
                b = queue.recv() => match b { Some(b) => b, None => break },
            };
            let Ok(permit) = Arc::clone(&permits).acquire_owned().await else { break };
            start(batch, &mut running, permit);
            while running.try_join_next().is_some() {}
        }
        queue.close();
        let drained = tokio::time::timeout(DRAIN, async {
            while let Some(batch) = queue.recv().await {
                let Ok(permit) = Arc::clone(&permits).acquire_owned().await else { break };
                start(batch, &mut running, permit);
            }
            while running.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::warn!(
                "shutting down with notifications still queued: the reconciliation at the next start catches up"
            );
        }
    });
}

async fn handle(state: &AppState, queued: Queued<Delivery>) {
    queue_depth(state);
    let Delivery { provider, inbound } = &queued.delivery;
    crate::presence::ingest::process(state, &**provider, inbound).await;
}

/// Publishes how many batches wait.
fn queue_depth(state: &AppState) {
    state.metrics.notification_queue.set(i64::try_from(state.notifications.depth()).unwrap_or(i64::MAX));
}
