//! The contract cases of connections: their presences, subscriptions, sign-ins in progress,
//! encryption certificates and claims.

use super::*;

pub(crate) fn connection(account: PersonId, ms_user: &str) -> Connection {
    Connection {
        id: ConnectionId::new(),
        account_id: account,
        provider: "msteams".into(),
        external_tenant: "6f1a9c2e-4b7d-4e8a-9c3f-2d5b8e7a1c40".into(),
        external_user: ms_user.into(),
        access_token: Sealed("v1.sealed-access".into()),
        access_expires_at: T0 + 3_600_000,
        access_refresh_at: T0 + 3_300_000,
        refresh_token: Some(Sealed("v1.sealed-refresh".into())),
        refresh_expires_at: Some(T0 + 90 * 86_400_000),
        subscription: None,
        state: ConnectionState::Connected,
        last_error: None,
        last_sequence: None,
        next_check_at: None,
        granted_scope: None,
        previous_subscription: None,
        connected_at: T0,
        updated_at: T0,
    }
}

pub async fn many_presences_apply_in_one_group_commit_as_one_after_the_other(store: &dyn Store) {
    let s = space(store, "office").await;
    let mut connections = Vec::new();
    for n in 0..3 {
        let m = member(store, &s, &format!("m{n}@example.com"), &format!("M{n}")).await;
        let c = connection(m.id, &format!("ms-user-{n}"));
        store.save_connection(&c).await.unwrap();
        store.set_connection_space(c.id, s.id, true).await.unwrap();
        connections.push((m, c));
    }
    let status = |e: &str| PresenceOverride {
        provider: "msteams".into(),
        availability: e.into(),
        activity: e.into(),
        label: e.into(),
        emoji: emoji(e),
        kind: Kind::Busy,
        since: T0,
    };
    let write = |n: usize, seq: &str, e: Option<&str>| PresenceWrite {
        connection: connections[n].1.id,
        external_user: format!("ms-user-{n}"),
        sequence: Some(seq.to_owned()),
        again: false,
        presence: e.map(status),
        next_check_at: None,
    };
    let emoji_of = |applied: &Applied| match applied {
        Applied::Shown(avatars) => {
            avatars.iter().map(|a| a.presence.as_ref().map(|p| p.emoji.as_str().to_owned())).collect()
        }
        other => vec![Some(format!("{other:?}"))],
    };
    let writes = [
        write(0, "C0002", Some("🔴")),
        write(1, "C0005", Some("⛔")),
        write(0, "C0003", Some("📅")),
        write(0, "C0001", Some("💤")),
        write(2, "C0001", None),
        PresenceWrite { external_user: "ms-user-9".into(), ..write(2, "C0009", Some("🔴")) },
    ];
    let applied = store.apply_presences(&writes, T0 + 1).await.unwrap();
    let shown: Vec<Vec<Option<String>>> = applied.iter().map(emoji_of).collect();
    let stale = vec![Some("Stale".to_owned())];
    assert_eq!(
        shown,
        [
            stale.clone(),
            vec![Some("⛔".to_owned())],
            vec![Some("📅".to_owned())],
            stale.clone(),
            vec![None],
            vec![Some("NotConnected".to_owned())],
        ],
        "in order; of one connection's writes only the newest is shown"
    );
    let stored: Vec<(Option<String>, Option<String>)> =
        futures::future::join_all(connections.iter().map(|(m, _)| async {
            let connection = store.connection_of(m.id, "msteams").await.unwrap().unwrap();
            let avatar = store.avatar(s.id, m.id).await.unwrap().unwrap();
            (connection.last_sequence, avatar.presence.map(|p| p.emoji.as_str().to_owned()))
        }))
        .await;
    assert_eq!(
        stored,
        [
            (Some("C0003".into()), Some("📅".into())),
            (Some("C0005".into()), Some("⛔".into())),
            (Some("C0001".into()), None)
        ]
    );
    // A later batch compares with what the earlier one recorded; an empty one does nothing.
    let again = store.apply_presences(&[write(0, "C0003", Some("🔴")), write(1, "C0006", Some("🔴"))], T0 + 2).await;
    assert_eq!(again.unwrap().iter().map(emoji_of).collect::<Vec<_>>(), [stale, vec![Some("🔴".to_owned())]]);
    assert!(store.apply_presences(&[], T0 + 3).await.unwrap().is_empty());
}

