//! The permissions kehai asks Google for, and reading what a person granted.
//!
//! kehai asks for `openid email` and `calendar.events.freebusy` only: the one Calendar scope
//! that allows free/busy *and* push channels (`calendar.freebusy` allows no channel, every
//! other one reaches event content). Google's consent screen lets a person untick a scope, and
//! its token response names granted scopes in its own spelling (`email` comes back as
//! `…/auth/userinfo.email`), so a grant is compared after normalising those aliases.

/// The calendar scope kehai needs.
pub const CALENDAR: &str = "https://www.googleapis.com/auth/calendar.events.freebusy";

/// Exactly what kehai asks for.
pub const REQUESTED: &[&str] = &["openid", "email", CALENDAR];

/// A scope in one spelling: Google's long names of the OpenID Connect scopes become the short ones.
fn normalise(scope: &str) -> &str {
    match scope {
        "https://www.googleapis.com/auth/userinfo.email" => "email",
        "https://www.googleapis.com/auth/userinfo.profile" => "profile",
        other => other,
    }
}

/// Whether the space-separated `granted` (a token response's `scope`) includes `wanted`.
pub fn granted(granted: &str, wanted: &str) -> bool {
    granted.split_ascii_whitespace().any(|s| normalise(s) == normalise(wanted))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grants_are_read_in_either_spelling() {
        let response = "openid https://www.googleapis.com/auth/userinfo.email https://www.googleapis.com/auth/calendar.events.freebusy";
        assert!(granted(response, "email"));
        assert!(granted(response, "openid"));
        assert!(granted(response, CALENDAR));
        assert!(granted("email", "https://www.googleapis.com/auth/userinfo.email"));
        let unticked = "openid https://www.googleapis.com/auth/userinfo.email";
        assert!(!granted(unticked, CALENDAR));
        assert!(!granted("https://www.googleapis.com/auth/calendar.freebusy", CALENDAR), "a narrower scope is not it");
        assert!(!granted("", "openid"));
    }
}
