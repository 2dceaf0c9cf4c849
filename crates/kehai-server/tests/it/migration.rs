//! An office connected by an older kehai goes on after the upgrade: members connect Teams, the
//! server stops, its database is put back into the schema kehai had before connections had a
//! provider (`ms_connections`, schema 7: made by the real migrations 1–7, every row copied into
//! it), and the new kehai starts on it — migrating it — and then presences still arrive through
//! the same subscriptions, which go on being renewed. On SQLite and on PostgreSQL.

use std::{borrow::Cow, time::Duration};

use kehai_server::config::NotificationMode;
use sqlx::{Connection, migrate::Migrator};

use crate::support::{TestApp, find, microsoft::*};

/// The last schema before connections had a provider.
const OLD_SCHEMA: i64 = 7;

/// `migrator` with its migrations up to schema 7 only.
fn old_schema(mut migrator: Migrator) -> Migrator {
    let old: Vec<_> = migrator.migrations.iter().filter(|m| m.version <= OLD_SCHEMA).cloned().collect();
    migrator.migrations = Cow::Owned(old);
    migrator
}

/// Copies every row of the current schema (`{new}` tables) into schema 7 (`{old}` tables), as an
/// older kehai would have stored them.
fn copies(old: &str, new: &str) -> Vec<String> {
    let mut statements: Vec<String> =
        ["accounts", "memberships", "guests", "sessions", "encryption_certificates", "claims"]
            .iter()
            .map(|table| format!("INSERT INTO {old}{table} SELECT * FROM {new}{table}"))
            .collect();
    statements.insert(
        0,
        format!(
            "INSERT INTO {old}spaces (id, slug, name, allow_guests, created_at) \
             SELECT id, slug, name, allow_guests, created_at FROM {new}spaces"
        ),
    );
    // (Since schema 10 an avatar also has its presence's kind, and each provider's presence.)
    statements.insert(
        2,
        format!(
            "INSERT INTO {old}avatars (space_id, person_id, kind, display_name, own_emoji, presence_provider, \
             presence_availability, presence_activity, presence_label, presence_emoji, presence_since, updated_at) \
             SELECT space_id, person_id, kind, display_name, own_emoji, presence_provider, presence_availability, \
             presence_activity, presence_label, presence_emoji, presence_since, updated_at FROM {new}avatars"
        ),
    );
    statements.push(format!(
        "INSERT INTO {old}ms_connections (id, account_id, ms_tenant_id, ms_user_id, access_token, access_expires_at, \
         refresh_token, refresh_expires_at, subscription_id, subscription_expires_at, client_state, state, last_error, \
         connected_at, updated_at, last_sequence, access_refresh_at, notice_pending, subscription_certificate_id, \
         claimed_by, claimed_until, refreshing_by, refreshing_until) \
         SELECT id, account_id, external_tenant, external_user, access_token, access_expires_at, refresh_token, \
         refresh_expires_at, subscription_id, subscription_expires_at, client_state, state, last_error, connected_at, \
         updated_at, last_sequence, access_refresh_at, notice_pending, subscription_certificate_id, claimed_by, \
         claimed_until, refreshing_by, refreshing_until FROM {new}connections WHERE provider = 'msteams'"
    ));
    statements.push(format!(
        "INSERT INTO {old}ms_connection_spaces (connection_id, space_id, enabled) \
         SELECT connection_id, space_id, enabled FROM {new}connection_spaces"
    ));
    statements.push(format!(
        "INSERT INTO {old}oauth_states (state_hash, session_hash, space_id, nonce, pkce_verifier, expires_at) \
         SELECT state_hash, session_hash, space_id, nonce, pkce_verifier, expires_at FROM {new}oauth_states"
    ));
    statements
}

