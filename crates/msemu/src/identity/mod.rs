//! The Microsoft identity platform v2.0: discovery, keys, `/authorize` with sign-in and consent
//! pages, `/token`, and admin consent. Errors take Microsoft's exact shapes ([`errors`]).

pub mod authorize;
pub mod discovery;
pub mod errors;
pub mod scopes;
pub mod token;
pub mod tokens;

use std::sync::Arc;

use axum::routing::{get, post};
use uuid::Uuid;

use crate::{
    Emulator,
    directory::{CONSUMER_TENANT, Directory, Tenant},
};

pub fn router() -> axum::Router<Arc<Emulator>> {
    axum::Router::new()
        .route("/{tenant}/v2.0/.well-known/openid-configuration", get(discovery::openid_configuration))
        .route("/{tenant}/discovery/v2.0/keys", get(discovery::keys))
        .route("/{tenant}/discovery/keys", get(discovery::keys))
        .route("/{tenant}/oauth2/v2.0/authorize", get(authorize::start))
        .route("/{tenant}/login", post(authorize::sign_in))
        .route("/{tenant}/consent", post(authorize::consent))
        .route("/{tenant}/oauth2/v2.0/token", post(token::token))
        .route("/{tenant}/v2.0/adminconsent", get(authorize::admin_consent).post(authorize::admin_consent_decision))
}

/// What the `{tenant}` segment of a URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Authority {
    /// Work, school and personal accounts.
    Common,
    /// Work and school accounts only.
    Organizations,
    /// Personal accounts only.
    Consumers,
    /// One tenant.
    Tenant(Uuid),
}

impl Authority {
    pub fn parse(directory: &Directory, segment: &str) -> Option<Authority> {
        match segment.to_ascii_lowercase().as_str() {
            "common" => Some(Authority::Common),
            "organizations" => Some(Authority::Organizations),
            "consumers" => Some(Authority::Consumers),
            other => directory.tenant(other).map(|t| Authority::Tenant(t.id)),
        }
    }

    /// Whether an account of `tenant` may sign in here, or the AADSTS code that refuses it.
    pub fn admits(self, tenant: &Tenant) -> Result<(), u32> {
        match self {
            Authority::Common => Ok(()),
            Authority::Organizations if tenant.personal => Err(500208),
            Authority::Organizations => Ok(()),
            Authority::Consumers if tenant.personal => Ok(()),
            Authority::Consumers => Err(500208),
            Authority::Tenant(id) if id == tenant.id => Ok(()),
            Authority::Tenant(_) => Err(50020),
        }
    }

    /// The `issuer` of this authority's metadata: multi-tenant authorities publish the literal
    /// template `…/{tenantid}/v2.0`, as Microsoft does.
    pub fn issuer_template(self, base: &crate::BaseUrl) -> String {
        match self {
            Authority::Common | Authority::Organizations => base.join("/{tenantid}/v2.0"),
            Authority::Consumers => base.join(&format!("/{CONSUMER_TENANT}/v2.0")),
            Authority::Tenant(id) => base.join(&format!("/{id}/v2.0")),
        }
    }
}
