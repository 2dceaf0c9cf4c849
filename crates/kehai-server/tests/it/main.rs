//! kehai's server, tested over real HTTP on loopback against a real SQLite database.

#![allow(clippy::unwrap_used)]

mod auth;
mod avatars;
mod browser;
mod engine;
mod faults;
mod google;
mod guests;
mod hostile;
mod journey;
mod live;
mod migration;
mod ops;
mod pages;
mod support;
mod teams;