pub async fn presences_apply_in_sequence_order_with_their_sequence(store: &dyn Store) {
    let s = space(store, "office").await;
    let other = space(store, "annex").await;
    let a = member(store, &s, "a@example.com", "A").await;
    let annex = Membership { space_id: other.id, account_id: a.id, role: Role::Member };
    store.add_member(&annex, &name("A"), T0).await.unwrap();
    let c = connection(a.id, "ms-user-a");
    store.save_connection(&c).await.unwrap();
    store.set_connection_space(c.id, s.id, true).await.unwrap();
    store.set_connection_space(c.id, other.id, false).await.unwrap();
    let busy = busy();
    let apply = |seq: &'static str, again| apply_one(store, c.id, "ms-user-a", Some(seq), again, Some(&busy), T0 + 1);
    let Applied::Shown(shown) = apply("C0002", false).await.unwrap() else { panic!("newer") };
    assert_eq!(
        shown
            .iter()
            .map(|a| (a.space_id, a.presence.as_ref().map(|p| p.emoji.as_str().to_owned())))
            .collect::<Vec<_>>(),
        [(s.id, Some("🔴".to_owned()))],
        "ON spaces only"
    );
    assert_eq!(apply("C0002", false).await.unwrap(), Applied::Stale, "a duplicate");
    assert!(matches!(apply("C0002", true).await.unwrap(), Applied::Shown(_)), "shown again on purpose");
    assert_eq!(apply("C0001", true).await.unwrap(), Applied::Stale, "an older one");
    assert!(matches!(apply("C0010", false).await.unwrap(), Applied::Shown(_)));
    let other_user = apply_one(store, c.id, "ms-user-b", Some("C0011"), false, Some(&busy), T0 + 1);
    assert_eq!(other_user.await.unwrap(), Applied::NotConnected, "reconnected to another account");
    store.set_connection_state(c.id, ConnectionState::NeedsReconnect, None, T0 + 1).await.unwrap();
    assert_eq!(apply("C0011", false).await.unwrap(), Applied::NotConnected, "needs reconnect");
    store.set_connection_state(c.id, ConnectionState::Connected, None, T0 + 1).await.unwrap();
    assert_eq!(store.connection_of(a.id, "msteams").await.unwrap().unwrap().last_sequence.as_deref(), Some("C0010"));
    // Without a sequence (a presence taken off): always.
    let Applied::Shown(cleared) = apply_one(store, c.id, "ms-user-a", None, false, None, T0 + 2).await.unwrap() else {
        panic!("shown")
    };
    assert_eq!(cleared[0].presence, None);
    assert_eq!(store.connection_of(a.id, "msteams").await.unwrap().unwrap().last_sequence.as_deref(), Some("C0010"));
    store.delete_connection(c.id).await.unwrap();
    assert_eq!(apply("C0011", false).await.unwrap(), Applied::NotConnected, "gone");
}

