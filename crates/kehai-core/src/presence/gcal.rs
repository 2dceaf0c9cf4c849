//! Google Calendar → avatar: what the member's calendar says about now. Google has no presence;
//! kehai reads only when the member is busy (free/busy) and, where Google shares it, whether
//! that time is out of office or focus time. Out of office wins (the member is away all day,
//! meetings or not), then a meeting (busy time that is neither), then focus time; free time
//! leaves the member's own emoji. (Free/busy merges overlapping busy times, so a meeting held
//! inside focus time cannot be told from it and shows as focus time: `providers::gcal`.)

use super::{Kind, Shown};
use crate::Emoji;

/// The provider's id, as stored and in URLs.
pub const ID: &str = "gcal";
/// The provider's name in labels.
pub const NAME: &str = "Google Calendar";

/// What the calendar says about now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// An out-of-office event.
    OutOfOffice,
    /// Busy time that is neither out of office nor focus time: a meeting, an invitation not
    /// answered yet, any event that shows the member as busy.
    Busy,
    /// A focus-time event.
    FocusTime,
}

impl Status {
    /// The value stored as the presence's availability and activity (Google's own names).
    pub fn as_str(self) -> &'static str {
        match self {
            Status::OutOfOffice => "outOfOffice",
            Status::Busy => "busy",
            Status::FocusTime => "focusTime",
        }
    }
}

/// What the calendar's status shows on the avatar.
pub fn shown(status: Status) -> Shown {
    let (emoji, kind, label_en, label_ja) = match status {
        Status::OutOfOffice => ("🏝️", Kind::OutOfOffice, "Out of office", "外出中"),
        Status::Busy => ("📅", Kind::InAMeeting, "In a meeting", "会議中"),
        Status::FocusTime => ("⛔", Kind::DoNotDisturb, "Focus time", "集中時間"),
    };
    let emoji = Emoji::parse(emoji).expect("each is one emoji Unicode lists");
    Shown { emoji, kind, label_en, label_ja }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_calendar_table() {
        let of = |s| {
            let shown = shown(s);
            (shown.emoji.as_str().to_owned(), shown.kind, shown.label(NAME))
        };
        assert_eq!(of(Status::Busy), ("📅".into(), Kind::InAMeeting, "Google Calendar: 会議中 / In a meeting".into()));
        assert_eq!(of(Status::OutOfOffice).0, "🏝️");
        assert_eq!(
            of(Status::FocusTime),
            ("⛔".into(), Kind::DoNotDisturb, "Google Calendar: 集中時間 / Focus time".into())
        );
        // Between providers: a Teams call outranks a calendar meeting, which outranks Teams' Busy.
        assert!(Kind::InACall < shown(Status::Busy).kind && shown(Status::Busy).kind < Kind::Busy);
    }
}
