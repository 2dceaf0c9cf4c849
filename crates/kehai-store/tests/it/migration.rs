//! Migrating a database that an older kehai filled: Microsoft Teams connections stored in
//! `ms_connections` (schema 7) are carried into `connections` (schema 8) exactly as they were —
//! tokens still sealed for their rows, subscriptions, claims, sequence numbers and notices — on
//! SQLite and on PostgreSQL, and the store goes on working with them; the presence an avatar
//! shows becomes Microsoft Teams' own presence on it (schema 10).

use std::borrow::Cow;

use kehai_core::{Membership, PersonId, Role, SpaceId, presence::Kind};
use kehai_store::{
    Applied, Claim, Connection, ConnectionId, ConnectionState, Database, EncryptionCertificate, OAuthState,
    PresenceWrite, Sealed, Store, SubscriptionRecord,
};
use sqlx::{AssertSqlSafe, Connection as _, migrate::Migrator};

use crate::contract::{T0, emoji, member, space};

/// The last schema before connections had a provider.
const OLD_SCHEMA: i64 = 7;

/// `migrator` with its migrations up to `version` only: the schema an older kehai left.
fn up_to(mut migrator: Migrator, version: i64) -> Migrator {
    let old: Vec<_> = migrator.migrations.iter().filter(|m| m.version <= version).cloned().collect();
    assert_eq!(old.len(), usize::try_from(version).unwrap(), "migrations 1..={version}");
    migrator.migrations = Cow::Owned(old);
    migrator
}

/// What the older kehai stored for Alice (connected, subscribed, claimed by an instance, with a
/// refresh under way) and Bob (needing a new sign-in, not told yet), as the new store reads it.
struct Old {
    space: SpaceId,
    alice: PersonId,
    bob: PersonId,
    alice_connection: Connection,
    bob_connection: Connection,
    certificate: EncryptionCertificate,
    sign_in: OAuthState,
}