pub async fn connections_are_saved_found_and_one_per_microsoft_account(store: &dyn Store) {
    let s = space(store, "office").await;
    let a = member(store, &s, "a@example.com", "A").await;
    let b = member(store, &s, "b@example.com", "B").await;
    let mut c = connection(a.id, "ms-user-a");
    store.save_connection(&c).await.unwrap();
    assert_eq!(store.connection_of(a.id, "msteams").await.unwrap(), Some(c.clone()));
    assert_eq!(store.connection(c.id).await.unwrap(), Some(c.clone()), "by id");
    assert_eq!(store.connection(ConnectionId::new()).await.unwrap(), None);
    // Updating keeps the row: new tokens, a subscription, a state.
    c.access_token = Sealed("v1.sealed-access-2".into());
    c.subscription = Some(SubscriptionRecord {
        id: "sub-1".into(),
        expires_at: T0 + 59 * 60_000,
        client_state: Sealed("v1.cs".into()),
        certificate_id: Some("cert-1".into()),
        resource: Some("watched-resource-1".into()),
    });
    c.granted_scope = Some("openid https://www.googleapis.com/auth/calendar.events.freebusy".into());
    c.state = ConnectionState::NeedsReconnect;
    c.last_error = Some("Microsoft refused the sign-in".into());
    c.updated_at = T0 + 1;
    store.save_connection(&c).await.unwrap();
    assert_eq!(store.connection_of(a.id, "msteams").await.unwrap(), Some(c.clone()));
    assert_eq!(store.connection_by_subscription("msteams", "sub-1").await.unwrap(), Some(c.clone()));
    assert_eq!(store.connection_by_subscription("msteams", "sub-2").await.unwrap(), None);
    // A renewal that moves the subscription (a new Google channel) moves its resource too.
    let moved = SubscriptionRecord {
        id: "sub-1b".into(),
        resource: Some("watched-resource-2".into()),
        ..c.subscription.clone().unwrap()
    };
    assert!(store.set_connection_subscription(c.id, Some("sub-1"), &moved, T0 + 2, None).await.unwrap());
    let found = store.connection(c.id).await.unwrap().unwrap();
    assert_eq!(found.subscription.as_ref(), Some(&moved));
    assert_eq!(found.granted_scope, c.granted_scope, "what was granted stays");
    assert!(
        store
            .set_connection_subscription(c.id, Some("sub-1b"), c.subscription.as_ref().unwrap(), T0 + 1, None)
            .await
            .unwrap()
    );
    // Many at once: the known ones, each once, of this provider only.
    let found = store.connections_by_subscriptions("msteams", &["sub-2", "sub-1", "x", "sub-1"]).await.unwrap();
    assert_eq!(found, vec![c.clone()]);
    assert!(store.connections_by_subscriptions("other", &["sub-1"]).await.unwrap().is_empty());
    assert!(store.connections_by_subscriptions("msteams", &[]).await.unwrap().is_empty());
    // The same Microsoft account cannot be connected by another member.
    let taken = connection(b.id, "ms-user-a");
    assert!(matches!(store.save_connection(&taken).await, Err(StoreError::Conflict("external account"))));
    store.delete_connection(c.id).await.unwrap();
    assert_eq!(store.connection_of(a.id, "msteams").await.unwrap(), None);
    store.save_connection(&taken).await.unwrap();
}

pub async fn connections_are_used_per_space_with_a_toggle(store: &dyn Store) {
    let one = space(store, "one").await;
    let two = space(store, "two").await;
    let a = member(store, &one, "a@example.com", "A").await;
    let c = connection(a.id, "ms-user-a");
    store.save_connection(&c).await.unwrap();
    store.set_connection_space(c.id, one.id, true).await.unwrap();
    store.set_connection_space(c.id, two.id, true).await.unwrap();
    store.set_connection_space(c.id, two.id, false).await.unwrap();
    let mut spaces = store.connection_spaces(c.id).await.unwrap();
    spaces.sort_by_key(|(s, _)| s.0);
    let mut expected = vec![(one.id, true), (two.id, false)];
    expected.sort_by_key(|(s, _)| s.0);
    assert_eq!(spaces, expected);
    assert_eq!(store.remove_connection_space(c.id, two.id).await.unwrap(), 1);
    assert_eq!(store.remove_connection_space(c.id, one.id).await.unwrap(), 0);
    assert!(matches!(store.set_connection_space(c.id, SpaceId::new(), true).await, Err(StoreError::NotFound(_))));
}

