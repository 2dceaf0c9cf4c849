//! The device cookie: a browser that logged into an account keeps kehai's signature of that
//! account's email and the time, for a year (`kehai_device`, `__Host-` over https). The login's
//! per-email lock ([`super::limiter`]) does not hold such a browser back, so failing a victim's
//! password on purpose cannot keep them out of their own account on their own browser. The
//! cookie names no account (only the email the person types opens it) and grants nothing else.

use axum::http::{HeaderMap, HeaderValue};
use kehai_core::Email;

use super::cookies;
use crate::state::AppState;

pub const COOKIE: &str = "kehai_device";
/// How long a browser stays known after its last login.
const TTL_SECS: i64 = 365 * 24 * 3600;
const PURPOSE: &str = "device";

/// The `Set-Cookie` value that makes this browser known for `email`.
pub fn cookie_for(state: &AppState, email: &Email) -> HeaderValue {
    let issued = (state.clock.now() / 1000).to_string();
    let tag = state.signer.sign(PURPOSE, &[email.normalized().as_bytes(), issued.as_bytes()]);
    let secure = state.config.secure_cookies();
    cookies::set(&cookies::name(COOKIE, secure), &format!("{issued}.{tag}"), Some(TTL_SECS), secure)
}

/// Whether this browser logged into `email`'s account within the last year.
pub fn known(state: &AppState, headers: &HeaderMap, email: &Email) -> bool {
    let Some(value) = cookies::get(headers, &cookies::name(COOKIE, state.config.secure_cookies())) else {
        return false;
    };
    let Some((issued, tag)) = value.split_once('.') else { return false };
    let Ok(at) = issued.parse::<i64>() else { return false };
    let now = state.clock.now() / 1000;
    (now - TTL_SECS..=now + 60).contains(&at)
        && state.signer.verify(PURPOSE, &[email.normalized().as_bytes(), issued.as_bytes()], tag)
}
