//! A fresh PostgreSQL database for a run, dropped afterwards.

use sqlx::{AssertSqlSafe, Connection, PgConnection};

pub struct Database {
    server: String,
    name: String,
    /// The database's URL.
    pub url: String,
}

impl Database {
    /// A new database on the server at `server` (a URL naming any database there).
    pub async fn create(server: &str) -> anyhow::Result<Database> {
        let name = format!("kehai_bench_{}", uuid::Uuid::new_v4().simple());
        let mut admin = PgConnection::connect(server).await?;
        sqlx::raw_sql(AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&mut admin).await?;
        let mut url = url::Url::parse(server)?;
        url.set_path(&format!("/{name}"));
        Ok(Database { server: server.to_owned(), name, url: url.to_string() })
    }

    /// A fresh database on `server`; none (SQLite) without a server.
    pub async fn fresh(server: Option<&str>) -> anyhow::Result<Option<Database>> {
        Ok(match server {
            Some(server) => Some(Database::create(server).await?),
            None => None,
        })
    }

    /// The URL of a fresh database, if any.
    pub fn url(fresh: &Option<Database>) -> Option<String> {
        fresh.as_ref().map(|d| d.url.clone())
    }

    pub async fn drop_fresh(fresh: Option<Database>) {
        if let Some(db) = fresh {
            db.drop().await;
        }
    }

    pub async fn drop(self) {
        if let Ok(mut admin) = PgConnection::connect(&self.server).await {
            let drop = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
            if let Err(e) = sqlx::raw_sql(AssertSqlSafe(drop)).execute(&mut admin).await {
                eprintln!("could not drop the benchmark database {}: {e}", self.name);
            }
        }
    }
}
