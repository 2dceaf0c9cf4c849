//! The OpenAPI document of the JSON API, served at `/openapi.json`.

use axum::Json;
use utoipa::OpenApi;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "kehai",
        description = "kehai's JSON API. Reads need the session cookie; mutations also the X-CSRF-Token header."
    ),
    paths(super::avatars::list, super::avatars::update_me),
    components(schemas(
        crate::view::AvatarView,
        crate::view::PresenceView,
        super::avatars::MeUpdate,
        crate::error::ErrorBody
    ))
)]
pub struct ApiDoc;

pub async fn document() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
