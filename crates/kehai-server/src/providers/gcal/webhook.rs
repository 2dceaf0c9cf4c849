//! Google's pushes at `/webhooks/gcal`: headers only, never a body — the channel, its token, the
//! resource it watches and what happened (`sync` when the channel starts, `exists` or
//! `not_exists` when something in the calendar changed). Nothing in them is trusted before the
//! engine has found the channel and compared its token (constant time) and resource.

use axum::http::StatusCode;

use crate::presence::{Event, Inbound, Item, WebhookRefusal, WebhookRequest};

/// A push is always answered at once; a handshake Google does not have.
pub fn handshake(_: &WebhookRequest<'_>) -> Option<String> {
    None
}

/// One push: one item.
pub fn parse(request: &WebhookRequest<'_>) -> Result<Inbound, WebhookRefusal> {
    let header = |name: &str| request.headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let (Some(channel), Some(state)) = (header("x-goog-channel-id"), header("x-goog-resource-state")) else {
        return Err(WebhookRefusal {
            status: StatusCode::BAD_REQUEST,
            code: "not_a_push",
            message: "a Google Calendar push names its channel and resource state in X-Goog-* headers",
        });
    };
    // kehai's channels are UUIDs: anything else names none of them (counted, never looked up).
    if uuid::Uuid::parse_str(&channel).is_err() {
        return Ok(Inbound { items: Vec::new(), proof: None, malformed: 1 });
    }
    let event = match state.as_str() {
        "sync" => Event::Started,
        "exists" | "not_exists" => Event::Changed(None),
        other => Event::Other(other.to_owned()),
    };
    let item = Item {
        subscription: channel,
        secret: header("x-goog-channel-token"),
        resource: header("x-goog-resource-id"),
        event,
    };
    Ok(Inbound { items: vec![item], proof: None, malformed: 0 })
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderMap;

    use super::*;

    fn push(headers: &[(&'static str, &str)]) -> Result<Inbound, WebhookRefusal> {
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            map.insert(*name, value.parse().unwrap());
        }
        parse(&WebhookRequest { lifecycle: false, query: &[], headers: &map, body: b"ignored" })
    }

    #[test]
    fn pushes_become_items_and_nothing_else_does() {
        let channel = "0f8c6a8e-5b1e-4c2a-9d0e-1a2b3c4d5e6f";
        let inbound = push(&[
            ("x-goog-channel-id", channel),
            ("x-goog-channel-token", "token"),
            ("x-goog-resource-id", "resource"),
            ("x-goog-resource-state", "exists"),
        ])
        .unwrap();
        let item = &inbound.items[0];
        assert_eq!((item.subscription.as_str(), item.secret.as_deref()), (channel, Some("token")));
        assert_eq!(item.resource.as_deref(), Some("resource"));
        assert!(matches!(item.event, Event::Changed(None)));
        let sync = push(&[("x-goog-channel-id", channel), ("x-goog-resource-state", "sync")]).unwrap();
        assert!(matches!(sync.items[0].event, Event::Started));
        let foreign = push(&[("x-goog-channel-id", "not-ours"), ("x-goog-resource-state", "exists")]).unwrap();
        assert_eq!((foreign.items.len(), foreign.malformed), (0, 1));
        assert_eq!(push(&[("x-goog-resource-state", "exists")]).unwrap_err().code, "not_a_push");
    }
}
