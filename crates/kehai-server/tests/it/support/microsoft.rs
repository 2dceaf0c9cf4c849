//! Microsoft Teams fixtures: kehai and msemu started together, the popup's sign-in walked, presences
//! set at msemu, notifications made as Graph makes them, and what the tests look at afterwards.

use std::time::Duration;

use kehai_server::{config::NotificationMode, presence::Dropped, providers::msteams::Teams};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::{Client, TestApp, find};

/// kehai configured with msemu's app, and msemu knowing kehai's callback.
pub(crate) async fn start() -> (TestApp, msemu::Running) {
    start_in(NotificationMode::Rich).await
}

pub(crate) async fn start_in(mode: NotificationMode) -> (TestApp, msemu::Running) {
    start_custom(mode, |_| {}).await
}

pub(crate) async fn start_custom(
    mode: NotificationMode,
    emulator: impl FnOnce(&mut msemu::Config),
) -> (TestApp, msemu::Running) {
    start_both(mode, emulator, |_| {}).await
}

/// kehai and msemu, each configured further.
pub(crate) async fn start_both(
    mode: NotificationMode,
    emulator: impl FnOnce(&mut msemu::Config),
    kehai: impl FnOnce(&mut kehai_server::Config),
) -> (TestApp, msemu::Running) {
    start_both_offering(mode, emulator, kehai, None).await
}

/// [`start_both`], kehai offering the providers `offer` makes beside Microsoft Teams.
pub(crate) async fn start_both_offering(
    mode: NotificationMode,
    emulator: impl FnOnce(&mut msemu::Config),
    kehai: impl FnOnce(&mut kehai_server::Config),
    offer: Option<crate::support::Offer>,
) -> (TestApp, msemu::Running) {
    crate::support::capture_logs();
    let mut directory = msemu::Directory::default();
    directory.apps[0].redirect_uris.clear();
    let mut config = msemu::Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        directory,
        allow_http_notifications: true,
        ..msemu::Config::default()
    };
    emulator(&mut config);
    let emu = msemu::Emulator::start(config).await.unwrap();
    let app_reg = emu.emulator.world.lock().directory.apps[0].clone();
    let base = emu.base_url.clone();
    let app = TestApp::start_offering(
        |c| {
            c.ms_client_id = Some(app_reg.client_id.to_string());
            c.ms_client_secret = Some(app_reg.client_secret.clone().into());
            c.ms_login_url = base.clone();
            c.ms_graph_url = base;
            c.ms_notifications = mode;
            kehai(c);
        },
        offer,
    )
    .await;
    emu.emulator.world.lock().directory.apps[0].redirect_uris.push(app.url("/integrations/msteams/callback"));
    (app, emu)
}

fn hidden(html: &str, name: &str) -> String {
    crate::support::between(html, &format!("name=\"{name}\" value=\""), "\"")
        .unwrap_or_else(|| panic!("no {name}:\n{html}"))
}

fn location(r: &reqwest::Response) -> String {
    r.headers().get("location").unwrap_or_else(|| panic!("no redirect ({})", r.status())).to_str().unwrap().to_owned()
}

/// Walks the popup: connect → msemu sign-in (→ consent) → back to kehai. Returns msemu's last
/// redirect (to kehai's callback).
pub(crate) async fn sign_in_at_microsoft(
    c: &Client,
    emu: &msemu::Running,
    email: &str,
    password: &str,
    decision: &str,
) -> String {
    let r = c.get(&c.connect_link("msteams", "alpha").await).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let authorize = location(&r);
    assert!(authorize.starts_with(emu.base_url.as_str()), "{authorize}");
    let page = c.http.get(&authorize).send().await.unwrap().text().await.unwrap();
    let mut answer = c
        .http
        .post(emu.url("/organizations/login"))
        .form(&[("flow", hidden(&page, "flow").as_str()), ("email", email), ("password", password)])
        .send()
        .await
        .unwrap();
    if answer.status() == StatusCode::OK {
        let consent = answer.text().await.unwrap();
        answer = c
            .http
            .post(emu.url("/organizations/consent"))
            .form(&[("flow", hidden(&consent, "flow").as_str()), ("decision", decision)])
            .send()
            .await
            .unwrap();
    }
    location(&answer)
}

/// Follows msemu's redirect to kehai's callback: the page the popup ends on.
pub(crate) async fn back_to_kehai(c: &Client, callback: &str) -> (StatusCode, String) {
    let r = c.http.get(callback).send().await.unwrap();
    (r.status(), r.text().await.unwrap())
}

