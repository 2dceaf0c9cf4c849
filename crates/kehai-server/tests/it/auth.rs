//! Logging in and out, guests, sessions and CSRF.

use reqwest::StatusCode;

use crate::support::{PASSWORD, TestApp, between};

fn session_cookie(r: &reqwest::Response) -> Option<String> {
    r.headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|c| c.starts_with("kehai_session=") || c.starts_with("__Host-kehai_session="))
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
    let form = c.get("/login").await;
    let seed = form.headers()["set-cookie"].to_str().unwrap().to_owned();
    let r = c.login("alice@example.com", PASSWORD, "/").await;
    let session = session_cookie(&r).expect("cookie");
    // `__Host-`: only this host over https may set them (a sibling subdomain or a network
    // attacker on http cannot plant a session or a CSRF seed).
    for cookie in [&session, &seed] {
        assert!(cookie.starts_with("__Host-kehai_"), "{cookie}");
        assert!(cookie.contains("Secure") && cookie.contains("Path=/") && !cookie.contains("Domain"), "{cookie}");
    }
    let id = between(&session, "__Host-kehai_session=", ";").unwrap();
    let with = |name: &str| {
        app.client().http.get(app.url("/api/spaces/alpha/avatars")).header("cookie", format!("{name}={id}")).send()
    };
    assert_eq!(with("__Host-kehai_session").await.unwrap().status(), StatusCode::OK);
    assert_eq!(with("kehai_session").await.unwrap().status(), StatusCode::UNAUTHORIZED, "the plain name is not read");
    // Over http (a local demo) browsers refuse the prefix: the plain names.
    let http = TestApp::start().await;
    let r = http.client().login("alice@example.com", PASSWORD, "/").await;
    assert!(session_cookie(&r).unwrap().starts_with("kehai_session="));
}

/// Login CSRF: whoever can plant the pre-login cookie (a sibling subdomain, a network attacker on
/// http) must still not be able to log a victim's browser into an account they chose. The form's
/// token is kehai's signature of the browser's seed, its network and its time: the attacker can
/// neither compute one for a seed they plant nor use a pair kehai issued to them elsewhere.
#[tokio::test]
async fn a_planted_csrf_seed_does_not_let_another_site_log_the_browser_in() {
    let app = TestApp::start_with(|c| c.trust_forwarded_for = true).await;
    let victim_network = "192.0.2.50";
    let login = |seed: String, token: String| {
        app.client()
            .http
            .post(app.url("/login"))
            .header("x-forwarded-for", victim_network)
            .header("cookie", format!("kehai_csrf={seed}"))
            .form(&[("email", "mallory@example.com"), ("password", PASSWORD), ("csrf", &token), ("next", "/")])
            .send()
    };
    // The double-submit token of a seed the attacker chose (what they can compute).
    let planted = "planted-seed-planted-seed-planted-seed-0123".to_owned();
    let computed = kehai_server::auth::csrf::token_for(&planted);
    assert_eq!(login(planted, computed).await.unwrap().status(), StatusCode::FORBIDDEN);
    // A seed and token kehai issued to the attacker's own browser, on the attacker's network.
    let form = app.client().http.get(app.url("/login")).header("x-forwarded-for", "203.0.113.9").send().await.unwrap();
    let seed = between(form.headers()["set-cookie"].to_str().unwrap(), "kehai_csrf=", ";").unwrap();
    let token = between(&form.text().await.unwrap(), "name=\"csrf\" value=\"", "\"").unwrap();
    assert_eq!(login(seed.clone(), token.clone()).await.unwrap().status(), StatusCode::FORBIDDEN);
    // The same pair from the network it was issued to is good (so the network is what stopped it).
    let r = app
        .client()
        .http
        .post(app.url("/login"))
        .header("x-forwarded-for", "203.0.113.9")
        .header("cookie", format!("kehai_csrf={seed}"))
        .form(&[("email", "alice@example.com"), ("password", PASSWORD), ("csrf", &token), ("next", "/")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
}

/// Failing a victim's password on purpose, from as many networks as it takes, locks her email
/// for new browsers only: the browser she logged in with before is not held back.
#[tokio::test]
async fn an_attacker_failing_her_password_does_not_keep_her_out_of_her_own_browser() {
    let app = TestApp::start_with(|c| {
        c.login_attempts_per_minute = 3;
        c.trust_forwarded_for = true;
    })
    .await;
    let mut alice = app.client();
    let home = "198.51.100.7";
    assert_eq!(alice.login_from(home, "alice@example.com", PASSWORD).await.status(), StatusCode::SEE_OTHER);
    alice.load_space("alpha").await;
    let csrf = alice.csrf.clone().unwrap();
    assert_eq!(alice.post_form("/logout", &[("csrf", &csrf)]).await.status(), StatusCode::SEE_OTHER);
    assert_eq!(alice.get("/api/spaces/alpha/avatars").await.status(), StatusCode::UNAUTHORIZED);
    // The attacker, from three networks, with every spelling of her address.
    for (n, spelling) in ["alice@example.com", "ALICE@example.com", " Alice@Example.com "].iter().enumerate() {
        let attacker = app.client();
        let r = attacker.login_from(&format!("203.0.113.{n}"), spelling, "guess").await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    }
    let new_browser = app.client();
    let r = new_browser.login_from("192.0.2.50", "alice@example.com", PASSWORD).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS, "her email is locked for browsers it does not know");
    let r = alice.login_from(home, "alice@example.com", PASSWORD).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER, "her own browser logs in");
    assert_eq!(alice.get("/api/spaces/alpha/avatars").await.status(), StatusCode::OK);
    // Her success forgot the failures: the new browser may try again.
    let r = new_browser.login_from("192.0.2.50", "alice@example.com", PASSWORD).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
}

