//! Who is asking: sessions, CSRF tokens, passwords and login rate limits.
//!
//! A session cookie holds 32 random bytes; the database holds only their SHA-256, so a copy of
//! the database opens no session. The CSRF token is derived from the session cookie
//! ([`csrf::token_for`]), so it changes with every login and needs no storage; before login, a
//! separate `kehai_csrf` cookie seeds it (double-submit).

pub mod cookies;
pub mod csrf;
pub mod limiter;
pub mod password;
pub mod session;

pub use session::{CsrfChecked, SessionCookie, Visitor};
