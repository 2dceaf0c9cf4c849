//! An integration's card in the profile's Status section, as JSON, for each provider kehai knows
//! (`/api/spaces/{slug}/integrations/{provider}`, `msteams` for Microsoft Teams, `gcal` for Google
//! Calendar): its state in
//! this space, the ON/OFF toggle, enabling in this space a connection made in another one, and
//! disconnecting. Members only: guests have no integrations.

use axum::{
    Json,
    extract::{Path, State},
    http::StatusCode,
};
use kehai_store::{Connection, ConnectionState};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::{
    access::{self, Admitted},
    auth::{CsrfChecked, Visitor},
    error::{ApiError, ErrorBody},
    presence::{Known, Provider, apply, ingest, renewal, tokens},
    state::AppState,
};

/// An integration's card in one space.
#[derive(Debug, Serialize, ToSchema)]
pub struct IntegrationStatus {
    /// `not_configured`, `not_connected`, `available` (connected in another space, not here),
    /// `connected`, `paused` (toggled OFF here), `needs_reconnect` or `error`.
    pub state: String,
    /// Milliseconds since the epoch.
    pub connected_since: Option<i64>,
    /// Plain words about the last problem.
    pub last_error: Option<String>,
    /// Whether this space uses the connection (ON or OFF); disconnecting applies only then.
    pub used_here: bool,
    /// What the member should know about the connection, as stable codes the card puts in the
    /// provider's words: `polling` (Google Calendar: Google cannot push to this server, so the
    /// calendar is read every few minutes), `channel_refused` (Google did not make the push
    /// channel: polled until it does), `no_event_types` (Google does not tell out of office and
    /// focus time apart at kehai's permission: every busy time shows as a meeting).
    pub notes: Vec<String>,
}

fn members_only() -> ApiError {
    ApiError::new(StatusCode::FORBIDDEN, "members_only", "integrations are for members; log in with a member account")
}

/// The member admitted to the space and the provider they ask about, or why not.
async fn member(state: &AppState, slug: &str, provider: &str, visitor: Visitor) -> Result<(Admitted, Known), ApiError> {
    if visitor.is_guest() {
        return Err(members_only());
    }
    let admitted = access::admit(state, slug, visitor).await?;
    let known =
        state.presence.known().iter().find(|k| k.id == provider).cloned().ok_or_else(|| {
            ApiError::new(StatusCode::NOT_FOUND, "integration_not_found", "there is no such integration")
        })?;
    Ok((admitted, known))
}

fn not_configured(known: &Known) -> ApiError {
    ApiError::new(StatusCode::CONFLICT, "not_configured", format!("{} is not configured", known.name))
}

async fn status_of(state: &AppState, admitted: &Admitted, known: &Known) -> Result<IntegrationStatus, ApiError> {
    let empty = |name: &str| IntegrationStatus {
        state: name.into(),
        connected_since: None,
        last_error: None,
        used_here: false,
        notes: Vec::new(),
    };
    if known.offered.is_none() {
        return Ok(empty("not_configured"));
    }
    let Some(c) = state.store.connection_of(admitted.visitor.person_id(), known.id).await? else {
        return Ok(empty("not_connected"));
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
    let notes = match (&known.offered, c.state) {
        (Some(provider), ConnectionState::Connected) => provider.notes(&c).into_iter().map(str::to_owned).collect(),
        _ => Vec::new(),
    };
    Ok(IntegrationStatus {
        state: name.into(),
        connected_since: Some(c.connected_at),
        last_error: c.last_error,
        used_here: here.is_some(),
        notes,
    })
}

/// The integration's card for this space.
#[utoipa::path(
    get,
    path = "/api/spaces/{slug}/integrations/{provider}",
    params(
        ("slug" = String, Path, description = "The space's slug"),
        ("provider" = String, Path, description = "The provider: `msteams` (Microsoft Teams) or `gcal` (Google Calendar)"),
    ),
    responses(
        (status = 200, description = "The card's state", body = IntegrationStatus),
        (status = 401, description = "Not logged in", body = ErrorBody),
        (status = 403, description = "A guest, or not a member of this space", body = ErrorBody),
        (status = 404, description = "No such space, or no such integration", body = ErrorBody),
    ),
    tag = "integrations"
)]
pub async fn status(
    State(state): State<AppState>,
    Path((slug, provider)): Path<(String, String)>,
    visitor: Visitor,
) -> Result<Json<IntegrationStatus>, ApiError> {
    let (admitted, known) = member(&state, &slug, &provider, visitor).await?;
    Ok(Json(status_of(&state, &admitted, &known).await?))
}