pub async fn sign_ins_in_progress_are_single_use_and_expire(store: &dyn Store) {
    let s = space(store, "office").await;
    let st = OAuthState {
        state_hash: "hash-1".into(),
        provider: "msteams".into(),
        session_hash: "session-1".into(),
        space_id: s.id,
        nonce: Sealed("v1.nonce".into()),
        pkce_verifier: Sealed("v1.verifier".into()),
        expires_at: T0 + 600_000,
    };
    store.create_oauth_state(&st, 5).await.unwrap();
    assert_eq!(store.take_oauth_state("hash-1", T0).await.unwrap(), Some(st.clone()));
    assert_eq!(store.take_oauth_state("hash-1", T0).await.unwrap(), None, "used once");
    let late = OAuthState { state_hash: "hash-2".into(), ..st.clone() };
    store.create_oauth_state(&late, 5).await.unwrap();
    assert_eq!(store.take_oauth_state("hash-2", T0 + 600_000).await.unwrap(), None, "expired");
    let purged = OAuthState { state_hash: "hash-3".into(), ..st };
    store.create_oauth_state(&purged, 5).await.unwrap();
    store.purge_expired_sessions(T0 + 600_000).await.unwrap();
    assert_eq!(store.take_oauth_state("hash-3", T0).await.unwrap(), None, "purged with the expired sessions");
}

pub async fn a_session_keeps_its_newest_sign_ins_only(store: &dyn Store) {
    let s = space(store, "office").await;
    let sign_in = |n: i64, session: &str| OAuthState {
        state_hash: format!("hash-{session}-{n}"),
        provider: "msteams".into(),
        session_hash: session.into(),
        space_id: s.id,
        nonce: Sealed("v1.nonce".into()),
        pkce_verifier: Sealed("v1.verifier".into()),
        expires_at: T0 + 600_000 + n,
    };
    store.create_oauth_state(&sign_in(0, "other"), 3).await.unwrap();
    for n in 1..=5 {
        store.create_oauth_state(&sign_in(n, "busy"), 3).await.unwrap();
    }
    for n in 1..=2 {
        assert_eq!(store.take_oauth_state(&format!("hash-busy-{n}"), T0).await.unwrap(), None, "{n} was dropped");
    }
    for n in 3..=5 {
        assert!(store.take_oauth_state(&format!("hash-busy-{n}"), T0).await.unwrap().is_some(), "{n} is kept");
    }
    assert!(store.take_oauth_state("hash-other-0", T0).await.unwrap().is_some(), "other sessions keep theirs");
    // Started in the same millisecond: the newest is kept whatever its hash.
    for n in ["c", "b", "a"] {
        store.create_oauth_state(&OAuthState { state_hash: n.into(), ..sign_in(9, "same") }, 2).await.unwrap();
    }
    assert!(store.take_oauth_state("a", T0).await.unwrap().is_some(), "the one started last");
    let b = store.take_oauth_state("b", T0).await.unwrap();
    let c = store.take_oauth_state("c", T0).await.unwrap();
    assert_eq!(usize::from(b.is_some()) + usize::from(c.is_some()), 1, "one other is kept");
}

pub async fn the_newest_live_certificate_is_current(store: &dyn Store) {
    assert_eq!(store.current_certificate().await.unwrap(), None);
    let old = EncryptionCertificate {
        id: "cert-1".into(),
        certificate: "MIIB".into(),
        private_key: Sealed("v1.key".into()),
        created_at: T0,
        retired_at: None,
    };
    let new = EncryptionCertificate { id: "cert-2".into(), created_at: T0 + 1, ..old.clone() };
    store.add_certificate(&old).await.unwrap();
    store.add_certificate(&new).await.unwrap();
    assert_eq!(store.current_certificate().await.unwrap(), Some(new));
    assert_eq!(store.certificate("cert-1").await.unwrap(), Some(old.clone()));
    assert!(matches!(store.add_certificate(&old).await, Err(StoreError::Conflict(_))));
}

