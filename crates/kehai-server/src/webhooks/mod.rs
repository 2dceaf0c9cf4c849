//! Microsoft Graph's webhooks: `POST /webhooks/msgraph` (change notifications) and
//! `POST /webhooks/msgraph/lifecycle` (lifecycle notifications).
//!
//! Both answer Graph's validation handshake (protocol doc §3.1): a POST with
//! `?validationToken=…` is answered with 200, `text/plain` and the decoded token. Otherwise the
//! JSON body (at most 1 MiB) is parsed and handed to a queue bounded in batches and in bytes
//! ([`queue`]), and the answer is 202 at once — Graph slows and then drops endpoints slower than
//! 3 s (§3.4). A full queue answers 503 so that Graph retries: nothing is dropped silently. Workers take batches from the queue, a
//! few at once, so a slow Microsoft delays only the notifications that wait on it.

use std::{collections::HashMap, sync::Arc};

use axum::{
    body::Bytes,
    extract::{DefaultBodyLimit, Query, State, rejection::BytesRejection},
    http::{StatusCode, header},
    response::{IntoResponse, Response},
    routing::post,
};
use kehai_microsoft::notifications::NotificationBatch;
use tokio::{
    sync::{Semaphore, mpsc},
    task::JoinSet,
};

pub use queue::{NotificationQueue, Queued, Refused};
use tokio_util::sync::CancellationToken;

use crate::{error::ApiError, state::AppState};

mod queue;

/// Notification bodies are small; Graph batches at most a few hundred items.
const MAX_BODY: usize = 1024 * 1024;

pub fn router() -> axum::Router<AppState> {
    axum::Router::new()
        .route("/webhooks/msgraph", post(notification))
        .route("/webhooks/msgraph/lifecycle", post(notification))
        .layer(DefaultBodyLimit::max(MAX_BODY))
}

async fn notification(
    State(state): State<AppState>,
    Query(query): Query<HashMap<String, String>>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
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
    let answer = answer(&state, &query, &body);
    state.metrics.webhook_seconds.observe(started.elapsed().as_secs_f64());
    answer
}

fn answer(state: &AppState, query: &HashMap<String, String>, body: &[u8]) -> Response {
    if let Some(token) = query.get("validationToken") {
        // Already URL-decoded, as Graph requires; plain text, never markup.
        return ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], token.clone()).into_response();
    }
    if state.notifications.is_full(body.len()) {
        return refuse(state);
    }
    let batch = match NotificationBatch::parse(body) {
        Ok(b) => b,
        Err(_) => {
            return ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_notification",
                "not a change-notification collection",
            )
            .into_response();
        }
    };
    match state.notifications.push(batch, body.len()) {
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
        tracing::warn!(refused, "the notification queue is full: asking Graph to retry");
    }
    (StatusCode::SERVICE_UNAVAILABLE, [(header::RETRY_AFTER, "1")]).into_response()
}

/// How long the worker may go on with accepted notifications after `stop`.
const DRAIN: std::time::Duration = std::time::Duration::from_secs(5);
/// Batches processed at once: a slow or throttled Microsoft (basic notifications read the
/// presence, lifecycle events renew) holds up only the batches waiting on it, and the presences
/// of the batches being processed are written together (`teams::commit`): the more at once,
/// the fewer transactions per notification under a flood.
pub const WORKERS: usize = 64;

/// Processes queued notifications — up to [`WORKERS`] batches at once — until `stop`, then what
/// was already accepted (Graph got 202 for it and will not send it again) for at most a few
/// seconds. Order between batches does not matter: presences are applied by sequence number.
pub fn spawn_worker(state: AppState, mut queue: mpsc::Receiver<Queued>, stop: CancellationToken) {
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

async fn handle(state: &AppState, queued: Queued) {
    queue_depth(state);
    if let Some(teams) = state.teams.clone() {
        crate::teams::sync::process(state, &teams, queued.batch).await;
    }
}

/// Publishes how many batches wait.
fn queue_depth(state: &AppState) {
    state.metrics.notification_queue.set(i64::try_from(state.notifications.depth()).unwrap_or(i64::MAX));
}
