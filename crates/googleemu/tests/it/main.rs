//! googleemu over real HTTP on loopback.

#![allow(clippy::unwrap_used)]

mod binary;
mod calendar;
mod conformance;
mod control;
mod discovery;
mod events;
mod freebusy;
mod hook;
mod oauth;
mod support;
mod tokens;
mod watch;
