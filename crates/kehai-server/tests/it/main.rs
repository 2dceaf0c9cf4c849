//! kehai's server, tested over real HTTP on loopback against a real SQLite database.

mod auth;
mod avatars;
mod live;
mod ops;
mod pages;
mod support;
