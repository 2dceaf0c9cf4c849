//! A push receiver for tests: collects each notification (its headers and body) and answers
//! with the statuses it is told to, then 200.

use std::{
    collections::VecDeque,
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{
    Router,
    body::Bytes,
    extract::State,
    http::{HeaderMap, StatusCode},
    routing::post,
};
use tokio::sync::mpsc;

/// One notification as received.
#[derive(Debug, Clone)]
pub struct Received {
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn state(&self) -> &str {
        self.header("x-goog-resource-state").unwrap_or("")
    }

    pub fn number(&self) -> u64 {
        self.header("x-goog-message-number").and_then(|n| n.parse().ok()).unwrap_or(0)
    }
}

#[derive(Clone)]
struct Shared {
    tx: mpsc::UnboundedSender<Received>,
    answers: Arc<Mutex<VecDeque<u16>>>,
}

pub struct Hook {
    pub url: String,
    rx: mpsc::UnboundedReceiver<Received>,
    answers: Arc<Mutex<VecDeque<u16>>>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for Hook {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn receive(State(shared): State<Shared>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let _ = shared.tx.send(Received { headers, body });
    let answer = shared.answers.lock().unwrap().pop_front().unwrap_or(200);
    StatusCode::from_u16(answer).unwrap()
}

impl Hook {
    pub async fn start() -> Hook {
        let (tx, rx) = mpsc::unbounded_channel();
        let answers = Arc::new(Mutex::new(VecDeque::new()));
        let app = Router::new().route("/push", post(receive)).with_state(Shared { tx, answers: Arc::clone(&answers) });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/push", listener.local_addr().unwrap());
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Hook { url, rx, answers, server }
    }

    /// The next notifications get these statuses (then 200 again).
    pub fn answer(&self, statuses: &[u16]) {
        self.answers.lock().unwrap().extend(statuses);
    }

    /// The next notification within 5 s.
    pub async fn next(&mut self) -> Received {
        tokio::time::timeout(Duration::from_secs(5), self.rx.recv())
            .await
            .expect("a push within 5 s")
            .expect("the hook is running")
    }

    /// Asserts that nothing arrives for `wait`.
    pub async fn nothing_for(&mut self, wait: Duration) {
        if let Ok(Some(r)) = tokio::time::timeout(wait, self.rx.recv()).await {
            panic!("unexpected push: {} #{}", r.state(), r.number());
        }
    }
}
