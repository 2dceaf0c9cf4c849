//! Who may see and change what in a space.
//!
//! A member sees a space they are a member of; a guest sees only the space they joined. Anyone
//! else is refused — so a person of space A can neither read nor change anything of space B.

use kehai_core::{PersonKind, Role, Space, SpaceSlug};

use crate::{auth::Visitor, error::ApiError, state::AppState};

/// A visitor admitted to a space.
#[derive(Debug, Clone)]
pub struct Admitted {
    pub space: Space,
    pub visitor: Visitor,
    /// The member's role; `None` for guests.
    pub role: Option<Role>,
}

/// Why a visitor is not admitted.
#[derive(Debug)]
pub enum Refusal {
    NoSuchSpace,
    Forbidden,
    Failed(ApiError),
}

impl From<Refusal> for ApiError {
    fn from(r: Refusal) -> Self {
        match r {
            Refusal::NoSuchSpace => ApiError::space_not_found(),
            Refusal::Forbidden => ApiError::forbidden(),
            Refusal::Failed(e) => e,
        }
    }
}

/// The space named `slug`, if it exists (a malformed slug names none).
pub async fn space(state: &AppState, slug: &str) -> Result<Option<Space>, ApiError> {
    let Ok(slug) = SpaceSlug::parse(slug) else {
        return Ok(None);
    };
    Ok(state.store.space_by_slug(&slug).await?)
}

/// Admits `visitor` to the space `slug`, or says why not.
pub async fn admit(state: &AppState, slug: &str, visitor: Visitor) -> Result<Admitted, Refusal> {
    let space = space(state, slug).await.map_err(Refusal::Failed)?.ok_or(Refusal::NoSuchSpace)?;
    let role = match visitor.session.kind {
        PersonKind::Guest if visitor.session.space_id == Some(space.id) => None,
        PersonKind::Guest => return Err(Refusal::Forbidden),
        PersonKind::Member => Some(
            state
                .store
                .role_in(space.id, visitor.person_id())
                .await
                .map_err(|e| Refusal::Failed(e.into()))?
                .ok_or(Refusal::Forbidden)?,
        ),
    };
    Ok(Admitted { space, visitor, role })
}
