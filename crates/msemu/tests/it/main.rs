//! msemu over real HTTP on loopback.

#![allow(clippy::unwrap_used)]

mod identity;
mod support;
