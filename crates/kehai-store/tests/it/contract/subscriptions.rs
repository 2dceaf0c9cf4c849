//! The contract cases of subscriptions: renewed in place under an instance's claim, and replaced
//! (Google's channels) with the one replaced recognized until it is ended.

use super::{connections::connection, *};

pub async fn subscriptions_are_renewed_and_found_before_they_lapse(store: &dyn Store) {
    let s = space(store, "office").await;
    let (a, b, c) = (
        member(store, &s, "a@example.com", "A").await,
        member(store, &s, "b@example.com", "B").await,
        member(store, &s, "c@example.com", "C").await,
    );
    let record = |id: &str, expires_at| SubscriptionRecord {
        id: id.into(),
        expires_at,
        client_state: Sealed(format!("v1.sealed-{id}")),
        certificate_id: None,
        resource: None,
    };
    let (mut ca, mut cb, mut cc) = (connection(a.id, "ms-a"), connection(b.id, "ms-b"), connection(c.id, "ms-c"));
    ca.subscription = Some(record("sub-a", T0 + 600_000));
    cb.subscription = Some(record("sub-b", T0 + 60_000));
    cc.subscription = Some(record("sub-c", T0 + 30_000));
    cc.state = ConnectionState::NeedsReconnect;
    for x in [&ca, &cb, &cc] {
        store.save_connection(x).await.unwrap();
    }
    let due = |v: Vec<Connection>| v.into_iter().map(|x| x.subscription.unwrap().id).collect::<Vec<_>>();
    // Needs-reconnect connections cannot renew: not claimed. Claims by one instance (`one`)
    // keep the others (`two`) off until they lapse or are let go.
    let one = |now| Claim { holder: "one", now, until: now + 10_000 };
    let two = |now| Claim { holder: "two", now, until: now + 10_000 };
    assert_eq!(due(store.claim_expiring("msteams", T0 + 100_000, one(T0), 10).await.unwrap()), ["sub-b"]);
    assert_eq!(
        due(store.claim_expiring("msteams", T0 + 3_600_000, two(T0), 10).await.unwrap()),
        ["sub-a"],
        "b is held"
    );
    assert_eq!(
        due(store.claim_expiring("msteams", T0 + 3_600_000, two(T0 + 9_999), 10).await.unwrap()),
        ["sub-a"],
        "its own"
    );
    assert_eq!(
        due(store.claim_expiring("msteams", T0 + 3_600_000, two(T0 + 10_000), 10).await.unwrap()),
        ["sub-b", "sub-a"]
    );
    assert!(!store.claim_connection(cb.id, one(T0 + 10_001)).await.unwrap(), "two holds b until T0 + 20_000");
    store.release_connection(cb.id, "one").await.unwrap();
    assert!(!store.claim_connection(cb.id, one(T0 + 10_001)).await.unwrap(), "only the holder lets go");
    store.release_connection(cb.id, "two").await.unwrap();
    assert!(store.claim_connection(cb.id, one(T0 + 10_001)).await.unwrap());
    assert!(store.claim_connection(cb.id, one(T0 + 10_002)).await.unwrap(), "extended by its holder");
    store.release_connection(cb.id, "one").await.unwrap();
    store.release_connection(ca.id, "two").await.unwrap();
    assert_eq!(
        due(store.claim_expiring("msteams", T0 + 3_600_000, one(T0 + 10_001), 1).await.unwrap()),
        ["sub-b"],
        "limit"
    );
    store.release_connection(cb.id, "one").await.unwrap();

    // Connected ones, page by page in id order.
    let first = store.connected_connections("msteams", None, 1).await.unwrap();
    let rest = store.connected_connections("msteams", Some(first[0].id), 10).await.unwrap();
    let paged: Vec<ConnectionId> = first.iter().chain(&rest).map(|x| x.id).collect();
    let mut expected = vec![ca.id, cb.id];
    expected.sort_by_key(|i| i.0.to_string());
    assert_eq!(paged, expected, "the needs-reconnect one is left out");
    let mut counts = store.connections_by_state().await.unwrap();
    counts.sort_by_key(|(_, state, _)| state.as_str());
    assert_eq!(
        counts,
        [("msteams".into(), ConnectionState::Connected, 2), ("msteams".into(), ConnectionState::NeedsReconnect, 1)]
    );
    assert!(store.connected_connections("msteams", Some(expected[1]), 10).await.unwrap().is_empty());

    // Renewed (same id, later expiry) and recreated (a new id), under the renewing instance's
    // claim, which the write lets go of (another instance's stays).
    assert!(store.claim_connection(cb.id, one(T0 + 20_001)).await.unwrap());
    assert!(
        store
            .set_connection_subscription(cb.id, Some("sub-b"), &record("sub-b", T0 + 1_000_000), T0 + 1, Some("two"))
            .await
            .unwrap()
    );
    assert!(!store.claim_connection(cb.id, two(T0 + 20_002)).await.unwrap(), "still one's");
    assert!(
        store
            .set_connection_subscription(cb.id, Some("sub-b"), &record("sub-b", T0 + 3_540_000), T0 + 1, Some("one"))
            .await
            .unwrap()
    );
    assert!(store.claim_connection(cb.id, two(T0 + 20_002)).await.unwrap(), "let go of with the write");
    store.release_connection(cb.id, "two").await.unwrap();
    assert!(
        store
            .set_connection_subscription(ca.id, Some("sub-a"), &record("sub-a2", T0 + 3_540_000), T0 + 1, None)
            .await
            .unwrap()
    );
    // A second recreation that started from the old one loses, and keeps its claim.
    assert!(store.claim_connection(ca.id, one(T0 + 20_001)).await.unwrap());
    assert!(
        !store
            .set_connection_subscription(ca.id, Some("sub-a"), &record("sub-a9", T0), T0 + 2, Some("one"))
            .await
            .unwrap()
    );
    assert!(!store.claim_connection(ca.id, two(T0 + 20_002)).await.unwrap(), "not stored: still held");
    store.release_connection(ca.id, "one").await.unwrap();
    assert!(!store.set_connection_subscription(ca.id, None, &record("sub-a9", T0), T0 + 2, None).await.unwrap());
    assert_eq!(due(store.claim_expiring("msteams", T0 + 3_000_000, one(T0), 10).await.unwrap()), Vec::<String>::new());
    assert_eq!(store.connection_by_subscription("msteams", "sub-a").await.unwrap(), None);
    let found = store.connection_by_subscription("msteams", "sub-a2").await.unwrap().unwrap();
    assert_eq!(found.subscription, Some(record("sub-a2", T0 + 3_540_000)));
    assert_eq!(found.updated_at, T0 + 1);
    store.delete_connection(ca.id).await.unwrap();
    assert!(!store.set_connection_subscription(ca.id, Some("sub-a2"), &record("sub-a3", T0), T0, None).await.unwrap());
    // A connection without a subscription gets its first one.
    let mut cd = connection(member(store, &s, "d@example.com", "D").await.id, "ms-d");
    cd.subscription = None;
    store.save_connection(&cd).await.unwrap();
    assert!(store.set_connection_subscription(cd.id, None, &record("sub-d", T0), T0, None).await.unwrap());
}

