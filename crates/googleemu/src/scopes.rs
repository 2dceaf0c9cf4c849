//! OAuth scopes: the names googleemu knows, Google's normalization of the OpenID Connect aliases
//! (`email` → `…/auth/userinfo.email`, `profile` → `…/auth/userinfo.profile`, and `openid` added
//! when either is asked for — googleapis/google-api-python-client PR #1088), the consent
//! screen's wording, and which Calendar method each scope opens (the `scopes` lists of the
//! Calendar v3 discovery document, revision 20261030, as bundled in google-api-python-client
//! 2.202.0).

use std::collections::BTreeSet;

pub const OPENID: &str = "openid";
pub const EMAIL: &str = "https://www.googleapis.com/auth/userinfo.email";
pub const PROFILE: &str = "https://www.googleapis.com/auth/userinfo.profile";
/// What precedes the short name of every Google API scope.
const PREFIX: &str = "https://www.googleapis.com/auth/";

/// The 18 Calendar scopes of the discovery document (short names after `…/auth/`).
pub const CALENDAR_SCOPES: &[&str] = &[
    "calendar",
    "calendar.acls",
    "calendar.acls.readonly",
    "calendar.app.created",
    "calendar.calendarlist",
    "calendar.calendarlist.readonly",
    "calendar.calendars",
    "calendar.calendars.readonly",
    "calendar.events",
    "calendar.events.freebusy",
    "calendar.events.owned",
    "calendar.events.owned.readonly",
    "calendar.events.public.readonly",
    "calendar.events.readonly",
    "calendar.freebusy",
    "calendar.readonly",
    "calendar.settings",
    "calendar.settings.readonly",
];

/// A set of granted scopes, normalized and sorted (the token endpoint's `scope` lists them in
/// this order, as in the response quoted by PR #1088).
pub type Scopes = BTreeSet<String>;

/// One scope as Google stores it: the aliases expanded. `None` for a scope Google does not know.
pub fn normalize(scope: &str) -> Option<String> {
    let full = match scope {
        "openid" => OPENID.to_owned(),
        "email" | EMAIL => EMAIL.to_owned(),
        "profile" | PROFILE => PROFILE.to_owned(),
        other => {
            let short = other.strip_prefix(PREFIX)?;
            CALENDAR_SCOPES.contains(&short).then(|| other.to_owned())?
        }
    };
    Some(full)
}

/// A space-delimited `scope` parameter, normalized; `Err` with the unknown ones.
pub fn parse(scope: &str) -> Result<Scopes, Vec<String>> {
    let mut known = Scopes::new();
    let mut unknown = Vec::new();
    for s in scope.split_whitespace() {
        match normalize(s) {
            Some(n) => {
                known.insert(n);
            }
            None => unknown.push(s.to_owned()),
        }
    }
    if !unknown.is_empty() {
        return Err(unknown);
    }
    // Google adds `openid` to a grant of `email` or `profile`.
    if known.contains(EMAIL) || known.contains(PROFILE) {
        known.insert(OPENID.to_owned());
    }
    Ok(known)
}

/// The `scope` value of a token response.
pub fn join(scopes: &Scopes) -> String {
    scopes.iter().map(String::as_str).collect::<Vec<_>>().join(" ")
}

/// Sign-in scopes, which Google's granular consent never lets a user untick.
pub fn is_basic(scope: &str) -> bool {
    matches!(scope, OPENID | EMAIL | PROFILE)
}

/// Only sign-in scopes: Google's 7-day lapse for testing clients spares such grants ("unless
/// the only OAuth scopes requested are a subset of name, email address, and user profile").
pub fn only_basic(scopes: &Scopes) -> bool {
    scopes.iter().all(|s| is_basic(s))
}

/// The consent screen's line for a scope (Google's wording where the discovery document gives
/// it).
pub fn describe(scope: &str) -> String {
    let text = match scope {
        OPENID => "Associate you with your personal info on Google",
        EMAIL => "See your primary Google Account email address",
        PROFILE => "See your personal info, including any personal info you've made publicly available",
        _ => match scope.strip_prefix(PREFIX).unwrap_or(scope) {
            "calendar" => {
                "See, edit, share, and permanently delete all the calendars you can access using Google Calendar"
            }
            "calendar.readonly" => "See and download any calendar you can access using your Google Calendar",
            "calendar.events" => "View and edit events on all your calendars",
            "calendar.events.readonly" => "View events on all your calendars",
            "calendar.events.owned" => "See, create, change, and delete events on Google calendars you own",
            "calendar.events.owned.readonly" => "See the events on Google calendars you own",
            "calendar.events.public.readonly" => "See the events on public calendars",
            "calendar.events.freebusy" => "See the availability on Google calendars you have access to",
            "calendar.freebusy" => "View your availability in your calendars",
            "calendar.app.created" => {
                "Make secondary Google calendars, and see, create, change, and delete events on them"
            }
            "calendar.settings.readonly" => "View your Calendar settings",
            "calendar.settings" => "View and edit your Calendar settings",
            other => return format!("Use {other} in Google Calendar"),
        },
    };
    text.to_owned()
}

/// A Calendar v3 method googleemu serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    FreebusyQuery,
    EventsList,
    EventsGet,
    EventsWatch,
    ChannelsStop,
}

