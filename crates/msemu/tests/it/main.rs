//! msemu over real HTTP on loopback.

#![allow(clippy::unwrap_used)]

mod conformance;
mod identity;
mod support;
