//! The pages: language, the space page for members and guests, and what they must never do.

use reqwest::StatusCode;
use serde_json::json;

use crate::support::TestApp;

#[tokio::test]
async fn language_follows_the_browser_and_the_switch_is_remembered() {
    let app = TestApp::start().await;
    let c = app.client();
    let ja = c.http.get(c.url("/login")).header("accept-language", "ja,en;q=0.5").send().await.unwrap();
    let html = ja.text().await.unwrap();
    assert!(html.contains("<html lang=\"ja\">") && html.contains("ログイン"), "{html}");

    let r = c.get("/login?lang=ja").await;
    assert!(r.headers().get_all("set-cookie").iter().any(|v| v.to_str().unwrap().starts_with("kehai_lang=ja")));
    let html = c.http.get(c.url("/login")).header("accept-language", "en").send().await.unwrap().text().await.unwrap();
    assert!(html.contains("<html lang=\"ja\">"), "the remembered choice beats Accept-Language");
    let html = c.get("/login?lang=en").await.text().await.unwrap();
    assert!(html.contains("<html lang=\"en\">") && html.contains("Log in"));
}

#[tokio::test]
async fn anonymous_visitors_are_sent_to_log_in_with_a_guest_option() {
    let app = TestApp::start().await;
    let c = app.client();
    let r = c.get("/s/alpha").await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(r.headers()["location"], "/login?next=/s/alpha");
    let html = c.get("/login?next=/s/alpha").await.text().await.unwrap();
    assert!(html.contains("href=\"/s/alpha/guest\""), "alpha takes guests");
    let html = c.get("/login?next=/s/beta").await.text().await.unwrap();
    assert!(!html.contains("/guest\""), "beta does not");
    assert_eq!(c.get("/s/nowhere").await.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_status_section_is_for_members_and_guests_are_told_how_to_log_in() {
    let app = TestApp::start().await;
    let alice = app.member("alice@example.com").await;
    let html = alice.get("/s/alpha").await.text().await.unwrap();
    assert!(html.contains("id=\"integrations\""));
    assert!(!html.contains("members only"));

    let guest = app.guest("Visitor").await;
    let html = guest.get("/s/alpha").await.text().await.unwrap();
    assert!(!html.contains("id=\"integrations\""), "guests never see integrations");
    assert!(html.contains("available to members only"));
    assert!(html.contains("href=\"/login?next=/s/alpha\""));
    let html = guest.http.get(guest.url("/s/alpha?lang=ja")).send().await.unwrap().text().await.unwrap();
    assert!(html.contains("メンバーのみ利用できます"));
}

#[tokio::test]
async fn pages_keep_to_the_content_security_policy_and_escape_names() {
    let app = TestApp::start().await;
    let mut alice = app.member("alice@example.com").await;
    alice.load_space("alpha").await;
    let r = alice.put_me("alpha", json!({"display_name": "<script>alert(1)</script>"})).await;
    assert_eq!(r.status(), StatusCode::OK);
    let guest = app.guest("</script><img src=x onerror=alert(1)>").await;
    for (who, path) in [(&alice, "/s/alpha"), (&guest, "/s/alpha"), (&alice, "/"), (&alice, "/login")] {
        let html = who.get(path).await.text().await.unwrap();
        assert!(!html.contains("<script>alert"), "{path}: unescaped name");
        assert!(!html.contains(" style="), "{path}: inline style");
        assert!(!html.contains("<img"), "{path}: unescaped markup in a name");
        // Attributes in our markup are quoted; an escaped name cannot produce a quoted one.
        assert!(!html.contains(" onclick=\"") && !html.contains(" onerror=\""), "{path}: inline handler");
        for tag in html.split("<script").skip(1) {
            let open = &tag[..tag.find('>').unwrap()];
            assert!(open.contains("src=") || open.contains("application/json"), "{path}: inline script {open}");
        }
    }
}

#[tokio::test]
async fn static_assets_are_served() {
    let app = TestApp::start().await;
    let c = app.client();
    let css = c.get("/static/app.css").await;
    assert_eq!(css.status(), StatusCode::OK);
    assert!(css.headers()["content-type"].to_str().unwrap().starts_with("text/css"));
    // The space page's script is ES modules, each served as it is.
    for module in ["main.js", "page.js", "api.js", "avatars.js", "profile.js", "integrations.js", "live.js"] {
        let js = c.get(&format!("/static/space/{module}")).await;
        assert_eq!(js.status(), StatusCode::OK, "{module}");
        assert!(js.headers()["content-type"].to_str().unwrap().starts_with("text/javascript"), "{module}");
    }
    assert!(c.get("/static/space/live.js").await.text().await.unwrap().contains("EventSource"));
    assert_eq!(c.get("/static/space/nothing.js").await.status(), StatusCode::NOT_FOUND);
    assert_eq!(c.get("/static/../Cargo.toml").await.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn unknown_pages_are_a_page_for_browsers_and_json_for_programs() {
    let app = TestApp::start().await;
    let c = app.client();
    let r = c.http.get(c.url("/nothing-here")).header("accept", "text/html").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert!(r.text().await.unwrap().contains("There is no such page."));
    let r = c.http.get(c.url("/api/nothing")).header("accept", "text/html").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "route_not_found");
}

#[tokio::test]
async fn the_language_switch_keeps_where_the_login_goes_next() {
    let app = TestApp::start().await;
    let html = app.client().get("/login?next=/s/alpha").await.text().await.unwrap();
    assert!(html.contains("href=\"?next=%2Fs%2Falpha&#38;lang=ja\""), "{html}");
}

#[tokio::test]
async fn without_a_microsoft_app_the_status_section_says_teams_is_not_configured() {
    let app = TestApp::start().await;
    let html = app.member("alice@example.com").await.get("/s/alpha").await.text().await.unwrap();
    assert!(html.contains("data-provider=\"msteams\" data-state=\"not_configured\""));
    assert!(html.contains("The Microsoft Teams integration is not configured on this server."));
    // Nor Google Calendar without an OAuth client.
    assert!(html.contains("data-provider=\"gcal\" data-state=\"not_configured\""));
    assert!(html.contains("The Google Calendar integration is not configured on this server."));
    let configured = TestApp::start_with(|c| {
        c.ms_client_id = Some("0d8b6f4a-2c1e-4f3a-9b5d-7e9f1a3c5b6d".into());
        c.ms_client_secret = Some("secret".to_owned().into());
    })
    .await;
    let html = configured.member("alice@example.com").await.get("/s/alpha").await.text().await.unwrap();
    assert!(!html.contains("data-provider=\"msteams\" data-state=\"not_configured\""));
    assert!(
        html.contains("id=\"integration-msteams\" data-provider=\"msteams\" data-state=\"loading\""),
        "the card the script fills"
    );
    assert!(html.contains("never your calendar"), "what kehai can and cannot see (it never reads calendar content)");
}
