//! Microsoft Teams end to end against msemu, by job; the fixtures are in `support::microsoft`.

mod card;
mod connect;
mod healing;
mod notifications;
mod renewal;
mod tokens;
