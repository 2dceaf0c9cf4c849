//! Live updates: every avatar change reaches every open page of its space.
//!
//! ```text
//! handler ──publish──▶ Bus ──(every instance)──▶ Hub ──▶ open event streams (SSE)
//!                                                 ▲
//!          Attendance (open streams = who is here)┘ departures publish "away"/"left"
//! ```

pub mod attendance;
pub mod bus;
pub mod events;
pub mod hub;
pub mod nats;
pub mod sessions;

use std::sync::Arc;

use futures::StreamExt;
use kehai_core::{Avatar, PersonId, PersonKind, SpaceId};
use kehai_store::Store;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

pub use attendance::{Attendance, Departure};
pub use bus::{Bus, BusMessage, Delivery, InProcessBus, SpaceEvent};
pub use hub::Hub;
pub use sessions::SessionStreams;

use crate::{state::AppState, view::AvatarView};

pub fn router() -> axum::Router<AppState> {
    axum::Router::new().route("/s/{slug}/events", axum::routing::get(events::stream))
}

/// The live side of the application, shared by all handlers.
#[derive(Clone)]
pub struct Live {
    pub bus: Arc<dyn Bus>,
    pub hub: Arc<Hub>,
    pub attendance: Arc<Attendance>,
    pub sessions: Arc<SessionStreams>,
}

/// The background half of [`Live`], built with it and started once by [`crate::run`]: moves bus
/// messages into the hub and announces departures.
#[derive(Debug)]
pub struct LiveWorker {
    departures: mpsc::UnboundedReceiver<Departure>,
}

impl std::fmt::Debug for Live {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Live").field("hub", &self.hub).finish_non_exhaustive()
    }
}

impl Live {
    /// A live side on `bus`; `here_gauge` follows the number of avatars here.
    pub fn new(bus: Arc<dyn Bus>, here_gauge: prometheus_client::metrics::gauge::Gauge) -> (Live, LiveWorker) {
        let (attendance, departures) = Attendance::new(here_gauge);
        let live = Live { bus, hub: Arc::new(Hub::default()), attendance, sessions: Arc::default() };
        (live, LiveWorker { departures })
    }

    /// The view of `avatar` as pages show it now.
    pub fn view(&self, avatar: &Avatar) -> AvatarView {
        AvatarView::new(avatar, self.attendance.is_here(avatar.space_id, avatar.person_id))
    }

    /// Tells every open page of the avatar's space about its current state.
    pub fn publish_avatar(&self, avatar: &Avatar) {
        let view = self.view(avatar);
        if AvatarView::visible(avatar, view.here) {
            self.bus.publish(BusMessage { space_id: avatar.space_id, event: SpaceEvent::Avatar(Box::new(view)) });
        }
    }

    /// Tells every open page that a guest left.
    pub fn publish_left(&self, space_id: SpaceId, person_id: PersonId) {
        self.bus.publish(BusMessage { space_id, event: SpaceEvent::Left { person_id: person_id.to_string() } });
    }
}

impl LiveWorker {
    /// Runs until `stop`.
    pub fn spawn(self, live: Live, store: Arc<dyn Store>, stop: CancellationToken) {
        let hub = Arc::clone(&live.hub);
        let mut deliveries = live.bus.subscribe();
        let pump_stop = stop.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = pump_stop.cancelled() => break,
                    d = deliveries.next() => match d {
                        Some(Delivery::Message(m)) => hub.deliver(m),
                        Some(Delivery::Lost) => {
                            tracing::warn!("the bus lost messages; every page resynchronises");
                            hub.resync_all();
                        }
                        None => break,
                    },
                }
            }
        });
        let mut departures = self.departures;
        tokio::spawn(async move {
            loop {
                let d = tokio::select! {
                    _ = stop.cancelled() => break,
                    d = departures.recv() => match d { Some(d) => d, None => break },
                };
                live.announce_departure(&*store, d).await;
            }
        });
    }
}

impl Live {
    async fn announce_departure(&self, store: &dyn Store, d: Departure) {
        match d.kind {
            // Back already (a reload): nothing to announce.
            _ if self.attendance.is_here(d.space_id, d.person_id) => {}
            PersonKind::Guest => self.publish_left(d.space_id, d.person_id),
            PersonKind::Member => match store.avatar(d.space_id, d.person_id).await {
                Ok(Some(avatar)) => self.publish_avatar(&avatar),
                Ok(None) => {}
                Err(e) => tracing::warn!(error = %e, "could not announce a departure"),
            },
        }
    }
}