pub async fn retired_certificates_stay_while_a_subscription_uses_them(store: &dyn Store) {
    let s = space(store, "office").await;
    let a = member(store, &s, "a@example.com", "A").await;
    let cert = |id: &str, at| EncryptionCertificate {
        id: id.into(),
        certificate: "MIIB".into(),
        private_key: Sealed(format!("v1.key-{id}")),
        created_at: at,
        retired_at: None,
    };
    store.add_certificate(&cert("cert-1", T0)).await.unwrap();
    let mut c = connection(a.id, "ms-a");
    c.subscription = Some(SubscriptionRecord {
        id: "sub-a".into(),
        expires_at: T0 + 60_000,
        client_state: Sealed("v1.cs".into()),
        certificate_id: Some("cert-1".into()),
        resource: None,
    });
    store.save_connection(&c).await.unwrap();
    store.add_certificate(&cert("cert-2", T0 + 1)).await.unwrap();
    assert_eq!(store.retire_certificates("cert-2", T0 + 2).await.unwrap(), 1);
    assert_eq!(store.current_certificate().await.unwrap().unwrap().id, "cert-2");
    let used: Vec<(String, Option<i64>, u64)> =
        store.certificates().await.unwrap().into_iter().map(|(c, n)| (c.id, c.retired_at, n)).collect();
    assert_eq!(used, [("cert-1".into(), Some(T0 + 2), 1), ("cert-2".into(), None, 0)]);
    // Still used by sub-a: kept however long ago it was retired.
    assert!(store.remove_unused_certificates(T0 + 1_000_000, 100).await.unwrap().is_empty());
    let claim = |holder| Claim { holder, now: T0, until: T0 + 10 };
    let others = store.claim_on_other_certificates("other", "cert-2", claim("one"), 10).await.unwrap();
    assert!(others.is_empty(), "another provider's connections only");
    let on_old = store.claim_on_other_certificates("msteams", "cert-2", claim("one"), 10).await.unwrap();
    assert_eq!(on_old.iter().map(|c| c.id).collect::<Vec<_>>(), [c.id]);
    assert!(store.claim_on_other_certificates("msteams", "cert-2", claim("two"), 10).await.unwrap().is_empty(), "held");
    assert!(store.claim_on_other_certificates("msteams", "cert-1", claim("one"), 10).await.unwrap().is_empty());
    // Moved to the new certificate at T0 + 2_000_000: the old key goes once unused for 100 ms.
    let moved = SubscriptionRecord { certificate_id: Some("cert-2".into()), ..c.subscription.clone().unwrap() };
    assert!(store.set_connection_subscription(c.id, Some("sub-a"), &moved, T0 + 3, None).await.unwrap());
    assert_eq!(store.connection_of(a.id, "msteams").await.unwrap().unwrap().subscription, Some(moved));
    assert!(store.claim_on_other_certificates("msteams", "cert-2", claim("one"), 10).await.unwrap().is_empty());
    assert!(store.remove_unused_certificates(T0 + 2_000_000, 100).await.unwrap().is_empty(), "first seen unused");
    assert!(store.remove_unused_certificates(T0 + 2_000_099, 100).await.unwrap().is_empty(), "not unused long enough");
    assert_eq!(store.remove_unused_certificates(T0 + 2_000_100, 100).await.unwrap(), ["cert-1"]);
    assert_eq!(store.certificate("cert-1").await.unwrap(), None);
    assert!(store.certificate("cert-2").await.unwrap().is_some(), "the current one is never removed");
    // A connection that needs a new sign-in keeps no key: its notifications are dropped unread.
    let b = member(store, &s, "b@example.com", "B").await;
    let mut cb = connection(b.id, "ms-b");
    cb.subscription = Some(SubscriptionRecord { id: "sub-b".into(), ..c.subscription.clone().unwrap() });
    cb.subscription.as_mut().unwrap().certificate_id = Some("cert-2".into());
    cb.state = ConnectionState::NeedsReconnect;
    store.save_connection(&cb).await.unwrap();
    store.add_certificate(&cert("cert-3", T0 + 10)).await.unwrap();
    store.retire_certificates("cert-3", T0 + 11).await.unwrap();
    // (cert-2 is still named by a's connected subscription: move that one too.)
    let moved = SubscriptionRecord { certificate_id: Some("cert-3".into()), ..c.subscription.clone().unwrap() };
    assert!(store.set_connection_subscription(c.id, Some("sub-a"), &moved, T0 + 12, None).await.unwrap());
    assert_eq!(store.remove_unused_certificates(T0 + 3_000_000, 0).await.unwrap(), ["cert-2"]);
}

