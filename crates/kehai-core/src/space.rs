//! Spaces: the virtual offices that avatars live in.

use serde::{Deserialize, Serialize};

use crate::invalid::{Invalid, has_forbidden_chars};

/// A space's internal id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SpaceId(pub uuid::Uuid);

impl SpaceId {
    pub fn new() -> Self {
        SpaceId(uuid::Uuid::new_v4())
    }
}

impl Default for SpaceId {
    fn default() -> Self {
        Self::new()
    }
}

/// The URL name of a space (`/s/{slug}`): 2–63 of `a-z`, `0-9`, `-`, not starting with `-`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct SpaceSlug(String);

impl SpaceSlug {
    pub fn parse(s: &str) -> Result<Self, Invalid> {
        let ok = (2..=63).contains(&s.len())
            && !s.starts_with('-')
            && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if ok { Ok(SpaceSlug(s.to_owned())) } else { Err(Invalid::Slug) }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for SpaceSlug {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A space's human name, shown in its page title.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SpaceName(String);

impl SpaceName {
    pub fn parse(s: &str) -> Result<Self, Invalid> {
        let s = s.trim();
        let n = s.chars().count();
        if (1..=100).contains(&n) && !has_forbidden_chars(s) {
            Ok(SpaceName(s.to_owned()))
        } else {
            Err(Invalid::SpaceName)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A space as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Space {
    pub id: SpaceId,
    pub slug: SpaceSlug,
    pub name: SpaceName,
    /// Whether people without an account may join with a display name only.
    pub allow_guests: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs() {
        for ok in ["demo", "a1", "team-42", "x".repeat(63).as_str()] {
            assert!(SpaceSlug::parse(ok).is_ok(), "{ok}");
        }
        for bad in ["", "a", "-demo", "Demo", "de mo", "dé", "x".repeat(64).as_str(), "a/b"] {
            assert_eq!(SpaceSlug::parse(bad), Err(Invalid::Slug), "{bad}");
        }
    }

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(SpaceName::parse("  Office ").unwrap().as_str(), "Office");
        assert_eq!(SpaceName::parse("   "), Err(Invalid::SpaceName));
        assert_eq!(SpaceName::parse("a\nb"), Err(Invalid::SpaceName));
        assert!(SpaceName::parse(&"名".repeat(100)).is_ok());
        assert!(SpaceName::parse(&"名".repeat(101)).is_err());
    }
}