pub(crate) fn outcome(html: &str) -> String {
    crate::support::between(html, "data-outcome=\"", "\"").expect("a result page")
}

pub(crate) async fn set_status(emu: &msemu::Running, email: &str, status: &str) {
    let r = reqwest::Client::new()
        .put(emu.url(&format!("/_emu/api/users/{email}/presence")))
        .json(&json!({ "status": status }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}

pub(crate) async fn subscriptions(emu: &msemu::Running) -> Vec<Value> {
    let v: Value = reqwest::get(emu.url("/_emu/api/subscriptions")).await.unwrap().json().await.unwrap();
    v["subscriptions"].as_array().unwrap().clone()
}

pub(crate) async fn card(c: &Client) -> Value {
    let r = c.get("/api/spaces/alpha/integrations/msteams").await;
    assert_eq!(r.status(), StatusCode::OK);
    r.json().await.unwrap()
}

pub(crate) async fn connected(app: &TestApp, emu: &msemu::Running, email: &str, password: &str) -> Client {
    let mut c = app.member(email).await;
    c.load_space("alpha").await;
    let callback = sign_in_at_microsoft(&c, emu, email, password, "accept").await;
    assert_eq!(outcome(&back_to_kehai(&c, &callback).await.1), "connected");
    c
}

/// Adds Alice to a second space, `gamma`.
pub(crate) async fn alice_in_gamma(app: &TestApp) {
    let store = &*app.state.store;
    kehai_server::admin::create_space(store, "gamma", "Gamma office", false).await.unwrap();
    kehai_server::admin::add_member(store, "gamma", "alice@example.com", Some("Alice"), None, kehai_core::Role::Member)
        .await
        .unwrap();
}

/// Notifications processed to their end so far: applied, or dropped for any reason.
pub(crate) fn notifications_done(app: &TestApp) -> u64 {
    let reasons = [
        "unknown_subscription",
        "client_state",
        "validation_token",
        "decryption",
        "stale",
        "not_connected",
        "unavailable",
    ];
    let metrics = &app.state.metrics;
    metrics.notifications_applied("msteams")
        + reasons.iter().map(|r| metrics.notifications_dropped("msteams", r)).sum::<u64>()
}

/// Requests msemu's token endpoint answered.
pub(crate) fn token_requests(emu: &msemu::Running) -> u64 {
    let counts = emu.emulator.world.lock().requests.clone();
    counts.iter().filter(|(k, _)| k.ends_with("/oauth2/v2.0/token")).map(|(_, n)| *n).sum()
}

/// Polls Alice's avatar in alpha until it shows `emoji` (Graph pushes; kehai applies in the
/// background).
pub(crate) async fn avatar_becomes(c: &Client, emoji: &str) -> Value {
    for _ in 0..100 {
        let a = find(&c.avatars("alpha").await, "Alice").unwrap().clone();
        if a["emoji"] == emoji {
            return a;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("Alice's avatar never showed {emoji}");
}

/// A basic (resource-data-free) notification for Alice's subscription, as Graph would send it.
pub(crate) async fn basic_notification(
    app: &TestApp,
    client_state: Option<&str>,
) -> kehai_microsoft::notifications::NotificationBatch {
    serde_json::from_value(basic_notification_json(app, client_state).await).unwrap()
}

/// The same, as the JSON body Graph posts.
pub(crate) async fn basic_notification_json(app: &TestApp, client_state: Option<&str>) -> Value {
    let connection = alice_connection(app).await;
    let subscription = connection.subscription.clone().unwrap();
    let genuine =
        opened(app, &connection, &subscription.client_state, kehai_store::secrets::ConnectionSecret::ClientState);
    let client_state =
        client_state.map_or_else(|| secrecy::ExposeSecret::expose_secret(&genuine).to_owned(), str::to_owned);
    json!({"value": [{
        "subscriptionId": subscription.id,
        "clientState": client_state,
        "changeType": "updated",
        "resource": format!("communications/presences/{}", connection.external_user),
        "resourceData": {"id": connection.external_user},
        "tenantId": connection.external_tenant,
    }]})
}

/// Changes a presence at msemu without any notification (as if it were missed).
pub(crate) fn quietly_set(emu: &msemu::Running, email: &str, availability: &str) {
    let mut world = emu.emulator.world.lock();
    let id = world.directory.user_by_email(email).unwrap().id;
    let sequence = world.next_sequence();
    let p = world.presences.get_mut(&id).unwrap();
    p.availability = availability.into();
    p.activity = availability.into();
    p.sequence = sequence;
}

pub(crate) async fn alice_connection(app: &TestApp) -> kehai_store::Connection {
    let account = alice_account(app).await;
    app.state.store.connection_of(account, "msteams").await.unwrap().unwrap()
}

/// Hands a notification collection to the engine as the webhook's workers do.
pub(crate) async fn process(
    state: &kehai_server::AppState,
    teams: &std::sync::Arc<Teams>,
    batch: kehai_microsoft::notifications::NotificationBatch,
) -> Vec<Result<(), Dropped>> {
    kehai_server::presence::ingest::process(state, &**teams, &kehai_server::providers::msteams::inbound(batch)).await
}

/// One renewal sweep of Microsoft Teams' subscriptions.
pub(crate) async fn sweep(state: &kehai_server::AppState, teams: &std::sync::Arc<Teams>) -> usize {
    kehai_server::presence::renewal::sweep(state, &**teams).await
}

/// kehai and msemu with Alice connected while her presence is `status`, and the integration.
pub(crate) async fn alice_connected_while(status: &str) -> (TestApp, msemu::Running, Client, std::sync::Arc<Teams>) {
    let (app, emu) = start().await;
    set_status(&emu, "alice@example.com", status).await;
    let alice = connected(&app, &emu, "alice@example.com", "alice-password").await;
    let teams = Teams::offered(&app.state).unwrap();
    (app, emu, alice, teams)
}

/// kehai and msemu with Alice and Bob connected while Available, Alice's client and the
/// integration.
pub(crate) async fn alice_and_bob_connected() -> (TestApp, msemu::Running, Client, std::sync::Arc<Teams>) {
    let (app, emu, alice, teams) = alice_connected_while("Available").await;
    set_status(&emu, "bob@example.com", "Available").await;
    connected(&app, &emu, "bob@example.com", "bob-password").await;
    (app, emu, alice, teams)
}

/// A sealed value of a connection's row, opened.
pub(crate) fn opened(
    app: &TestApp,
    connection: &kehai_store::Connection,
    sealed: &kehai_store::Sealed,
    secret: kehai_store::secrets::ConnectionSecret,
) -> secrecy::SecretString {
    app.state.secrets.open(&sealed.0, kehai_store::secrets::Place::Connection(connection.id, secret)).unwrap()
}

pub(crate) fn bob_ms_id(emu: &msemu::Running) -> String {
    emu.emulator.world.lock().directory.user_by_email("bob@example.com").unwrap().id.to_string()
}

pub(crate) async fn fault(emu: &msemu::Running, fault: Value) {
    let r = reqwest::Client::new().post(emu.url("/_emu/api/faults")).json(&fault).send().await.unwrap();
    assert!(r.status().is_success(), "{}", r.status());
}

/// `/metrics` has every one of `lines`.
pub(crate) async fn has_metrics(c: &Client, lines: &[&str]) {
    let metrics = c.get("/metrics").await.text().await.unwrap();
    for line in lines {
        assert!(metrics.lines().any(|l| l == *line), "no {line} in\n{metrics}");
    }
}

/// Polls `/metrics` until it has `line`.
pub(crate) async fn metric_becomes(c: &Client, line: &str) {
    for _ in 0..100 {
        if c.get("/metrics").await.text().await.unwrap().lines().any(|l| l == line) {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("never: {line}");
}

/// The Status card's ON/OFF toggle in `space`, as the page sends it.
pub(crate) async fn toggle(c: &Client, space: &str, on: bool) -> reqwest::Response {
    let url = c.url(&format!("/api/spaces/{space}/integrations/msteams"));
    c.http
        .put(url)
        .header("x-csrf-token", c.csrf.clone().unwrap())
        .json(&json!({ "enabled": on }))
        .send()
        .await
        .unwrap()
}

/// The Status card's Disconnect in `space`.
pub(crate) async fn disconnect(c: &Client, space: &str) -> reqwest::Response {
    let url = c.url(&format!("/api/spaces/{space}/integrations/msteams"));
    c.http.delete(url).header("x-csrf-token", c.csrf.clone().unwrap()).send().await.unwrap()
}

/// Alice's account id.
pub(crate) async fn alice_account(app: &TestApp) -> kehai_core::PersonId {
    app.stored_avatars("alpha").await.into_iter().find(|a| a.display_name.as_str() == "Alice").unwrap().person_id
}

/// Cycles Alice's presence for `run`, a change every `every`, each of which must reach her
/// avatar: a lapsed subscription or a lost authorization would leave one behind.
pub(crate) async fn presence_keeps_flowing(
    emu: &msemu::Running,
    alice: &Client,
    run: Duration,
    every: Duration,
) -> usize {
    let rows = [("Busy", "🔴"), ("DoNotDisturb", "⛔"), ("BeRightBack", "⏳"), ("InAMeeting", "📅")];
    let started = std::time::Instant::now();
    let mut changes = 0;
    while started.elapsed() < run {
        let (status, emoji) = rows[changes % rows.len()];
        set_status(emu, "alice@example.com", status).await;
        avatar_becomes(alice, emoji).await;
        changes += 1;
        tokio::time::sleep(every).await;
    }
    changes
}

/// A rich notification of Alice's presence as Graph sends it: encrypted for kehai's certificate,
/// with a validation token msemu signed with `claims` changed as `flaw` says.
pub(crate) async fn rich_notification(
    app: &TestApp,
    emu: &msemu::Running,
    availability: &str,
    sequence: &str,
    flaw: impl FnOnce(&mut Value),
) -> kehai_microsoft::notifications::NotificationBatch {
    let current = app.state.store.current_certificate().await.unwrap().unwrap();
    rich_notification_for(app, emu, &current.id, availability, sequence, flaw).await
}

/// The same, encrypted for the certificate `certificate_id`.
pub(crate) async fn rich_notification_for(
    app: &TestApp,
    emu: &msemu::Running,
    certificate_id: &str,
    availability: &str,
    sequence: &str,
    flaw: impl FnOnce(&mut Value),
) -> kehai_microsoft::notifications::NotificationBatch {
    use base64::Engine;
    let connection = alice_connection(app).await;
    let subscription = connection.subscription.clone().unwrap();
    let client_state =
        opened(app, &connection, &subscription.client_state, kehai_store::secrets::ConnectionSecret::ClientState);
    let cert = app.state.store.certificate(certificate_id).await.unwrap().unwrap();
    let der = base64::engine::general_purpose::STANDARD.decode(&cert.certificate).unwrap();
    let presence = json!({
        "id": connection.external_user, "availability": availability, "activity": availability,
        "sequenceNumber": sequence,
    });
    let encrypted = msemu::crypto::encrypt(&der, &cert.id, presence.to_string().as_bytes()).unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    let tenant = &connection.external_tenant;
    let mut claims = json!({
        "aud": app.state.config.ms_client_id, "iss": emu.url(&format!("/{tenant}/v2.0")),
        "iat": now, "nbf": now, "exp": now + 3600,
        "azp": kehai_microsoft::notifications::PUBLISHER, "tid": tenant, "ver": "2.0",
    });
    flaw(&mut claims);
    let token = emu.emulator.world.keys().sign(&claims).unwrap();
    serde_json::from_value(json!({
        "value": [{
            "subscriptionId": subscription.id,
            "clientState": secrecy::ExposeSecret::expose_secret(&client_state),
            "changeType": "updated",
            "resource": format!("communications/presences('{}')", connection.external_user),
            "resourceData": {"@odata.type": "#Microsoft.Graph.presence", "id": connection.external_user},
            "encryptedContent": encrypted,
            "tenantId": tenant,
        }],
        "validationTokens": [token],
    }))
    .unwrap()
}

/// `GET /users/{id}/presence` requests msemu has answered (or is answering).
pub(crate) async fn presence_reads(emu: &msemu::Running) -> u64 {
    let v: Value = reqwest::get(emu.url("/_emu/api/requests")).await.unwrap().json().await.unwrap();
    v["requests"]["GET /v1.0/users/{id}/presence"].as_u64().unwrap_or(0)
}

/// Polls `name`'s avatar in alpha until it shows `emoji`, for at most `within`.
pub(crate) async fn shows_within(c: &Client, name: &str, emoji: &str, within: Duration) -> bool {
    let started = std::time::Instant::now();
    while started.elapsed() < within {
        if find(&c.avatars("alpha").await, name).unwrap()["emoji"] == emoji {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    false
}
