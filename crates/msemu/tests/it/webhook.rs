//! A notification endpoint for tests: answers Graph's validation handshake and collects the
//! change notifications (`/hook`) and lifecycle notifications (`/lifecycle`) it receives,
//! optionally failing the first ones to exercise retries.

use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

use axum::{
    Router,
    extract::{Query, State},
    http::{StatusCode, Uri},
    response::{IntoResponse, Response},
    routing::post,
};
use serde_json::Value;
use tokio::sync::mpsc;

/// How the endpoint answers Graph's validation handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handshake {
    /// 200, text/plain, the decoded token.
    Right,
    /// 200, text/plain, something else.
    WrongBody,
    /// 200 and the token, but not as plain text.
    WrongType,
}

#[derive(Clone)]
struct Hook {
    changes: mpsc::UnboundedSender<Value>,
    lifecycle: mpsc::UnboundedSender<Value>,
    handshakes: Arc<AtomicUsize>,
    /// Answer this many change notifications with 500 before accepting.
    fail_first: Arc<AtomicUsize>,
    handshake: Handshake,
}

pub struct Webhook {
    pub url: String,
    /// Change notifications.
    pub rx: mpsc::UnboundedReceiver<Value>,
    /// Lifecycle notifications.
    pub lifecycle_rx: mpsc::UnboundedReceiver<Value>,
    handshakes: Arc<AtomicUsize>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for Webhook {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn receive(
    State(hook): State<Hook>,
    uri: Uri,
    Query(q): Query<std::collections::HashMap<String, String>>,
    body: String,
) -> Response {
    if let Some(token) = q.get("validationToken") {
        hook.handshakes.fetch_add(1, Ordering::SeqCst);
        let (content_type, answer) = match hook.handshake {
            Handshake::Right => ("text/plain", token.clone()),
            Handshake::WrongBody => ("text/plain", "nope".to_owned()),
            Handshake::WrongType => ("application/json", token.clone()),
        };
        return (StatusCode::OK, [("content-type", content_type)], answer).into_response();
    }
    let body = serde_json::from_str(&body).unwrap_or(Value::Null);
    if uri.path() == "/lifecycle" {
        let _ = hook.lifecycle.send(body);
        return StatusCode::ACCEPTED.into_response();
    }
    if hook.fail_first.load(Ordering::SeqCst) > 0 {
        hook.fail_first.fetch_sub(1, Ordering::SeqCst);
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    }
    let _ = hook.changes.send(body);
    StatusCode::ACCEPTED.into_response()
}

async fn next_of(rx: &mut mpsc::UnboundedReceiver<Value>, what: &str) -> Value {
    tokio::time::timeout(std::time::Duration::from_secs(10), rx.recv())
        .await
        .unwrap_or_else(|_| panic!("a {what} within 10 s"))
        .expect("the webhook is running")
}

impl Webhook {
    pub async fn start() -> Webhook {
        Self::start_with(0, Handshake::Right).await
    }

    pub async fn start_with(fail_first: usize, handshake: Handshake) -> Webhook {
        let (changes, rx) = mpsc::unbounded_channel();
        let (lifecycle, lifecycle_rx) = mpsc::unbounded_channel();
        let handshakes = Arc::new(AtomicUsize::new(0));
        let hook = Hook {
            changes,
            lifecycle,
            handshakes: Arc::clone(&handshakes),
            fail_first: Arc::new(AtomicUsize::new(fail_first)),
            handshake,
        };
        let app = Router::new().route("/hook", post(receive)).route("/lifecycle", post(receive)).with_state(hook);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Webhook { url, rx, lifecycle_rx, handshakes, server }
    }

    pub fn lifecycle_url(&self) -> String {
        self.url.replace("/hook", "/lifecycle")
    }

    pub fn handshakes(&self) -> usize {
        self.handshakes.load(Ordering::SeqCst)
    }

    /// The next change notification within 10 s.
    pub async fn next(&mut self) -> Value {
        next_of(&mut self.rx, "change notification").await
    }

    /// The next lifecycle notification within 10 s.
    pub async fn next_lifecycle(&mut self) -> Value {
        next_of(&mut self.lifecycle_rx, "lifecycle notification").await
    }
}
