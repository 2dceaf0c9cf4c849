//! What a presence shows on an avatar: an emoji and a label in both languages, mapped from each
//! provider's own values by that provider's module ([`msteams`], [`gcal`]), and which of several
//! providers' presences an avatar shows ([`Kind`]).

pub mod gcal;
pub mod msteams;

use crate::Emoji;

/// What a presence shows on the avatar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shown {
    pub emoji: Emoji,
    /// Its place in the order of precedence between providers.
    pub kind: Kind,
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

/// What a presence means to the people who see it, in the order an avatar with presences from
/// several providers (Teams and a calendar) picks one: the first wins. Someone presenting or in
/// a call is the least interruptible, whichever provider says it; a meeting in either outranks
/// Do not disturb or focus time, which outranks plain Busy; out of office, be right back and
/// away say only that the person is not at their desk. The declaration order is the precedence
/// (`Ord`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Presenting,
    InACall,
    InAMeeting,
    /// Do not disturb, or a calendar's focus time.
    DoNotDisturb,
    Busy,
    OutOfOffice,
    BeRightBack,
    Away,
}

impl Kind {
    pub const ALL: [Kind; 8] = [
        Kind::Presenting,
        Kind::InACall,
        Kind::InAMeeting,
        Kind::DoNotDisturb,
        Kind::Busy,
        Kind::OutOfOffice,
        Kind::BeRightBack,
        Kind::Away,
    ];

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Presenting => "presenting",
            Kind::InACall => "in_a_call",
            Kind::InAMeeting => "in_a_meeting",
            Kind::DoNotDisturb => "do_not_disturb",
            Kind::Busy => "busy",
            Kind::OutOfOffice => "out_of_office",
            Kind::BeRightBack => "be_right_back",
            Kind::Away => "away",
        }
    }

    pub fn parse(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip_and_rank_as_the_product_orders_them() {
        for kind in Kind::ALL {
            assert_eq!(Kind::parse(kind.as_str()), Some(kind));
            assert_eq!(serde_json::to_value(kind).unwrap(), kind.as_str(), "the API's name is the stored one");
        }
        assert_eq!(Kind::parse("Busy"), None);
        let mut shuffled = [Kind::Away, Kind::Busy, Kind::Presenting, Kind::OutOfOffice, Kind::InAMeeting];
        shuffled.sort();
        assert_eq!(shuffled, [Kind::Presenting, Kind::InAMeeting, Kind::Busy, Kind::OutOfOffice, Kind::Away]);
        assert!(Kind::InAMeeting < Kind::DoNotDisturb, "a meeting in focus time shows the meeting");
        assert!(Kind::Busy < Kind::OutOfOffice && Kind::OutOfOffice < Kind::BeRightBack);
    }
}
