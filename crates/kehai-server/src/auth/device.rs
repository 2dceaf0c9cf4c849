//! The device cookie: a browser that logged into an account keeps kehai's signature of that
//! account's email, its password hash as it was then, and the time, for a year (`kehai_device`,
//! `__Host-` over https). The login's per-email lock ([`super::limiter`]) does not hold such a
//! browser back, so failing a victim's password on purpose cannot keep them out of their own
//! account on their own browser. A new password voids every device cookie of the account; a
//! device cookie that fails the password as often as the email may is held back like any other
//! browser (a copied cookie buys a botnet no more guesses). The cookie names no account (only
//! the email the person types opens it) and grants nothing else: it is no session.

use axum::http::{HeaderMap, HeaderValue};
use kehai_core::Email;

use super::cookies;
use crate::state::AppState;

pub const COOKIE: &str = "kehai_device";
/// How long a browser stays known after its last login.
const TTL_SECS: i64 = 365 * 24 * 3600;
const PURPOSE: &str = "device";

/// A browser known to an account: its cookie's signature, by which its failures are counted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device(pub String);

/// The `Set-Cookie` value that makes this browser known for `email`'s account, whose password
/// hash is `password_hash`.
pub fn cookie_for(state: &AppState, email: &Email, password_hash: &str) -> HeaderValue {
    let issued = (state.clock.now() / 1000).to_string();
    let tag = state.signer.sign(PURPOSE, &[email.normalized().as_bytes(), password_hash.as_bytes(), issued.as_bytes()]);
    let secure = state.config.secure_cookies();
    cookies::set(&cookies::name(COOKIE, secure), &format!("{issued}.{tag}"), Some(TTL_SECS), secure)
}

/// This browser, if it logged into `email`'s account within the last year, with the password
/// whose hash is `password_hash`.
pub fn known(state: &AppState, headers: &HeaderMap, email: &Email, password_hash: &str) -> Option<Device> {
    let value = cookies::get(headers, &cookies::name(COOKIE, state.config.secure_cookies()))?;
    let (issued, tag) = value.split_once('.')?;
    let at = issued.parse::<i64>().ok()?;
    let now = state.clock.now() / 1000;
    let email = email.normalized();
    let parts = [email.as_bytes(), password_hash.as_bytes(), issued.as_bytes()];
    ((now - TTL_SECS..=now + 60).contains(&at) && state.signer.verify(PURPOSE, &parts, tag))
        .then(|| Device(tag.to_owned()))
}
