//! The Microsoft Teams card of the profile's Status section, as JSON: its state in this space,
//! the ON/OFF toggle (S6), enabling a connection made in another space (S4) and disconnecting
//! (S7, S13). Members only (S3).

use axum::{
    Json,
    extract::{Path, State},
    http::StatusCode,
};
use kehai_store::{Connection, ConnectionId, ConnectionState};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::{
    access::{self, Admitted},
    auth::{CsrfChecked, Visitor},
    error::{ApiError, ErrorBody},
    state::AppState,
    teams,
};

/// The Teams card's state in one space.
#[derive(Debug, Serialize, ToSchema)]
pub struct TeamsStatus {
    /// `not_configured`, `not_connected`, `available` (connected in another space, not here),
    /// `connected`, `paused` (toggled OFF here), `needs_reconnect` or `error`.
    pub state: String,
    /// Milliseconds since the epoch.
    pub connected_since: Option<i64>,
    /// Plain words about the last problem.
    pub last_error: Option<String>,
    /// Whether this space uses the connection (ON or OFF); disconnecting applies only then.
    pub used_here: bool,
}

fn members_only() -> ApiError {
    ApiError::new(StatusCode::FORBIDDEN, "members_only", "integrations are for members; log in with a member account")
}

/// The member admitted to the space, or why not.
async fn member(state: &AppState, slug: &str, visitor: Visitor) -> Result<Admitted, ApiError> {
    if visitor.is_guest() {
        return Err(members_only());
    }
    Ok(access::admit(state, slug, visitor).await?)
}

async fn status_of(state: &AppState, admitted: &Admitted) -> Result<TeamsStatus, ApiError> {
    if state.teams.is_none() {
        return Ok(TeamsStatus {
            state: "not_configured".into(),
            connected_since: None,
            last_error: None,
            used_here: false,
        });
    }
    let Some(c) = state.store.connection_of(admitted.visitor.person_id(), "msteams").await? else {
        return Ok(TeamsStatus {
            state: "not_connected".into(),
            connected_since: None,
            last_error: None,
            used_here: false,
        });
    };
    let here =
        state.store.connection_spaces(c.id).await?.into_iter().find(|(s, _)| *s == admitted.space.id).map(|(_, on)| on);
    let name = match (c.state, here) {
        (ConnectionState::NeedsReconnect, _) => "needs_reconnect",
        (ConnectionState::Error, _) => "error",
        (ConnectionState::Connected, None) => "available",
        (ConnectionState::Connected, Some(true)) => "connected",
        (ConnectionState::Connected, Some(false)) => "paused",
    };
    Ok(TeamsStatus {
        state: name.into(),
        connected_since: Some(c.connected_at),
        last_error: c.last_error,
        used_here: here.is_some(),
    })
}

/// The Teams card for this space.
#[utoipa::path(
    get,
    path = "/api/spaces/{slug}/integrations/msteams",
    params(("slug" = String, Path, description = "The space's slug")),
    responses(
        (status = 200, description = "The card's state", body = TeamsStatus),
        (status = 401, description = "Not logged in", body = ErrorBody),
        (status = 403, description = "A guest, or not a member of this space", body = ErrorBody),
        (status = 404, description = "No such space", body = ErrorBody),
    ),
    tag = "integrations"
)]
pub async fn status(
    State(state): State<AppState>,
    Path(slug): Path<String>,
    visitor: Visitor,
) -> Result<Json<TeamsStatus>, ApiError> {
    let admitted = member(&state, &slug, visitor).await?;
    Ok(Json(status_of(&state, &admitted).await?))
}

/// `{"enabled": true}` turns the integration ON in this space (also enabling a connection made
/// in another space), `false` pauses it here.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Toggle {
    enabled: bool,
}

async fn connection(state: &AppState, admitted: &Admitted) -> Result<Connection, ApiError> {
    state
        .store
        .connection_of(admitted.visitor.person_id(), "msteams")
        .await?
        .ok_or_else(|| ApiError::new(StatusCode::CONFLICT, "not_connected", "connect Microsoft Teams first"))
}

