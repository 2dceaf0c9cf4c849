//! kehai's domain, free of I/O.
//!
//! A **space** is a virtual office. **Accounts** (email + password) are registered in spaces as
//! **members** (or admins) through a **membership**; **guests** join one space with a display
//! name only. Every person present in a space has an **avatar** there: a display name, the
//! person's *own* emoji and a separate *presence override* that an integration (Microsoft Teams)
//! fills. What a page shows is [`Avatar::displayed_emoji`]: the override while it lasts, else the
//! own emoji — the override never overwrites the person's choice.
//!
//! Every value that crosses a trust boundary has a validating constructor here
//! ([`SpaceSlug::parse`], [`Email::parse`], [`DisplayName::parse`], [`Emoji::parse`], …) whose
//! error carries a stable machine-readable code ([`Invalid::code`]) that the HTTP layer and the CLI
//! report as is.

mod account;
mod avatar;
mod invalid;
mod person;
pub mod presence;
mod space;

pub use account::{Account, Email, Membership, NewPassword, Role};
pub use avatar::{Avatar, DisplayName, Emoji, PresenceOverride};
pub use invalid::Invalid;
pub use person::{Guest, PersonId, PersonKind};
pub use space::{Space, SpaceId, SpaceName, SpaceSlug};

/// Milliseconds since the Unix epoch, UTC. Stored timestamps use this one representation so
/// that SQLite and PostgreSQL hold the same values and tests can inject a clock.
pub type Millis = i64;
