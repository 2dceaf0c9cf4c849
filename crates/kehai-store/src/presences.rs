//! Presences: what an integration shows on a member's avatars. A presence and the ordering key
//! that made it win are written in one transaction, so that a crash between the two cannot make
//! the next reading of the same presence look stale; many are written at once by group commit
//! (the decisions are made in [`decide`], exactly as writing them one after the other would).

mod decide;

use std::collections::HashMap;

use async_trait::async_trait;
use kehai_core::{Avatar, Millis, PersonId, SpaceId};

use crate::{
    Applied, ConnectionId, ConnectionState, PresenceWrite, Result, StoreError,
    backend::{for_each_backend, uuid},
    rows::*,
};

/// Presences shown on avatars.
#[async_trait]
pub trait Presences: Send + Sync {
    /// Takes `provider`'s presence off the person's avatar in `space`, whatever was applied (a
    /// connection that can no longer be followed, or one turned OFF there); `None` when there is
    /// no such avatar or it shows no presence of `provider` (another provider's stays).
    async fn clear_presence(
        &self,
        space: SpaceId,
        person: PersonId,
        provider: &str,
        now: Millis,
    ) -> Result<Option<Avatar>>;
    /// Shows each write's presence (or with `None` removes it) on its member's avatar in every
    /// space where its connection is ON, and records its `sequence` as the last applied and its
    /// `next_check_at` — in one transaction, so that a crash leaves neither without the other — if
    /// the connection is still connected to the write's `external_user` and `sequence` is newer
    /// than the one recorded (byte order; equal too with `again`), so that a stale or duplicate
    /// notification never wins. Many writes go in one transaction — a group commit: under load,
    /// tens of notifications' presences cost one transaction of a few statements instead of a few
    /// statements each. The outcomes come in the writes' order, as applying them one after the
    /// other would give them (of several writes for one connection, only the newest is shown).
    async fn apply_presences(&self, writes: &[PresenceWrite], now: Millis) -> Result<Vec<Applied>>;
}