pub async fn a_replaced_subscription_is_recognized_until_it_is_ended(store: &dyn Store) {
    let s = space(store, "office").await;
    let a = member(store, &s, "a@example.com", "A").await;
    let channel = |id: &str, expires_at, resource: Option<&str>| SubscriptionRecord {
        id: id.into(),
        expires_at,
        client_state: Sealed("v1.sealed-token".into()),
        certificate_id: None,
        resource: resource.map(str::to_owned),
    };
    let mut ca = connection(a.id, "g-a");
    ca.provider = "gcal".into();
    ca.subscription = Some(channel("ch-1", T0 + 600_000, Some("res-1")));
    store.save_connection(&ca).await.unwrap();
    let found = |id: &'static str| async move { store.connection_by_subscription("gcal", id).await.unwrap() };

    // The successor is stored first (no resource yet), the current one kept beside it.
    let successor = channel("ch-2", T0 + 7_000_000, None);
    assert!(!store.keep_previous_subscription(ca.id, "ch-0", &successor, T0 + 1).await.unwrap(), "not current");
    assert!(store.keep_previous_subscription(ca.id, "ch-1", &successor, T0 + 1).await.unwrap());
    let third = channel("ch-5", T0 + 8_000_000, None);
    assert!(
        !store.keep_previous_subscription(ca.id, "ch-2", &third, T0 + 1).await.unwrap(),
        "one is being replaced already: a second replacement at once would forget it"
    );
    let both = found("ch-1").await.unwrap();
    assert_eq!(both.subscription, Some(successor.clone()));
    assert_eq!(both.previous_subscription, Some(channel("ch-1", T0 + 600_000, Some("res-1"))), "same secret");
    assert_eq!(found("ch-2").await.unwrap().id, ca.id);
    let named = both.subscription_named("ch-1").map(|s| s.resource.clone());
    assert_eq!(named, Some(Some("res-1".into())));
    let mut ids: Vec<String> = store
        .connections_by_subscriptions("gcal", &["ch-1", "ch-2", "ch-9"])
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.id.0.to_string())
        .collect();
    ids.dedup();
    assert_eq!(ids, [ca.id.0.to_string()], "one connection, found by either channel");
    assert_eq!(store.connection_by_subscription("msteams", "ch-1").await.unwrap(), None, "another provider's");

    // The provider made it: its resource is stored, the previous one stays until ended.
    let made = channel("ch-2", T0 + 6_900_000, Some("res-2"));
    assert!(store.set_connection_subscription(ca.id, Some("ch-2"), &made, T0 + 2, None).await.unwrap());
    assert_eq!(found("ch-1").await.unwrap().subscription, Some(made.clone()));
    assert!(!store.end_previous_subscription(ca.id, "ch-2", T0 + 3).await.unwrap(), "not the previous one");
    assert!(store.end_previous_subscription(ca.id, "ch-1", T0 + 3).await.unwrap());
    assert!(!store.end_previous_subscription(ca.id, "ch-1", T0 + 3).await.unwrap(), "once");
    assert_eq!(found("ch-1").await, None);
    let after = found("ch-2").await.unwrap();
    assert_eq!((after.subscription, after.previous_subscription), (Some(made.clone()), None));

    // A successor the provider refuses: the current one comes back as it was.
    let refused = channel("ch-3", T0 + 8_000_000, None);
    assert!(store.keep_previous_subscription(ca.id, "ch-2", &refused, T0 + 4).await.unwrap());
    assert!(!store.restore_previous_subscription(ca.id, "ch-2", T0 + 5).await.unwrap(), "not the successor");
    assert!(store.restore_previous_subscription(ca.id, "ch-3", T0 + 5).await.unwrap());
    let restored = found("ch-2").await.unwrap();
    assert_eq!((restored.subscription, restored.previous_subscription), (Some(made.clone()), None));
    assert_eq!(found("ch-3").await, None);
    assert!(!store.restore_previous_subscription(ca.id, "ch-2", T0 + 5).await.unwrap(), "nothing to restore");

    // Paused: both forgotten at once.
    let next = channel("ch-4", T0 + 9_000_000, None);
    assert!(store.keep_previous_subscription(ca.id, "ch-2", &next, T0 + 6).await.unwrap());
    assert!(!store.clear_connection_subscription(ca.id, "ch-2", T0 + 7).await.unwrap(), "not current");
    assert!(store.clear_connection_subscription(ca.id, "ch-4", T0 + 7).await.unwrap());
    let paused = store.connection(ca.id).await.unwrap().unwrap();
    assert_eq!((paused.subscription, paused.previous_subscription), (None, None));
    assert_eq!((found("ch-2").await, found("ch-4").await), (None, None));
}
