//! What a presence shows on an avatar: an emoji and a label in both languages, mapped from each
//! provider's own values by that provider's module ([`msteams`]).

pub mod msteams;

use crate::Emoji;

/// What a presence shows on the avatar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shown {
    pub emoji: Emoji,
    /// e.g. "In a meeting".
    pub label_en: &'static str,
    /// e.g. "会議参加中".
    pub label_ja: &'static str,
}

impl Shown {
    /// The tooltip and accessible label, named after the provider: "Microsoft Teams: 取り込み中 /
    /// Busy".
    pub fn label(&self, provider: &str) -> String {
        format!("{provider}: {} / {}", self.label_ja, self.label_en)
    }
}
