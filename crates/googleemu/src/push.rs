//! Push notifications (the Calendar push guide): a `sync` message as soon as a channel exists,
//! then an `exists` message on every change to the watched calendar, to each live channel whose
//! `eventTypes` filter (if any) admits a changed event. Each is a `POST` with no body
//! (`Content-Length: 0`), Google's `X-Goog-*` headers and the `APIs-Google` user agent. Message
//! numbers increase but are not sequential; `sync` is always 1.
//!
//! A receiver's 102, 200, 201, 202 or 204 is a delivery; 500, 502, 503, 504 (or no answer in
//! time) brings retries with exponential backoff; any other status is a failure, not retried.
//! Changes reach no expired channel, nor a stopped one unless a `lateAfterStop` fault says so;
//! retries end when the channel does. Every attempt is recorded ([`crate::world::PushRecord`]).

use std::{sync::Arc, time::Duration};

use rand::Rng;

use crate::{
    Emulator,
    calendar::time::rfc1123,
    clock::from_unix_ms,
    faults::{self, Kind, Target},
    world::{Channel, PushRecord},
};

/// The user agent of Google's push deliveries (developers.google.com/search/docs/crawling-indexing/apis-user-agent).
pub const USER_AGENT: &str = "APIs-Google (+https://developers.google.com/webmasters/APIs-Google.html)";
const DELIVERED: &[u16] = &[102, 200, 201, 202, 204];
const RETRIED: &[u16] = &[500, 502, 503, 504];

/// One message to deliver.
#[derive(Debug, Clone)]
struct Message {
    channel: Channel,
    state: &'static str,
    number: u64,
    /// Delivered even though the channel was stopped (a `lateAfterStop` fault).
    late: bool,
}

/// The `sync` message of a new channel.
pub fn sync(emu: &Arc<Emulator>, channel: &Channel) {
    send(emu, Message { channel: channel.clone(), state: "sync", number: 1, late: false });
}

/// `user`'s calendar changed (events of `event_types`): `exists` to every channel watching it.
pub fn changed(emu: &Arc<Emulator>, user: &str, event_types: &[&str]) {
    let now = emu.clock.now_ms();
    let messages: Vec<Message> = {
        let mut world = emu.world.lock();
        let watching: Vec<usize> = world
            .channels
            .iter()
            .enumerate()
            .filter(|(_, c)| c.user.eq_ignore_ascii_case(user) && c.expiration > now)
            .filter(|(_, c)| {
                c.event_types.is_empty() || event_types.iter().any(|t| c.event_types.iter().any(|w| w == t))
            })
            .map(|(i, _)| i)
            .collect();
        let mut messages = Vec::new();
        for i in watching {
            let late = if world.channels[i].stopped {
                let fault = faults::take(&mut world, Target::Pushes, None, &[Kind::LateAfterStop]);
                if fault.is_none() {
                    continue;
                }
                true
            } else {
                false
            };
            let channel = &mut world.channels[i];
            // Increasing, not sequential, as Google's message numbers are.
            channel.message_number += rand::rng().random_range(2..=40);
            messages.push(Message { channel: channel.clone(), state: "exists", number: channel.message_number, late });
        }
        messages
    };
    for m in messages {
        send(emu, m);
    }
}

/// Sends one message in the background, as push faults say.
fn send(emu: &Arc<Emulator>, message: Message) {
    let fault = faults::take(&mut emu.world.lock(), Target::Pushes, None, &[Kind::Drop, Kind::Duplicate, Kind::Delay]);
    let (copies, delay) = match fault.as_ref().map(|f| f.kind) {
        Some(Kind::Drop) => {
            tracing::info!(channel = %message.channel.id, state = message.state, "push dropped (fault)");
            (0, Duration::ZERO)
        }
        Some(Kind::Duplicate) => (2, Duration::ZERO),
        Some(Kind::Delay) => (1, Duration::from_millis(fault.and_then(|f| f.delay_ms).unwrap_or(5_000))),
        _ => (1, Duration::ZERO),
    };
    for _ in 0..copies {
        let (emu, message) = (Arc::clone(emu), message.clone());
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            deliver(&emu, &message).await;
        });
    }
}

/// Whether the channel may still receive `message`.
fn open(emu: &Emulator, message: &Message) -> bool {
    let now = emu.clock.now_ms();
    let world = emu.world.lock();
    let channel = world.channels.iter().find(|c| {
        c.id == message.channel.id && c.client_id == message.channel.client_id && c.created == message.channel.created
    });
    channel.is_some_and(|c| c.expiration > now && (!c.stopped || message.late))
}

/// Posts `message` until it is delivered, refused, or the attempts run out.
async fn deliver(emu: &Emulator, message: &Message) {
    let timing = &emu.config.push;
    let mut wait = timing.retry_base;
    for attempt in 1..=timing.max_attempts.max(1) {
        // Whether to send was decided when the message was made (a `sync` may beat the watch
        // answer, and so a quick stop); retries stop once the channel is stopped or expired.
        if attempt > 1 && !open(emu, message) {
            return;
        }
        let status = post(emu, message).await;
        let delivered = status.is_some_and(|s| DELIVERED.contains(&s));
        let retry = status.is_none_or(|s| RETRIED.contains(&s));
        emu.world.lock().pushes.push(PushRecord {
            at: emu.clock.now_ms(),
            channel_id: message.channel.id.clone(),
            user: message.channel.user.clone(),
            state: message.state.to_owned(),
            message_number: message.number,
            attempt,
            status,
            delivered,
        });
        if delivered || !retry {
            return;
        }
        tokio::time::sleep(wait).await;
        wait *= 2;
    }
    tracing::warn!(channel = %message.channel.id, state = message.state, "push abandoned after its last attempt");
}

/// One POST; the receiver's status, or `None` without an answer in time.
async fn post(emu: &Emulator, message: &Message) -> Option<u16> {
    let c = &message.channel;
    let mut request = emu
        .http
        .post(&c.address)
        .timeout(emu.config.push.timeout)
        .header("User-Agent", USER_AGENT)
        // As in the push guide's example notification.
        .header("Content-Type", "application/json; utf-8")
        .header("X-Goog-Channel-ID", &c.id)
        .header("X-Goog-Channel-Expiration", rfc1123(from_unix_ms(c.expiration)))
        .header("X-Goog-Resource-ID", &c.resource_id)
        .header("X-Goog-Resource-URI", &c.resource_uri)
        .header("X-Goog-Resource-State", message.state)
        .header("X-Goog-Message-Number", message.number.to_string())
        .header("Content-Length", "0");
    if let Some(token) = &c.token {
        request = request.header("X-Goog-Channel-Token", token);
    }
    match request.send().await {
        Ok(response) => Some(response.status().as_u16()),
        Err(e) => {
            tracing::debug!(channel = %c.id, error = %e, "push not answered");
            None
        }
    }
}