/// Fills a schema-7 database through the store where the tables did not change, and with the
/// old statements where they did (`$pool`: that database's pool).
macro_rules! fill_old {
    ($store:expr, $pool:expr) => {{
        let store: &dyn Store = $store;
        let s = space(store, "office").await;
        let alice = member(store, &s, "alice@example.com", "Alice").await;
        let bob = member(store, &s, "bob@example.com", "Bob").await;
        let annex = space(store, "annex").await;
        store
            .add_member(
                &Membership { space_id: annex.id, account_id: alice.id, role: Role::Member },
                &crate::contract::name("Alice"),
                T0,
            )
            .await
            .unwrap();
        sqlx::query(
            "UPDATE avatars SET presence_provider = 'msteams', presence_availability = 'Busy', \
             presence_activity = 'Busy', presence_label = 'Busy', presence_emoji = '🔴', presence_since = $1, \
             updated_at = $1 WHERE space_id = $2 AND person_id = $3",
        )
        .bind(T0)
        .bind(s.id.0.to_string())
        .bind(alice.id.0.to_string())
        .execute($pool)
        .await
        .unwrap();
        let certificate = EncryptionCertificate {
            id: "kehai-cert-1".into(),
            certificate: "MIIB-public".into(),
            private_key: Sealed("v1.sealed-private-key".into()),
            created_at: T0,
            retired_at: None,
        };
        store.add_certificate(&certificate).await.unwrap();
        let alice_connection = Connection {
            id: ConnectionId::new(),
            account_id: alice.id,
            provider: "msteams".into(),
            external_tenant: "6f1a9c2e-4b7d-4e8a-9c3f-2d5b8e7a1c40".into(),
            external_user: "8d3b1f0a-alice".into(),
            access_token: Sealed("v1.sealed-access-a".into()),
            access_expires_at: T0 + 3_600_000,
            access_refresh_at: T0 + 3_300_000,
            refresh_token: Some(Sealed("v1.sealed-refresh-a".into())),
            refresh_expires_at: Some(T0 + 90 * 86_400_000),
            subscription: Some(SubscriptionRecord {
                id: "sub-alice".into(),
                expires_at: T0 + 3_540_000,
                client_state: Sealed("v1.sealed-client-state-a".into()),
                certificate_id: Some(certificate.id.clone()),
                resource: None,
            }),
            state: ConnectionState::Connected,
            last_error: None,
            last_sequence: Some("C0000000005".into()),
            next_check_at: None,
            granted_scope: None,
            previous_subscription: None,
            connected_at: T0 - 86_400_000,
            updated_at: T0 + 10,
        };
        let bob_connection = Connection {
            id: ConnectionId::new(),
            account_id: bob.id,
            external_user: "8d3b1f0a-bob".into(),
            access_token: Sealed("v1.sealed-access-b".into()),
            refresh_token: None,
            refresh_expires_at: None,
            subscription: None,
            state: ConnectionState::NeedsReconnect,
            last_error: Some("Microsoft no longer accepts kehai's sign-in. Connect again.".into()),
            last_sequence: None,
            ..alice_connection.clone()
        };
        for (c, notice, claimed) in [(&alice_connection, false, true), (&bob_connection, true, false)] {
            let sub = c.subscription.as_ref();
            sqlx::query(
                "INSERT INTO ms_connections (id, account_id, ms_tenant_id, ms_user_id, access_token, \
                 access_expires_at, refresh_token, refresh_expires_at, subscription_id, subscription_expires_at, \
                 client_state, state, last_error, connected_at, updated_at, last_sequence, access_refresh_at, \
                 notice_pending, subscription_certificate_id, claimed_by, claimed_until, refreshing_by, \
                 refreshing_until) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, \
                 $17, $18, $19, $20, $21, $22, $23)",
            )
            .bind(c.id.0.to_string())
            .bind(c.account_id.0.to_string())
            .bind(&c.external_tenant)
            .bind(&c.external_user)
            .bind(&c.access_token.0)
            .bind(c.access_expires_at)
            .bind(c.refresh_token.as_ref().map(|t| t.0.clone()))
            .bind(c.refresh_expires_at)
            .bind(sub.map(|s| s.id.clone()))
            .bind(sub.map(|s| s.expires_at))
            .bind(sub.map(|s| s.client_state.0.clone()))
            .bind(c.state.as_str())
            .bind(c.last_error.clone())
            .bind(c.connected_at)
            .bind(c.updated_at)
            .bind(c.last_sequence.clone())
            .bind(c.access_refresh_at)
            .bind(notice)
            .bind(sub.and_then(|s| s.certificate_id.clone()))
            .bind(claimed.then_some("instance-1"))
            .bind(claimed.then_some(T0 + 60_000))
            .bind(claimed.then_some("instance-1"))
            .bind(claimed.then_some(T0 + 30_000))
            .execute($pool)
            .await
            .unwrap();
        }
        for (connection, space, enabled) in
            [(&alice_connection, s.id, true), (&alice_connection, annex.id, false), (&bob_connection, s.id, true)]
        {
            sqlx::query("INSERT INTO ms_connection_spaces (connection_id, space_id, enabled) VALUES ($1, $2, $3)")
                .bind(connection.id.0.to_string())
                .bind(space.0.to_string())
                .bind(enabled)
                .execute($pool)
                .await
                .unwrap();
        }
        let sign_in = OAuthState {
            state_hash: "state-hash".into(),
            provider: "msteams".into(),
            session_hash: "session-hash".into(),
            space_id: s.id,
            nonce: Sealed("v1.sealed-nonce".into()),
            pkce_verifier: Sealed("v1.sealed-verifier".into()),
            expires_at: T0 + 600_000,
        };
        sqlx::query(
            "INSERT INTO oauth_states (state_hash, session_hash, space_id, nonce, pkce_verifier, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&sign_in.state_hash)
        .bind(&sign_in.session_hash)
        .bind(s.id.0.to_string())
        .bind(&sign_in.nonce.0)
        .bind(&sign_in.pkce_verifier.0)
        .bind(sign_in.expires_at)
        .execute($pool)
        .await
        .unwrap();
        Old { space: s.id, alice: alice.id, bob: bob.id, alice_connection, bob_connection, certificate, sign_in }
    }};
}

/// After the migration: every row as it was, and the store going on with it.
async fn nothing_changed_for_them(store: &dyn Store, old: Old) {
    let alice = store.connection_of(old.alice, "msteams").await.unwrap();
    assert_eq!(alice.as_ref(), Some(&old.alice_connection), "Alice's connection, field for field");
    let bob = store.connection_of(old.bob, "msteams").await.unwrap();
    assert_eq!(bob.as_ref(), Some(&old.bob_connection), "Bob's connection, field for field");
    let by_subscription = store.connection_by_subscription("msteams", "sub-alice").await.unwrap();
    assert_eq!(by_subscription.map(|c| c.id), Some(old.alice_connection.id), "notifications still find her");
    let mut spaces = store.connection_spaces(old.alice_connection.id).await.unwrap();
    spaces.sort_by_key(|(_, on)| !on);
    assert_eq!(spaces.len(), 2);
    assert_eq!(spaces[0], (old.space, true), "ON where it was ON");
    assert!(!spaces[1].1, "OFF where it was OFF");
    assert!(store.take_connection_notice(old.bob, "msteams").await.unwrap(), "Bob is still to be told");
    assert_eq!(store.take_oauth_state("state-hash", T0).await.unwrap(), Some(old.sign_in), "the sign-in under way");
    assert_eq!(
        store.certificates().await.unwrap(),
        [(old.certificate, 1)],
        "the certificate Alice's subscription uses"
    );
    // The claims an instance held are still held.
    let other = Claim { holder: "instance-2", now: T0, until: T0 + 1_000 };
    assert!(!store.claim_connection(old.alice_connection.id, other).await.unwrap(), "upkeep still claimed");
    assert!(!store.claim_refresh(old.alice_connection.id, other).await.unwrap(), "refresh still claimed");
    let later = Claim { holder: "instance-2", now: T0 + 600_000, until: T0 + 601_000 };
    let due = store.claim_expiring("msteams", T0 + 3_600_000, later, 10).await.unwrap();
    assert_eq!(due.iter().map(|c| c.id).collect::<Vec<_>>(), [old.alice_connection.id], "renewals continue");
    // Presences go on from the last sequence number.
    let write = |sequence: &str| PresenceWrite {
        connection: old.alice_connection.id,
        external_user: old.alice_connection.external_user.clone(),
        sequence: Some(sequence.into()),
        again: false,
        presence: None,
        next_check_at: None,
    };
    assert_eq!(store.apply_presences(&[write("C0000000004")], T0 + 1).await.unwrap(), [Applied::Stale]);
    let avatar = store.avatar(old.space, old.alice).await.unwrap().unwrap();
    assert_eq!(avatar.presence.map(|p| (p.emoji, p.kind)), Some((emoji("🔴"), Kind::Busy)), "her presence as shown");
    // It is Teams' presence on her avatar (schema 10), which Teams' taking off takes off.
    let cleared = store.clear_presence(old.space, old.alice, "msteams", T0 + 1).await.unwrap();
    assert_eq!(cleared.map(|a| a.presence), Some(None), "Teams' presence, kept per provider");
    let applied = store.apply_presences(&[write("C0000000006")], T0 + 2).await.unwrap();
    assert!(matches!(&applied[..], [Applied::Shown(avatars)] if avatars.len() == 1), "{applied:?}");
    assert_eq!(
        store.connection_of(old.alice, "msteams").await.unwrap().unwrap().last_sequence.as_deref(),
        Some("C0000000006")
    );
}

#[tokio::test]
async fn teams_connections_of_an_older_kehai_are_carried_over_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kehai.db");
    let store = kehai_store::open(&Database::Sqlite(path.clone())).await.unwrap();
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", path.display())).await.unwrap();
    up_to(sqlx::migrate!("migrations/sqlite"), OLD_SCHEMA).run(&pool).await.unwrap();
    let old = fill_old!(&*store, &pool);
    pool.close().await;
    store.migrate().await.unwrap();
    nothing_changed_for_them(&*store, old).await;
}

#[tokio::test]
async fn teams_connections_of_an_older_kehai_are_carried_over_on_postgres() {
    let Some(admin_url) = crate::backends::postgres_url() else { return };
    let name = format!("kehai_migrate_{}", uuid::Uuid::new_v4().simple());
    let mut admin = sqlx::PgConnection::connect(&admin_url).await.unwrap();
    sqlx::raw_sql(AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&mut admin).await.unwrap();
    let url = crate::backends::with_database(&admin_url, &name);
    let outcome = futures::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(async {
        let store = kehai_store::open(&Database::Postgres(url.clone())).await.unwrap();
        let pool = sqlx::PgPool::connect(&url).await.unwrap();
        up_to(sqlx::migrate!("migrations/postgres"), OLD_SCHEMA).run(&pool).await.unwrap();
        let old = fill_old!(&*store, &pool);
        pool.close().await;
        store.migrate().await.unwrap();
        nothing_changed_for_them(&*store, old).await;
    }))
    .await;
    let _ =
        sqlx::raw_sql(AssertSqlSafe(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))).execute(&mut admin).await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}
