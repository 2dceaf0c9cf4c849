//! Accounts (email + password) and their role in a space.

use serde::{Deserialize, Serialize};

use crate::{Invalid, PersonId, invalid::has_forbidden_chars};

/// An email address as the person typed it (trimmed). Accounts are unique by
/// [`Email::normalized`], so `Alice@Example.com` and `alice@example.com` are one account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Email(String);

impl Email {
    pub fn parse(s: &str) -> Result<Self, Invalid> {
        let s = s.trim();
        let Some((local, domain)) = s.split_once('@') else {
            return Err(Invalid::Email);
        };
        let ok = s.len() <= 254
            && !local.is_empty()
            && local.len() <= 64
            && !domain.is_empty()
            && !domain.contains('@')
            && !domain.starts_with('.')
            && !domain.ends_with('.')
            && !s.chars().any(char::is_whitespace)
            && !has_forbidden_chars(s);
        if ok { Ok(Email(s.to_owned())) } else { Err(Invalid::Email) }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The case-insensitive identity of the address: the key accounts are unique by.
    pub fn normalized(&self) -> String {
        self.0.to_lowercase()
    }

    /// The part before `@`, a reasonable default display name.
    pub fn local_part(&self) -> &str {
        self.0.split('@').next().unwrap_or(&self.0)
    }
}

/// A password someone chose, checked against the minimum policy. Never printed.
#[derive(Clone)]
pub struct NewPassword(String);

impl NewPassword {
    /// Fewer characters than this is refused as weak.
    pub const MIN_CHARS: usize = 10;

    pub fn parse(s: &str) -> Result<Self, Invalid> {
        if s.trim().is_empty() {
            return Err(Invalid::EmptyPassword);
        }
        if s.chars().count() < Self::MIN_CHARS {
            return Err(Invalid::WeakPassword);
        }
        Ok(NewPassword(s.to_owned()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for NewPassword {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NewPassword(<redacted>)")
    }
}

/// An account's role in one space.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Member,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Member => "member",
            Role::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "member" => Some(Role::Member),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}

/// An account's membership of a space: what lets a member in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Membership {
    pub space_id: crate::SpaceId,
    pub account_id: PersonId,
    pub role: Role,
}

/// A registered account. The password hash lives in the store only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub id: PersonId,
    pub email: Email,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails() {
        let e = Email::parse("  Alice@Example.COM ").unwrap();
        assert_eq!(e.as_str(), "Alice@Example.COM");
        assert_eq!(e.normalized(), "alice@example.com");
        assert_eq!(e.local_part(), "Alice");
        for bad in ["", "alice", "@example.com", "alice@", "a b@example.com", "a@b@c", "a@.com", "a\u{0}@x.y"] {
            assert_eq!(Email::parse(bad), Err(Invalid::Email), "{bad:?}");
        }
    }

    #[test]
    fn passwords() {
        assert_eq!(NewPassword::parse("").unwrap_err(), Invalid::EmptyPassword);
        assert_eq!(NewPassword::parse("    ").unwrap_err(), Invalid::EmptyPassword);
        assert_eq!(NewPassword::parse("short").unwrap_err(), Invalid::WeakPassword);
        let p = NewPassword::parse("long enough pass").unwrap();
        assert!(!format!("{p:?}").contains("long"));
    }
}
