//! What only SQLite needs: one writer at a time, others waiting their turn, and files private to
//! kehai's user.

use std::time::{Duration, Instant};

use kehai_store::Applied;
use sqlx::Connection;

use crate::contract::{T0, apply_one, busy, connection, member, space};

/// A presence written while another process holds SQLite's write lock (`kehai member add`
/// beside the server, a backup) waits for it — up to the busy timeout — instead of failing with
/// "database is locked": kehai's write transactions take the lock first (`BEGIN IMMEDIATE`).
#[tokio::test]
async fn writes_wait_for_another_writer_instead_of_failing() {
    let db = crate::backends::sqlite().await;
    let store = &*db.store;
    let s = space(store, "office").await;
    let a = member(store, &s, "a@example.com", "A").await;
    let c = connection(a.id, "ms-user-a");
    store.save_connection(&c).await.unwrap();
    store.set_connection_space(c.id, s.id, true).await.unwrap();
    let busy = busy();
    // A read first, so that the store's reading connection has a snapshot to upgrade from.
    assert!(store.connection_of(a.id, "msteams").await.unwrap().is_some());
    let url = format!("sqlite://{}", db.path().unwrap().display());
    let mut other = sqlx::SqliteConnection::connect(&url).await.unwrap();
    sqlx::raw_sql("BEGIN IMMEDIATE").execute(&mut other).await.unwrap();
    sqlx::raw_sql("UPDATE spaces SET name = name").execute(&mut other).await.unwrap();
    let release = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        sqlx::raw_sql("COMMIT").execute(&mut other).await.unwrap();
    });
    let started = Instant::now();
    let applied = apply_one(store, c.id, "ms-user-a", Some("C0001"), false, Some(&busy), T0 + 1).await;
    assert!(matches!(applied, Ok(Applied::Shown(_))), "{applied:?}");
    assert!(started.elapsed() >= Duration::from_millis(250), "it waited for the lock: {:?}", started.elapsed());
    release.await.unwrap();
}

/// The database holds password hashes, emails and session hashes: a new data directory is the
/// owner's alone (0700), and so are the database and its journal files (0600), whatever the
/// umask.
#[cfg(unix)]
#[tokio::test]
async fn a_new_database_and_its_directory_are_readable_by_the_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let path = data.join("kehai.db");
    let store = kehai_store::open(&kehai_store::Database::Sqlite(path.clone())).await.unwrap();
    store.migrate().await.unwrap();
    space(&*store, "office").await;
    assert_eq!(mode(&data), 0o700, "the data directory");
    for file in ["kehai.db", "kehai.db-wal", "kehai.db-shm"] {
        assert_eq!(mode(&data.join(file)), 0o600, "{file}");
    }
    assert_eq!(kehai_store::files::mode_if_shared(&data).unwrap(), None);
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    assert_eq!(kehai_store::files::mode_if_shared(&data).unwrap(), Some(0o755), "a wider one is told");
}
