//! The bus over NATS, for several instances (`KEHAI_BUS_URL`): every instance publishes its
//! space events to `kehai.space.<space id>` and its attendance notes to `kehai.attendance`, and
//! subscribes to `kehai.>`, so every instance receives every message once — its own included,
//! through the same path — in the order NATS delivered them.
//!
//! Core NATS keeps nothing for later: an instance cut off from the server misses what was
//! published meanwhile. When the connection comes back (and when the client had to drop messages
//! it could not keep up with) the bus reports [`Delivery::Lost`], and every page of that instance
//! resynchronises from the database.

use std::sync::Arc;

use async_nats::{ConnectOptions, Event, connection::State};
use futures::{StreamExt, stream::BoxStream};
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::{broadcast, mpsc};

use super::bus::{Bus, BusMessage, Delivery, delivered};

/// Every subject kehai publishes on starts with this.
const SUBJECT: &str = "kehai";
/// Events waiting to be handed to the NATS client (it buffers more itself); beyond this, while
/// NATS is unreachable, new ones are dropped with a warning rather than filling the memory.
const OUTGOING: usize = 65_536;
/// Events received and not yet taken by the hub (a slower hub resynchronises).
const INCOMING: usize = 4096;

/// Publish/subscribe of space events through a NATS server.
pub struct NatsBus {
    client: async_nats::Client,
    outgoing: mpsc::Sender<BusMessage>,
    incoming: broadcast::Sender<Delivery>,
}

impl std::fmt::Debug for NatsBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Not the URL: it may hold a password.
        f.debug_struct("NatsBus").field("state", &self.client.connection_state()).finish_non_exhaustive()
    }
}

impl NatsBus {
    /// Connects to the NATS server at `url` and subscribes to every space's events.
    pub async fn connect(url: &SecretString) -> anyhow::Result<Arc<NatsBus>> {
        let (incoming, _) = broadcast::channel(INCOMING);
        let events = incoming.clone();
        let client = ConnectOptions::new()
            .name("kehai")
            .event_callback(move |event| {
                let events = events.clone();
                async move { on_event(&events, event) }
            })
            .connect(url.expose_secret())
            .await
            // The error names what failed, never the URL (it may hold a password).
            .map_err(|e| anyhow::anyhow!("cannot connect to the bus (KEHAI_BUS_URL): {}", e.kind()))?;
        let mut subscriber = client
            .subscribe(format!("{SUBJECT}.>"))
            .await
            .map_err(|e| anyhow::anyhow!("cannot subscribe on the bus (KEHAI_BUS_URL): {e}"))?;
        let deliveries = incoming.clone();
        tokio::spawn(async move {
            while let Some(m) = subscriber.next().await {
                match serde_json::from_slice::<BusMessage>(&m.payload) {
                    // Nobody listening yet is fine.
                    Ok(message) => drop(deliveries.send(Delivery::Message(message))),
                    Err(e) => tracing::warn!(error = %e, subject = %m.subject, "not a kehai message: ignored"),
                }
            }
        });
        let (outgoing, mut queued) = mpsc::channel::<BusMessage>(OUTGOING);
        let publisher = client.clone();
        tokio::spawn(async move {
            while let Some(message) = queued.recv().await {
                let subject = match &message {
                    BusMessage::Space { space_id, .. } => format!("{SUBJECT}.space.{}", space_id.0),
                    _ => format!("{SUBJECT}.attendance"),
                };
                let published = match serde_json::to_vec(&message) {
                    Ok(payload) => publisher.publish(subject, payload.into()).await.map_err(|e| e.to_string()),
                    Err(e) => Err(e.to_string()),
                };
                if let Err(e) = published {
                    tracing::warn!(error = %e, "an event could not be put on the bus");
                }
            }
        });
        Ok(Arc::new(NatsBus { client, outgoing, incoming }))
    }
}

fn on_event(deliveries: &broadcast::Sender<Delivery>, event: Event) {
    match event {
        Event::Connected => {
            tracing::info!("connected to the bus");
            // Whatever was published while away is lost (harmless on the first connection).
            let _ = deliveries.send(Delivery::Lost);
        }
        Event::Disconnected => tracing::warn!("the bus (NATS) is unreachable; reconnecting"),
        Event::SlowConsumer(_) => {
            tracing::warn!("the bus dropped events this instance could not keep up with");
            let _ = deliveries.send(Delivery::Lost);
        }
        other => tracing::info!(event = %other, "bus"),
    }
}

impl Bus for NatsBus {
    fn publish(&self, message: BusMessage) {
        if let Err(e) = self.outgoing.try_send(message) {
            tracing::warn!(error = %e, "the bus is not keeping up: an event was dropped");
        }
    }

    fn subscribe(&self) -> BoxStream<'static, Delivery> {
        delivered(self.incoming.subscribe())
    }

    fn ready(&self) -> bool {
        self.client.connection_state() == State::Connected
    }
}