/// A device cookie is no free pass: one that fails the password as often as the email may (a
/// copied cookie in a botnet) vouches for nothing any more.
#[tokio::test]
async fn a_device_cookie_that_fails_as_often_as_the_email_may_vouches_for_nothing() {
    let app = TestApp::start_with(|c| {
        c.login_attempts_per_minute = 3;
        c.trust_forwarded_for = true;
    })
    .await;
    let mut known = app.client();
    assert_eq!(known.login_from("198.51.100.7", "alice@example.com", PASSWORD).await.status(), StatusCode::SEE_OTHER);
    known.load_space("alpha").await;
    let csrf = known.csrf.clone().unwrap();
    known.post_form("/logout", &[("csrf", &csrf)]).await;
    for n in 0..3 {
        let r = known.login_from(&format!("203.0.113.{n}"), "alice@example.com", "guess").await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    }
    let r = known.login_from("203.0.113.200", "alice@example.com", PASSWORD).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS, "the cookie failed too often to vouch");
}

/// A client over its budget is refused before anything else is counted or computed: its
/// attempts at an email cost that email nothing. And a client is its IPv6 /64.
#[tokio::test]
async fn a_client_over_its_limit_counts_against_no_email_and_an_ipv6_slash_64_is_one_client() {
    let app = TestApp::start_with(|c| {
        c.login_attempts_per_minute = 3;
        c.trust_forwarded_for = true;
    })
    .await;
    let attacker = app.client();
    for n in 1..=3 {
        let r = attacker.login_from(&format!("2001:db8:1:2::{n}"), &format!("nobody{n}@example.com"), "x").await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    }
    for n in 4..=10 {
        let r = attacker.login_from(&format!("2001:db8:1:2:{n}::1"), "alice@example.com", "guess").await;
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS, "the same /64, rotated");
    }
    let r = app.client().login_from("2001:db8:1:3::1", "alice@example.com", PASSWORD).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER, "alice's email was not worn down by the refused attempts");
}

/// Password checks (argon2id, 19 MiB each) run a bounded number at once: beyond it a login is
/// asked to come again, at once and without hashing.
#[tokio::test]
async fn when_every_password_check_is_running_a_login_is_asked_to_come_again() {
    let app = TestApp::start().await;
    let held = app.state.passwords.hold_all();
    let r = app.client().login("alice@example.com", PASSWORD, "/").await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(r.headers()["retry-after"], "1");
    assert!(r.text().await.unwrap().contains("data-error-code=\"login_busy\""));
    drop(held);
    assert_eq!(app.client().login("alice@example.com", PASSWORD, "/").await.status(), StatusCode::SEE_OTHER);
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
            let email = format!("{ip}@example.com");
            let fields = [("email", email.as_str()), ("password", "wrong")];
            c.post_form_from(&format!("203.0.113.9, {ip}"), "/login", &fields).await.status()
        }
    };
    assert_eq!(attempt("198.51.100.1").await, StatusCode::UNAUTHORIZED);
    assert_eq!(attempt("198.51.100.1").await, StatusCode::UNAUTHORIZED);
    assert_eq!(attempt("198.51.100.1").await, StatusCode::TOO_MANY_REQUESTS);
    // Another client behind the same proxy is not held back.
    assert_eq!(attempt("198.51.100.2").await, StatusCode::UNAUTHORIZED);
}