pub async fn refreshed_tokens_update_but_never_recreate_a_connection(store: &dyn Store) {
    let s = space(store, "office").await;
    let a = member(store, &s, "a@example.com", "A").await;
    let c = connection(a.id, "ms-user-a");
    store.save_connection(&c).await.unwrap();
    let update = TokenUpdate {
        access_token: Sealed("v1.new-access".into()),
        access_expires_at: T0 + 7_200_000,
        access_refresh_at: T0 + 6_900_000,
        refresh_token: None,
        refresh_expires_at: None,
        updated_at: T0 + 5,
    };
    // One refresh at a time: the claim keeps other instances off until it lapses, is let go
    // of, or the new tokens are stored by its holder.
    let by = |holder, now| Claim { holder, now, until: now + 1_000 };
    assert!(store.claim_refresh(c.id, by("one", T0)).await.unwrap());
    assert!(!store.claim_refresh(c.id, by("two", T0 + 999)).await.unwrap());
    assert!(store.claim_refresh(c.id, by("one", T0 + 999)).await.unwrap(), "extended by its holder");
    store.release_refresh(c.id, "two").await.unwrap();
    assert!(!store.claim_refresh(c.id, by("two", T0 + 1_000)).await.unwrap(), "only the holder lets go");
    assert!(store.claim_refresh(c.id, by("two", T0 + 1_999)).await.unwrap(), "lapsed: taken over");
    store.release_refresh(c.id, "two").await.unwrap();
    assert!(store.claim_refresh(c.id, by("one", T0 + 2_000)).await.unwrap());
    assert!(store.update_connection_tokens(c.id, &update, Some("two")).await.unwrap());
    assert!(!store.claim_refresh(c.id, by("two", T0 + 2_001)).await.unwrap(), "another's write keeps it");
    assert!(store.update_connection_tokens(c.id, &update, Some("one")).await.unwrap());
    assert!(store.claim_refresh(c.id, by("two", T0 + 2_001)).await.unwrap(), "let go of with the tokens");
    store.release_refresh(c.id, "two").await.unwrap();
    let stored = store.connection_of(a.id, "msteams").await.unwrap().unwrap();
    assert_eq!(stored.access_token, update.access_token);
    assert_eq!((stored.access_expires_at, stored.access_refresh_at), (T0 + 7_200_000, T0 + 6_900_000));
    assert_eq!(stored.refresh_token, c.refresh_token, "no new refresh token: the old one stays");
    assert!(store.set_connection_state(c.id, ConnectionState::NeedsReconnect, Some("refused"), T0 + 6).await.unwrap());
    let stored = store.connection_of(a.id, "msteams").await.unwrap().unwrap();
    assert_eq!((stored.state, stored.last_error.as_deref()), (ConnectionState::NeedsReconnect, Some("refused")));
    // The member is told once; marking it again does not tell again; a new sign-in resets it.
    assert!(store.take_connection_notice(a.id, "msteams").await.unwrap());
    assert!(!store.take_connection_notice(a.id, "msteams").await.unwrap());
    assert!(store.set_connection_state(c.id, ConnectionState::NeedsReconnect, Some("again"), T0 + 7).await.unwrap());
    assert!(!store.take_connection_notice(a.id, "msteams").await.unwrap());
    store.save_connection(&c).await.unwrap();
    assert!(!store.take_connection_notice(a.id, "msteams").await.unwrap(), "connected: nothing to tell");
    assert!(store.set_connection_state(c.id, ConnectionState::NeedsReconnect, Some("later"), T0 + 8).await.unwrap());
    assert!(store.take_connection_notice(a.id, "msteams").await.unwrap());
    store.delete_connection(c.id).await.unwrap();
    assert!(!store.update_connection_tokens(c.id, &update, None).await.unwrap(), "a deleted connection stays deleted");
    assert!(!store.claim_refresh(c.id, by("one", T0 + 9)).await.unwrap(), "nothing to refresh");
    assert!(!store.set_connection_state(c.id, ConnectionState::Error, None, T0).await.unwrap());
    assert_eq!(store.connection_of(a.id, "msteams").await.unwrap(), None);
}

