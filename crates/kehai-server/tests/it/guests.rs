//! Guests: how many a space holds, how fast they may come, and spaces that take them through
//! their guest link only.

use kehai_core::Role;
use kehai_server::admin::{self, GuestAccess};
use reqwest::StatusCode;

use crate::support::{Client, PASSWORD, TestApp, between};

/// A guest join of `alpha` from `client` (with `link`, if any): the answer.
async fn join(client: &Client, name: &str, link: Option<&str>) -> reqwest::Response {
    let query = link.map(|l| format!("?link={l}")).unwrap_or_default();
    let csrf = client.form_csrf(&format!("/s/alpha/guest{query}")).await;
    let mut form = vec![("display_name", name), ("csrf", &csrf)];
    if let Some(link) = link {
        form.push(("link", link));
    }
    client.post_form("/s/alpha/guest", &form).await
}

fn error_code(html: &str) -> String {
    between(html, "data-error-code=\"", "\"").unwrap_or_default()
}

#[tokio::test]
async fn a_space_holds_at_most_its_guests_and_takes_more_as_they_leave() {
    let app = TestApp::start_with(|c| c.max_guests_per_space = 2).await;
    let mut first = app.client();
    assert_eq!(join(&first, "One", None).await.status(), StatusCode::SEE_OTHER);
    assert_eq!(join(&app.client(), "Two", None).await.status(), StatusCode::SEE_OTHER);
    let third = app.client();
    let r = join(&third, "Three", None).await;
    assert_eq!(r.status(), StatusCode::CONFLICT);
    let html = r.text().await.unwrap();
    assert_eq!(error_code(&html), "guests_full");
    assert!(html.contains("value=\"Three\""), "the name typed is kept");
    assert_eq!(app.stored_avatars("alpha").await.iter().filter(|a| a.display_name.as_str() == "Three").count(), 0);
    // One leaves: there is room again.
    first.load_space("alpha").await;
    let csrf = first.csrf.clone().unwrap();
    first.post_form("/logout", &[("csrf", &csrf)]).await;
    assert_eq!(join(&third, "Three", None).await.status(), StatusCode::SEE_OTHER);
}

/// A full space refuses before anything else changes: the visitor's own session goes on.
#[tokio::test]
async fn a_refused_join_ends_no_session() {
    let app = TestApp::start_with(|c| c.max_guests_per_space = 1).await;
    assert_eq!(join(&app.client(), "One", None).await.status(), StatusCode::SEE_OTHER);
    // Carol, a member of beta, tries to join alpha as a guest.
    let carol = app.member("carol@example.com").await;
    assert_eq!(join(&carol, "Carol as a guest", None).await.status(), StatusCode::CONFLICT);
    assert_eq!(carol.get("/api/spaces/beta/avatars").await.status(), StatusCode::OK, "Carol is still logged in");
}

#[tokio::test]
async fn guest_joins_are_limited_per_space_from_every_network_together() {
    let app = TestApp::start_with(|c| {
        c.guest_joins_per_minute = 2;
        c.trust_forwarded_for = true;
    })
    .await;
    let mut statuses = Vec::new();
    for (n, name) in ["One", "Two", "Three"].iter().enumerate() {
        let c = app.client();
        let r = c.post_form_from(&format!("198.51.100.{n}"), "/s/alpha/guest", &[("display_name", *name)]).await;
        statuses.push(r.status());
    }
    assert_eq!(statuses, [StatusCode::SEE_OTHER, StatusCode::SEE_OTHER, StatusCode::TOO_MANY_REQUESTS]);
}

#[tokio::test]
async fn a_space_may_take_guests_through_its_guest_link_only_and_rotate_it() {
    let app = TestApp::start().await;
    let secret = admin::set_guests(&*app.state.store, "alpha", GuestAccess::Link).await.unwrap().unwrap();
    let link = secrecy::ExposeSecret::expose_secret(&secret).to_owned();
    let visitor = app.client();
    for path in ["/s/alpha/guest".to_owned(), "/s/alpha/guest?link=wrong".to_owned()] {
        let r = visitor.get(&path).await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{path}");
        assert!(r.text().await.unwrap().contains("data-error-code=\"guest_link_required\""), "{path}");
    }
    // Posting without the link is refused too, and changes nothing.
    let csrf = visitor.form_csrf("/login").await;
    let r = visitor.post_form("/s/alpha/guest", &[("display_name", "Sneaky"), ("csrf", &csrf)]).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    // The login page shows no open door to such a space.
    assert!(!visitor.get("/login?next=/s/alpha").await.text().await.unwrap().contains("/s/alpha/guest"));
    // Through the link: in.
    assert_eq!(join(&visitor, "Invited", Some(&link)).await.status(), StatusCode::SEE_OTHER);
    // A new link: the old one stops working.
    let newer = admin::set_guests(&*app.state.store, "alpha", GuestAccess::Link).await.unwrap().unwrap();
    assert_eq!(app.client().get(&format!("/s/alpha/guest?link={link}")).await.status(), StatusCode::FORBIDDEN);
    let newer = secrecy::ExposeSecret::expose_secret(&newer).to_owned();
    assert_eq!(join(&app.client(), "Invited too", Some(&newer)).await.status(), StatusCode::SEE_OTHER);
    // Open again, or off.
    admin::set_guests(&*app.state.store, "alpha", GuestAccess::Open).await.unwrap();
    assert_eq!(join(&app.client(), "Anyone", None).await.status(), StatusCode::SEE_OTHER);
    admin::set_guests(&*app.state.store, "alpha", GuestAccess::Off).await.unwrap();
    let r = app.client().get("/s/alpha/guest").await;
    assert!(r.text().await.unwrap().contains("data-error-code=\"guests_not_allowed\""));
    assert!(matches!(
        admin::set_guests(&*app.state.store, "nowhere", GuestAccess::Open).await,
        Err(admin::AdminError::UnknownSpace(_))
    ));
}

/// Guests see every member's status: the space's admins are told so where guests may join.
#[tokio::test]
async fn admins_are_told_that_guests_see_everyones_status() {
    let app = TestApp::start().await;
    admin::add_member(&*app.state.store, "alpha", "dora@example.com", Some("Dora"), Some(PASSWORD), Role::Admin)
        .await
        .unwrap();
    let dora = app.member("dora@example.com").await;
    let page = dora.get("/s/alpha").await.text().await.unwrap();
    assert!(page.contains("id=\"guests-notice\"") && page.contains("Guests can join this space with its address"));
    admin::set_guests(&*app.state.store, "alpha", GuestAccess::Link).await.unwrap();
    let page = dora.get("/s/alpha").await.text().await.unwrap();
    assert!(page.contains("through its guest link"), "{page}");
    let alice = app.member("alice@example.com").await;
    assert!(!alice.get("/s/alpha").await.text().await.unwrap().contains("guests-notice"), "members who are not admins");
    admin::set_guests(&*app.state.store, "alpha", GuestAccess::Off).await.unwrap();
    assert!(!dora.get("/s/alpha").await.text().await.unwrap().contains("guests-notice"), "no guests, no notice");
}
