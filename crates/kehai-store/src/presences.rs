//! Presences: what an integration shows on a member's avatars. A presence and the ordering key
//! that made it win are written in one transaction, so that a crash between the two cannot make
//! the next reading of the same presence look stale; many are written at once by group commit
//! (the decisions are made in [`decide`], exactly as writing them one after the other would).

mod decide;

use std::collections::{HashMap, HashSet};

use async_trait::async_trait;
use kehai_core::{Avatar, Millis, PersonId, PresenceOverride, SpaceId};

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
                let mut tx = self.write_tx().await?;
                Self::lock_avatars(&mut tx, &[(space, person)]).await?;
                let removed = sqlx::query(
                    "DELETE FROM avatar_presences WHERE space_id = $1 AND person_id = $2 AND provider = $3",
                )
                .bind(space.0.to_string())
                .bind(person.0.to_string())
                .bind(provider)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if removed == 0 {
                    return Ok(None);
                }
                let mut shown = Self::show_strongest(&mut tx, &[(space, person)], now).await?;
                tx.commit().await?;
                Ok(shown.pop())
            }

            async fn apply_presences(&self, writes: &[PresenceWrite], now: Millis) -> Result<Vec<Applied>> {
                if writes.is_empty() {
                    return Ok(Vec::new());
                }
                let mut tx = self.write_tx().await?;
                // The connections, locked in id order (two instances' batches never wait on each
                // other in a circle).
                let mut read = sqlx::QueryBuilder::<$db>::new(
                    "SELECT id, account_id, provider, last_sequence, state, external_user, next_check_at FROM connections \
                     WHERE id IN (",
                );
                let mut ids = read.separated(", ");
                for w in writes {
                    ids.push_bind(w.connection.0.to_string());
                }
                read.push(concat!(") ORDER BY id", $lock));
                let rows: Vec<(String, String, String, Option<String>, String, String, Option<i64>)> =
                    read.build_query_as().fetch_all(&mut *tx).await?;
                let mut current = HashMap::with_capacity(rows.len());
                for (id, account, provider, last_sequence, state, external_user, next_check_at) in rows {
                    let id = ConnectionId(uuid(&id, "connection id")?);
                    let account = PersonId(uuid(&account, "account id")?);
                    let state = ConnectionState::parse(&state).ok_or(StoreError::Corrupt("connection state"))?;
                    current.insert(
                        id,
                        decide::Current { account, provider, last_sequence, state, external_user, next_check_at },
                    );
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
                    // Each shown presence as its provider's on its account's avatars in the
                    // The avatars they are shown on, locked in one order (two batches writing one
                    // person's presences, a Teams one and a calendar one, must not each pick the
                    // strongest without the other's) …
                    let mut spaces = sqlx::QueryBuilder::<$db>::new(
                        "SELECT connection_id, space_id FROM connection_spaces WHERE enabled AND connection_id IN (",
                    );
                    let mut ids = spaces.separated(", ");
                    for (w, _) in &shown {
                        ids.push_bind(w.connection.0.to_string());
                    }
                    spaces.push(")");
                    let accounts: HashMap<String, PersonId> =
                        shown.iter().map(|(w, account)| (w.connection.0.to_string(), *account)).collect();
                    let mut targets = Vec::new();
                    for (connection, space) in spaces.build_query_as::<(String, String)>().fetch_all(&mut *tx).await? {
                        if let Some(account) = accounts.get(&connection) {
                            targets.push((SpaceId(uuid(&space, "space id")?), *account));
                        }
                    }
                    Self::lock_avatars(&mut tx, &targets).await?;
                    // … each shown presence as its provider's on its account's avatars in the
                    // spaces where its connection is ON (or, with none, that provider's taken
                    // off there) …
                    let provider = |w: &PresenceWrite| current.get(&w.connection).map(|c| c.provider.clone());
                    let (set, unset): (Vec<_>, Vec<_>) = shown.iter().partition(|(w, _)| w.presence.is_some());
                    if !set.is_empty() {
                        let mut upsert = sqlx::QueryBuilder::<$db>::new(
                            "INSERT INTO avatar_presences \
                             (space_id, person_id, provider, availability, activity, label, emoji, kind, since) \
                             SELECT a.space_id, a.person_id, v.column3, v.column4, v.column5, v.column6, v.column7, \
                             v.column8, v.column9 FROM (",
                        );
                        upsert.push_values(&set, |mut row, (w, account)| {
                            row.push_bind(w.connection.0.to_string())
                                .push_bind(account.0.to_string())
                                .push_bind(provider(w));
                            Self::bind_presence(&mut row, w.presence.as_ref());
                        });
                        // (`WHERE TRUE`: SQLite would read the upsert's ON as the join's.)
                        upsert.push(
                            ") AS v JOIN connection_spaces cs ON cs.connection_id = v.column1 AND cs.enabled \
                             JOIN avatars a ON a.space_id = cs.space_id AND a.person_id = v.column2 WHERE TRUE \
                             ON CONFLICT (space_id, person_id, provider) DO UPDATE SET \
                             availability = excluded.availability, activity = excluded.activity, \
                             label = excluded.label, emoji = excluded.emoji, kind = excluded.kind, \
                             since = CASE WHEN avatar_presences.kind = excluded.kind THEN avatar_presences.since \
                             ELSE excluded.since END",
                        );
                        upsert.build().execute(&mut *tx).await?;
                    }
                    if !unset.is_empty() {
                        let mut delete = sqlx::QueryBuilder::<$db>::new(
                            "DELETE FROM avatar_presences WHERE EXISTS (SELECT 1 FROM (",
                        );
                        delete.push_values(&unset, |mut row, (w, account)| {
                            row.push_bind(w.connection.0.to_string())
                                .push_bind(account.0.to_string())
                                .push_bind(provider(w));
                        });
                        delete.push(
                            ") AS v JOIN connection_spaces cs ON cs.connection_id = v.column1 AND cs.enabled \
                             WHERE avatar_presences.space_id = cs.space_id AND avatar_presences.person_id = v.column2 \
                             AND avatar_presences.provider = v.column3)",
                        );
                        delete.build().execute(&mut *tx).await?;
                    }
                    // … and on each of them the strongest presence it now has.
                    for avatar in Self::show_strongest(&mut tx, &targets, now).await? {
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

        impl $store {
            /// Locks these avatars' rows, in (space, person) order, until the transaction ends:
            /// what is shown on an avatar is decided from all its providers' presences, which
            /// two transactions must not read at once. (SQLite's writer runs alone already.)
            async fn lock_avatars(
                tx: &mut sqlx::Transaction<'static, $db>,
                targets: &[(SpaceId, PersonId)],
            ) -> Result<()> {
                if $lock.is_empty() || targets.is_empty() {
                    return Ok(());
                }
                let mut sorted: Vec<(String, String)> =
                    targets.iter().map(|(s, p)| (s.0.to_string(), p.0.to_string())).collect();
                sorted.sort_unstable();
                sorted.dedup();
                for chunk in sorted.chunks(STATEMENT_ROWS) {
                    let mut lock = sqlx::QueryBuilder::<$db>::new(
                        "SELECT avatars.space_id FROM avatars JOIN (",
                    );
                    lock.push_values(chunk, |mut row, (space, person)| {
                        row.push_bind(space.clone()).push_bind(person.clone());
                    });
                    lock.push(
                        ") AS v ON avatars.space_id = v.column1 AND avatars.person_id = v.column2 \
                         ORDER BY avatars.space_id, avatars.person_id FOR UPDATE OF avatars",
                    );
                    lock.build().fetch_all(&mut **tx).await?;
                }
                Ok(())
            }

            /// A presence's values after its provider in a row of `VALUES` (NULLs for none):
            /// availability, activity, label, emoji, kind, since.
            fn bind_presence(
                row: &mut sqlx::query_builder::Separated<'_, $db, &'static str>,
                p: Option<&PresenceOverride>,
            ) {
                row.push_bind(p.map(|p| p.availability.clone()))
                    .push_bind(p.map(|p| p.activity.clone()))
                    .push_bind(p.map(|p| p.label.clone()))
                    .push_bind(p.map(|p| p.emoji.as_str().to_owned()))
                    .push_bind(p.map(|p| p.kind.as_str()))
                    .push_bind(p.map(|p| p.since));
            }

            /// Shows on each of these avatars the strongest of its presences (`avatar_presences`),
            /// or none; the avatars as changed.
            async fn show_strongest(
                tx: &mut sqlx::Transaction<'static, $db>,
                targets: &[(SpaceId, PersonId)],
                now: Millis,
            ) -> Result<Vec<Avatar>> {
                if targets.is_empty() {
                    return Ok(Vec::new());
                }
                let wanted: HashSet<(SpaceId, PersonId)> = targets.iter().copied().collect();
                let people: HashSet<PersonId> = targets.iter().map(|(_, person)| *person).collect();
                let mut strongest: HashMap<(SpaceId, PersonId), PresenceOverride> = HashMap::new();
                for chunk in people.into_iter().collect::<Vec<_>>().chunks(STATEMENT_ROWS) {
                    let mut read = sqlx::QueryBuilder::<$db>::new(
                        "SELECT space_id, person_id, provider, availability, activity, label, emoji, kind, since \
                         FROM avatar_presences WHERE person_id IN (",
                    );
                    let mut ids = read.separated(", ");
                    for person in chunk {
                        ids.push_bind(person.0.to_string());
                    }
                    read.push(")");
                    for row in read.build_query_as::<AvatarPresenceRow>().fetch_all(&mut **tx).await? {
                        let (avatar, presence) = row.parse()?;
                        if !wanted.contains(&avatar) {
                            continue;
                        }
                        match strongest.get(&avatar) {
                            Some(shown) if !presence.precedes(shown) => {}
                            _ => {
                                strongest.insert(avatar, presence);
                            }
                        }
                    }
                }
                let mut changed = Vec::with_capacity(targets.len());
                let mut ordered: Vec<(SpaceId, PersonId)> = wanted.into_iter().collect();
                ordered.sort_unstable_by_key(|(space, person)| (space.0, person.0));
                for chunk in ordered.chunks(STATEMENT_ROWS) {
                    let mut show = sqlx::QueryBuilder::<$db>::new(
                        "UPDATE avatars SET presence_provider = v.column3, presence_availability = v.column4, \
                         presence_activity = v.column5, presence_label = v.column6, presence_emoji = v.column7, \
                         presence_kind = v.column8, presence_since = v.column9, updated_at = ",
                    );
                    show.push_bind(now).push(" FROM (");
                    show.push_values(chunk, |mut row, avatar| {
                        let p = strongest.get(avatar);
                        row.push_bind(avatar.0.0.to_string())
                            .push_bind(avatar.1.0.to_string())
                            .push_bind(p.map(|p| p.provider.clone()));
                        Self::bind_presence(&mut row, p);
                    });
                    show.push(concat!(
                        ") AS v WHERE avatars.space_id = v.column1 AND avatars.person_id = v.column2 RETURNING ",
                        avatar_columns!()
                    ));
                    for row in show.build_query_as::<AvatarRow>().fetch_all(&mut **tx).await? {
                        changed.push(Avatar::try_from(row)?);
                    }
                }
                Ok(changed)
            }
        }
    };
}
for_each_backend!(impl_presences);

/// Rows per statement where one is written per avatar (a member may be in many spaces): nine
/// parameters each stay far below SQLite's limit of 32,766.
const STATEMENT_ROWS: usize = 1_000;
