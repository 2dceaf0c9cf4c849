//! Injected faults: the next N Graph or token requests answer 429 (with `Retry-After`), 503 or
//! hang, or Graph refuses their access token (401); the next N notifications are dropped,
//! delayed, duplicated or reordered.

use std::{sync::Arc, time::Duration};

use axum::{
    Json,
    extract::{Request, State},
    http::StatusCode,
    middleware::Next,
    response::{IntoResponse, Response},
};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::{Emulator, graph::GraphError, world::Inner};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Target {
    /// Graph's `/v1.0/…` requests.
    Graph,
    /// The identity platform's token endpoint.
    Token,
    /// Change and lifecycle notifications msemu sends.
    Notifications,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// 429 with `Retry-After`.
    Throttle,
    /// 503 with `Retry-After`.
    Unavailable,
    /// No answer for a long time (the client's timeout decides).
    Hang,
    /// Graph refuses the access token (401 `InvalidAuthenticationToken`), as it does after a
    /// password reset or another continuous-access-evaluation event, before the token's expiry.
    Unauthorized,
    Drop,
    Delay,
    Duplicate,
    Reorder,
}

/// One fault, for the next `count` requests or notifications of its target.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fault {
    pub target: Target,
    pub kind: Kind,
    #[serde(default = "one")]
    pub count: u32,
    /// Seconds, for throttle and unavailable.
    #[serde(default = "one_u64")]
    pub retry_after: u64,
    /// Milliseconds, for delay and hang.
    #[serde(default)]
    pub delay_ms: Option<u64>,
}

fn one() -> u32 {
    1
}

fn one_u64() -> u64 {
    1
}

impl Fault {
    /// Whether the kind suits the target.
    pub fn is_valid(&self) -> bool {
        match self.target {
            Target::Graph => matches!(self.kind, Kind::Throttle | Kind::Unavailable | Kind::Hang | Kind::Unauthorized),
            Target::Token => matches!(self.kind, Kind::Throttle | Kind::Unavailable | Kind::Hang),
            Target::Notifications => matches!(self.kind, Kind::Drop | Kind::Delay | Kind::Duplicate | Kind::Reorder),
        }
    }
}

/// Takes one use of the first pending fault for `target`.
pub fn take(world: &mut Inner, target: Target) -> Option<Fault> {
    let i = world.faults.iter().position(|f| f.target == target)?;
    let fault = world.faults[i].clone();
    world.faults[i].count -= 1;
    if world.faults[i].count == 0 {
        world.faults.remove(i);
    }
    Some(fault)
}

/// Middleware for Graph and token routes: applies a pending request fault, and counts the
/// request by its route pattern.
pub async fn requests(State(emu): State<Arc<Emulator>>, req: Request, next: Next) -> Response {
    let path = req.uri().path().to_owned();
    let route =
        req.extensions().get::<axum::extract::MatchedPath>().map_or_else(|| path.clone(), |m| m.as_str().to_owned());
    let target = if path.starts_with("/v1.0/") {
        Some(Target::Graph)
    } else if path.ends_with("/oauth2/v2.0/token") {
        Some(Target::Token)
    } else {
        None
    };
    let fault = {
        let mut world = emu.world.lock();
        *world.requests.entry(format!("{} {route}", req.method())).or_default() += 1;
        target.and_then(|t| take(&mut world, t))
    };
    let Some(fault) = fault else {
        return next.run(req).await;
    };
    let token = target == Some(Target::Token);
    match fault.kind {
        Kind::Hang => {
            tokio::time::sleep(Duration::from_millis(fault.delay_ms.unwrap_or(600_000))).await;
            next.run(req).await
        }
        Kind::Throttle | Kind::Unavailable => {
            let throttle = fault.kind == Kind::Throttle;
            if token {
                let status = if throttle { StatusCode::TOO_MANY_REQUESTS } else { StatusCode::SERVICE_UNAVAILABLE };
                let body = json!({
                    "error": "temporarily_unavailable",
                    "error_description": "AADSTS50196: The server terminated an operation because it encountered a client request loop or was too busy.",
                    "error_codes": [50196],
                    "timestamp": crate::identity::errors::timestamp(),
                    "trace_id": uuid::Uuid::new_v4(),
                    "correlation_id": uuid::Uuid::new_v4(),
                });
                (status, [("retry-after", fault.retry_after.to_string())], Json(body)).into_response()
            } else if throttle {
                GraphError::throttled(fault.retry_after).into_response()
            } else {
                GraphError {
                    retry_after: Some(fault.retry_after),
                    ..GraphError::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "ServiceNotAvailable",
                        "The service is temporarily unavailable.",
                    )
                }
                .into_response()
            }
        }
        Kind::Unauthorized => crate::graph::unauthorized("Access token has been revoked.").into_response(),
        // Notification faults never reach here.
        _ => next.run(req).await,
    }
}
