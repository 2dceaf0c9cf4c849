//! A notification endpoint for tests: answers Graph's validation handshake and collects the
//! notifications it receives (optionally failing the first ones, to exercise retries).

use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

use axum::{
    Json, Router,
    extract::{Query, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::post,
};
use serde_json::Value;
use tokio::sync::mpsc;

#[derive(Clone)]
struct Hook {
    tx: mpsc::UnboundedSender<Value>,
    handshakes: Arc<AtomicUsize>,
    /// Answer this many notifications with 500 before accepting.
    fail_first: Arc<AtomicUsize>,
    /// Answer handshakes wrongly.
    bad_handshake: bool,
}

pub struct Webhook {
    pub url: String,
    pub rx: mpsc::UnboundedReceiver<Value>,
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
    Query(q): Query<std::collections::HashMap<String, String>>,
    body: String,
) -> Response {
    if let Some(token) = q.get("validationToken") {
        hook.handshakes.fetch_add(1, Ordering::SeqCst);
        let answer = if hook.bad_handshake {
            "nope".to_owned()
        } else {
            token.clone()
        };
        return (StatusCode::OK, [("content-type", "text/plain")], answer).into_response();
    }
    if hook.fail_first.load(Ordering::SeqCst) > 0 {
        hook.fail_first.fetch_sub(1, Ordering::SeqCst);
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    }
    let _ = hook
        .tx
        .send(serde_json::from_str(&body).unwrap_or(Value::Null));
    (StatusCode::ACCEPTED, Json(Value::Null)).into_response()
}

impl Webhook {
    pub async fn start() -> Webhook {
        Self::start_with(0, false).await
    }

    pub async fn start_with(fail_first: usize, bad_handshake: bool) -> Webhook {
        let (tx, rx) = mpsc::unbounded_channel();
        let handshakes = Arc::new(AtomicUsize::new(0));
        let hook = Hook {
            tx,
            handshakes: Arc::clone(&handshakes),
            fail_first: Arc::new(AtomicUsize::new(fail_first)),
            bad_handshake,
        };
        let app = Router::new()
            .route("/hook", post(receive))
            .route("/lifecycle", post(receive))
            .with_state(hook);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Webhook {
            url,
            rx,
            handshakes,
            server,
        }
    }

    pub fn lifecycle_url(&self) -> String {
        self.url.replace("/hook", "/lifecycle")
    }

    pub fn handshakes(&self) -> usize {
        self.handshakes.load(Ordering::SeqCst)
    }

    /// The next notification within 10 s.
    pub async fn next(&mut self) -> Value {
        tokio::time::timeout(std::time::Duration::from_secs(10), self.rx.recv())
            .await
            .expect("a notification within 10 s")
            .expect("the webhook is running")
    }
}
