//! Teams presence → avatar: the mapping of `docs/product.md` (S9, S14, S22).
//!
//! Graph reports presence as (availability, activity), in varying case and with new values over
//! time. Matching is case-insensitive and the first rule that applies wins; Available, Offline
//! and anything unknown give no override, so the member's own emoji shows.

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
    /// The tooltip and accessible label: "Microsoft Teams: 取り込み中 / Busy".
    pub fn label(&self) -> String {
        format!("Microsoft Teams: {} / {}", self.label_ja, self.label_en)
    }
}

fn is(value: &str, names: &[&str]) -> bool {
    names.iter().any(|n| value.eq_ignore_ascii_case(n))
}

/// The override for a Teams presence, or `None` when the member's own emoji shows.
pub fn teams_override(availability: &str, activity: &str, out_of_office: bool) -> Option<Shown> {
    let (emoji, label_en, label_ja) = if is(activity, &["InAMeeting"]) {
        ("📅", "In a meeting", "会議参加中")
    } else if is(activity, &["InACall", "InAConferenceCall"]) {
        ("📞", "In a call", "通話中")
    } else if is(activity, &["Presenting"]) {
        ("🖥️", "Presenting", "発表中")
    } else if is(availability, &["DoNotDisturb"]) {
        ("⛔", "Do not disturb", "応答不可")
    } else if is(availability, &["Busy", "BusyIdle"]) {
        ("🔴", "Busy", "取り込み中")
    } else if is(availability, &["BeRightBack"]) {
        ("⏳", "Be right back", "一時退席中")
    } else if is(availability, &["Away"]) {
        ("💤", "Away", "離席中")
    } else if is(activity, &["OutOfOffice"]) || out_of_office {
        ("🏝️", "Out of office", "外出中")
    } else {
        // Available, AvailableIdle, Offline, PresenceUnknown and anything new: no override.
        return None;
    };
    Some(Shown { emoji: Emoji::parse(emoji).ok()?, label_en, label_ja })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shown(a: &str, b: &str) -> Option<&'static str> {
        teams_override(a, b, false).map(|s| match s.emoji.as_str() {
            "📅" => "meeting",
            "📞" => "call",
            "🖥️" => "presenting",
            "⛔" => "dnd",
            "🔴" => "busy",
            "⏳" => "brb",
            "💤" => "away",
            "🏝️" => "ooo",
            _ => "?",
        })
    }

    /// Every row of the table in docs/product.md.
    #[test]
    fn the_product_table() {
        assert_eq!(shown("Busy", "InAMeeting"), Some("meeting"));
        assert_eq!(shown("Busy", "InACall"), Some("call"));
        assert_eq!(shown("Busy", "InAConferenceCall"), Some("call"));
        assert_eq!(shown("DoNotDisturb", "Presenting"), Some("presenting"));
        for dnd in ["DoNotDisturb", "Focusing", "UrgentInterruptionsOnly"] {
            assert_eq!(shown("DoNotDisturb", dnd), Some("dnd"), "{dnd}");
        }
        assert_eq!(shown("Busy", "Busy"), Some("busy"));
        assert_eq!(shown("BusyIdle", "Busy"), Some("busy"));
        assert_eq!(shown("BeRightBack", "BeRightBack"), Some("brb"));
        assert_eq!(shown("Away", "Away"), Some("away"));
        assert_eq!(shown("Away", "OutOfOffice"), Some("away"), "the first rule that applies wins");
        assert_eq!(shown("Offline", "OutOfOffice"), Some("ooo"));
        assert_eq!(shown("Available", "OutOfOffice"), Some("ooo"));
        assert_eq!(teams_override("Available", "Available", true).map(|s| s.label_en), Some("Out of office"));
        for (a, b) in [
            ("Available", "Available"),
            ("AvailableIdle", "Available"),
            ("Offline", "OffWork"),
            ("Offline", "Offline"),
            ("PresenceUnknown", "PresenceUnknown"),
            ("SomethingNew", "Whatever"),
        ] {
            assert_eq!(shown(a, b), None, "{a}/{b} leaves the own emoji");
        }
    }

    #[test]
    fn values_match_in_any_case() {
        assert_eq!(shown("busy", "inameeting"), Some("meeting"));
        assert_eq!(shown("DONOTDISTURB", "donotdisturb"), Some("dnd"));
        assert_eq!(shown("away", "away"), Some("away"));
    }

    #[test]
    fn labels_carry_both_languages() {
        let busy = teams_override("Busy", "Busy", false).unwrap();
        assert_eq!(busy.label(), "Microsoft Teams: 取り込み中 / Busy");
    }

    /// Every name the mapping knows, availability and activity alike.
    const KNOWN: &[&str] = &[
        "InAMeeting",
        "InACall",
        "InAConferenceCall",
        "Presenting",
        "DoNotDisturb",
        "Busy",
        "BusyIdle",
        "BeRightBack",
        "Away",
        "OutOfOffice",
        "Available",
        "AvailableIdle",
        "Offline",
        "OffWork",
        "Focusing",
        "PresenceUnknown",
    ];

    /// A known name in a random case, or any text at all.
    fn value() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        prop_oneof![
            (proptest::sample::select(KNOWN), any::<u64>()).prop_map(|(name, cases)| name
                .chars()
                .enumerate()
                .map(|(i, c)| if cases >> (i % 64) & 1 == 1 { c.to_ascii_lowercase() } else { c.to_ascii_uppercase() })
                .collect()),
            ".{0,20}",
        ]
    }

    proptest::proptest! {
        /// The mapping is total and case-blind, shows one of the table's eight emoji (each a
        /// valid avatar emoji), gives meetings precedence over everything, leaves the own
        /// emoji for anything it does not know, and lets out-of-office only fill a gap.
        #[test]
        fn the_mapping_holds_for_any_presence(availability in value(), activity in value(), ooo: bool) {
            use proptest::{prop_assert, prop_assert_eq};
            let shown = teams_override(&availability, &activity, ooo);
            let lower = teams_override(&availability.to_lowercase(), &activity.to_lowercase(), ooo);
            prop_assert_eq!(&shown, &lower);
            if let Some(s) = &shown {
                prop_assert!(["📅", "📞", "🖥️", "⛔", "🔴", "⏳", "💤", "🏝️"].contains(&s.emoji.as_str()));
                prop_assert_eq!(Emoji::parse(s.emoji.as_str()), Ok(s.emoji.clone()));
                prop_assert!(!s.label_en.is_empty() && !s.label_ja.is_empty());
            }
            if activity.eq_ignore_ascii_case("InAMeeting") {
                prop_assert_eq!(shown.as_ref().map(|s| s.emoji.as_str()), Some("📅"));
            }
            let known = |v: &str| KNOWN.iter().any(|k| v.eq_ignore_ascii_case(k));
            if !known(&availability) && !known(&activity) && !ooo {
                prop_assert_eq!(&shown, &None);
            }
            let without = teams_override(&availability, &activity, false);
            let with = teams_override(&availability, &activity, true);
            match &without {
                Some(a) => prop_assert_eq!(Some(a), with.as_ref()),
                None => prop_assert_eq!(with.as_ref().map(|s| s.emoji.as_str()), Some("🏝️")),
            }
        }
    }
}
