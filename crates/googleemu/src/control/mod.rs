//! googleemu's control surface: what a test or a demo visitor does to the emulated Google. The
//! same operations ([`actions`], methods of [`crate::Emulator`]) serve the JSON API
//! (`/_emu/api/…`, [`api`]) and the page (`/_emu/`, [`page`]).

pub mod actions;
pub mod api;
pub mod page;

use std::sync::Arc;

use crate::Emulator;

pub fn router() -> axum::Router<Arc<Emulator>> {
    api::router().merge(page::router())
}
