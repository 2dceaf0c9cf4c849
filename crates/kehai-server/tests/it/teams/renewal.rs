//! Keeping subscriptions alive: the renewal sweep, reauthorization, claims between instances,
//! certificates rotated under live subscriptions.

use std::time::Duration;

use kehai_server::{config::NotificationMode, providers::msteams::Teams};

use kehai_store::secrets::ConnectionSecret;

use crate::support::{find, microsoft::*};

#[tokio::test]
async fn reauthorization_required_renews_the_subscription() {
    // msemu asks for reauthorization as soon as a subscription exists (its lead exceeds the
    // subscription's life), as Graph does when the access token behind it is about to lapse.
    let (app, emu) = start_custom(NotificationMode::Rich, |c| {
        c.reauthorization_lead = std::time::Duration::from_secs(3 * 3600);
        c.tick = std::time::Duration::from_millis(200);
    })
    .await;
    set_status(&emu, "alice@example.com", "Available").await;
    let alice = connected(&app, &emu, "alice@example.com", "alice-password").await;
    let before = alice_connection(&app).await.subscription.unwrap();
    let mut renewed = None;
    for _ in 0..100 {
        let s = subscriptions(&emu).await[0].clone();
        if s["renewals"].as_u64().unwrap() >= 1 {
            renewed = Some(s);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let renewed = renewed.expect("kehai renewed the subscription after reauthorizationRequired");
    assert_eq!(renewed["id"], before.id, "the same subscription, renewed");
    assert!(renewed["lifecycleDelivered"].as_u64().unwrap() >= 1);
    assert_eq!(renewed["reauthorizations"], 0, "a PATCH reauthorizes: no separate reauthorize call");
    assert_eq!(subscriptions(&emu).await.len(), 1);
    // Notifications still arrive.
    set_status(&emu, "alice@example.com", "Busy").await;
    avatar_becomes(&alice, "🔴").await;
}

#[tokio::test]
async fn the_sweep_renews_due_subscriptions_and_recreates_lost_ones() {
    use kehai_server::presence::renewal::recreate;
    let (app, emu, alice, teams) = alice_connected_while("Available").await;
    let now = app.state.clock.now();

    // Fresh (59 minutes left): nothing to do.
    assert_eq!(sweep(&app.state, &teams).await, 0);
    assert_eq!(subscriptions(&emu).await[0]["renewals"], 0);

    // Made for Alice's connection's life: 59 minutes less her spread (up to a twelfth).
    let mut connection = alice_connection(&app).await;
    let mut record = connection.subscription.clone().unwrap();
    let life = kehai_server::presence::renewal::life_of(3_540_000, connection.id);
    assert!(life <= 3_540_000 && life > 3_540_000 - 295_000, "{life}");
    assert!((record.expires_at - (connection.connected_at + life)).abs() < 5_000, "{}", record.expires_at - now);

    // Eleven minutes left: not yet (the lead is ten minutes).
    record.expires_at = now + 11 * 60_000;
    app.state.store.set_connection_subscription(connection.id, Some(&record.id), &record, now, None).await.unwrap();
    assert_eq!(sweep(&app.state, &teams).await, 0);

    // Five minutes left: renewed for the same life.
    record.expires_at = now + 5 * 60_000;
    app.state.store.set_connection_subscription(connection.id, Some(&record.id), &record, now, None).await.unwrap();
    assert_eq!(sweep(&app.state, &teams).await, 1);
    assert_eq!(subscriptions(&emu).await[0]["renewals"], 1);
    let expires_at = alice_connection(&app).await.subscription.unwrap().expires_at;
    assert!((expires_at - (now + life)).abs() < 5_000, "{} for a life of {life}", expires_at - now);

    // Graph lost it (404 on renewal) while Alice became Busy: a new subscription, the
    // presence read again, and notifications flow through the new one.
    emu.emulator.world.lock().subscriptions.clear();
    quietly_set(&emu, "alice@example.com", "Busy");
    record.expires_at = now + 60_000;
    app.state.store.set_connection_subscription(connection.id, Some(&record.id), &record, now, None).await.unwrap();
    assert_eq!(sweep(&app.state, &teams).await, 1);
    assert_eq!(find(&alice.avatars("alpha").await, "Alice").unwrap()["emoji"], "🔴");
    let subs = subscriptions(&emu).await;
    assert_eq!(subs.len(), 1);
    let stored = alice_connection(&app).await.subscription.unwrap();
    assert_eq!(subs[0]["id"], stored.id);
    assert_ne!(stored.id, record.id);
    set_status(&emu, "alice@example.com", "AppearAway").await;
    avatar_becomes(&alice, "💤").await;

    // `subscriptionRemoved` arrives: the same.
    emu.emulator.world.lock().subscriptions.clear();
    quietly_set(&emu, "alice@example.com", "DoNotDisturb");
    let mut removed = basic_notification(&app, None).await;
    removed.value[0].lifecycle_event = Some("subscriptionRemoved".into());
    let outcomes = process(&app.state, &teams, removed).await;
    assert_eq!(outcomes, vec![Ok(())]);
    assert_eq!(find(&alice.avatars("alpha").await, "Alice").unwrap()["emoji"], "⛔");
    assert_eq!(subscriptions(&emu).await.len(), 1);

    // A connection removed meanwhile leaves no subscription behind.
    connection = alice_connection(&app).await;
    let token = opened(&app, &connection, &connection.access_token, ConnectionSecret::AccessToken);
    app.state.store.delete_connection(connection.id).await.unwrap();
    emu.emulator.world.lock().subscriptions.clear();
    assert!(recreate(&app.state, &*teams, &connection, &token).await.is_err());
    assert!(subscriptions(&emu).await.is_empty());
}

#[tokio::test]
async fn a_connection_claimed_by_another_instance_is_left_to_it_until_the_claim_lapses() {
    use kehai_server::presence::renewal::{Upkeep, claim_ms, renew};
    use kehai_store::Claim;
    // Ten-minute subscriptions: renewed 100 to 150 s ahead, claims last 50 s (msemu, on the real
    // clock, refuses expiries over an hour ahead of it).
    let (app, emu) = start_both(NotificationMode::Rich, |_| {}, |c| c.ms_subscription_seconds = 600).await;
    connected(&app, &emu, "alice@example.com", "alice-password").await;
    let teams = Teams::offered(&app.state).unwrap();
    let now = app.state.clock.now();
    let connection = alice_connection(&app).await;
    let mut record = connection.subscription.clone().unwrap();
    record.expires_at = now + 90_000;
    app.state.store.set_connection_subscription(connection.id, Some(&record.id), &record, now, None).await.unwrap();
    let hold = claim_ms(teams.subscription_ms);
    let other = Claim { holder: "another-instance", now, until: now + hold };
    assert!(app.state.store.claim_connection(connection.id, other).await.unwrap());

    assert_eq!(sweep(&app.state, &teams).await, 0, "due, but another instance is renewing it");
    assert!(matches!(renew(&app.state, &*teams, connection.clone()).await, Ok(Upkeep::Elsewhere)));
    assert_eq!(subscriptions(&emu).await[0]["renewals"], 0);

    // That instance died: once its claim lapses, this one renews.
    app.clock.advance(hold - 1);
    assert_eq!(sweep(&app.state, &teams).await, 0);
    app.clock.advance(1);
    assert_eq!(sweep(&app.state, &teams).await, 1);
    assert_eq!(subscriptions(&emu).await[0]["renewals"], 1);
    // And let go of it afterwards: another instance may renew it next time.
    let later = app.state.clock.now();
    assert!(
        app.state
            .store
            .claim_connection(connection.id, Claim { holder: "another-instance", now: later, until: later + hold })
            .await
            .unwrap()
    );
}

#[tokio::test]
async fn a_renewal_uses_a_token_that_lasts_as_long_as_the_renewed_subscription() {
    use kehai_server::presence::renewal::{Upkeep, renew};
    let (app, emu, _alice, teams) = alice_connected_while("Available").await;
    let now = app.state.clock.now();
    // A token still fine for ordinary calls, but lapsing half an hour before the renewed
    // subscription would: Graph would ask for reauthorization then (one more request).
    let connection = alice_connection(&app).await;
    let aged = kehai_store::TokenUpdate {
        access_token: connection.access_token.clone(),
        access_expires_at: now + 30 * 60_000,
        access_refresh_at: now + 25 * 60_000,
        refresh_token: None,
        refresh_expires_at: None,
        updated_at: now,
    };
    assert!(app.state.store.update_connection_tokens(connection.id, &aged, None).await.unwrap());
    let refreshes = |emu: &msemu::Running| emu.emulator.world.lock().access_tokens.len();
    let before = refreshes(&emu);
    assert!(matches!(renew(&app.state, &*teams, alice_connection(&app).await).await, Ok(Upkeep::Renewed)));
    assert_eq!(refreshes(&emu), before + 1, "a new access token first");
    let world = emu.emulator.world.lock();
    let sub = world.subscriptions.values().next().unwrap();
    assert!(sub.authorized_until >= sub.expiration, "authorized for its whole life");
}

#[tokio::test]
async fn twenty_second_subscriptions_stay_alive_for_two_minutes_with_no_gap() {
    let (app, emu) = start_both(
        NotificationMode::Rich,
        |e| {
            e.min_subscription_lifetime = Duration::ZERO;
            e.reauthorization_lead = Duration::from_secs(3);
        },
        |k| k.ms_subscription_seconds = 20,
    )
    .await;
    app.clock_follows_real_time();
    set_status(&emu, "alice@example.com", "Available").await;
    let alice = connected(&app, &emu, "alice@example.com", "alice-password").await;
    let first = subscriptions(&emu).await;
    assert_eq!(first.len(), 1);
    let changes = presence_keeps_flowing(&emu, &alice, Duration::from_secs(120), Duration::from_secs(3)).await;
    assert!(changes >= 20, "{changes} changes");
    // The one subscription, renewed all along (never lapsed and made anew).
    let now = subscriptions(&emu).await;
    assert_eq!((now.len(), &now[0]["id"]), (1, &first[0]["id"]));
    let renewals = now[0]["renewals"].as_u64().unwrap();
    assert!((6..=60).contains(&renewals), "{renewals} renewals in two minutes of 20-second subscriptions");
}

#[tokio::test]
async fn rotating_the_certificate_moves_subscriptions_and_keeps_the_old_key_until_unused() {
    use kehai_server::providers::msteams::certificates::{remove_unused, rotate};
    let (app, emu, alice, teams) = alice_and_bob_connected().await;
    let old = app.state.store.current_certificate().await.unwrap().unwrap().id;
    let at_msemu = |email: &str| {
        let world = emu.emulator.world.lock();
        let id = world.directory.user_by_email(email).unwrap().id.to_string();
        world.subscriptions.values().find(|s| s.resource.ends_with(&id)).unwrap().encryption_certificate_id.clone()
    };
    assert_eq!(at_msemu("alice@example.com").as_deref(), Some(old.as_str()));

    // Bob's sign-in is refused when his move needs a fresh token: his subscription cannot move.
    reqwest::Client::new().post(emu.url("/_emu/api/users/bob@example.com/revoke")).send().await.unwrap();
    let bob = app.stored_avatars("alpha").await.into_iter().find(|a| a.display_name.as_str() == "Bob").unwrap();
    let bob = app.state.store.connection_of(bob.person_id, "msteams").await.unwrap().unwrap();
    let now = app.state.clock.now();
    let lapsed = kehai_store::TokenUpdate {
        access_token: bob.access_token.clone(),
        access_expires_at: now - 1,
        access_refresh_at: now - 1,
        refresh_token: None,
        refresh_expires_at: None,
        updated_at: now,
    };
    app.state.store.update_connection_tokens(bob.id, &lapsed, None).await.unwrap();
    let rotation = rotate(&app.state, &teams).await.unwrap();
    assert_eq!((rotation.moved, rotation.failed, rotation.kept), (1, 1, 1), "{rotation:?}");
    let new = app.state.store.current_certificate().await.unwrap().unwrap().id;
    assert_eq!(new, rotation.certificate_id);
    assert_eq!(at_msemu("alice@example.com").as_deref(), Some(new.as_str()), "Graph encrypts Alice's for the new one");
    let stored = alice_connection(&app).await.subscription.unwrap();
    assert_eq!(stored.certificate_id.as_deref(), Some(new.as_str()));
    // Graph's next notification for Alice is encrypted for the new certificate…
    set_status(&emu, "alice@example.com", "Busy").await;
    avatar_becomes(&alice, "🔴").await;
    // …and one it still retries, encrypted for the old one, opens too.
    let late = rich_notification_for(&app, &emu, &old, "Away", "Zzzzzzzzzz", |_| {}).await;
    assert_eq!(process(&app.state, &teams, late).await, vec![Ok(())]);
    avatar_becomes(&alice, "💤").await;

    // The old key stays while Bob's subscription names it (the store's contract: however long).
    remove_unused(&app.state, &teams.keys).await;
    assert!(app.state.store.certificate(&old).await.unwrap().is_some());
    // Bob connects again (a new subscription, on the new certificate)…
    connected(&app, &emu, "bob@example.com", "bob-password").await;
    assert_eq!(at_msemu("bob@example.com").as_deref(), Some(new.as_str()));
    // …and four hours after it was last used — Graph's retries are over — the old key goes.
    remove_unused(&app.state, &teams.keys).await;
    app.clock.advance(4 * 3600 * 1000 - 1);
    remove_unused(&app.state, &teams.keys).await;
    assert!(app.state.store.certificate(&old).await.unwrap().is_some(), "not before four hours");
    app.clock.advance(1);
    remove_unused(&app.state, &teams.keys).await;
    assert_eq!(app.state.store.certificate(&old).await.unwrap(), None);

    // A certificate made while kehai was not serving (or moves that failed): the sweep moves them.
    let newer = kehai_server::providers::msteams::certificates::make_new_current(&app.state).await.unwrap();
    app.clock.set(kehai_server::clock::Clock::now(&kehai_server::clock::SystemClock));
    assert_eq!(sweep(&app.state, &teams).await, 2);
    assert_eq!(at_msemu("alice@example.com").as_deref(), Some(newer.as_str()));
    assert_eq!(at_msemu("bob@example.com").as_deref(), Some(newer.as_str()));
    assert_eq!(sweep(&app.state, &teams).await, 0, "nothing left to move");
    assert!(app.state.store.certificate(&new).await.unwrap().is_some());
}
