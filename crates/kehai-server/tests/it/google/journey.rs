//! Google Calendar as people do it, in headless Chromium against kehai and googleemu, in
//! Japanese and English: a member connects in the popup (googleemu's account chooser and consent
//! page), another member watches her avatar follow her calendar, and a personal account is
//! refused with a page that says why. Screenshots go to `target/screenshots/` (the README shows
//! some).

use std::time::Duration;

use googleemu::EventKind;
use serde_json::json;

use crate::{
    browser::Browser,
    journey::{badge_of, logged_in, open_profile},
    support::google::*,
};

/// The Google card's state in the open profile dialog, once it is `state`.
async fn card_becomes(browser: &Browser, state: &str) {
    browser.eventually("return document.getElementById('integration-gcal').dataset.state", json!(state)).await;
}

/// Connect → popup → googleemu's chooser (as `email`) and consent → kehai's last page; returns
/// that page's outcome and title, the popup closed (CLOSE) and the dialog back.
async fn connect_in_the_popup(browser: &Browser, email: &str, password: &str, shots: Option<&str>) -> (String, String) {
    open_profile(browser).await;
    card_becomes(browser, "not_connected").await;
    browser
        .client
        .execute("document.getElementById('integration-gcal').scrollIntoView({block: 'center'})", vec![])
        .await
        .unwrap();
    if let Some(shots) = shots {
        browser.screenshot(&format!("{shots}-google-1-status-not-connected")).await;
    }
    browser.click("#gcal-connect").await;
    let main = browser.switch_to_popup().await;
    browser.type_into("form:not(.accounts) #email", email).await;
    browser.type_into("#password", password).await;
    browser.click("form:not(.accounts) button.primary").await;
    browser.find("button[value=allow]").await;
    if let Some(shots) = shots {
        browser.screenshot(&format!("{shots}-google-2-consent")).await;
    }
    browser.click("button[value=allow]").await;
    let outcome = "const r = document.getElementById('connect-result'); return r ? r.dataset.outcome : null";
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let ended = loop {
        let now = browser.client.execute(outcome, vec![]).await.unwrap();
        if let Some(o) = now.as_str() {
            break o.to_owned();
        }
        assert!(std::time::Instant::now() < deadline, "the popup did not end on kehai's page");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let title = browser.find("#connect-result h1").await.text().await.unwrap();
    if let Some(shots) = shots {
        browser.screenshot(&format!("{shots}-google-3-{ended}")).await;
    }
    browser.click("#close-window").await;
    browser.back_to(main).await;
    (ended, title)
}

async fn connect_and_watch(lang: &str, done_title: &str, meeting_label: &str) {
    let (app, emu) = start().await;
    let Some(alice) = logged_in(&app, lang, "alice@example.com").await else { return };
    let Some(bob) = logged_in(&app, lang, "bob@example.com").await else { return };
    alice.eventually("return document.documentElement.lang", json!(lang)).await;

    let ended = connect_in_the_popup(&alice, "alice@example.com", "alice-password", Some(lang)).await;
    assert_eq!(ended, ("connected".to_owned(), done_title.to_owned()));
    card_becomes(&alice, "connected").await;
    alice
        .client
        .execute("document.getElementById('integration-gcal').scrollIntoView({block: 'center'})", vec![])
        .await
        .unwrap();
    alice.screenshot(&format!("{lang}-google-4-status-connected")).await;
    alice.click("#profile-cancel").await;

    // Bob sees her meeting on her avatar, labelled by where it comes from, and its end.
    event(&emu, "alice@example.com", EventKind::Meeting, Duration::ZERO, Duration::from_secs(600));
    bob.eventually_within(&badge_of("Alice"), json!("📅"), Duration::from_secs(10)).await;
    let watched = "const li = [...document.querySelectorAll('.avatar')].find(l => l.querySelector('.name').textContent === 'Alice'); \
        return li.querySelector('.avatar-face').title";
    bob.eventually(watched, json!(format!("Alice — {meeting_label}"))).await;
    bob.screenshot(&format!("{lang}-google-5-watching-a-meeting")).await;
    emu.clear_calendar("alice@example.com").unwrap();
    bob.eventually_within(&badge_of("Alice"), json!(null), Duration::from_secs(10)).await;
}

#[tokio::test]
async fn in_english_a_member_connects_google_calendar_and_another_sees_her_meeting() {
    connect_and_watch("en", "Authentication complete", "Google Calendar: 会議中 / In a meeting").await;
}

#[tokio::test]
async fn in_japanese_a_member_connects_google_calendar_and_another_sees_her_meeting() {
    connect_and_watch("ja", "認証完了", "Google Calendar: 会議中 / In a meeting").await;
}

#[tokio::test]
async fn a_personal_google_account_is_refused_with_a_page_that_says_why() {
    let (app, _emu) = start().await;
    let Some(alice) = logged_in(&app, "en", "alice@example.com").await else { return };
    let (outcome, title) = connect_in_the_popup(&alice, "carol@gmail.com", "carol-password", Some("en")).await;
    assert_eq!((outcome.as_str(), title.as_str()), ("personal", "Only work accounts"));
    card_becomes(&alice, "not_connected").await;
}
