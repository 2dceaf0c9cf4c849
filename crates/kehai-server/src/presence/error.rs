//! What goes wrong in the engine, in the terms its callers act on; and why a notification was
//! not applied.

use kehai_store::StoreError;

use super::ProviderError;

/// Why the engine could not do something for a connection.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Not now (another instance is at it, the provider is slow): try again later.
    #[error("unavailable: {0}")]
    Unavailable(&'static str),
    /// The provider refused the sign-in for good (or a token does not open): the member must
    /// connect again. The connection is marked so.
    #[error("the provider no longer accepts the sign-in")]
    NeedsReconnect,
    /// The connection was removed, replaced or reconnected meanwhile: nothing left to do.
    #[error("the connection was removed or changed meanwhile")]
    Gone,
    /// A presence read to be shown was not (the database failed, the connection changed).
    #[error("the presence was not shown: {}", .0.reason())]
    NotShown(Dropped),
    #[error(transparent)]
    Provider(#[from] ProviderError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Why a notification was not applied (logged, and counted in `kehai_notifications_dropped`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dropped {
    /// No connection has this subscription (or the presence is someone else's).
    UnknownSubscription,
    /// The secret does not match the subscription's (Graph's clientState).
    ClientState,
    /// The delivery's proof does not hold (Graph's validation tokens).
    ValidationToken,
    /// The content does not open: its signature, its key or its decryption failed.
    Decryption,
    /// Not newer than the presence already applied (a duplicate or a late re-delivery).
    Stale,
    /// The connection needs a new sign-in (or is in error): nothing is shown until it is fixed.
    NotConnected,
    /// kehai's database or the provider could not be reached.
    Unavailable,
}

impl Dropped {
    /// The stable name used as the metric's `reason` label.
    pub fn reason(self) -> &'static str {
        match self {
            Dropped::UnknownSubscription => "unknown_subscription",
            Dropped::ClientState => "client_state",
            Dropped::ValidationToken => "validation_token",
            Dropped::Decryption => "decryption",
            Dropped::Stale => "stale",
            Dropped::NotConnected => "not_connected",
            Dropped::Unavailable => "unavailable",
        }
    }
}
