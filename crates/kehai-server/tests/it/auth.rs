//! Logging in and out, guests, sessions and CSRF.

use reqwest::StatusCode;

use crate::support::{PASSWORD, TestApp, between};

fn session_cookie(r: &reqwest::Response) -> Option<String> {
    r.headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|c| c.starts_with("kehai_session="))
}

#[tokio::test]
async fn login_succeeds_and_rotates_the_session() {
    let app = TestApp::start().await;
    // A guest session first: logging in must replace it, not keep it.
    let mut c = app.client();
    let csrf = c.form_csrf("/s/alpha/guest").await;
    let r = c.post_form("/s/alpha/guest", &[("display_name", "Visitor"), ("csrf", &csrf)]).await;
    let guest_cookie = session_cookie(&r).expect("a guest session cookie");
    let guest_id = between(&guest_cookie, "kehai_session=", ";").unwrap();

    let r = c.login("alice@example.com", PASSWORD, "/s/alpha").await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(r.headers()["location"], "/s/alpha");
    let cookie = session_cookie(&r).expect("a session cookie");
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"), "{cookie}");
    assert!(cookie.contains("Max-Age="), "members stay logged in across browser restarts");
    assert!(!cookie.contains("Secure"), "plain http public URL: no Secure flag");
    let member_id = between(&cookie, "kehai_session=", ";").unwrap();
    assert_ne!(guest_id, member_id, "a new session id at login");

    // The old session no longer works, and the guest it carried is gone.
    let old = reqwest::Client::new()
        .get(app.url("/api/spaces/alpha/avatars"))
        .header("cookie", format!("kehai_session={guest_id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(old.status(), StatusCode::UNAUTHORIZED);
    let data = c.load_space("alpha").await;
    let seen = c.avatars("alpha").await;
    let alice = seen.iter().find(|a| a["display_name"] == "Alice").unwrap();
    assert_eq!(data["me"], alice["person_id"]);
    assert!(seen.iter().all(|a| a["display_name"] != "Visitor"));
    // A logged-in member visiting /login goes on to where they were going.
    let r = c.get("/login?next=/s/alpha").await;
    assert_eq!((r.status(), r.headers()["location"].to_str().unwrap()), (StatusCode::SEE_OTHER, "/s/alpha"));
}

#[tokio::test]
async fn secure_cookies_on_https() {
    let app = TestApp::start_with(|c| c.public_url = "https://kehai.example".parse().unwrap()).await;
    let mut c = app.client();
    let r = c.login("alice@example.com", PASSWORD, "/").await;
    assert!(session_cookie(&r).expect("cookie").contains("Secure"));
}

#[tokio::test]
async fn failed_logins_say_the_same_for_unknown_email_and_wrong_password() {
    let app = TestApp::start().await;
    let mut c = app.client();
    let wrong_password = c.login("alice@example.com", "not the password", "/").await;
    assert_eq!(wrong_password.status(), StatusCode::UNAUTHORIZED);
    let a = wrong_password.text().await.unwrap();
    let unknown = c.login("nobody@example.com", "not the password", "/").await;
    assert_eq!(unknown.status(), StatusCode::UNAUTHORIZED);
    let b = unknown.text().await.unwrap();
    let msg = |html: &str| between(html, "data-error-code=\"login_failed\">", "<").expect("an error message");
    assert_eq!(msg(&a), msg(&b));
    assert_eq!(msg(&a), "The email or password is incorrect.");
    // No session was started.
    assert_eq!(c.get("/api/spaces/alpha/avatars").await.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn login_attempts_are_rate_limited() {
    let app = TestApp::start_with(|c| c.login_attempts_per_minute = 3).await;
    let mut c = app.client();
    for _ in 0..3 {
        assert_eq!(c.login("alice@example.com", "wrong password", "/").await.status(), StatusCode::UNAUTHORIZED);
    }
    let r = c.login("alice@example.com", PASSWORD, "/").await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS, "even the right password waits");
    assert!(r.text().await.unwrap().contains("Too many attempts"));
}

#[tokio::test]
async fn login_without_csrf_token_is_refused() {
    let app = TestApp::start().await;
    let c = app.client();
    c.get("/login").await; // gets the pre-session cookie
    let r = c.post_form("/login", &[("email", "alice@example.com"), ("password", PASSWORD), ("csrf", "forged")]).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(c.get("/api/spaces/alpha/avatars").await.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn next_never_leaves_the_site() {
    let app = TestApp::start().await;
    let mut c = app.client();
    let r = c.login("alice@example.com", PASSWORD, "//evil.example/x").await;
    assert_eq!(r.headers()["location"], "/");
}

#[tokio::test]
async fn logout_ends_the_session() {
    let app = TestApp::start().await;
    let mut c = app.member("alice@example.com").await;
    c.load_space("alpha").await;
    let csrf = c.csrf.clone().unwrap();
    // Without the token nothing happens.
    assert_eq!(c.post_form("/logout", &[("csrf", "nope")]).await.status(), StatusCode::FORBIDDEN);
    assert_eq!(c.get("/api/spaces/alpha/avatars").await.status(), StatusCode::OK);
    let r = c.post_form("/logout", &[("csrf", &csrf)]).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(c.get("/api/spaces/alpha/avatars").await.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn guests_join_where_allowed_and_only_there() {
    let app = TestApp::start().await;
    let guest = app.guest("Visitor").await;
    let names: Vec<_> =
        guest.avatars("alpha").await.iter().map(|a| a["display_name"].as_str().unwrap().to_owned()).collect();
    assert!(names.contains(&"Alice".to_owned()), "a guest sees the members: {names:?}");
    // A guest belongs to one space.
    assert_eq!(guest.get("/api/spaces/beta/avatars").await.status(), StatusCode::FORBIDDEN);

    // beta takes no guests: the page says so and a forged post creates nothing.
    let c = app.client();
    let r = c.get("/s/beta/guest").await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(r.text().await.unwrap().contains("does not accept guests"));
    let csrf = c.form_csrf("/s/alpha/guest").await;
    let r = c.post_form("/s/beta/guest", &[("display_name", "Sneaky"), ("csrf", &csrf)]).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(app.stored_avatars("beta").await.iter().all(|a| a.display_name.as_str() != "Sneaky"));
    assert_eq!(c.get("/s/nowhere/guest").await.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn guest_names_are_validated() {
    let app = TestApp::start().await;
    let c = app.client();
    let csrf = c.form_csrf("/s/alpha/guest").await;
    let r = c.post_form("/s/alpha/guest", &[("display_name", "   "), ("csrf", &csrf)]).await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let long = "x".repeat(65);
    let r = c.post_form("/s/alpha/guest", &[("display_name", &long), ("csrf", &csrf)]).await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(c.get("/api/spaces/alpha/avatars").await.status(), StatusCode::UNAUTHORIZED, "no session");
}

#[tokio::test]
async fn forms_refuse_what_is_not_a_form_with_a_code() {
    let app = TestApp::start().await;
    let c = app.client();
    let r = c.http.post(c.url("/login")).header("content-type", "application/json").body("{}").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unsupported_media_type");
    let huge = "x".repeat(200 * 1024);
    let r = c.post_form("/s/alpha/guest", &[("display_name", &huge)]).await;
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "payload_too_large");
}

#[tokio::test]
async fn joining_as_a_guest_ends_the_previous_session() {
    let app = TestApp::start().await;
    let mut carol = app.client();
    let r = carol.login("carol@example.com", PASSWORD, "/s/beta").await;
    let member_cookie = between(&session_cookie(&r).expect("cookie"), "kehai_session=", ";").unwrap();
    let csrf = carol.form_csrf("/s/alpha/guest").await;
    let r = carol.post_form("/s/alpha/guest", &[("display_name", "Carol as guest"), ("csrf", &csrf)]).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let old = reqwest::Client::new()
        .get(app.url("/api/spaces/beta/avatars"))
        .header("cookie", format!("kehai_session={member_cookie}"))
        .send()
        .await
        .unwrap();
    assert_eq!(old.status(), StatusCode::UNAUTHORIZED, "the member session ended");
    assert_eq!(carol.get("/api/spaces/alpha/avatars").await.status(), StatusCode::OK);
}

#[tokio::test]
async fn guest_joins_are_rate_limited_per_client() {
    let app = TestApp::start_with(|c| c.login_attempts_per_minute = 3).await;
    let mut statuses = Vec::new();
    for name in ["One", "Two", "Three", "Four"] {
        let c = app.client();
        let csrf = c.form_csrf("/s/alpha/guest").await;
        statuses.push(c.post_form("/s/alpha/guest", &[("display_name", name), ("csrf", &csrf)]).await.status());
    }
    assert_eq!(statuses[..3], [StatusCode::SEE_OTHER; 3]);
    assert_eq!(statuses[3], StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn behind_a_trusted_proxy_the_forwarded_address_is_the_client() {
    let app = TestApp::start_with(|c| {
        c.login_attempts_per_minute = 2;
        c.trust_forwarded_for = true;
    })
    .await;
    let attempt = |ip: &'static str| {
        let c = app.client();
        async move {
            let csrf = c.form_csrf("/login").await;
            c.http
                .post(c.url("/login"))
                .header("x-forwarded-for", format!("203.0.113.9, {ip}"))
                .form(&[("email", format!("{ip}@example.com")), ("password", "wrong".into()), ("csrf", csrf)])
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    assert_eq!(attempt("198.51.100.1").await, StatusCode::UNAUTHORIZED);
    assert_eq!(attempt("198.51.100.1").await, StatusCode::UNAUTHORIZED);
    assert_eq!(attempt("198.51.100.1").await, StatusCode::TOO_MANY_REQUESTS);
    // Another client behind the same proxy is not held back.
    assert_eq!(attempt("198.51.100.2").await, StatusCode::UNAUTHORIZED);
}
