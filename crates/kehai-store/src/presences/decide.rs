//! Which presences of a group commit are shown ([`Presences::apply_presences`](crate::Presences::apply_presences)).
//!
//! Many notifications' presences are written in one transaction: the connections are read (and
//! locked) at once, this module decides each write's outcome from what was read, and the shown
//! ones are written with one statement per table. A write is shown when its connection is still
//! connected to the same account at the provider and its sequence number is newer (byte order; equal too
//! with `again`) than the one recorded — or than the one another write for the same connection
//! earlier in the batch would record: of several writes for one connection only the newest can
//! be the one that stays, and the others are stale.

use std::collections::HashMap;

use kehai_core::PersonId;

use crate::{ConnectionId, ConnectionState, PresenceWrite};

/// A connection as the group commit reads it.
#[derive(Debug, Clone)]
pub(crate) struct Current {
    pub account: PersonId,
    /// Whose presences the connection's writes are.
    pub provider: String,
    pub last_sequence: Option<String>,
    pub state: ConnectionState,
    pub external_user: String,
    /// When the connection is to be read again (not decided here: written with the shown write).
    pub next_check_at: Option<kehai_core::Millis>,
}

/// What the group commit does with one write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Decision {
    /// Written: its presence is shown on the account's avatars.
    Show(PersonId),
    Stale,
    NotConnected,
}

/// What a group commit writes: each write's decision, in order (those decided `Show` are for
/// different connections), and the sequence number to record per connection.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Decided {
    pub decisions: Vec<Decision>,
    pub sequences: HashMap<ConnectionId, String>,
}

