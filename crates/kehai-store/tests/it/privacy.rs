//! `docs/privacy.md` lists exactly the tables and columns of the schema.

use std::collections::{BTreeMap, BTreeSet};

use sqlx::{Connection, SqliteConnection};

/// The tables and columns the document lists (`### \`table\`` headings, `| \`column\` |` rows).
fn documented() -> BTreeMap<String, BTreeSet<String>> {
    let doc = include_str!("../../../../docs/privacy.md");
    let mut tables = BTreeMap::new();
    let mut current: Option<String> = None;
    for line in doc.lines() {
        if let Some(name) = line.strip_prefix("### `").and_then(|l| l.strip_suffix('`')) {
            current = Some(name.to_owned());
            tables.insert(name.to_owned(), BTreeSet::new());
        } else if let (Some(table), Some(rest)) = (&current, line.strip_prefix("| `")) {
            let column = &rest[..rest.find('`').unwrap()];
            tables.get_mut(table).unwrap().insert(column.to_owned());
        }
    }
    tables
}

#[tokio::test]
async fn privacy_doc_lists_exactly_the_schema() {
    let db = crate::backends::sqlite().await;
    let path = db.path().unwrap();
    let mut conn = SqliteConnection::connect(&format!("sqlite://{}", path.display())).await.unwrap();
    let tables: Vec<(String,)> =
        sqlx::query_as("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name != '_sqlx_migrations'")
            .fetch_all(&mut conn)
            .await
            .unwrap();
    let mut actual = BTreeMap::new();
    for (table,) in tables {
        let columns: Vec<(String,)> =
            sqlx::query_as("SELECT name FROM pragma_table_info($1)").bind(&table).fetch_all(&mut conn).await.unwrap();
        actual.insert(table, columns.into_iter().map(|(c,)| c).collect::<BTreeSet<_>>());
    }
    assert_eq!(documented(), actual, "docs/privacy.md and the schema disagree");
}