impl Method {
    /// The discovery document's method id, as the control API and faults name it.
    pub fn id(self) -> &'static str {
        match self {
            Method::FreebusyQuery => "calendar.freebusy.query",
            Method::EventsList => "calendar.events.list",
            Method::EventsGet => "calendar.events.get",
            Method::EventsWatch => "calendar.events.watch",
            Method::ChannelsStop => "calendar.channels.stop",
        }
    }

    /// The name Google's 403 `ErrorInfo.metadata.method` uses.
    pub fn rpc_name(self) -> &'static str {
        match self {
            Method::FreebusyQuery => "calendar.v3.Freebusy.Query",
            Method::EventsList => "calendar.v3.Events.List",
            Method::EventsGet => "calendar.v3.Events.Get",
            Method::EventsWatch => "calendar.v3.Events.Watch",
            Method::ChannelsStop => "calendar.v3.Channels.Stop",
        }
    }

    /// The scopes the discovery document lists for the method (short names).
    fn scopes(self) -> &'static [&'static str] {
        const EVENTS_READ: &[&str] = &[
            "calendar",
            "calendar.app.created",
            "calendar.events",
            "calendar.events.freebusy",
            "calendar.events.owned",
            "calendar.events.owned.readonly",
            "calendar.events.public.readonly",
            "calendar.events.readonly",
            "calendar.readonly",
        ];
        match self {
            Method::FreebusyQuery => {
                &["calendar", "calendar.events.freebusy", "calendar.freebusy", "calendar.readonly"]
            }
            Method::EventsList | Method::EventsGet | Method::EventsWatch => EVENTS_READ,
            Method::ChannelsStop => &[
                "calendar",
                "calendar.acls",
                "calendar.acls.readonly",
                "calendar.app.created",
                "calendar.calendarlist",
                "calendar.calendarlist.readonly",
                "calendar.events",
                "calendar.events.freebusy",
                "calendar.events.owned",
                "calendar.events.owned.readonly",
                "calendar.events.public.readonly",
                "calendar.events.readonly",
                "calendar.readonly",
                "calendar.settings",
                "calendar.settings.readonly",
            ],
        }
    }

    /// Whether a token with `granted` may call the method.
    pub fn allowed(self, granted: &Scopes) -> bool {
        self.scopes().iter().any(|s| granted.contains(&format!("{PREFIX}{s}")))
    }
}

/// Whether `granted` reaches events only at free/busy level: `calendar.events.freebusy` is the
/// one scope among them that opens `events.list`.
pub fn events_at_freebusy_level(granted: &Scopes) -> bool {
    let opening: Vec<&String> =
        granted.iter().filter(|s| Method::EventsList.allowed(&std::iter::once((*s).clone()).collect())).collect();
    opening.len() == 1 && opening[0].ends_with("/calendar.events.freebusy")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(scopes: &str) -> Scopes {
        parse(scopes).unwrap()
    }

    #[test]
    fn aliases_expand_and_openid_is_added() {
        let s = set("email https://www.googleapis.com/auth/calendar.events.freebusy");
        assert_eq!(
            join(&s),
            "https://www.googleapis.com/auth/calendar.events.freebusy https://www.googleapis.com/auth/userinfo.email openid"
        );
        assert_eq!(join(&set("email profile")), format!("{EMAIL} {PROFILE} openid"));
        assert_eq!(parse("openid calendar").unwrap_err(), vec!["calendar".to_owned()]);
        assert!(parse("https://www.googleapis.com/auth/drive").is_err());
    }

    #[test]
    fn the_method_matrix_follows_the_discovery_document() {
        let freebusy = set("https://www.googleapis.com/auth/calendar.freebusy");
        assert!(Method::FreebusyQuery.allowed(&freebusy));
        for m in [Method::EventsList, Method::EventsWatch, Method::ChannelsStop] {
            assert!(!m.allowed(&freebusy), "{m:?}");
        }
        let events_freebusy = set("openid https://www.googleapis.com/auth/calendar.events.freebusy");
        for m in
            [Method::FreebusyQuery, Method::EventsList, Method::EventsGet, Method::EventsWatch, Method::ChannelsStop]
        {
            assert!(m.allowed(&events_freebusy), "{m:?}");
        }
        let events = set("https://www.googleapis.com/auth/calendar.events");
        assert!(!Method::FreebusyQuery.allowed(&events));
        assert!(Method::EventsWatch.allowed(&events));
        assert!(!Method::EventsList.allowed(&set("openid email")));
        assert!(Method::ChannelsStop.allowed(&set("https://www.googleapis.com/auth/calendar.settings.readonly")));
        assert!(Method::FreebusyQuery.allowed(&set("https://www.googleapis.com/auth/calendar")));
        assert!(!Method::FreebusyQuery.allowed(&set("https://www.googleapis.com/auth/calendar.settings")));
    }

    #[test]
    fn freebusy_level_means_no_broader_events_scope() {
        assert!(events_at_freebusy_level(&set("openid https://www.googleapis.com/auth/calendar.events.freebusy")));
        assert!(!events_at_freebusy_level(&set(
            "https://www.googleapis.com/auth/calendar.events.freebusy https://www.googleapis.com/auth/calendar.readonly"
        )));
        assert!(!events_at_freebusy_level(&set("https://www.googleapis.com/auth/calendar.freebusy")));
    }
}