pub async fn named_claims_have_one_holder_until_they_lapse(store: &dyn Store) {
    let by = |holder, now| Claim { holder, now, until: now + 1_000 };
    assert!(store.claim("job/reconcile", by("one", T0)).await.unwrap());
    assert!(!store.claim("job/reconcile", by("two", T0 + 999)).await.unwrap());
    assert!(store.claim("job/reconcile", by("one", T0 + 999)).await.unwrap(), "extended by its holder");
    assert!(!store.claim("job/reconcile", by("two", T0 + 1_998)).await.unwrap());
    assert!(store.claim("job/reconcile", by("two", T0 + 1_999)).await.unwrap(), "lapsed: taken over");
    store.release("job/reconcile", "one").await.unwrap();
    assert!(!store.claim("job/reconcile", by("one", T0 + 2_000)).await.unwrap(), "only the holder lets go");
    store.release("job/reconcile", "two").await.unwrap();
    assert!(store.claim("job/reconcile", by("one", T0 + 2_000)).await.unwrap());

    // Heartbeats: a lapsed one is taken once, by whoever asks first; live ones stay.
    assert!(store.claim("instance/a", by("a", T0)).await.unwrap());
    assert!(store.claim("instance/b", by("b", T0 + 500)).await.unwrap());
    assert!(store.take_lapsed("instance/", T0 + 999).await.unwrap().is_empty());
    assert_eq!(store.take_lapsed("instance/", T0 + 1_000).await.unwrap(), ["instance/a"]);
    assert!(store.take_lapsed("instance/", T0 + 1_000).await.unwrap().is_empty(), "taken once");
    let mut both = store.take_lapsed("", T0 + 5_000).await.unwrap();
    both.sort();
    assert_eq!(both, ["instance/b", "job/reconcile"]);
}

/// A member connects one account per provider: a second provider is a second connection, each
/// found, routed and counted by its provider; the same account id at another provider is another
/// account.
pub async fn a_member_connects_one_account_per_provider(store: &dyn Store) {
    let s = space(store, "office").await;
    let a = member(store, &s, "a@example.com", "A").await;
    let b = member(store, &s, "b@example.com", "B").await;
    let record = |id: &str| SubscriptionRecord {
        id: id.into(),
        expires_at: T0 + 60_000,
        client_state: Sealed(format!("v1.{id}")),
        certificate_id: None,
        resource: None,
    };
    let mut teams = connection(a.id, "user-1");
    teams.subscription = Some(record("same-id"));
    let mut other = Connection { id: ConnectionId::new(), provider: "other".into(), ..connection(a.id, "user-1") };
    other.subscription = Some(record("same-id"));
    store.save_connection(&teams).await.unwrap();
    store.save_connection(&other).await.unwrap();
    assert_eq!(store.connection_of(a.id, "msteams").await.unwrap(), Some(teams.clone()));
    assert_eq!(store.connection_of(a.id, "other").await.unwrap(), Some(other.clone()));
    assert_eq!(store.connection_of(a.id, "nobody").await.unwrap(), None);
    assert_eq!(store.connection_by_subscription("other", "same-id").await.unwrap(), Some(other.clone()));
    assert_eq!(store.connection_by_subscription("msteams", "same-id").await.unwrap(), Some(teams.clone()));
    // A second connection to the same provider for the same member is refused.
    let twice = Connection { id: ConnectionId::new(), ..connection(a.id, "user-2") };
    assert!(matches!(store.save_connection(&twice).await, Err(StoreError::Conflict("external account"))));
    // Each provider's work is its own.
    let claim = Claim { holder: "one", now: T0, until: T0 + 1_000 };
    let claimed = store.claim_expiring("other", T0 + 120_000, claim, 10).await.unwrap();
    assert_eq!(claimed.iter().map(|c| c.id).collect::<Vec<_>>(), [other.id]);
    let page = store.connected_connections("msteams", None, 10).await.unwrap();
    assert_eq!(page.iter().map(|c| c.id).collect::<Vec<_>>(), [teams.id]);
    store.set_connection_state(other.id, ConnectionState::NeedsReconnect, Some("refused"), T0).await.unwrap();
    store.save_connection(&connection(b.id, "user-9")).await.unwrap();
    let mut counts = store.connections_by_state().await.unwrap();
    counts.sort_by(|x, y| (&x.0, x.1.as_str()).cmp(&(&y.0, y.1.as_str())));
    assert_eq!(
        counts,
        [("msteams".into(), ConnectionState::Connected, 2), ("other".into(), ConnectionState::NeedsReconnect, 1)]
    );
    assert!(!store.take_connection_notice(a.id, "msteams").await.unwrap(), "not for the provider that did not refuse");
    assert!(store.take_connection_notice(a.id, "other").await.unwrap(), "told for the provider that refused");
}