/// `{"enabled": true}` turns the integration ON in this space (also enabling a connection made
/// in another space), `false` pauses it here.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Toggle {
    enabled: bool,
}

async fn connection(state: &AppState, admitted: &Admitted, known: &Known) -> Result<Connection, ApiError> {
    state
        .store
        .connection_of(admitted.visitor.person_id(), known.id)
        .await?
        .ok_or_else(|| ApiError::new(StatusCode::CONFLICT, "not_connected", format!("connect {} first", known.name)))
}

/// Turn the integration ON or OFF in this space.
#[utoipa::path(
    put,
    path = "/api/spaces/{slug}/integrations/{provider}",
    params(
        ("slug" = String, Path, description = "The space's slug"),
        ("provider" = String, Path, description = "The provider: `msteams` (Microsoft Teams) or `gcal` (Google Calendar)"),
    ),
    request_body = Toggle,
    security(("session" = [], "csrf" = [])),
    responses(
        (status = 200, description = "The card's new state", body = IntegrationStatus),
        (status = 403, description = "A guest, no access, or no CSRF token", body = ErrorBody),
        (status = 404, description = "No such space, or no such integration", body = ErrorBody),
        (status = 409, description = "Not configured, not connected, or OFF in a space that does not use it", body = ErrorBody),
        (status = 422, description = "Not a toggle", body = ErrorBody),
    ),
    tag = "integrations"
)]
pub async fn toggle(
    State(state): State<AppState>,
    Path((slug, provider)): Path<(String, String)>,
    CsrfChecked(visitor): CsrfChecked,
    body: Result<Json<Toggle>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<IntegrationStatus>, ApiError> {
    let (admitted, known) = member(&state, &slug, &provider, visitor).await?;
    let Json(Toggle { enabled }) = body?;
    let provider = known.offered.clone().ok_or_else(|| not_configured(&known))?;
    let mut connection = connection(&state, &admitted, &known).await?;
    if enabled {
        state.store.set_connection_space(connection.id, admitted.space.id, true).await?;
        // What the provider kept may be out of date (paused, nothing told it of changes).
        provider.changed(&connection);
        // ON again after a pause everywhere: a subscription again (which shows the presence).
        if connection.subscription.is_none()
            && provider.subscribes()
            && let Err(e) = renewal::renew(&state, &*provider, connection.clone()).await
        {
            tracing::warn!(error = %e, "no subscription after turning a connection ON; the reconciliation retries");
        }
        // ON shows the current presence at once, through the order check; a failure is logged,
        // and the next notification shows it.
        if let Ok(reading) = ingest::read(&state, &*provider, &mut connection).await {
            let _ = apply::apply(&state, &*provider, &connection, &reading, true).await;
        }
    } else {
        if !used_here(&state, &connection, &admitted).await? {
            return Err(not_used_here(&known));
        }
        // OFF under the apply gate: a presence being applied meanwhile cannot land here after.
        // The own emoji shows at once, and no later notification changes the avatar here.
        {
            let held = apply::hold(&state, connection.id).await;
            state.store.set_connection_space(connection.id, admitted.space.id, false).await?;
            apply::clear_in(&state, &held, &connection, admitted.space.id).await?;
        }
        // OFF everywhere: nothing is followed, so the subscription ends (ON makes a new one).
        if !state.store.connection_spaces(connection.id).await?.iter().any(|(_, on)| *on) {
            pause(&state, &*provider, &mut connection).await;
        }
    }
    Ok(Json(status_of(&state, &admitted, &known).await?))
}

/// Ends a connection's subscriptions while it is OFF in every space: at the provider (a failure
/// is logged: they lapse by themselves), and forgotten here. A renewal may replace the
/// subscription meanwhile: then the one it made is ended too.
async fn pause(state: &AppState, provider: &dyn Provider, connection: &mut Connection) {
    /// Renewals raced at most (each takes a call to the provider: more is not a race).
    const ATTEMPTS: usize = 3;
    for _ in 0..ATTEMPTS {
        let Some(subscription) = connection.subscription.clone() else { break };
        match tokens::access_token(state, provider, connection).await {
            Ok(token) => renewal::end_all(provider, &token, connection).await,
            Err(e) => tracing::info!(error = %e, "no token to end a paused connection's subscription"),
        }
        match state.store.clear_connection_subscription(connection.id, &subscription.id, state.clock.now()).await {
            Ok(true) => {
                connection.subscription = None;
                connection.previous_subscription = None;
                break;
            }
            // Replaced meanwhile: end what is there now.
            Ok(false) => match state.store.connection(connection.id).await {
                Ok(Some(now)) => *connection = now,
                Ok(None) => break,
                Err(e) => {
                    tracing::warn!(error = %e, "a paused connection's subscription could not be forgotten");
                    break;
                }
            },
            Err(e) => {
                tracing::warn!(error = %e, "a paused connection's subscription could not be forgotten");
                break;
            }
        }
    }
    // Nor is it woken to be read while nothing shows it.
    if let Err(e) = state.store.set_next_check(connection.id, None).await {
        tracing::warn!(error = %e, "a paused connection's wake-up could not be cancelled");
    }
}

fn not_used_here(known: &Known) -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        "not_used_here",
        format!("this space does not use the {} connection", known.name),
    )
}

