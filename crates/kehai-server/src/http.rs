//! Serving HTTP connections: hyper with a timer, so that slow clients cannot hold the server.
//!
//! `axum::serve` runs hyper without a timer: a client that sends its request headers a byte at a
//! time (slowloris), or nothing at all, keeps its connection — and a file descriptor — for as
//! long as it likes. Here each connection must finish its headers within
//! `header_read_timeout_seconds` of starting them; a request must
//! be answered (body read included) within `request_timeout_seconds`, except the event streams,
//! which are meant to stay open ([`timeout`]). On shutdown no new connection is accepted, and
//! open ones finish their requests (the caller bounds how long).

use std::{future::Future, net::SocketAddr, time::Duration};

use axum::{
    Router,
    extract::{Request, State},
    http::StatusCode,
    middleware::Next,
    response::{IntoResponse, Response},
};
use hyper::server::conn::http1;
use hyper_util::{
    rt::{TokioIo, TokioTimer},
    server::graceful::GracefulShutdown,
    service::TowerToHyperService,
};
use tokio::net::TcpListener;
use tower::Service;

use crate::{error::ApiError, state::AppState};

/// Serves `router` on `listener` until `shutdown` resolves, then waits for the open connections
/// to finish.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    header_read_timeout: Duration,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let mut make_service = router.into_make_service_with_connect_info::<SocketAddr>();
    // HTTP/1.1 only (kehai sits behind a TLS proxy, which speaks HTTP/1.1 to it): telling it
    // from cleartext HTTP/2 would first wait, without a time limit, for bytes a slow client
    // never sends. The header-read time runs from the connection's first read, so a client that
    // connects and sends nothing is dropped too (and an idle kept-alive one).
    let mut builder = http1::Builder::new();
    builder.timer(TokioTimer::new()).header_read_timeout(header_read_timeout);
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors, or a connection reset before it was accepted:
                    // the listener goes on after a breath.
                    tracing::warn!(error = %e, "could not accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let service = match make_service.call(peer).await {
            Ok(service) => service,
            Err(never) => match never {},
        };
        let connection = builder.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, %peer, "a connection ended with an error");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// Answers 408 `request_timeout` when a request is not answered within the configured time —
/// its body read included, so a client that sends it slowly cannot hold a worker either.
pub async fn timeout(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let limit = Duration::from_secs(state.config.request_timeout_seconds);
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => {
            tracing::warn!(seconds = limit.as_secs(), "a request took too long and was cut off");
            ApiError::new(StatusCode::REQUEST_TIMEOUT, "request_timeout", "the request took too long").into_response()
        }
    }
}