/// A presence that changes with the clock asks to be read again at a time: the write records it
/// with the presence, the connection is claimed when it is due (by one instance), and a read
/// that failed can put it off.
pub async fn connections_are_woken_when_their_presence_is_due_to_change(store: &dyn Store) {
    let s = space(store, "office").await;
    let a = member(store, &s, "a@example.com", "A").await;
    let b = member(store, &s, "b@example.com", "B").await;
    let (ca, cb) = (connection(a.id, "user-a"), connection(b.id, "user-b"));
    for c in [&ca, &cb] {
        store.save_connection(c).await.unwrap();
        store.set_connection_space(c.id, s.id, true).await.unwrap();
    }
    let write = |c: &Connection, user: &str, seq: &str, next: Option<i64>| PresenceWrite {
        connection: c.id,
        external_user: user.into(),
        sequence: Some(seq.into()),
        again: false,
        presence: Some(busy()),
        next_check_at: next,
    };
    let applied = store
        .apply_presences(
            &[write(&ca, "user-a", "1", Some(T0 + 1_000)), write(&cb, "user-b", "1", Some(T0 + 5_000))],
            T0,
        )
        .await
        .unwrap();
    assert!(applied.iter().all(|a| matches!(a, Applied::Shown(_))), "{applied:?}");
    // A stale write does not move the check.
    store.apply_presences(&[write(&ca, "user-a", "0", Some(T0 + 9_000))], T0).await.unwrap();
    assert_eq!(store.connection_of(a.id, "msteams").await.unwrap().unwrap().next_check_at, Some(T0 + 1_000));
    let by = |holder, now| Claim { holder, now, until: now + 10_000 };
    let due = |v: Vec<Connection>| v.into_iter().map(|c| c.id).collect::<Vec<_>>();
    assert!(store.claim_due(by("one", T0 + 999), 10).await.unwrap().is_empty(), "not yet");
    assert_eq!(due(store.claim_due(by("one", T0 + 1_000), 10).await.unwrap()), [ca.id]);
    assert!(store.claim_due(by("two", T0 + 1_001), 10).await.unwrap().is_empty(), "held by one");
    assert!(store.claim_due(by("one", T0 + 1_001), 10).await.unwrap().is_empty(), "held by one: by itself too");
    assert_eq!(due(store.claim_due(by("two", T0 + 6_000), 10).await.unwrap()), [cb.id], "a is held, b is due");
    store.release_connection(ca.id, "one").await.unwrap();
    assert_eq!(due(store.claim_due(by("one", T0 + 6_000), 1).await.unwrap()), [ca.id], "the longest due first");
    store.release_connection(ca.id, "one").await.unwrap();
    store.release_connection(cb.id, "two").await.unwrap();
    // Read: the next write says when next (or never); a failed read puts it off.
    store.apply_presences(&[write(&ca, "user-a", "2", None)], T0 + 6_000).await.unwrap();
    store.set_next_check(cb.id, Some(T0 + 20_000)).await.unwrap();
    assert!(store.claim_due(by("one", T0 + 19_999), 10).await.unwrap().is_empty());
    assert_eq!(due(store.claim_due(by("one", T0 + 20_000), 10).await.unwrap()), [cb.id]);
    // Only connected connections are woken.
    store.release_connection(cb.id, "one").await.unwrap();
    store.set_connection_state(cb.id, ConnectionState::NeedsReconnect, None, T0).await.unwrap();
    assert!(store.claim_due(by("one", T0 + 30_000), 10).await.unwrap().is_empty());
}
