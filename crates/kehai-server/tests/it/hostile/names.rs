//! Markup and SQL typed as names are names: stored as typed, shown as text.

use reqwest::StatusCode;
use serde_json::json;

use crate::support::{TestApp, between};

/// Script, HTML and SQL in names are names: stored as typed, shown as text.
#[tokio::test]
async fn markup_and_sql_in_names_are_stored_as_typed_and_shown_as_text() {
    let app = TestApp::start().await;
    let mut alice = app.member("alice@example.com").await;
    alice.load_space("alpha").await;
    let names = [
        "<script>alert(1)</script>",
        "<img src=x onerror=alert(1)>",
        "Robert'); DROP TABLE avatars;--",
        "\"}]</script><b>",
    ];
    for name in names {
        let r = alice.put_me("alpha", json!({ "display_name": name })).await;
        assert_eq!(r.status(), StatusCode::OK, "{name}");
        let avatars = alice.avatars("alpha").await;
        assert!(avatars.iter().any(|a| a["display_name"] == name), "{name} stored as typed");
        let page = alice.get("/s/alpha").await.text().await.unwrap();
        for raw in ["<script>alert", "<img src=x", "</script><b>"] {
            assert!(!page.contains(raw), "{name} shown as markup: {raw}");
        }
        let shown = between(&page, "<span class=\"whoami\">", "</span>").expect("the name on the page");
        assert_eq!(unescape(&shown), name, "shown as text: {shown}");
        // The page's embedded data is still JSON.
        alice.load_space("alpha").await;
    }
    assert_eq!(app.stored_avatars("alpha").await.len(), 2, "the avatars table is still there");
}

/// HTML text back to what it says (the entities an escaper writes).
fn unescape(html: &str) -> String {
    let mut text = html.to_owned();
    for (entity, c) in [
        ("&lt;", "<"),
        ("&#60;", "<"),
        ("&gt;", ">"),
        ("&#62;", ">"),
        ("&quot;", "\""),
        ("&#34;", "\""),
        ("&#x27;", "'"),
        ("&#39;", "'"),
        ("&amp;", "&"),
        ("&#38;", "&"),
    ] {
        text = text.replace(entity, c);
    }
    text
}
