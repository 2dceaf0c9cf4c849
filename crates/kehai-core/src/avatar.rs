//! Avatars: how a person appears in a space — name, own emoji and presence override.

use serde::Serialize;
use unicode_segmentation::UnicodeSegmentation;

use crate::{Invalid, Millis, PersonId, PersonKind, SpaceId, invalid::has_forbidden_chars, presence::Kind};

/// A person's name as shown under their avatar: 1–64 characters after trimming.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct DisplayName(String);

impl DisplayName {
    pub const MAX_CHARS: usize = 64;

    pub fn parse(s: &str) -> Result<Self, Invalid> {
        let s = s.trim();
        let n = s.chars().count();
        if (1..=Self::MAX_CHARS).contains(&n) && !has_forbidden_chars(s) {
            Ok(DisplayName(s.to_owned()))
        } else {
            Err(Invalid::DisplayName)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The key lists of people are sorted by: case-insensitive, the same in every database.
    pub fn sort_key(&self) -> String {
        self.0.to_lowercase()
    }
}

/// Exactly one emoji: a single extended grapheme cluster that Unicode lists as an emoji
/// (skin tones and ZWJ sequences included). Text, several emoji or a lone modifier are refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Emoji(String);

impl Emoji {
    pub fn parse(s: &str) -> Result<Self, Invalid> {
        // The longest RGI sequences (kiss/couple with two skin tones) are 35 bytes; 64 leaves
        // room without letting a "single grapheme" of combining marks grow without bound.
        // No emoji is plain ASCII ("1", "#" and "*" are emoji only as keycaps, with U+20E3).
        if s.is_empty() || s.is_ascii() || s.len() > 64 || s.graphemes(true).count() != 1 {
            return Err(Invalid::Emoji);
        }
        // Keyboards differ on the emoji-presentation selector (U+FE0F): accept the cluster with
        // or without it, and store the form Unicode lists.
        let bare: String = s.chars().filter(|&c| c != '\u{FE0F}').collect();
        let with_selector = format!("{bare}\u{FE0F}");
        [s, bare.as_str(), with_selector.as_str()]
            .into_iter()
            .find_map(emojis::get)
            // The emoji crate also finds an emoji by some of its parts (`5` + U+FE0F finds the
            // keycap 5️⃣): only the selector may differ from what was typed.
            .filter(|e| e.as_str().chars().filter(|&c| c != '\u{FE0F}').eq(bare.chars()))
            .map(|e| Emoji(e.as_str().to_owned()))
            .ok_or(Invalid::Emoji)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What an integration says about a person right now, shown instead of their own emoji while it
/// lasts (for example Microsoft Teams "Busy" → 🔴). A person may have one per provider; the
/// avatar shows the one that [precedes](PresenceOverride::precedes) the others.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PresenceOverride {
    /// Which integration set it, e.g. `msteams`.
    pub provider: String,
    /// The provider's availability value as received, e.g. `Busy`.
    pub availability: String,
    /// The provider's activity value as received, e.g. `InAMeeting`.
    pub activity: String,
    /// Human text for tooltips and screen readers, e.g. "Microsoft Teams: 取り込み中 / Busy".
    pub label: String,
    pub emoji: Emoji,
    /// Its place in the order of precedence between providers.
    pub kind: Kind,
    /// When this presence began (ms since epoch).
    pub since: Millis,
}

impl PresenceOverride {
    /// Whether the avatar shows this presence rather than `other` (another provider's): the
    /// stronger kind wins; of two alike, the one shown first stays (so that a second calendar
    /// meeting does not take the avatar's tooltip from the first), then the provider's id.
    pub fn precedes(&self, other: &PresenceOverride) -> bool {
        (self.kind, self.since, &self.provider) < (other.kind, other.since, &other.provider)
    }
}

/// A person's avatar in one space.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Avatar {
    pub space_id: SpaceId,
    pub person_id: PersonId,
    pub kind: PersonKind,
    pub display_name: DisplayName,
    /// The emoji the person chose themselves; `None` for "no emoji".
    pub own_emoji: Option<Emoji>,
    /// Set by an integration; takes precedence on display, never replaces `own_emoji`.
    pub presence: Option<PresenceOverride>,
}

impl Avatar {
    /// The emoji a page shows: the presence override while present, else the own emoji.
    pub fn displayed_emoji(&self) -> Option<&Emoji> {
        self.presence.as_ref().map(|p| &p.emoji).or(self.own_emoji.as_ref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn avatar(own: Option<&str>) -> Avatar {
        Avatar {
            space_id: SpaceId::new(),
            person_id: PersonId::new(),
            kind: PersonKind::Member,
            display_name: DisplayName::parse("Alice").unwrap(),
            own_emoji: own.map(|e| Emoji::parse(e).unwrap()),
            presence: None,
        }
    }

    #[test]
    fn emoji_accepts_exactly_one_emoji() {
        for ok in ["😀", "👍🏽", "👩‍💻", "🏳️‍🌈", "❤️", "🇯🇵", "📅", "🖥️", "⛔", "1️⃣", "©️"]
        {
            assert!(Emoji::parse(ok).is_ok(), "{ok}");
        }
        for bad in ["", "a", "ab", "😀😀", "😀 ", "🏽", ":)", "1", "#", "\u{200D}", &"😀".repeat(20)] {
            assert_eq!(Emoji::parse(bad), Err(Invalid::Emoji), "{bad:?}");
        }
    }

    #[test]
    fn emoji_normalizes_presentation_selector() {
        assert_eq!(Emoji::parse("❤").unwrap().as_str(), "❤️");
        assert_eq!(Emoji::parse("🖥").unwrap().as_str(), "🖥️");
        // Found by fuzzing (fuzz/fuzz_targets/validators.rs): a digit with the emoji selector
        // was stored as the keycap emoji, which the person never typed.
        assert_eq!(Emoji::parse("5\u{FE0F}"), Err(Invalid::Emoji));
        assert_eq!(Emoji::parse("#\u{FE0F}"), Err(Invalid::Emoji));
        assert_eq!(Emoji::parse("5\u{FE0F}\u{20E3}").unwrap().as_str(), "5\u{FE0F}\u{20E3}");
        assert_eq!(Emoji::parse("5\u{20E3}").unwrap().as_str(), "5\u{FE0F}\u{20E3}");
    }

    #[test]
    fn display_names() {
        assert_eq!(DisplayName::parse("  Bob ").unwrap().as_str(), "Bob");
        assert!(DisplayName::parse("").is_err());
        assert!(DisplayName::parse("a\tb").is_err());
        assert!(DisplayName::parse("\u{202E}evil").is_err());
        assert!(DisplayName::parse(&"あ".repeat(64)).is_ok());
        assert!(DisplayName::parse(&"あ".repeat(65)).is_err());
        // Markup is just text here; escaping is the page's job.
        assert!(DisplayName::parse("<script>").is_ok());
    }

    #[test]
    fn override_wins_on_display_but_keeps_own_emoji() {
        let mut a = avatar(Some("🌸"));
        assert_eq!(a.displayed_emoji().map(Emoji::as_str), Some("🌸"));
        a.presence = Some(PresenceOverride {
            provider: "msteams".into(),
            availability: "Busy".into(),
            activity: "Busy".into(),
            label: "Microsoft Teams: 取り込み中 / Busy".into(),
            emoji: Emoji::parse("🔴").unwrap(),
            kind: Kind::Busy,
            since: 0,
        });
        assert_eq!(a.displayed_emoji().map(Emoji::as_str), Some("🔴"));
        assert_eq!(a.own_emoji.as_ref().map(Emoji::as_str), Some("🌸"));
        a.presence = None;
        assert_eq!(a.displayed_emoji().map(Emoji::as_str), Some("🌸"));
        assert_eq!(avatar(None).displayed_emoji(), None);
    }

    #[test]
    fn the_stronger_presence_precedes_then_the_first_shown() {
        let p = |provider: &str, kind: Kind, since: Millis| PresenceOverride {
            provider: provider.into(),
            availability: String::new(),
            activity: String::new(),
            label: String::new(),
            emoji: Emoji::parse("📅").unwrap(),
            kind,
            since,
        };
        let teams_busy = p("msteams", Kind::Busy, 10);
        let meeting = p("gcal", Kind::InAMeeting, 20);
        assert!(meeting.precedes(&teams_busy) && !teams_busy.precedes(&meeting));
        let teams_meeting = p("msteams", Kind::InAMeeting, 5);
        assert!(teams_meeting.precedes(&meeting), "alike: the one shown first stays");
        let ooo = p("gcal", Kind::OutOfOffice, 1);
        assert!(teams_busy.precedes(&ooo));
    }
}
