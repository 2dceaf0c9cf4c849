//! Calendar events as googleemu keeps them, and as Calendar v3 shows them (the Event resource
//! of the discovery document): what the control API can put in a user's primary calendar —
//! a meeting, an out-of-office or focus-time block, a working location, an invitation the user
//! declined or has not answered, a "free" (transparent) event.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use time::{Date, OffsetDateTime, UtcOffset};

use super::time::{date, seconds_at, utc_millis};

/// What kind of event the control API adds; each maps to Google's `eventType`, `transparency`
/// and the user's own `responseStatus`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum EventKind {
    /// The user's own meeting with a guest: busy.
    Meeting,
    /// `eventType: outOfOffice`, opaque (Google requires it).
    OutOfOffice,
    /// `eventType: focusTime`, opaque (Google requires it).
    FocusTime,
    /// Someone else's invitation the user declined: not busy.
    Declined,
    /// Someone else's invitation the user has not answered: busy (as oVice documents for its
    /// own Google integration; Google's documents say nothing).
    NeedsAction,
    /// The user's own event shown as free (`transparency: transparent`).
    Free,
    /// `eventType: workingLocation`, transparent and public (Google requires both).
    WorkingLocation,
}

impl EventKind {
    pub fn event_type(self) -> &'static str {
        match self {
            EventKind::OutOfOffice => "outOfOffice",
            EventKind::FocusTime => "focusTime",
            EventKind::WorkingLocation => "workingLocation",
            _ => "default",
        }
    }

    pub fn transparent(self) -> bool {
        matches!(self, EventKind::Free | EventKind::WorkingLocation)
    }

    /// The user's `responseStatus` when someone else organizes the event.
    fn invitation(self) -> Option<&'static str> {
        match self {
            EventKind::Declined => Some("declined"),
            EventKind::NeedsAction => Some("needsAction"),
            _ => None,
        }
    }

    fn default_summary(self) -> &'static str {
        match self {
            EventKind::Meeting | EventKind::Free => "Meeting",
            EventKind::OutOfOffice => "Out of office",
            EventKind::FocusTime => "Focus time",
            EventKind::Declined | EventKind::NeedsAction => "Invitation",
            EventKind::WorkingLocation => "Home",
        }
    }
}

/// The start or end of an event: a time, or a date for all-day events (end exclusive).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum When {
    Time(OffsetDateTime),
    Date(Date),
}

impl When {
    /// The instant, reading dates in the calendar's time zone.
    pub fn instant(self, zone: UtcOffset) -> OffsetDateTime {
        match self {
            When::Time(t) => t,
            When::Date(d) => d.midnight().assume_offset(zone),
        }
    }

    fn json(self, zone: UtcOffset, zone_name: &str) -> Value {
        match self {
            When::Time(t) => json!({ "dateTime": seconds_at(t, zone), "timeZone": zone_name }),
            When::Date(d) => json!({ "date": date(d) }),
        }
    }
}

/// What to add to a calendar (control API, [`crate::Emulator::add_event`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventSpec {
    pub kind: EventKind,
    pub start: When,
    pub end: When,
    /// The title; a default per kind when `None`.
    pub summary: Option<String>,
    pub description: Option<String>,
}

impl EventSpec {
    /// An event from `start` to `end` (real time: clients see it when their clocks say so).
    pub fn at(kind: EventKind, start: OffsetDateTime, end: OffsetDateTime) -> EventSpec {
        EventSpec { kind, start: When::Time(start), end: When::Time(end), summary: None, description: None }
    }

    /// An event starting `start_in` from now (negative: already under way), lasting `length`.
    pub fn starting_in(kind: EventKind, start_in: time::Duration, length: time::Duration) -> EventSpec {
        let start =
            crate::clock::real_now().replace_millisecond(0).unwrap_or_else(|_| crate::clock::real_now()) + start_in;
        EventSpec::at(kind, start, start + length)
    }

    /// An event under way from now, for `minutes`.
    pub fn now(kind: EventKind, minutes: i64) -> EventSpec {
        EventSpec::starting_in(kind, time::Duration::ZERO, time::Duration::minutes(minutes))
    }

    /// All day, `days` days from today (UTC).
    pub fn all_day(kind: EventKind, days: i64) -> EventSpec {
        let today = crate::clock::real_now().date();
        let end = today.checked_add(time::Duration::days(days.max(1))).unwrap_or(today);
        EventSpec { kind, start: When::Date(today), end: When::Date(end), summary: None, description: None }
    }

    pub fn summary(mut self, summary: impl Into<String>) -> EventSpec {
        self.summary = Some(summary.into());
        self
    }
}

/// An event in a user's primary calendar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub id: String,
    pub kind: EventKind,
    /// `confirmed`, or `cancelled` once deleted (kept as a tombstone for incremental sync and
    /// `showDeleted`).
    pub status: &'static str,
    pub summary: String,
    pub description: Option<String>,
    pub start: When,
    pub end: When,
    pub created: OffsetDateTime,
    pub updated: OffsetDateTime,
    /// The calendar's change counter when this event last changed (sync tokens compare it).
    pub changed_at: u64,
}

impl Event {
    pub fn new(id: String, spec: EventSpec, now: OffsetDateTime, changed_at: u64) -> Event {
        Event {
            id,
            kind: spec.kind,
            status: "confirmed",
            summary: spec.summary.unwrap_or_else(|| spec.kind.default_summary().to_owned()),
            description: spec.description,
            start: spec.start,
            end: spec.end,
            created: now,
            updated: now,
            changed_at,
        }
    }

