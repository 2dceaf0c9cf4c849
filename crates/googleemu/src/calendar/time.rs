//! Calendar's time formats: RFC 3339 in and out (bounds echoed in UTC with milliseconds, event
//! and busy times without, as Google formats them), the RFC 1123 date of
//! `X-Goog-Channel-Expiration`, and the few time zones googleemu can express without a time-zone
//! database (those without daylight saving).

use time::{
    Date, OffsetDateTime, UtcOffset,
    format_description::{BorrowedFormatItem, well_known::Rfc3339},
    macros::format_description,
};

/// Zones with one fixed offset all year, in seconds east of UTC.
const FIXED_ZONES: &[(&str, i32)] = &[
    ("UTC", 0),
    ("Etc/UTC", 0),
    ("GMT", 0),
    ("Etc/GMT", 0),
    ("Asia/Tokyo", 9 * 3600),
    ("Asia/Seoul", 9 * 3600),
    ("Asia/Shanghai", 8 * 3600),
    ("Asia/Singapore", 8 * 3600),
    ("Asia/Taipei", 8 * 3600),
    ("Asia/Kolkata", 5 * 3600 + 1800),
];

/// The offset of a time zone googleemu knows.
pub fn zone_offset(zone: &str) -> Option<UtcOffset> {
    FIXED_ZONES.iter().find(|(name, _)| *name == zone).and_then(|(_, secs)| UtcOffset::from_whole_seconds(*secs).ok())
}

/// Parses an RFC 3339 time with its offset (Calendar requires one).
pub fn parse(value: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(value, &Rfc3339).ok()
}

const SECONDS: &[BorrowedFormatItem<'static>] = format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]");
const MILLIS: &[BorrowedFormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");
const RFC1123: &[BorrowedFormatItem<'static>] =
    format_description!("[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT");

/// `2026-11-26T09:00:00.000Z`: the `timeMin`/`timeMax` a freeBusy answer echoes, and `updated`.
pub fn utc_millis(t: OffsetDateTime) -> String {
    t.to_offset(UtcOffset::UTC).format(MILLIS).unwrap_or_default()
}

/// `2026-11-26T10:00:00Z`, or `2026-11-26T19:00:00+09:00` at another offset: busy intervals and
/// event times.
pub fn seconds_at(t: OffsetDateTime, offset: UtcOffset) -> String {
    let local = t.to_offset(offset);
    let head = local.format(SECONDS).unwrap_or_default();
    if offset == UtcOffset::UTC {
        return format!("{head}Z");
    }
    let (h, m, _) = offset.as_hms();
    let sign = if offset.is_negative() { '-' } else { '+' };
    format!("{head}{sign}{:02}:{:02}", h.unsigned_abs(), m.unsigned_abs())
}

/// `Tue, 19 Nov 2013 01:13:52 GMT`, as `X-Goog-Channel-Expiration` carries it.
pub fn rfc1123(t: OffsetDateTime) -> String {
    t.to_offset(UtcOffset::UTC).format(RFC1123).unwrap_or_default()
}

/// `2026-11-26`, an all-day event's `date`.
pub fn date(d: Date) -> String {
    d.to_string()
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    #[test]
    fn formats_as_google_does() {
        let t = datetime!(2013-11-19 01:13:52 UTC);
        assert_eq!(rfc1123(t), "Tue, 19 Nov 2013 01:13:52 GMT");
        assert_eq!(utc_millis(datetime!(2026-11-26 18:00:00 +09:00)), "2026-11-26T09:00:00.000Z");
        assert_eq!(seconds_at(t, UtcOffset::UTC), "2013-11-19T01:13:52Z");
        assert_eq!(seconds_at(t, zone_offset("Asia/Tokyo").unwrap()), "2013-11-19T10:13:52+09:00");
        assert_eq!(seconds_at(t, zone_offset("Asia/Kolkata").unwrap()), "2013-11-19T06:43:52+05:30");
        assert_eq!(date(t.date()), "2013-11-19");
    }

    #[test]
    fn parses_rfc3339_only_with_an_offset() {
        assert_eq!(parse("2026-11-26T09:00:00Z"), Some(datetime!(2026-11-26 09:00:00 UTC)));
        assert_eq!(parse("2026-11-26T18:00:00+09:00"), Some(datetime!(2026-11-26 09:00:00 UTC)));
        assert_eq!(parse("2026-11-26T09:00:00.250Z"), Some(datetime!(2026-11-26 09:00:00.25 UTC)));
        assert_eq!(parse("2026-11-26T09:00:00"), None);
        assert_eq!(parse("tomorrow"), None);
        assert!(zone_offset("America/New_York").is_none(), "zones with daylight saving are not known");
    }
}
