//! Live updates: every avatar change reaches every open page of its space.
//!
//! ```text
//! handler ──publish──▶ Bus ──(every instance)──▶ Hub ──▶ open event streams (SSE)
//!                                                 ▲
//!          Attendance (open streams = who is here)┘ departures publish "away"/"left"
//! ```
//!
//! With several instances, who is here is the union of every instance's open streams: each
//! instance notes its arrivals and departures on the bus ([`BusMessage::Here`]), answers a new
//! instance's roll call, and forgets a dead instance's people when its heartbeat lapses. A dead
//! instance's last events may have been written to the database and lost on their way to the
//! bus, so its death also resynchronises every page of every instance from the database.

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
    /// This instance's id (as in the claims).
    pub instance: Arc<str>,
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
    /// The live side of `instance` on `bus`, holding `streams` open; `here_gauge` follows the
    /// number of avatars here through this instance.
    pub fn new(
        instance: Arc<str>,
        bus: Arc<dyn Bus>,
        streams: SessionStreams,
        here_gauge: prometheus_client::metrics::gauge::Gauge,
    ) -> (Live, LiveWorker) {
        let (attendance, departures) = Attendance::new(here_gauge);
        let live = Live { instance, bus, hub: Arc::new(Hub::default()), attendance, sessions: Arc::new(streams) };
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
            self.bus.publish(BusMessage::space(avatar.space_id, SpaceEvent::Avatar(Box::new(view))));
        }
    }

    /// Tells every open page that a guest left.
    pub fn publish_left(&self, space_id: SpaceId, person_id: PersonId) {
        self.bus.publish(BusMessage::space(space_id, SpaceEvent::Left { person_id: person_id.to_string() }));
    }

    /// Tells the other instances that a person's first page here opened (`here`) or their last
    /// one closed.
    pub fn note_here(&self, space_id: SpaceId, person_id: PersonId, person: PersonKind, here: bool) {
        let instance = self.instance.to_string();
        self.bus.publish(BusMessage::Here { space_id, person_id, person, instance, here });
    }

    /// Tells every instance that `instance` died: whoever was here only through it has left.
    pub fn instance_gone(&self, instance: &str) {
        self.bus.publish(BusMessage::Gone { instance: instance.to_owned(), by: self.instance.to_string() });
    }

    /// Handles a message from the bus.
    fn receive(&self, message: BusMessage) {
        let me = &*self.instance;
        match message {
            BusMessage::Space { space_id, event } => self.hub.deliver(space_id, event),
            BusMessage::Here { instance, .. } if instance == me => {}
            BusMessage::Here { space_id, person_id, person, instance, here } => {
                self.attendance.note(space_id, person_id, person, &instance, here);
            }
            BusMessage::RollCall { instance } if instance == me => {}
            BusMessage::RollCall { .. } => {
                for (space_id, person_id, person) in self.attendance.here_locally() {
                    self.note_here(space_id, person_id, person, true);
                }
            }
            BusMessage::SessionEnded { id_hash } => self.sessions.end(&id_hash),
            BusMessage::Gone { instance, by } => {
                // What the dead instance wrote last may never have reached the bus: its
                // publications wait in a queue and in the NATS client's buffer after the
                // database has them, and died there. Every page starts again from the database.
                self.hub.resync_all();
                let left = self.attendance.forget(&instance);
                // The instance that noticed tells the pages (once, not once per instance).
                if by == me {
                    left.into_iter().for_each(|d| self.attendance.depart(d));
                }
            }
        }
    }
}

impl LiveWorker {
    /// Runs until `stop`.
    pub fn spawn(self, live: Live, store: Arc<dyn Store>, stop: CancellationToken) {
        let mut deliveries = live.bus.subscribe();
        // Who is here through the other instances already?
        live.bus.publish(BusMessage::RollCall { instance: live.instance.to_string() });
        let pump_stop = stop.clone();
        let pump = live.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = pump_stop.cancelled() => break,
                    d = deliveries.next() => match d {
                        Some(Delivery::Message(m)) => pump.receive(m),
                        Some(Delivery::Lost) => {
                            tracing::warn!("the bus lost messages; every page resynchronises");
                            pump.attendance.forget_all_elsewhere();
                            pump.hub.resync_all();
                            pump.bus.publish(BusMessage::RollCall { instance: pump.instance.to_string() });
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
        // Back already (a reload): nothing to announce.
        if self.attendance.is_here_locally(d.space_id, d.person_id) {
            return;
        }
        self.note_here(d.space_id, d.person_id, d.kind, false);
        match d.kind {
            // Still here through another instance.
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