async fn used_here(state: &AppState, connection: &Connection, admitted: &Admitted) -> Result<bool, ApiError> {
    Ok(state.store.connection_spaces(connection.id).await?.iter().any(|(s, _)| *s == admitted.space.id))
}

/// Disconnect the integration from this space. When no space uses the connection any more, its
/// subscription is ended, the sign-in revoked where the provider offers that (Google), and its
/// tokens erased; if the provider cannot be reached, the local data is erased anyway and the
/// orphan subscription lapses by itself.
#[utoipa::path(
    delete,
    path = "/api/spaces/{slug}/integrations/{provider}",
    params(
        ("slug" = String, Path, description = "The space's slug"),
        ("provider" = String, Path, description = "The provider: `msteams` (Microsoft Teams) or `gcal` (Google Calendar)"),
    ),
    security(("session" = [], "csrf" = [])),
    responses(
        (status = 200, description = "The card's new state", body = IntegrationStatus),
        (status = 403, description = "A guest, no access, or no CSRF token", body = ErrorBody),
        (status = 404, description = "No such space, or no such integration", body = ErrorBody),
        (status = 409, description = "Not connected, or not used in this space", body = ErrorBody),
    ),
    tag = "integrations"
)]
pub async fn disconnect(
    State(state): State<AppState>,
    Path((slug, provider)): Path<(String, String)>,
    CsrfChecked(visitor): CsrfChecked,
) -> Result<Json<IntegrationStatus>, ApiError> {
    let (admitted, known) = member(&state, &slug, &provider, visitor).await?;
    let mut connection = connection(&state, &admitted, &known).await?;
    if !used_here(&state, &connection, &admitted).await? {
        return Err(not_used_here(&known));
    }
    let left = {
        // Let go of before any token is asked for: marking a refused sign-in takes the gate too.
        let held = apply::hold(&state, connection.id).await;
        let left = state.store.remove_connection_space(connection.id, admitted.space.id).await?;
        apply::clear_in(&state, &held, &connection, admitted.space.id).await?;
        left
    };
    if left == 0 {
        if let Some(provider) = known.offered.as_ref()
            && connection.subscription.is_some()
        {
            match tokens::access_token(&state, &**provider, &mut connection).await {
                Ok(token) => renewal::end_all(&**provider, &token, &connection).await,
                Err(_) => tracing::warn!("no token to end the subscription; it lapses by itself"),
            }
        }
        // Then the sign-in itself, where the provider offers that (the subscription's end
        // needed it).
        if let Some(provider) = known.offered.as_ref() {
            tokens::revoke(&state, &**provider, &connection).await;
        }
        state.store.delete_connection(connection.id).await?;
        tracing::info!(account = %admitted.visitor.person_id(), provider = known.id, "disconnected");
    }
    Ok(Json(status_of(&state, &admitted, &known).await?))
}
