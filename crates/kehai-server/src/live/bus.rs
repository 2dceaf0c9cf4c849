//! The bus that carries space events between kehai instances.
//!
//! Today one process: [`InProcessBus`], a broadcast channel. With several instances a NATS
//! implementation carries the same [`BusMessage`]s (they are serde types for that reason).

use futures::{StreamExt, stream::BoxStream};
use kehai_core::SpaceId;
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

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BusMessage {
    pub space_id: SpaceId,
    pub event: SpaceEvent,
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
    fn publish(&self, message: BusMessage);
    fn subscribe(&self) -> BoxStream<'static, Delivery>;
}

/// The bus of a single instance.
#[derive(Debug)]
pub struct InProcessBus {
    tx: broadcast::Sender<BusMessage>,
}

impl InProcessBus {
    pub fn new(capacity: usize) -> Self {
        InProcessBus { tx: broadcast::channel(capacity).0 }
    }
}

impl Bus for InProcessBus {
    fn publish(&self, message: BusMessage) {
        // No subscriber yet is fine: nobody is listening.
        let _ = self.tx.send(message);
    }

    fn subscribe(&self) -> BoxStream<'static, Delivery> {
        BroadcastStream::new(self.tx.subscribe())
            .map(|r| match r {
                Ok(m) => Delivery::Message(m),
                Err(BroadcastStreamRecvError::Lagged(_)) => Delivery::Lost,
            })
            .boxed()
    }
}
