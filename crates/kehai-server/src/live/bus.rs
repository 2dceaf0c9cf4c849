//! The bus that carries space events (and who is here) between kehai instances.
//!
//! One instance: [`InProcessBus`], a broadcast channel. Several instances (`KEHAI_BUS_URL`):
//! [`NatsBus`](super::nats::NatsBus) carries the same [`BusMessage`]s (serde types for that
//! reason) through a NATS server.

use futures::{StreamExt, stream::BoxStream};
use kehai_core::{PersonId, PersonKind, SpaceId};
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;
use tokio_stream::wrappers::{BroadcastStream, errors::BroadcastStreamRecvError};

use crate::view::AvatarView;

/// Something every open page of a space must learn.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SpaceEvent {
    /// An avatar appeared or changed (name, emoji, presence, here/away).
    Avatar(Box<AvatarView>),
    /// A guest left: their avatar disappears.
    Left { person_id: String },
}

/// What travels on the bus: events for the pages, and notes between instances about who is here
/// through which of them (a person is here while a page of theirs is open on any instance).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum BusMessage {
    /// For every open page of a space.
    Space { space_id: SpaceId, event: SpaceEvent },
    /// A person's first page of a space opened on `instance` (`here`), or its last one closed.
    Here { space_id: SpaceId, person_id: PersonId, person: PersonKind, instance: String, here: bool },
    /// `instance` started, or lost messages: every other instance says again who is here through
    /// it.
    RollCall { instance: String },
    /// `instance` died (its heartbeat lapsed; `by` noticed): whoever was here only through it has
    /// left, and `by` tells the pages; every page resynchronises (the dead instance's last events
    /// may have died in its buffers).
    Gone { instance: String, by: String },
    /// A session ended (logout, a new login, expiry): every instance closes its streams. The
    /// session's id hash only (what the database keys it by), never its cookie.
    SessionEnded { id_hash: String },
}

impl BusMessage {
    /// An event for the pages of a space.
    pub fn space(space_id: SpaceId, event: SpaceEvent) -> Self {
        BusMessage::Space { space_id, event }
    }
}

/// What a subscriber receives: a message, or notice that messages were lost (the subscriber
/// fell behind) so that whoever depends on them must resynchronise.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    Message(BusMessage),
    Lost,
}

/// Publish/subscribe of space events across instances.
pub trait Bus: Send + Sync + 'static {
    /// Puts an event on the bus for every instance (this one included); never waits.
    fn publish(&self, message: BusMessage);
    fn subscribe(&self) -> BoxStream<'static, Delivery>;
    /// Whether events flow now (`/readyz` says not ready otherwise).
    fn ready(&self) -> bool {
        true
    }
}

/// The bus the configuration names: NATS with `bus_url`, else one within the process.
pub async fn connect(config: &crate::Config) -> anyhow::Result<std::sync::Arc<dyn Bus>> {
    Ok(match &config.bus_url {
        Some(url) => super::nats::NatsBus::connect(url).await?,
        None => std::sync::Arc::new(InProcessBus::new(4096)),
    })
}

/// A broadcast receiver as deliveries: falling behind is reported as [`Delivery::Lost`].
pub(crate) fn delivered(rx: broadcast::Receiver<Delivery>) -> BoxStream<'static, Delivery> {
    BroadcastStream::new(rx)
        .map(|r| match r {
            Ok(d) => d,
            Err(BroadcastStreamRecvError::Lagged(_)) => Delivery::Lost,
        })
        .boxed()
}

/// The bus of a single instance.
#[derive(Debug)]
pub struct InProcessBus {
    tx: broadcast::Sender<Delivery>,
}

impl InProcessBus {
    pub fn new(capacity: usize) -> Self {
        InProcessBus { tx: broadcast::channel(capacity).0 }
    }
}

impl Bus for InProcessBus {
    fn publish(&self, message: BusMessage) {
        // No subscriber yet is fine: nobody is listening.
        let _ = self.tx.send(Delivery::Message(message));
    }

    fn subscribe(&self) -> BoxStream<'static, Delivery> {
        delivered(self.tx.subscribe())
    }
}