/// Puts the stopped server's database back into schema 7, every row kept.
async fn downgrade(app: &TestApp) {
    app.state.store.close().await;
    match &app.config().database_url {
        None => {
            let dir = &app.config().data_dir;
            let (live, old) = (dir.join("kehai.db"), dir.join("old.db"));
            let mut db =
                sqlx::SqliteConnection::connect(&format!("sqlite://{}?mode=rwc", old.display())).await.unwrap();
            old_schema(sqlx::migrate!("../kehai-store/migrations/sqlite")).run(&mut db).await.unwrap();
            let attach = format!("ATTACH DATABASE '{}' AS new", live.display());
            sqlx::raw_sql(sqlx::AssertSqlSafe(attach)).execute(&mut db).await.unwrap();
            for statement in copies("", "new.") {
                sqlx::raw_sql(sqlx::AssertSqlSafe(statement)).execute(&mut db).await.unwrap();
            }
            sqlx::raw_sql("DETACH DATABASE new").execute(&mut db).await.unwrap();
            db.close().await.unwrap();
            for file in ["kehai.db-wal", "kehai.db-shm"] {
                let _ = std::fs::remove_file(dir.join(file));
            }
            std::fs::rename(old, live).unwrap();
        }
        Some(url) => {
            let url = secrecy::ExposeSecret::expose_secret(url);
            let mut db = sqlx::PgConnection::connect(url).await.unwrap();
            sqlx::raw_sql("CREATE SCHEMA old; SET search_path TO old").execute(&mut db).await.unwrap();
            old_schema(sqlx::migrate!("../kehai-store/migrations/postgres")).run(&mut db).await.unwrap();
            for statement in copies("old.", "public.") {
                sqlx::raw_sql(sqlx::AssertSqlSafe(statement)).execute(&mut db).await.unwrap();
            }
            sqlx::raw_sql("DROP SCHEMA public CASCADE; ALTER SCHEMA old RENAME TO public")
                .execute(&mut db)
                .await
                .unwrap();
            db.close().await.unwrap();
        }
    }
}

/// Alice and Bob connected by the older kehai; after the upgrade their presences still arrive
/// and their subscriptions are renewed, not made anew.
async fn an_office_goes_on_after_the_upgrade(database: Option<String>) {
    let (mut app, emu) = start_both(
        NotificationMode::Rich,
        |e| {
            e.min_subscription_lifetime = Duration::ZERO;
            e.reauthorization_lead = Duration::from_secs(3);
        },
        |k| {
            k.ms_subscription_seconds = 20;
            k.database_url = database.map(Into::into);
        },
    )
    .await;
    app.clock_follows_real_time();
    set_status(&emu, "alice@example.com", "Available").await;
    set_status(&emu, "bob@example.com", "Available").await;
    let alice = connected(&app, &emu, "alice@example.com", "alice-password").await;
    connected(&app, &emu, "bob@example.com", "bob-password").await;
    set_status(&emu, "bob@example.com", "DoNotDisturb").await;
    avatar_becomes_for(&alice, "Bob", "⛔").await;
    let account = alice_account(&app).await;
    let before = app.state.store.connection_of(account, "msteams").await.unwrap().unwrap();
    let subscribed = subscriptions(&emu).await;
    assert_eq!(subscribed.len(), 2);

    app.shutdown().await.unwrap();
    downgrade(&app).await;
    app.restart().await;

    // Her connection as it was, now Microsoft Teams'.
    let after = app.state.store.connection_of(account, "msteams").await.unwrap().expect("carried over");
    assert_eq!(
        (after.id, &after.external_tenant, &after.external_user, after.connected_at, after.state),
        (before.id, &before.external_tenant, &before.external_user, before.connected_at, before.state)
    );
    // Presences still arrive (the sessions too were carried over: Alice's page goes on), for
    // longer than a subscription lives.
    let changes = presence_keeps_flowing(&emu, &alice, Duration::from_secs(30), Duration::from_secs(2)).await;
    assert!(changes >= 8, "{changes} changes");
    set_status(&emu, "bob@example.com", "BeRightBack").await;
    avatar_becomes_for(&alice, "Bob", "⏳").await;
    // Renewals continue: the same two subscriptions, renewed since, none made anew.
    let now = subscriptions(&emu).await;
    let ids = |subs: &[serde_json::Value]| {
        let mut ids: Vec<String> = subs.iter().map(|s| s["id"].as_str().unwrap().to_owned()).collect();
        ids.sort();
        ids
    };
    assert_eq!(ids(&now), ids(&subscribed), "the subscriptions the older kehai made");
    for sub in &now {
        let was = subscribed.iter().find(|s| s["id"] == sub["id"]).unwrap()["renewals"].as_u64().unwrap();
        assert!(sub["renewals"].as_u64().unwrap() > was, "renewed after the upgrade: {sub}");
    }
}

/// Waits until `name`'s avatar shows `emoji` on `client`'s page.
async fn avatar_becomes_for(client: &crate::support::Client, name: &str, emoji: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while find(&client.avatars("alpha").await, name).unwrap()["emoji"] != emoji {
        assert!(std::time::Instant::now() < deadline, "{name} does not show {emoji}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn an_office_connected_by_an_older_kehai_goes_on_after_the_upgrade_on_sqlite() {
    an_office_goes_on_after_the_upgrade(None).await;
}

#[tokio::test]
async fn an_office_connected_by_an_older_kehai_goes_on_after_the_upgrade_on_postgres() {
    let Some((url, _name)) = crate::support::postgres_database().await else { return };
    an_office_goes_on_after_the_upgrade(Some(url)).await;
}
