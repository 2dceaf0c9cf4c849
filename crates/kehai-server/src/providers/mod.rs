//! The presence providers kehai offers, one folder each; the engine (`crate::presence`) knows
//! them only through `presence::Provider`. A provider is offered when its settings are given.
//!
//! Adding one: a folder here implementing `Provider`, a line in [`known`], its strings in the
//! locales (`[{id}]`), and its settings in `Config`.

pub mod gcal;
pub mod msteams;

use std::sync::Arc;

use crate::{Config, clock::Clock, ops::Metrics, presence::Known};

/// Every provider kehai knows, offered or not, in the order their cards are shown.
pub fn known(config: &Config, metrics: &Arc<Metrics>, clock: &Arc<dyn Clock>) -> Vec<Known> {
    vec![
        Known {
            id: kehai_core::presence::msteams::ID,
            name: kehai_core::presence::msteams::NAME,
            webhook: Some(msteams::WEBHOOK),
            offered: msteams::Teams::from_config(config, metrics).map(|t| t as _),
        },
        Known {
            id: kehai_core::presence::gcal::ID,
            name: kehai_core::presence::gcal::NAME,
            webhook: Some(gcal::WEBHOOK),
            offered: gcal::GoogleCalendar::from_config(config, metrics, Arc::clone(clock)).map(|g| g as _),
        },
    ]
}