/// Decides a batch exactly as applying its writes one after the other would.
pub(crate) fn decide(writes: &[PresenceWrite], current: &HashMap<ConnectionId, Current>) -> Decided {
    let mut decided = Decided { decisions: vec![Decision::NotConnected; writes.len()], sequences: HashMap::new() };
    // Per connection: the write shown so far in this batch.
    let mut shown: HashMap<ConnectionId, usize> = HashMap::new();
    for (i, write) in writes.iter().enumerate() {
        let Some(now) = current.get(&write.connection) else { continue };
        if now.state != ConnectionState::Connected || now.external_user != write.external_user {
            continue;
        }
        let last = decided.sequences.get(&write.connection).or(now.last_sequence.as_ref());
        if let Some(sequence) = &write.sequence {
            match last.map(|l| l.as_bytes().cmp(sequence.as_bytes())) {
                Some(std::cmp::Ordering::Greater) => {
                    decided.decisions[i] = Decision::Stale;
                    continue;
                }
                Some(std::cmp::Ordering::Equal) if !write.again => {
                    decided.decisions[i] = Decision::Stale;
                    continue;
                }
                _ => {}
            }
            decided.sequences.insert(write.connection, sequence.clone());
        }
        if let Some(j) = shown.insert(write.connection, i) {
            // Superseded in the same batch: it would have been shown for no time at all.
            decided.decisions[j] = Decision::Stale;
        }
        decided.decisions[i] = Decision::Show(now.account);
    }
    // Only what changes is written.
    decided.sequences.retain(|id, sequence| current.get(id).is_none_or(|c| c.last_sequence.as_ref() != Some(sequence)));
    decided
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// What applying `writes` one after the other leaves, in the simplest terms (each write
    /// checked against the state the previous ones left): the sequence recorded per
    /// connection, and the last write shown for each.
    type Left = (HashMap<ConnectionId, Option<String>>, HashMap<ConnectionId, usize>);

    fn one_after_the_other(writes: &[PresenceWrite], current: &HashMap<ConnectionId, Current>) -> Left {
        let mut last: HashMap<ConnectionId, Option<String>> =
            current.iter().map(|(id, c)| (*id, c.last_sequence.clone())).collect();
        let mut shown_by: HashMap<ConnectionId, usize> = HashMap::new();
        for (i, w) in writes.iter().enumerate() {
            let Some(c) = current.get(&w.connection) else { continue };
            let recorded = last.get(&w.connection).cloned().flatten();
            let newer = match (&recorded, &w.sequence) {
                (Some(l), Some(s)) => l.as_bytes() < s.as_bytes() || (l == s && w.again),
                _ => true,
            };
            if c.state != ConnectionState::Connected || c.external_user != w.external_user || !newer {
                continue;
            }
            if w.sequence.is_some() {
                last.insert(w.connection, w.sequence.clone());
            }
            shown_by.insert(w.connection, i);
        }
        (last, shown_by)
    }

    proptest! {
        /// A group commit decides as applying its writes one after the other would: the same
        /// sequence numbers end up recorded, and what ends up shown is the last write shown
        /// for each connection.
        #[test]
        fn a_batch_is_decided_as_its_writes_one_after_the_other(
            recorded in proptest::collection::vec(proptest::option::of(0u8..6), 3),
            writes in proptest::collection::vec((0usize..4, proptest::option::of(0u8..6), any::<bool>(), 0u8..4), 0..12),
        ) {
            let ids: Vec<ConnectionId> = (0..4).map(|_| ConnectionId::new()).collect();
            let seq = |n: u8| format!("C{n:03}");
            // Three connections (the fourth id is unknown), one of them needing a new sign-in.
            let current: HashMap<ConnectionId, Current> = recorded
                .iter()
                .enumerate()
                .map(|(i, last)| {
                    let state = if i == 2 { ConnectionState::NeedsReconnect } else { ConnectionState::Connected };
                    (ids[i], Current { account: PersonId::new(), provider: "msteams".into(), last_sequence: last.map(seq), state, external_user: "ms".into(), next_check_at: None })
                })
                .collect();
            let writes: Vec<PresenceWrite> = writes
                .iter()
                .map(|(c, s, again, user)| PresenceWrite {
                    connection: ids[*c],
                    external_user: if *user == 0 { "other".into() } else { "ms".into() },
                    sequence: s.map(seq),
                    again: *again,
                    presence: None,
                    next_check_at: None,
                })
                .collect();
            let decided = decide(&writes, &current);
            let (last, shown_by) = one_after_the_other(&writes, &current);
            // The same sequences recorded in the end.
            for (id, c) in &current {
                let expected = last.get(id).cloned().flatten();
                let after = decided.sequences.get(id).cloned().or(c.last_sequence.clone());
                prop_assert_eq!(after, expected);
            }
            // One write shown per connection at most (they are written with one statement)…
            let shows: Vec<ConnectionId> = decided
                .decisions
                .iter()
                .zip(&writes)
                .filter(|(d, _)| matches!(d, Decision::Show(_)))
                .map(|(_, w)| w.connection)
                .collect();
            let distinct: std::collections::HashSet<_> = shows.iter().collect();
            prop_assert_eq!(distinct.len(), shows.len());
            // …and it is the last one shown one after the other.
            let shown: HashMap<ConnectionId, usize> = decided
                .decisions
                .iter()
                .enumerate()
                .filter(|(_, d)| matches!(d, Decision::Show(_)))
                .map(|(i, _)| (writes[i].connection, i))
                .collect();
            prop_assert_eq!(shown, shown_by);
        }
    }

    fn write(connection: ConnectionId, user: &str, sequence: Option<&str>) -> PresenceWrite {
        PresenceWrite {
            connection,
            external_user: user.to_owned(),
            sequence: sequence.map(str::to_owned),
            again: false,
            presence: None,
            next_check_at: None,
        }
    }

    #[test]
    fn newer_is_shown_older_and_equal_are_stale_and_only_the_newest_of_a_batch_stays() {
        let (a, b, gone, other) = (ConnectionId::new(), ConnectionId::new(), ConnectionId::new(), ConnectionId::new());
        let (alice, bob) = (PersonId::new(), PersonId::new());
        let connected = |account, last: &str| Current {
            account,
            provider: "msteams".to_owned(),
            last_sequence: Some(last.to_owned()),
            state: ConnectionState::Connected,
            external_user: "ms-a".to_owned(),
            next_check_at: None,
        };
        let mut current = HashMap::from([(a, connected(alice, "C05")), (b, connected(bob, "C05"))]);
        current.insert(other, Current { state: ConnectionState::NeedsReconnect, ..connected(bob, "C01") });
        let writes = [
            write(a, "ms-a", Some("C06")),
            write(a, "ms-a", Some("C08")),
            write(a, "ms-a", Some("C07")),
            write(b, "ms-a", Some("C05")),
            write(b, "ms-a", Some("C04")),
            write(b, "ms-b", Some("C09")),
            write(gone, "ms-a", Some("C09")),
            write(other, "ms-a", Some("C09")),
            PresenceWrite { again: true, ..write(b, "ms-a", Some("C05")) },
        ];
        use Decision::*;
        let decided = decide(&writes, &current);
        assert_eq!(
            decided.decisions,
            [Stale, Show(alice), Stale, Stale, Stale, NotConnected, NotConnected, NotConnected, Show(bob)]
        );
        assert_eq!(decided.sequences, HashMap::from([(a, "C08".to_owned())]), "b's is C05 already");
        // Without a sequence a write always wins (the later of two), and the newest sequence
        // shown before it stays recorded, as one write after the other would leave it.
        let unsequenced = [write(a, "ms-a", None), write(a, "ms-a", Some("C09")), write(a, "ms-a", None)];
        let decided = decide(&unsequenced, &current);
        assert_eq!(decided.decisions, [Stale, Stale, Show(alice)]);
        assert_eq!(decided.sequences, HashMap::from([(a, "C09".to_owned())]));
    }
}