    pub fn cancelled(&self) -> bool {
        self.status == "cancelled"
    }

    /// The user's own answer: `declined` and `needsAction` for invitations, else `accepted`.
    pub fn self_response(&self) -> &'static str {
        self.kind.invitation().unwrap_or("accepted")
    }

    /// Whether free/busy counts the event: opaque, not cancelled, not declined.
    pub fn busy(&self) -> bool {
        !self.cancelled() && !self.kind.transparent() && self.self_response() != "declined"
    }

    fn etag(&self) -> String {
        format!("\"{}\"", self.updated.unix_timestamp_nanos() / 1_000)
    }

    /// The Event resource as `events.list` and `events.get` return it to the owner.
    pub fn full_json(&self, owner: &str, zone_name: &str, zone: UtcOffset) -> Value {
        if self.cancelled() {
            // Deleted events come back as id and status only (incremental sync, showDeleted).
            return json!({ "kind": "calendar#event", "etag": self.etag(), "id": self.id, "status": self.status });
        }
        let organizer = match self.kind.invitation() {
            Some(_) => json!({ "email": "organizer@partner.example", "displayName": "Organizer" }),
            None => json!({ "email": owner, "self": true }),
        };
        let mut event = json!({
            "kind": "calendar#event",
            "etag": self.etag(),
            "id": self.id,
            "status": self.status,
            "htmlLink": format!("https://www.google.com/calendar/event?eid={}", self.id),
            "created": utc_millis(self.created),
            "updated": utc_millis(self.updated),
            "summary": self.summary,
            "creator": organizer.clone(),
            "organizer": organizer,
            "start": self.start.json(zone, zone_name),
            "end": self.end.json(zone, zone_name),
            "iCalUID": format!("{}@google.com", self.id),
            "sequence": 0,
            "reminders": { "useDefault": true },
            "eventType": self.kind.event_type(),
        });
        if let Some(description) = &self.description {
            event["description"] = json!(description);
        }
        // `transparency` is omitted when it is the default, `opaque`.
        if self.kind.transparent() {
            event["transparency"] = json!("transparent");
        }
        match self.kind {
            EventKind::Meeting | EventKind::Free => {
                event["attendees"] = json!([
                    { "email": owner, "self": true, "organizer": true, "responseStatus": "accepted" },
                    { "email": "guest@partner.example", "responseStatus": "needsAction" },
                ]);
            }
            EventKind::Declined | EventKind::NeedsAction => {
                event["attendees"] = json!([
                    { "email": "organizer@partner.example", "organizer": true, "responseStatus": "accepted" },
                    { "email": owner, "self": true, "responseStatus": self.self_response() },
                ]);
            }
            EventKind::OutOfOffice => {
                event["outOfOfficeProperties"] =
                    json!({ "autoDeclineMode": "declineOnlyNewConflictingInvitations", "declineMessage": "" });
            }
            EventKind::FocusTime => {
                event["focusTimeProperties"] =
                    json!({ "autoDeclineMode": "declineOnlyNewConflictingInvitations", "chatStatus": "doNotDisturb" });
            }
            EventKind::WorkingLocation => {
                event["visibility"] = json!("public");
                event["workingLocationProperties"] = json!({ "type": "homeOffice", "homeOffice": {} });
            }
        }
        event
    }

    /// What a free/busy-level reader sees in googleemu's `stubs` mode: the event's shape in
    /// time, never its title, description or guests.
    pub fn stub_json(&self, zone_name: &str, zone: UtcOffset) -> Value {
        let mut event = json!({
            "status": self.status,
            "eventType": self.kind.event_type(),
            "start": self.start.json(zone, zone_name),
            "end": self.end.json(zone, zone_name),
        });
        if self.kind.transparent() {
            event["transparency"] = json!("transparent");
        }
        event
    }
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    fn event(kind: EventKind) -> Event {
        let spec = EventSpec::at(kind, datetime!(2026-11-26 10:00 UTC), datetime!(2026-11-26 10:30 UTC));
        Event::new("abc".into(), spec, datetime!(2026-11-20 08:00 UTC), 1)
    }

    #[test]
    fn busy_follows_transparency_response_and_status() {
        assert!(event(EventKind::Meeting).busy());
        assert!(event(EventKind::OutOfOffice).busy());
        assert!(event(EventKind::FocusTime).busy());
        assert!(event(EventKind::NeedsAction).busy());
        assert!(!event(EventKind::Declined).busy());
        assert!(!event(EventKind::Free).busy());
        assert!(!event(EventKind::WorkingLocation).busy());
        let mut gone = event(EventKind::Meeting);
        gone.status = "cancelled";
        assert!(!gone.busy());
    }

    #[test]
    fn full_events_omit_opaque_transparency_and_stubs_hide_content() {
        let e = event(EventKind::Meeting).full_json("alice@example.com", "UTC", UtcOffset::UTC);
        assert_eq!(e["start"], json!({"dateTime": "2026-11-26T10:00:00Z", "timeZone": "UTC"}));
        assert!(e.get("transparency").is_none());
        assert_eq!(e["summary"], "Meeting");
        assert_eq!(e["attendees"][0]["self"], true);
        let free = event(EventKind::Free).full_json("alice@example.com", "UTC", UtcOffset::UTC);
        assert_eq!(free["transparency"], "transparent");
        let stub = event(EventKind::OutOfOffice).stub_json("UTC", UtcOffset::UTC);
        let keys: Vec<&String> = stub.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["end", "eventType", "start", "status"]);
        assert_eq!(stub["eventType"], "outOfOffice");
    }
}
