//! Avatars: how each person appears in a space. What the person chooses (name, own emoji) is
//! written here; the presence an integration shows is written through [`crate::Presences`].

use async_trait::async_trait;
use kehai_core::{Avatar, Millis, PersonId, SpaceId};

use crate::{AvatarChange, Result, backend::for_each_backend, rows::*};

/// Reading avatars and changing what their person chose.
#[async_trait]
pub trait Avatars: Send + Sync {
    async fn avatar(&self, space: SpaceId, person: PersonId) -> Result<Option<Avatar>>;
    /// All avatars of a space, ordered by display name.
    async fn avatars(&self, space: SpaceId) -> Result<Vec<Avatar>>;
    /// Changes what the person chose (name, own emoji); `None` if there is no such avatar.
    async fn update_avatar(
        &self,
        space: SpaceId,
        person: PersonId,
        change: &AvatarChange,
        now: Millis,
    ) -> Result<Option<Avatar>>;
}

macro_rules! impl_avatars {
    ($store:ty, $db:ty, $backend:literal, $migrator:expr, $lock:literal, $skip:literal) => {
        #[async_trait]
        impl Avatars for $store {
            async fn avatar(&self, space: SpaceId, person: PersonId) -> Result<Option<Avatar>> {
                sqlx::query_as::<_, AvatarRow>(concat!(
                    "SELECT ",
                    avatar_columns!(),
                    " FROM avatars WHERE space_id = $1 AND person_id = $2"
                ))
                .bind(space.0.to_string())
                .bind(person.0.to_string())
                .fetch_optional(self.reader())
                .await?
                .map(Avatar::try_from)
                .transpose()
            }

            async fn avatars(&self, space: SpaceId) -> Result<Vec<Avatar>> {
                sqlx::query_as::<_, AvatarRow>(concat!(
                    "SELECT ",
                    avatar_columns!(),
                    " FROM avatars WHERE space_id = $1"
                ))
                .bind(space.0.to_string())
                .fetch_all(self.reader())
                .await?
                .into_iter()
                .map(Avatar::try_from)
                .collect::<Result<Vec<_>>>()
                .map(|mut avatars| {
                    // Sorted here, not in SQL: the engines' collations differ.
                    avatars.sort_by_cached_key(|a| (a.display_name.sort_key(), a.person_id));
                    avatars
                })
            }

            async fn update_avatar(
                &self,
                space: SpaceId,
                person: PersonId,
                change: &AvatarChange,
                now: Millis,
            ) -> Result<Option<Avatar>> {
                let (set_emoji, new_emoji) = match &change.own_emoji {
                    None => (false, None),
                    Some(e) => (true, e.as_ref().map(|e| e.as_str().to_owned())),
                };
                sqlx::query_as::<_, AvatarRow>(concat!(
                    "UPDATE avatars SET display_name = COALESCE($3, display_name), \
                     own_emoji = CASE WHEN $4 THEN $5 ELSE own_emoji END, updated_at = $6 \
                     WHERE space_id = $1 AND person_id = $2 RETURNING ",
                    avatar_columns!(),
                    ""
                ))
                .bind(space.0.to_string())
                .bind(person.0.to_string())
                .bind(change.display_name.as_ref().map(|n| n.as_str().to_owned()))
                .bind(set_emoji)
                .bind(new_emoji)
                .bind(now)
                .fetch_optional(self.writer())
                .await?
                .map(Avatar::try_from)
                .transpose()
            }
        }
    };
}
for_each_backend!(impl_avatars);
