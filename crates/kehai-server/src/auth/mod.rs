//! Who is asking: sessions, CSRF tokens, passwords and login rate limits.
//!
//! A session cookie holds 32 random bytes; the database holds only their SHA-256, so a copy of
//! the database opens no session. The CSRF token is derived from the session cookie
//! ([`csrf::token_for`]), so it changes with every login and needs no storage; before login, a
//! separate `kehai_csrf` cookie seeds it, the token signed by kehai ([`csrf::pre_session_token`]).
//! Over https both cookies carry the `__Host-` prefix ([`cookies::name`]).

pub mod cookies;
pub mod csrf;
pub mod device;
pub mod limiter;
pub mod password;
pub mod session;

pub use session::{CsrfChecked, SessionCookie, Visitor};
