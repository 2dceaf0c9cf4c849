//! What kehai's clients of presence providers (`kehai-microsoft`, `kehai-google`) share, so that
//! each holds only its provider's protocol: one configuration of the outbound HTTP client
//! ([`client`]: a timeout, no redirects), how calls are retried ([`retry`]), the transport the
//! `oauth2` crate sends token requests through ([`for_oauth`]), what a sign-in starts and ends
//! with ([`AuthorizationRequest`], [`Tokens`]), and an identity provider's signing keys, fetched
//! and cached ([`KeySet`]).

mod http;
mod keys;
pub mod retry;
mod tokens;

pub use http::{TIMEOUT, TransportError, client, for_oauth};
pub use keys::{KeyError, KeySet};
pub use tokens::{AuthorizationRequest, IdTokenField, OidcClient, TokenFailure, TokenResult, Tokens, tokens};
