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

    pub async fn drop(self) {
        if let Ok(mut admin) = PgConnection::connect(&self.server).await {
            let drop = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
            if let Err(e) = sqlx::raw_sql(AssertSqlSafe(drop)).execute(&mut admin).await {
                eprintln!("could not drop the benchmark database {}: {e}", self.name);
            }
        }
    }
}
