//! The presence engine: a member connects their account at a provider in a popup, and from then
//! on their avatar follows that account's presence in every space where the connection is ON.
//!
//! The engine knows providers only through [`Provider`] (`crate::providers` holds them, one
//! folder each). It owns everything that is the same for all of them:
//!
//! ```text
//!   connect ──→ tokens (sealed, refreshed one at a time) ──→ renewal (subscriptions on time)
//!      │                                                        ↑
//!   webhooks ─→ queue ─→ ingest (admit → verify → open or read) │ schedule: sweeps, wake-ups,
//!                             │                                 │ the reconciliation's claim
//!                             ↓                                 │
//!             apply (ordered, group commit) ←── reconcile, retry, toggles
//! ```
//!
//! - [`connect`]: `/integrations/{provider}/connect` and `…/callback` — the sign-in's state,
//!   nonce and PKCE verifier, the connection stored, subscribed, and its presence shown.
//! - [`tokens`]: access tokens refreshed ahead of their expiry, one refresh at a time per
//!   connection across instances; a refused sign-in marks the connection Needs reconnect.
//! - [`renewal`]: subscriptions renewed a sixth of their life ahead by a claimed sweep, spread
//!   by connection; made anew when the provider lost them.
//! - [`schedule`]: the one task that sweeps, wakes connections whose presence changes with the
//!   clock ([`Reading::next_change_at`]) and runs the periodic reconciliation (claimed).
//! - [`reconcile`]: every presence read again, a page at a time through
//!   [`Provider::read_many`], and lapsed subscriptions made anew.
//! - `retry`: presences read again after a notification failed for want of the provider or
//!   the database.
//! - [`apply`]: the one path that shows or clears a presence: ordered by the provider's key,
//!   one at a time per connection, written by group commit.
//! - [`ingest`]: what the webhook queue's workers do with each delivery.

pub mod apply;
mod commit;
pub mod connect;
mod error;
pub mod ingest;
mod provider;
pub mod reconcile;
pub mod renewal;
pub(crate) mod retry;
pub mod schedule;
pub mod tokens;

use std::{collections::HashMap, sync::Arc, time::Duration};

use kehai_store::ConnectionId;

pub use error::{Dropped, Error};
pub use provider::{
    CallbackParams, Content, Event, Inbound, Item, Observed, Outcome, Proven, Provider, ProviderError, Reading, SignIn,
    SignInSecrets, SignedIn, Subscribed, Tokens, Webhook, WebhookRefusal, WebhookRequest,
};

use crate::Config;

/// A provider kehai knows, and whether this server offers it (it is configured).
#[derive(Debug, Clone)]
pub struct Known {
    pub id: &'static str,
    pub name: &'static str,
    /// Where and how it posts notifications, if it does.
    pub webhook: Option<Webhook>,
    pub offered: Option<Arc<dyn Provider>>,
}

/// The engine's state: the providers, and what keeps their work in order within this process.
#[derive(Debug)]
pub struct Engine {
    known: Vec<Known>,
    /// How often every presence is read again.
    pub reconcile_every: Duration,
    /// One token refresh at a time per connection.
    pub(crate) refreshing: Gates,
    /// One presence applied at a time per connection (the order check and the avatars).
    pub(crate) applying: Gates,
    /// Presences applied at once are written in one transaction.
    pub(crate) presences: Arc<commit::GroupCommit>,
    /// Presences to read again, their notification having failed.
    pub(crate) rereads: retry::Rereads,
}

impl Engine {
    /// The engine for `known` providers (those offered are served).
    pub fn new(config: &Config, known: Vec<Known>) -> Engine {
        Engine {
            known,
            // At least a second, even from a configuration that was not validated.
            reconcile_every: Duration::from_secs(config.reconcile_seconds().max(1)),
            refreshing: Gates::default(),
            applying: Gates::default(),
            presences: Arc::new(commit::GroupCommit::new(commit::flushes_for(config.database().as_ref()))),
            rereads: retry::Rereads::default(),
        }
    }

    /// Every provider kehai knows, offered or not (a card each on the page).
    pub fn known(&self) -> &[Known] {
        &self.known
    }

    /// The offered providers.
    pub fn offered(&self) -> impl Iterator<Item = &Arc<dyn Provider>> {
        self.known.iter().filter_map(|k| k.offered.as_ref())
    }

    /// The offered provider `id`.
    pub fn provider(&self, id: &str) -> Option<&Arc<dyn Provider>> {
        self.offered().find(|p| p.id() == id)
    }

    /// The provider whose webhooks are `/webhooks/{segment}`, and its webhook.
    pub fn by_webhook(&self, segment: &str) -> Option<(&Known, Webhook)> {
        self.known.iter().find_map(|k| k.webhook.filter(|w| w.segment == segment).map(|w| (k, w)))
    }

    /// The shortest subscription life of the offered providers (claims last a share of it).
    pub fn shortest_subscription_ms(&self) -> Option<i64> {
        self.offered().map(|p| p.subscription_ms()).min()
    }
}

/// One async lock per connection, made on first use.
#[derive(Debug, Default)]
pub(crate) struct Gates(std::sync::Mutex<HashMap<ConnectionId, Arc<tokio::sync::Mutex<()>>>>);

impl Gates {
    /// Locks held by nobody are forgotten once this many exist.
    const KEEP: usize = 4096;

    /// The lock for `connection`.
    pub(crate) fn of(&self, connection: ConnectionId) -> Arc<tokio::sync::Mutex<()>> {
        let mut gates = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if gates.len() >= Self::KEEP {
            gates.retain(|_, gate| Arc::strong_count(gate) > 1);
        }
        Arc::clone(gates.entry(connection).or_default())
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    /// Every line of code (comments left out) of the engine's files.
    fn code_lines(dir: &Path) -> Vec<(String, String)> {
        let mut lines = Vec::new();
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                lines.extend(code_lines(&path));
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                let name = path.display().to_string();
                lines.extend(
                    text.lines().filter(|l| !l.trim_start().starts_with("//")).map(|l| (name.clone(), l.to_owned())),
                );
            }
        }
        lines
    }

    /// The engine knows providers only through `Provider`: not one of their crates or modules.
    #[test]
    fn the_engine_imports_no_provider() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/presence");
        let lines = code_lines(&dir);
        assert!(lines.len() > 500, "the engine's code was read ({} lines)", lines.len());
        // Spelled in pieces, so that this test does not find itself.
        let forbidden =
            [["kehai", "_microsoft"], ["providers", "::"], ["ms", "teams"], ["Gr", "aph"]].map(|p| p.concat());
        for (file, line) in lines {
            for name in &forbidden {
                assert!(!line.contains(name.as_str()), "{file} names {name}: {line}");
            }
        }
    }
}
