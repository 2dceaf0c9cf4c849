//! Opening each back end for a test.

use std::sync::Arc;

use kehai_store::{Database, Store};
use sqlx::{AssertSqlSafe, Connection, PgConnection};

pub struct TestDb {
    pub store: Arc<dyn Store>,
    _dir: Option<tempfile::TempDir>,
    admin_url: Option<String>,
    name: Option<String>,
}

pub async fn sqlite() -> TestDb {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = kehai_store::open(&Database::Sqlite(dir.path().join("kehai.db"))).await.expect("open sqlite");
    store.migrate().await.expect("migrate sqlite");
    TestDb { store, _dir: Some(dir), admin_url: None, name: None }
}

/// A fresh PostgreSQL database, or `None` (skip) when none is configured outside CI.
pub async fn postgres() -> Option<TestDb> {
    let url = postgres_url()?;
    let name = format!("kehai_test_{}", uuid::Uuid::new_v4().simple());
    let mut admin = PgConnection::connect(&url)
        .await
        .unwrap_or_else(|e| panic!("cannot reach PostgreSQL at KEHAI_TEST_POSTGRES_URL: {e}"));
    sqlx::raw_sql(AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut admin)
        .await
        .expect("create test database");
    let db_url = with_database(&url, &name);
    let store = kehai_store::open(&Database::Postgres(db_url)).await.expect("open postgres");
    store.migrate().await.expect("migrate postgres");
    Some(TestDb { store, _dir: None, admin_url: Some(url), name: Some(name) })
}

/// `KEHAI_TEST_POSTGRES_URL`, or `None` (skip) when it is not set outside CI.
pub fn postgres_url() -> Option<String> {
    match std::env::var("KEHAI_TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("CI=true but KEHAI_TEST_POSTGRES_URL is not set: the PostgreSQL contract cannot be skipped in CI")
        }
        _ => {
            eprintln!("skipping PostgreSQL: set KEHAI_TEST_POSTGRES_URL to run it");
            None
        }
    }
}

/// `url` with its database name replaced.
pub fn with_database(url: &str, name: &str) -> String {
    let mut parsed = url::Url::parse(url).expect("KEHAI_TEST_POSTGRES_URL is a URL");
    parsed.set_path(&format!("/{name}"));
    parsed.to_string()
}

impl TestDb {
    /// The SQLite file, for tests that inspect it.
    pub fn path(&self) -> Option<std::path::PathBuf> {
        self._dir.as_ref().map(|d| d.path().join("kehai.db"))
    }

    pub async fn drop_database(self) {
        let (Some(url), Some(name)) = (self.admin_url, self.name) else {
            return;
        };
        drop(self.store);
        if let Ok(mut admin) = PgConnection::connect(&url).await {
            let _ = sqlx::raw_sql(AssertSqlSafe(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")))
                .execute(&mut admin)
                .await;
        }
    }
}
