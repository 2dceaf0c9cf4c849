//! What a member's calendar, as last read, says at a given time, and when that changes next: the
//! busy times of free/busy and the status events (out of office, focus time) are kept in memory
//! for the next 24 hours, so that the avatar flips at each boundary by the clock alone.

use kehai_core::{Millis, presence::gcal::Status};
use kehai_google::StatusKind;

/// A member's calendar as read at `read_at`, up to `until` (the end of the window asked for).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Day {
    /// Busy times `[start, end)`, merged and in order.
    pub busy: Vec<(Millis, Millis)>,
    /// Out-of-office and focus-time events `[start, end)`.
    pub status: Vec<(StatusKind, Millis, Millis)>,
    pub read_at: Millis,
    pub until: Millis,
    /// Whether Google told out of office and focus time apart (it may refuse to list event
    /// types at kehai's permission: then every busy time is a meeting).
    pub event_types: bool,
}

impl Day {
    /// The calendar's status at `t`: out of office wins; then busy time outside any focus time
    /// (a meeting); then focus time. Free/busy merges a meeting held inside focus time into it,
    /// so such a meeting shows as focus time.
    pub fn status_at(&self, t: Millis) -> Option<Status> {
        let covers = |kind: StatusKind| self.status.iter().any(|(k, s, e)| *k == kind && (*s..*e).contains(&t));
        let busy = self.busy.iter().any(|(s, e)| (*s..*e).contains(&t));
        if covers(StatusKind::OutOfOffice) {
            Some(Status::OutOfOffice)
        } else if covers(StatusKind::FocusTime) {
            Some(Status::FocusTime)
        } else if busy {
            Some(Status::Busy)
        } else {
            None
        }
    }

    /// The status events of this calendar that still hold for a new read of `[from, until)`
    /// whose busy times are `busy`, if they can be known without listing the events again: the
    /// busy times in the part both windows cover are unchanged, and none are new after this
    /// window's end (out-of-office and focus-time events are busy time, so none came or went).
    /// Most changes Google pushes are to titles, guests or other people's answers.
    pub fn status_still(&self, busy: &[(Millis, Millis)], from: Millis) -> Option<Vec<(StatusKind, Millis, Millis)>> {
        if !self.event_types || from < self.read_at {
            return None;
        }
        let clip = |list: &[(Millis, Millis)]| -> Vec<(Millis, Millis)> {
            list.iter().map(|(s, e)| ((*s).max(from), (*e).min(self.until))).filter(|(s, e)| s < e).collect()
        };
        let beyond = busy.iter().any(|(_, e)| *e > self.until);
        (!beyond && clip(busy) == clip(&self.busy))
            .then(|| self.status.iter().copied().filter(|(_, _, e)| *e > from).collect())
    }

    /// The first time after `t` at which the status may change: the next start or end of a busy
    /// time or a status event within the window.
    pub fn next_boundary(&self, t: Millis) -> Option<Millis> {
        self.busy
            .iter()
            .flat_map(|(s, e)| [*s, *e])
            .chain(self.status.iter().flat_map(|(_, s, e)| [*s, *e]))
            .filter(|b| *b > t && *b <= self.until)
            .min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const M: Millis = 60_000;

    fn day() -> Day {
        Day {
            busy: vec![(10 * M, 20 * M), (30 * M, 90 * M), (100 * M, 200 * M)],
            status: vec![(StatusKind::FocusTime, 30 * M, 60 * M), (StatusKind::OutOfOffice, 100 * M, 200 * M)],
            read_at: 0,
            until: 24 * 60 * M,
            event_types: true,
        }
    }

    #[test]
    fn out_of_office_then_focus_then_busy() {
        let d = day();
        assert_eq!(d.status_at(5 * M), None);
        assert_eq!(d.status_at(10 * M), Some(Status::Busy), "the start is inclusive");
        assert_eq!(d.status_at(20 * M), None, "the end is exclusive");
        assert_eq!(d.status_at(45 * M), Some(Status::FocusTime));
        assert_eq!(d.status_at(60 * M), Some(Status::Busy), "a meeting running on after focus time");
        assert_eq!(d.status_at(150 * M), Some(Status::OutOfOffice));
    }

    #[test]
    fn status_events_are_kept_while_the_busy_times_are_unchanged() {
        let d = day();
        let same = d.busy.clone();
        assert_eq!(d.status_still(&same, 40 * M), Some(d.status.clone()), "nothing came or went");
        let later = d.status_still(&same, 150 * M).unwrap();
        assert_eq!(later, vec![(StatusKind::OutOfOffice, 100 * M, 200 * M)], "what ended is dropped");
        let mut moved = same.clone();
        moved[1] = (30 * M, 95 * M);
        assert_eq!(d.status_still(&moved, 40 * M), None, "a busy time changed: list them again");
        let mut more = same.clone();
        more.push((24 * 60 * M + 10 * M, 24 * 60 * M + 20 * M));
        assert_eq!(d.status_still(&more, 40 * M), None, "a busy time past the old window: unknown kind");
        let blind = Day { event_types: false, ..day() };
        assert_eq!(blind.status_still(&same, 40 * M), None, "never listed: try again");
    }

    #[test]
    fn the_next_boundary_is_the_nearest_start_or_end_in_the_window() {
        let d = day();
        assert_eq!(d.next_boundary(0), Some(10 * M));
        assert_eq!(d.next_boundary(10 * M), Some(20 * M));
        assert_eq!(d.next_boundary(35 * M), Some(60 * M), "focus time ends inside the busy time");
        assert_eq!(d.next_boundary(150 * M), Some(200 * M));
        assert_eq!(d.next_boundary(200 * M), None);
        let short = Day { until: 15 * M, ..day() };
        assert_eq!(short.next_boundary(12 * M), None, "beyond the window: read again, not guessed");
    }
}