/// Turn the integration ON or OFF in this space.
#[utoipa::path(
    put,
    path = "/api/spaces/{slug}/integrations/msteams",
    params(("slug" = String, Path, description = "The space's slug")),
    request_body = Toggle,
    security(("session" = [], "csrf" = [])),
    responses(
        (status = 200, description = "The card's new state", body = TeamsStatus),
        (status = 403, description = "A guest, no access, or no CSRF token", body = ErrorBody),
        (status = 404, description = "No such space", body = ErrorBody),
        (status = 409, description = "Not connected, or OFF in a space that does not use it", body = ErrorBody),
        (status = 422, description = "Not a toggle", body = ErrorBody),
    ),
    tag = "integrations"
)]
pub async fn toggle(
    State(state): State<AppState>,
    Path(slug): Path<String>,
    CsrfChecked(visitor): CsrfChecked,
    body: Result<Json<Toggle>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<TeamsStatus>, ApiError> {
    let admitted = member(&state, &slug, visitor).await?;
    let Json(Toggle { enabled }) = body?;
    let teams = state
        .teams
        .clone()
        .ok_or_else(|| ApiError::new(StatusCode::CONFLICT, "not_configured", "Microsoft Teams is not configured"))?;
    let mut connection = connection(&state, &admitted).await?;
    if !enabled && !used_here(&state, &connection, &admitted).await? {
        return Err(not_used_here());
    }
    // OFF under the apply lock: a presence being applied meanwhile cannot land here after.
    let applying = if enabled { None } else { applying_lock(&state, connection.id).await };
    state.store.set_connection_space(connection.id, admitted.space.id, enabled).await?;
    if enabled {
        // ON shows the current presence at once (S6).
        if let Ok(presence) = teams::read_presence(&state, &teams, &mut connection).await {
            // Through the apply lock and the state and sequence checks; a failure is logged, and
            // the next notification shows it.
            let _ = teams::sync::show_current(&state, &teams, &connection, &presence).await;
        }
    } else {
        // OFF: the own emoji at once, and no later notification changes the avatar here.
        clear_presence(&state, &admitted).await?;
    }
    drop(applying);
    Ok(Json(status_of(&state, &admitted).await?))
}

fn not_used_here() -> ApiError {
    ApiError::new(StatusCode::CONFLICT, "not_used_here", "this space does not use the Microsoft Teams connection")
}

async fn used_here(state: &AppState, connection: &Connection, admitted: &Admitted) -> Result<bool, ApiError> {
    Ok(state.store.connection_spaces(connection.id).await?.iter().any(|(s, _)| *s == admitted.space.id))
}

/// The connection's apply lock ([`teams::sync::apply`] holds it while it shows a presence).
async fn applying_lock(state: &AppState, connection: ConnectionId) -> Option<tokio::sync::OwnedMutexGuard<()>> {
    let teams = state.teams.as_ref()?;
    Some(teams.applying.of(connection).lock_owned().await)
}

async fn clear_presence(state: &AppState, admitted: &Admitted) -> Result<(), ApiError> {
    let now = state.clock.now();
    if let Some(avatar) = state.store.set_presence(admitted.space.id, admitted.visitor.person_id(), None, now).await? {
        state.live.publish_avatar(&avatar);
    }
    Ok(())
}

/// Disconnect Microsoft Teams from this space. When no space uses the connection any more, its
/// Graph subscription is deleted and its tokens erased; if Microsoft cannot be reached, the
/// local data is erased anyway and the orphan subscription lapses by itself.
#[utoipa::path(
    delete,
    path = "/api/spaces/{slug}/integrations/msteams",
    params(("slug" = String, Path, description = "The space's slug")),
    security(("session" = [], "csrf" = [])),
    responses(
        (status = 200, description = "The card's new state", body = TeamsStatus),
        (status = 403, description = "A guest, no access, or no CSRF token", body = ErrorBody),
        (status = 404, description = "No such space", body = ErrorBody),
        (status = 409, description = "Not connected, or not used in this space", body = ErrorBody),
    ),
    tag = "integrations"
)]
pub async fn disconnect(
    State(state): State<AppState>,
    Path(slug): Path<String>,
    CsrfChecked(visitor): CsrfChecked,
) -> Result<Json<TeamsStatus>, ApiError> {
    let admitted = member(&state, &slug, visitor).await?;
    let mut connection = connection(&state, &admitted).await?;
    if !used_here(&state, &connection, &admitted).await? {
        return Err(not_used_here());
    }
    let left = {
        // Released before any token is asked for: marking a refused sign-in takes this lock too.
        let _applying = applying_lock(&state, connection.id).await;
        let left = state.store.remove_connection_space(connection.id, admitted.space.id).await?;
        clear_presence(&state, &admitted).await?;
        left
    };
    if left == 0 {
        if let (Some(teams), Some(sub)) = (state.teams.clone(), connection.subscription.clone()) {
            match teams::tokens::access_token(&state, &teams, &mut connection).await {
                Ok(token) => {
                    if let Err(e) = teams.graph.delete_subscription(&token, &sub.id).await {
                        tracing::warn!(error = %e, "the subscription could not be deleted; it lapses by itself");
                    }
                }
                Err(_) => tracing::warn!("no token to delete the subscription; it lapses by itself"),
            }
        }
        state.store.delete_connection(connection.id).await?;
        tracing::info!(account = %admitted.visitor.person_id(), "Microsoft Teams disconnected");
    }
    Ok(Json(status_of(&state, &admitted).await?))
}
