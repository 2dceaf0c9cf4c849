//! The avatar as the API, the event stream and the page script see it.

use kehai_core::{Avatar, PersonKind};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// One avatar in a space.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AvatarView {
    /// The person's id (an account id for members, a guest id for guests).
    #[schema(format = "uuid")]
    pub person_id: String,
    pub display_name: String,
    /// `member` or `guest`.
    #[schema(value_type = String, pattern = "^(member|guest)$")]
    pub kind: String,
    /// Whether the person has the space page open right now.
    pub here: bool,
    /// What to show: the presence override's emoji if any, else the own emoji.
    pub emoji: Option<String>,
    /// The emoji the person chose.
    pub own_emoji: Option<String>,
    /// Set by an integration (Microsoft Teams, Google Calendar) while it applies: the strongest
    /// of the person's presences.
    pub presence: Option<PresenceView>,
}

/// A presence override as shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PresenceView {
    /// e.g. `msteams`.
    pub provider: String,
    pub availability: String,
    pub activity: String,
    /// Tooltip and accessible text, e.g. "Microsoft Teams: 取り込み中 / Busy".
    pub label: String,
    pub emoji: String,
    /// What it means, which decides which provider's presence an avatar shows when it has
    /// several: `presenting`, `in_a_call`, `in_a_meeting`, `do_not_disturb`, `busy`,
    /// `out_of_office`, `be_right_back` or `away` (strongest first).
    #[schema(value_type = String)]
    pub kind: String,
    /// When this kind of presence began (milliseconds since the Unix epoch).
    pub since: i64,
}

impl AvatarView {
    pub fn new(avatar: &Avatar, here: bool) -> Self {
        AvatarView {
            person_id: avatar.person_id.to_string(),
            display_name: avatar.display_name.as_str().to_owned(),
            kind: avatar.kind.as_str().to_owned(),
            here,
            emoji: avatar.displayed_emoji().map(|e| e.as_str().to_owned()),
            own_emoji: avatar.own_emoji.as_ref().map(|e| e.as_str().to_owned()),
            presence: avatar.presence.as_ref().map(|p| PresenceView {
                provider: p.provider.clone(),
                availability: p.availability.clone(),
                activity: p.activity.clone(),
                label: p.label.clone(),
                emoji: p.emoji.as_str().to_owned(),
                kind: p.kind.as_str().to_owned(),
                since: p.since,
            }),
        }
    }

    /// Whether this avatar belongs on the page: members always (dimmed when away), guests only
    /// while here.
    pub fn visible(avatar: &Avatar, here: bool) -> bool {
        avatar.kind == PersonKind::Member || here
    }
}