macro_rules! impl_presences {
    ($store:ty, $db:ty, $backend:literal, $migrator:expr, $lock:literal, $skip:literal) => {
        #[async_trait]
        impl Presences for $store {
            async fn clear_presence(
                &self,
                space: SpaceId,
                person: PersonId,
                provider: &str,
                now: Millis,
            ) -> Result<Option<Avatar>> {
                sqlx::query_as::<_, AvatarRow>(concat!(
                    "UPDATE avatars SET presence_provider = NULL, presence_availability = NULL, \
                     presence_activity = NULL, presence_label = NULL, presence_emoji = NULL, presence_since = NULL, \
                     updated_at = $4 WHERE space_id = $1 AND person_id = $2 AND presence_provider = $3 RETURNING ",
                    avatar_columns!()
                ))
                .bind(space.0.to_string())
                .bind(person.0.to_string())
                .bind(provider)
                .bind(now)
                .fetch_optional(self.writer())
                .await?
                .map(Avatar::try_from)
                .transpose()
            }

            async fn apply_presences(&self, writes: &[PresenceWrite], now: Millis) -> Result<Vec<Applied>> {
                if writes.is_empty() {
                    return Ok(Vec::new());
                }
                let mut tx = self.write_tx().await?;
                // The connections, locked in id order (two instances' batches never wait on each
                // other in a circle).
                let mut read = sqlx::QueryBuilder::<$db>::new(
                    "SELECT id, account_id, last_sequence, state, external_user, next_check_at FROM connections WHERE id IN (",
                );
                let mut ids = read.separated(", ");
                for w in writes {
                    ids.push_bind(w.connection.0.to_string());
                }
                read.push(concat!(") ORDER BY id", $lock));
                let rows: Vec<(String, String, Option<String>, String, String, Option<i64>)> =
                    read.build_query_as().fetch_all(&mut *tx).await?;
                let mut current = HashMap::with_capacity(rows.len());
                for (id, account, last_sequence, state, external_user, next_check_at) in rows {
                    let id = ConnectionId(uuid(&id, "connection id")?);
                    let account = PersonId(uuid(&account, "account id")?);
                    let state = ConnectionState::parse(&state).ok_or(StoreError::Corrupt("connection state"))?;
                    current.insert(id, decide::Current { account, last_sequence, state, external_user, next_check_at });
                }
                let decided = decide::decide(writes, &current);
                if !decided.sequences.is_empty() {
                    let mut record = sqlx::QueryBuilder::<$db>::new(
                        "UPDATE connections SET last_sequence = v.column2 FROM (",
                    );
                    record.push_values(&decided.sequences, |mut row, (id, sequence)| {
                        row.push_bind(id.0.to_string()).push_bind(sequence.clone());
                    });
                    record.push(") AS v WHERE connections.id = v.column1");
                    record.build().execute(&mut *tx).await?;
                }
                let shown: Vec<(&PresenceWrite, PersonId)> = writes
                    .iter()
                    .zip(&decided.decisions)
                    .filter_map(|(w, d)| match d {
                        decide::Decision::Show(account) => Some((w, *account)),
                        _ => None,
                    })
                    .collect();
                // The next checks the shown writes ask for, where they differ from the recorded
                // ones (providers that never ask cost no statement).
                let checks: Vec<(ConnectionId, Option<Millis>)> = shown
                    .iter()
                    .filter(|(w, _)| current.get(&w.connection).is_some_and(|c| c.next_check_at != w.next_check_at))
                    .map(|(w, _)| (w.connection, w.next_check_at))
                    .collect();
                if !checks.is_empty() {
                    let mut record = sqlx::QueryBuilder::<$db>::new(
                        "UPDATE connections SET next_check_at = v.column2 FROM (",
                    );
                    record.push_values(&checks, |mut row, (id, at)| {
                        row.push_bind(id.0.to_string()).push_bind(*at);
                    });
                    record.push(") AS v WHERE connections.id = v.column1");
                    record.build().execute(&mut *tx).await?;
                }
                let mut avatars: HashMap<PersonId, Vec<Avatar>> = HashMap::new();
                if !shown.is_empty() {
                    // Each shown presence on its account's avatars in the spaces where its
                    // connection is ON.
                    let mut show = sqlx::QueryBuilder::<$db>::new(
                        "UPDATE avatars SET presence_provider = v.column3, presence_availability = v.column4, \
                         presence_activity = v.column5, presence_label = v.column6, presence_emoji = v.column7, \
                         presence_since = v.column8, updated_at = ",
                    );
                    show.push_bind(now).push(" FROM (");
                    show.push_values(&shown, |mut row, (w, account)| {
                        let p = w.presence.as_ref();
                        row.push_bind(w.connection.0.to_string())
                            .push_bind(account.0.to_string())
                            .push_bind(p.map(|p| p.provider.clone()))
                            .push_bind(p.map(|p| p.availability.clone()))
                            .push_bind(p.map(|p| p.activity.clone()))
                            .push_bind(p.map(|p| p.label.clone()))
                            .push_bind(p.map(|p| p.emoji.as_str().to_owned()))
                            .push_bind(p.map(|p| p.since));
                    });
                    show.push(concat!(
                        ") AS v WHERE avatars.person_id = v.column2 AND avatars.space_id IN \
                         (SELECT space_id FROM connection_spaces WHERE connection_id = v.column1 AND enabled) \
                         RETURNING ",
                        avatar_columns!()
                    ));
                    for row in show.build_query_as::<AvatarRow>().fetch_all(&mut *tx).await? {
                        let avatar = Avatar::try_from(row)?;
                        avatars.entry(avatar.person_id).or_default().push(avatar);
                    }
                }
                tx.commit().await?;
                Ok(decided
                    .decisions
                    .into_iter()
                    .map(|d| match d {
                        decide::Decision::Show(account) => {
                            let mut shown = avatars.remove(&account).unwrap_or_default();
                            shown.sort_by_key(|a| a.space_id.0);
                            Applied::Shown(shown)
                        }
                        decide::Decision::Stale => Applied::Stale,
                        decide::Decision::NotConnected => Applied::NotConnected,
                    })
                    .collect())
            }
        }
    };
}
for_each_backend!(impl_presences);
