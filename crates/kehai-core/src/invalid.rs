//! The one validation error of the domain: which rule a value broke, with a stable code.

/// A value was rejected by a domain rule.
///
/// `code()` is part of kehai's interface (JSON `error.code`, CLI messages): keep codes stable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Invalid {
    #[error("a space slug is 2–63 characters of a–z, 0–9 and '-', starting with a letter or digit")]
    Slug,
    #[error("a space name is 1–100 characters, without control characters")]
    SpaceName,
    #[error("not a valid email address")]
    Email,
    #[error("a display name is 1–64 characters, without control characters")]
    DisplayName,
    #[error("an emoji must be exactly one emoji (one grapheme cluster)")]
    Emoji,
    #[error("the password is empty")]
    EmptyPassword,
    #[error("the password is too weak: use at least {min} characters", min = crate::NewPassword::MIN_CHARS)]
    WeakPassword,
    #[error("not a valid id")]
    Id,
}

impl Invalid {
    /// The stable machine-readable code of this rule.
    pub fn code(&self) -> &'static str {
        match self {
            Invalid::Slug => "invalid_slug",
            Invalid::SpaceName => "invalid_space_name",
            Invalid::Email => "invalid_email",
            Invalid::DisplayName => "invalid_display_name",
            Invalid::Emoji => "invalid_emoji",
            Invalid::EmptyPassword => "empty_password",
            Invalid::WeakPassword => "weak_password",
            Invalid::Id => "invalid_id",
        }
    }
}

/// True when `s` holds a character that has no place in a one-line name (controls, line and
/// paragraph separators, bidirectional overrides that can disguise a name).
pub(crate) fn has_forbidden_chars(s: &str) -> bool {
    s.chars().any(|c| {
        c.is_control() || matches!(c, '\u{2028}' | '\u{2029}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
    })
}
