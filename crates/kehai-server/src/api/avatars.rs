//! Avatars of a space: list them, change your own.

use axum::{
    Json,
    extract::{Path, State},
};
use kehai_core::{DisplayName, Emoji, Space};
use kehai_store::AvatarChange;
use serde::{Deserialize, Deserializer};
use utoipa::ToSchema;

use crate::{
    access,
    auth::{CsrfChecked, Visitor},
    error::{ApiError, ErrorBody},
    state::AppState,
    view::AvatarView,
};

/// The avatars a page of `space` shows: every member (with `here`), and the guests who are here.
pub async fn visible_avatars(state: &AppState, space: &Space) -> Result<Vec<AvatarView>, ApiError> {
    let avatars = state.store.avatars(space.id).await?;
    Ok(avatars
        .iter()
        .map(|a| state.live.view(a))
        .zip(&avatars)
        .filter(|(view, avatar)| AvatarView::visible(avatar, view.here))
        .map(|(view, _)| view)
        .collect())
}

/// Everyone in the space.
#[utoipa::path(
    get,
    path = "/api/spaces/{slug}/avatars",
    params(("slug" = String, Path, description = "The space's slug")),
    responses(
        (status = 200, description = "The avatars, ordered by display name", body = [AvatarView]),
        (status = 401, description = "Not logged in", body = ErrorBody),
        (status = 403, description = "Not a member or guest of this space", body = ErrorBody),
        (status = 404, description = "No such space", body = ErrorBody),
    ),
    tag = "avatars"
)]
pub async fn list(
    State(state): State<AppState>,
    Path(slug): Path<String>,
    visitor: Visitor,
) -> Result<Json<Vec<AvatarView>>, ApiError> {
    let admitted = access::admit(&state, &slug, visitor).await?;
    Ok(Json(visible_avatars(&state, &admitted.space).await?))
}

/// A change to your own avatar. Absent fields stay as they are; `"emoji": null` clears the emoji.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MeUpdate {
    /// 1–64 characters.
    #[serde(default)]
    display_name: Option<String>,
    /// Exactly one emoji, or null for none.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    emoji: Option<Option<String>>,
}

/// Tells a field that is `null` (`Some(None)`) from one that is absent (`None`).
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

/// Change your own display name and emoji.
#[utoipa::path(
    put,
    path = "/api/spaces/{slug}/me",
    params(
        ("slug" = String, Path, description = "The space's slug"),
    ),
    security(("session" = [], "csrf" = [])),
    request_body = MeUpdate,
    responses(
        (status = 200, description = "Your avatar after the change", body = AvatarView),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 401, description = "Not logged in", body = ErrorBody),
        (status = 403, description = "No access, or missing CSRF token", body = ErrorBody),
        (status = 404, description = "No such space", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Not JSON", body = ErrorBody),
        (status = 422, description = "Invalid name or emoji, or unknown fields", body = ErrorBody),
    ),
    tag = "avatars"
)]
pub async fn update_me(
    State(state): State<AppState>,
    Path(slug): Path<String>,
    CsrfChecked(visitor): CsrfChecked,
    body: Result<Json<MeUpdate>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<AvatarView>, ApiError> {
    let admitted = access::admit(&state, &slug, visitor).await?;
    let Json(update) = body?;
    let change = AvatarChange {
        display_name: update.display_name.as_deref().map(DisplayName::parse).transpose()?,
        own_emoji: update.emoji.map(|e| e.as_deref().map(Emoji::parse).transpose()).transpose()?,
    };
    let avatar = state
        .store
        .update_avatar(admitted.space.id, admitted.visitor.person_id(), &change, state.clock.now())
        .await?
        .ok_or_else(ApiError::forbidden)?;
    state.live.publish_avatar(&avatar);
    Ok(Json(state.live.view(&avatar)))
}
