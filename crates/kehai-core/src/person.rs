//! Persons: whoever has an avatar — a member's account or a guest.

use serde::{Deserialize, Serialize};

use crate::Invalid;

/// The id of a person: an account's id for members, a guest's id for guests. Both are UUIDs
/// drawn from the same space, so one id names one person everywhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PersonId(pub uuid::Uuid);

impl PersonId {
    pub fn new() -> Self {
        PersonId(uuid::Uuid::new_v4())
    }

    pub fn parse(s: &str) -> Result<Self, Invalid> {
        uuid::Uuid::parse_str(s).map(PersonId).map_err(|_| Invalid::Id)
    }
}

impl Default for PersonId {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Display for PersonId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// Whether a person is a registered member (of some space) or a guest of one space.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PersonKind {
    Member,
    Guest,
}

impl PersonKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PersonKind::Member => "member",
            PersonKind::Guest => "guest",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "member" => Some(PersonKind::Member),
            "guest" => Some(PersonKind::Guest),
            _ => None,
        }
    }
}

/// A guest: someone in one space with a display name only, who exists as long as their session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Guest {
    pub id: PersonId,
    pub space_id: crate::SpaceId,
    pub display_name: crate::DisplayName,
}
