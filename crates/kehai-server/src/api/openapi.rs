//! The OpenAPI document of the JSON API, served at `/openapi.json`.

use std::sync::Arc;

use axum::Json;
use utoipa::{
    Modify, OpenApi,
    openapi::security::{ApiKey, ApiKeyValue, SecurityScheme},
};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "kehai",
        description = "kehai's JSON API. Reads need the session cookie; mutations also the X-CSRF-Token header."
    ),
    components(schemas(
        crate::view::AvatarView,
        crate::view::PresenceView,
        super::avatars::MeUpdate,
        super::integrations::IntegrationStatus,
        super::integrations::Toggle,
        crate::error::ErrorBody
    )),
    modifiers(&Security),
    security(("session" = []))
)]
pub struct ApiDoc;

/// How callers authenticate: the session cookie, and on mutations the CSRF header too.
struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "session",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                crate::auth::session::COOKIE,
                "Set by logging in (/login) or joining as a guest; named __Host-kehai_session when kehai is reached over https.",
            ))),
        );
        components.add_security_scheme(
            "csrf",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "X-CSRF-Token",
                "Required on every mutation: the csrf value of the space page.",
            ))),
        );
    }
}

/// The paths are added by [`super::router`] from the routed handlers themselves.
pub async fn serve(document: Arc<utoipa::openapi::OpenApi>) -> Json<Arc<utoipa::openapi::OpenApi>> {
    Json(document)
}
