//! `GET /s/{slug}/events`: the Server-Sent Events stream of a space.
//!
//! The first event is a `snapshot` of every avatar (or, after a reconnect with `Last-Event-ID`,
//! the events missed), then `avatar` and `left` events as they happen. Holding the stream open
//! is what makes its person "here". A stream closed because its session opened too many others
//! ends with a `closed` event (`{"reason": "too_many_pages"}`): the page stops and says so.
//! Beyond the instance's streams, the answer is 503 `too_many_streams`.

use std::{collections::VecDeque, convert::Infallible, time::Duration};

use axum::{
    extract::{Path, State},
    http::{HeaderMap, StatusCode},
    response::sse::{Event, KeepAlive, Sse},
};
use futures::Stream;
use kehai_core::Space;
use serde::Serialize;
use tokio::sync::broadcast::{self, error::RecvError};

use super::{
    attendance::Presence,
    bus::SpaceEvent,
    hub::{Feed, Start},
    sessions::SessionStream,
};
use crate::{access, auth::Visitor, error::ApiError, ops::OpenStream, state::AppState, view::AvatarView};

/// How often an idle stream sends a comment, which also notices closed connections.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

#[derive(Serialize)]
struct Snapshot {
    avatars: Vec<AvatarView>,
}

pub async fn stream(
    State(state): State<AppState>,
    Path(slug): Path<String>,
    headers: HeaderMap,
    visitor: Option<Visitor>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let visitor = visitor.ok_or_else(ApiError::unauthorized)?;
    let admitted = access::admit(&state, &slug, visitor).await?;
    let Ok(session_stream) = state.live.sessions.open(&admitted.visitor.session.id_hash) else {
        tracing::warn!("as many event streams are open as this instance holds: a page was asked to come again");
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "too_many_streams",
            "this server holds as many open pages as it can; the page tries again",
        )
        .with_retry_after(5));
    };
    // Ended between the lookup above and the registration (a logout on any instance): its end
    // was told to no stream of it yet.
    if state.store.session(&admitted.visitor.session.id_hash, state.clock.now()).await?.is_none() {
        return Err(ApiError::unauthorized());
    }
    let space = admitted.space;
    let person = admitted.visitor.person_id();

    let kind = admitted.visitor.session.kind;
    let (presence, arrived) = state.live.attendance.enter(space.id, person, kind);
    if arrived {
        state.live.note_here(space.id, person, kind, true);
    }
    if arrived && let Some(avatar) = state.store.avatar(space.id, person).await? {
        state.live.publish_avatar(&avatar);
    }

    let last_event_id = headers.get("last-event-id").and_then(|v| v.to_str().ok());
    let (start, rx) = state.live.hub.join(space.id, last_event_id);
    let mut pending = VecDeque::new();
    match start {
        Start::Replay(events) => pending.extend(events.into_iter().map(|e| e.frame)),
        Start::Snapshot { n } => pending.push_back(snapshot(&state, &space, n).await?),
    }

    let (stop, ended) = (state.shutdown.clone(), session_stream.ended.clone());
    let superseded = session_stream.superseded.clone();
    // The session's own end, should no instance's purge get to it first.
    let left = admitted.visitor.session.expires_at.saturating_sub(state.clock.now());
    let expiry = tokio::time::sleep(Duration::from_millis(u64::try_from(left).unwrap_or(0)));
    let feed = StreamState {
        _open: state.metrics.open_stream(),
        closed: Box::pin(async move {
            tokio::select! {
                _ = stop.cancelled() => Closed::Quietly,
                _ = ended.cancelled() => Closed::Quietly,
                _ = expiry => Closed::Quietly,
                _ = superseded.cancelled() => Closed::Superseded,
            }
        }),
        done: false,
        _session_stream: session_stream,
        state,
        space,
        rx,
        pending,
        _presence: presence,
    };
    let stream = futures::stream::unfold(feed, |mut f| async move {
        let event = f.next().await?;
        Some((Ok(event), f))
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(KEEP_ALIVE)))
}

/// The state of one open stream. Dropping it (the client went away) closes the page.
struct StreamState {
    state: AppState,
    space: Space,
    rx: broadcast::Receiver<Feed>,
    pending: VecDeque<Event>,
    /// Resolves when kehai shuts down, the stream's session ends (on any instance: the bus
    /// tells, or its time is up) or opened too many others. Made once, not per event:
    /// with thousands of streams, waiting anew on both tokens for every event was a visible part
    /// of the fan-out.
    closed: futures::future::BoxFuture<'static, Closed>,
    /// The last event was sent: the stream ends.
    done: bool,
    _session_stream: SessionStream,
    _open: OpenStream,
    _presence: Presence,
}

impl StreamState {
    async fn next(&mut self) -> Option<Event> {
        if self.done {
            return None;
        }
        if let Some(event) = self.pending.pop_front() {
            return Some(event);
        }
        let received = tokio::select! {
            closed = &mut self.closed => {
                self.done = true;
                return match closed {
                    Closed::Quietly => None,
                    // The page must not reconnect (it would close another): it is told why.
                    Closed::Superseded => Some(Event::default().event("closed").data(r#"{"reason":"too_many_pages"}"#)),
                };
            }
            r = self.rx.recv() => r,
        };
        match received {
            Ok(Feed::Event(e)) => Some(e.frame),
            // Fell behind or the bus lost messages: start again from the database. If that
            // fails, the stream ends and the page's EventSource reconnects and tries again.
            Ok(Feed::Resync) | Err(RecvError::Lagged(_)) => {
                let n = self.state.live.hub.last(self.space.id);
                snapshot(&self.state, &self.space, n).await.ok()
            }
            Err(RecvError::Closed) => None,
        }
    }
}

/// Why a stream ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Closed {
    /// Shutdown, the session's end: the page learns it on reconnecting.
    Quietly,
    /// Its session opened more pages than it may hold and this was the oldest.
    Superseded,
}

/// An event's frame, rendered once by the hub for every stream of its space.
pub(super) fn render(id: String, event: &SpaceEvent) -> Event {
    let (name, data) = match event {
        SpaceEvent::Avatar(view) => ("avatar", serde_json::to_string(view)),
        SpaceEvent::Left { person_id } => {
            ("left", serde_json::to_string(&serde_json::json!({ "person_id": person_id })))
        }
    };
    Event::default().event(name).id(id).data(data.unwrap_or_default())
}

async fn snapshot(state: &AppState, space: &Space, n: u64) -> Result<Event, ApiError> {
    let avatars = crate::api::avatars::visible_avatars(state, space).await?;
    let data = serde_json::to_string(&Snapshot { avatars }).map_err(ApiError::internal)?;
    Ok(Event::default().event("snapshot").id(state.live.hub.event_id(n)).data(data))
}
