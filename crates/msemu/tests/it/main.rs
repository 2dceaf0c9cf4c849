//! msemu over real HTTP on loopback.

#![allow(clippy::unwrap_used)]

mod binary;
mod conformance;
mod control;
mod fidelity;
mod graph;
mod identity;
mod rich;
mod support;
mod webhook;
