//! Microsoft Teams presence → avatar: availability and activity as Graph reports them.
//!
//! Graph reports presence as (availability, activity), in varying case and with new values over
//! time. Matching is case-insensitive and the first rule that applies wins: meetings, calls and
//! presenting before Do not disturb, Busy, Be right back and Away, and out of office only where
//! nothing else applies. Available, Offline and anything unknown give no override, so the
//! member's own emoji shows.

use super::{Kind, Shown};
use crate::Emoji;

/// The provider's id, as stored and in URLs.
pub const ID: &str = "msteams";
/// The provider's name in labels.
pub const NAME: &str = "Microsoft Teams";

fn is(value: &str, names: &[&str]) -> bool {
    names.iter().any(|n| value.eq_ignore_ascii_case(n))
}

/// What a Teams presence shows, or `None` when the member's own emoji shows.
pub fn shown(availability: &str, activity: &str, out_of_office: bool) -> Option<Shown> {
    let (emoji, kind, label_en, label_ja) = if is(activity, &["InAMeeting"]) {
        ("📅", Kind::InAMeeting, "In a meeting", "会議参加中")
    } else if is(activity, &["InACall", "InAConferenceCall"]) {
        ("📞", Kind::InACall, "In a call", "通話中")
    } else if is(activity, &["Presenting"]) {
        ("🖥️", Kind::Presenting, "Presenting", "発表中")
    } else if is(availability, &["DoNotDisturb"]) {
        ("⛔", Kind::DoNotDisturb, "Do not disturb", "応答不可")
    } else if is(availability, &["Busy", "BusyIdle"]) {
        ("🔴", Kind::Busy, "Busy", "取り込み中")
    } else if is(availability, &["BeRightBack"]) {
        ("⏳", Kind::BeRightBack, "Be right back", "一時退席中")
    } else if is(availability, &["Away"]) {
        ("💤", Kind::Away, "Away", "離席中")
    } else if is(activity, &["OutOfOffice"]) || out_of_office {
        ("🏝️", Kind::OutOfOffice, "Out of office", "外出中")
    } else {
        // Available, AvailableIdle, Offline, PresenceUnknown and anything new: no override.
        return None;
    };
    Some(Shown { emoji: Emoji::parse(emoji).ok()?, kind, label_en, label_ja })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(a: &str, b: &str) -> Option<&'static str> {
        super::shown(a, b, false).map(|s| match s.emoji.as_str() {
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

    /// Every row of the product's presence table.
    #[test]
    fn the_product_table() {
        assert_eq!(kind("Busy", "InAMeeting"), Some("meeting"));
        assert_eq!(kind("Busy", "InACall"), Some("call"));
        assert_eq!(kind("Busy", "InAConferenceCall"), Some("call"));
        assert_eq!(kind("DoNotDisturb", "Presenting"), Some("presenting"));
        for dnd in ["DoNotDisturb", "Focusing", "UrgentInterruptionsOnly"] {
            assert_eq!(kind("DoNotDisturb", dnd), Some("dnd"), "{dnd}");
        }
        assert_eq!(kind("Busy", "Busy"), Some("busy"));
        assert_eq!(kind("BusyIdle", "Busy"), Some("busy"));
        assert_eq!(kind("BeRightBack", "BeRightBack"), Some("brb"));
        assert_eq!(kind("Away", "Away"), Some("away"));
        assert_eq!(kind("Away", "OutOfOffice"), Some("away"), "the first rule that applies wins");
        assert_eq!(kind("Offline", "OutOfOffice"), Some("ooo"));
        assert_eq!(kind("Available", "OutOfOffice"), Some("ooo"));
        assert_eq!(shown("Available", "Available", true).map(|s| s.label_en), Some("Out of office"));
        for (a, b) in [
            ("Available", "Available"),
            ("AvailableIdle", "Available"),
            ("Offline", "OffWork"),
            ("Offline", "Offline"),
            ("PresenceUnknown", "PresenceUnknown"),
            ("SomethingNew", "Whatever"),
        ] {
            assert_eq!(kind(a, b), None, "{a}/{b} leaves the own emoji");
        }
    }

    #[test]
    fn values_match_in_any_case() {
        assert_eq!(kind("busy", "inameeting"), Some("meeting"));
        assert_eq!(kind("DONOTDISTURB", "donotdisturb"), Some("dnd"));
        assert_eq!(kind("away", "away"), Some("away"));
    }

    #[test]
    fn labels_carry_both_languages() {
        let busy = shown("Busy", "Busy", false).unwrap();
        assert_eq!(busy.label(NAME), "Microsoft Teams: 取り込み中 / Busy");
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
            let mapped = shown(&availability, &activity, ooo);
            let lower = shown(&availability.to_lowercase(), &activity.to_lowercase(), ooo);
            prop_assert_eq!(&mapped, &lower);
            if let Some(s) = &mapped {
                prop_assert!(["📅", "📞", "🖥️", "⛔", "🔴", "⏳", "💤", "🏝️"].contains(&s.emoji.as_str()));
                prop_assert_eq!(Emoji::parse(s.emoji.as_str()), Ok(s.emoji.clone()));
                prop_assert!(!s.label_en.is_empty() && !s.label_ja.is_empty());
            }
            if activity.eq_ignore_ascii_case("InAMeeting") {
                prop_assert_eq!(mapped.as_ref().map(|s| s.emoji.as_str()), Some("📅"));
            }
            let known = |v: &str| KNOWN.iter().any(|k| v.eq_ignore_ascii_case(k));
            if !known(&availability) && !known(&activity) && !ooo {
                prop_assert_eq!(&mapped, &None);
            }
            let without = shown(&availability, &activity, false);
            let with = shown(&availability, &activity, true);
            match &without {
                Some(a) => prop_assert_eq!(Some(a), with.as_ref()),
                None => prop_assert_eq!(with.as_ref().map(|s| s.emoji.as_str()), Some("🏝️")),
            }
        }
    }
}
