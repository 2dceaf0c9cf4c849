//! Plain records the store reads and writes beside the domain types.

mod connection;

pub use connection::{
    Connection, ConnectionId, ConnectionState, EncryptionCertificate, OAuthState, Sealed, SubscriptionRecord,
    TokenUpdate,
};

use kehai_core::{Account, Avatar, DisplayName, Emoji, Millis, PersonId, PersonKind, Role, SpaceId};

/// A member of a space as `kehai member list` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub account: Account,
    pub role: Role,
    pub display_name: DisplayName,
}

/// What a person changes on their avatar: `None` leaves a field as it is;
/// `own_emoji: Some(None)` clears the emoji.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AvatarChange {
    pub display_name: Option<DisplayName>,
    pub own_emoji: Option<Option<Emoji>>,
}

/// A login (member) or a guest's stay. Only the SHA-256 of the cookie value is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub id_hash: String,
    pub person_id: PersonId,
    pub kind: PersonKind,
    /// The guest's space; `None` for members, whose memberships say where they may go.
    pub space_id: Option<SpaceId>,
    pub created_at: Millis,
    pub expires_at: Millis,
}

impl Session {
    /// The guest's space and id, for a guest's session.
    pub fn guest(&self) -> Option<(SpaceId, PersonId)> {
        match (self.kind, self.space_id) {
            (PersonKind::Guest, Some(space)) => Some((space, self.person_id)),
            _ => None,
        }
    }
}

/// Who claims a piece of work and until when. Claims lapse by themselves: an instance that dies
/// holds nothing for longer than `until`, and another instance takes the work over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Claim<'a> {
    /// The claiming instance's id.
    pub holder: &'a str,
    pub now: Millis,
    pub until: Millis,
}

/// A presence to show on a connection's avatars ([`Presences::apply_presences`](crate::Presences::apply_presences)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresenceWrite {
    pub connection: crate::ConnectionId,
    /// The account at the provider the presence is of: the connection must still be connected to
    /// it.
    pub external_user: String,
    /// The provider's ordering key (Graph's `sequenceNumber`), when it has one.
    pub sequence: Option<String>,
    /// Shown again even if its sequence is the one recorded (a space turning the connection ON).
    pub again: bool,
    /// `None` takes the presence off the avatars.
    pub presence: Option<kehai_core::PresenceOverride>,
    /// When shown: when to read the presence again without a notification (recorded on the
    /// connection; `None` clears it).
    pub next_check_at: Option<kehai_core::Millis>,
}

/// What applying a presence did ([`Presences::apply_presences`](crate::Presences::apply_presences)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// Shown: the avatars as changed, one per space where the connection is ON.
    Shown(Vec<Avatar>),
    /// Not newer than the presence applied already: nothing changed.
    Stale,
    /// The connection is gone, not connected, or now for another account at the provider.
    NotConnected,
}
