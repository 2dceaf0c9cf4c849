//! Google Calendar fixtures: kehai and googleemu started together (Google pushing to kehai's
//! webhook over loopback), the popup's sign-in walked through googleemu's account chooser and
//! consent page, and events put into members' calendars.

use std::time::Duration;

use googleemu::{EventKind, EventSpec};
use reqwest::StatusCode;

use crate::support::{Client, TestApp};

/// kehai configured with googleemu's OAuth client, pushes on; googleemu knowing kehai's callback.
pub(crate) async fn start() -> (TestApp, googleemu::Running) {
    start_with(|_| {}, |_| {}).await
}

pub(crate) async fn start_with(
    kehai: impl FnOnce(&mut kehai_server::Config),
    emulator: impl FnOnce(&mut googleemu::Config),
) -> (TestApp, googleemu::Running) {
    crate::support::capture_logs();
    let mut config = googleemu::Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        allow_http_push: true,
        push: googleemu::PushTiming {
            timeout: Duration::from_secs(3),
            retry_base: Duration::from_millis(200),
            max_attempts: 3,
        },
        ..googleemu::Config::default()
    };
    emulator(&mut config);
    let emu = googleemu::Emulator::start(config).await.unwrap();
    let client = emu.emulator.world.lock().directory.clients[0].clone();
    let (issuer, calendar) = (emu.issuer(), emu.url("/calendar/v3"));
    let app = TestApp::start_with(|c| {
        c.google_client_id = Some(client.client_id.clone());
        c.google_client_secret = Some(client.client_secret.clone().into());
        c.google_issuer = issuer.parse().unwrap();
        c.google_calendar_url = calendar.parse().unwrap();
        c.google_push = kehai_server::config::GooglePush::On;
        kehai(c);
    })
    .await;
    app.clock_follows_real_time();
    emu.emulator.world.lock().directory.clients[0].redirect_uris.push(app.url("/integrations/gcal/callback"));
    (app, emu)
}

fn input(html: &str, name: &str) -> String {
    crate::support::between(html, &format!("name=\"{name}\" value=\""), "\"")
        .unwrap_or_else(|| panic!("no {name}:\n{html}"))
}

fn location(r: &reqwest::Response) -> String {
    r.headers().get("location").unwrap_or_else(|| panic!("no redirect ({})", r.status())).to_str().unwrap().to_owned()
}

/// Walks the popup from `alpha`'s Connect button through googleemu's chooser (signing in as
/// `email`) and its consent page (ticking the scopes `keep` allows); returns the callback Google
/// sends the browser back to, not yet followed.
pub(crate) async fn sign_in_at_google(
    c: &Client,
    emu: &googleemu::Running,
    email: &str,
    password: &str,
    keep: impl Fn(&str) -> bool,
) -> String {
    let r = c.get(&c.connect_link("gcal", "alpha").await).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let authorize = location(&r);
    assert!(authorize.starts_with(emu.base_url.as_str()), "{authorize}");
    let chooser = c.http.get(&authorize).send().await.unwrap().text().await.unwrap();
    let form = [
        ("flow", input(&chooser, "flow")),
        ("csrf", input(&chooser, "csrf")),
        ("email", email.to_owned()),
        ("password", password.to_owned()),
    ];
    let consent = c.http.post(emu.url("/o/oauth2/v2/auth/signin")).form(&form).send().await.unwrap();
    assert_eq!(consent.status(), StatusCode::OK, "no consent page");
    let consent = consent.text().await.unwrap();
    let mut form =
        vec![("flow", input(&consent, "flow")), ("csrf", input(&consent, "csrf")), ("decision", "allow".to_owned())];
    for scope in consent.split("type=\"checkbox\" name=\"scope\" value=\"").skip(1) {
        let scope = &scope[..scope.find('"').unwrap()];
        if keep(scope) {
            form.push(("scope", scope.to_owned()));
        }
    }
    let back = c.http.post(emu.url("/o/oauth2/v2/auth/consent")).form(&form).send().await.unwrap();
    let callback = location(&back);
    assert!(callback.starts_with(&c.url("/integrations/gcal/callback")), "{callback}");
    callback
}

/// [`sign_in_at_google`], then back to kehai. Returns kehai's last page.
pub(crate) async fn connect_as(
    c: &Client,
    emu: &googleemu::Running,
    email: &str,
    password: &str,
    keep: impl Fn(&str) -> bool,
) -> (StatusCode, String) {
    let callback = sign_in_at_google(c, emu, email, password, keep).await;
    let r = c.http.get(&callback).send().await.unwrap();
    (r.status(), r.text().await.unwrap())
}

/// `email` connects Google Calendar in `alpha`, allowing everything; asserts it worked.
pub(crate) async fn connected(app: &TestApp, emu: &googleemu::Running, email: &str, password: &str) -> Client {
    let c = app.member(email).await;
    let (status, page) = connect_as(&c, emu, email, password, |_| true).await;
    assert_eq!((status, outcome(&page)), (StatusCode::OK, "connected".to_owned()), "{page}");
    c
}

pub(crate) fn outcome(html: &str) -> String {
    crate::support::between(html, "data-outcome=\"", "\"").expect("a result page")
}

/// An event of `kind` in `email`'s calendar from `start_in` from now, for `length`: its start and
/// end.
pub(crate) fn event(
    emu: &googleemu::Running,
    email: &str,
    kind: EventKind,
    start_in: Duration,
    length: Duration,
) -> (time::OffsetDateTime, time::OffsetDateTime) {
    let spec = EventSpec::starting_in(
        kind,
        time::Duration::try_from(start_in).unwrap(),
        time::Duration::try_from(length).unwrap(),
    );
    let made = emu.add_event(email, spec).unwrap();
    let at = |w: googleemu::When| w.instant(time::UtcOffset::UTC);
    (at(made.start), at(made.end))
}

/// `n` one-minute meetings in `email`'s calendar an hour and more from now, one push each.
pub(crate) fn later_meetings(emu: &googleemu::Running, email: &str, n: u64) {
    for i in 0..n {
        let start = Duration::from_secs(3600 + i * 60);
        event(emu, email, EventKind::Meeting, start, Duration::from_secs(60));
    }
}

/// How long after `t` it is now (zero if `t` is still to come).
pub(crate) fn since(t: time::OffsetDateTime) -> Duration {
    Duration::try_from(time::OffsetDateTime::now_utc() - t).unwrap_or(Duration::ZERO)
}

/// Waits until `name`'s avatar shows `emoji` on `client`'s page (within `secs`); returns how
/// long it took.
pub(crate) async fn avatar_becomes(client: &Client, name: &str, emoji: Option<&str>, secs: u64) -> Duration {
    let started = std::time::Instant::now();
    loop {
        let avatars = client.avatars("alpha").await;
        let shown = crate::support::find(&avatars, name).unwrap()["emoji"].as_str().map(str::to_owned);
        if shown.as_deref() == emoji {
            return started.elapsed();
        }
        assert!(started.elapsed() < Duration::from_secs(secs), "{name} shows {shown:?}, not {emoji:?}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// kehai configured with both googleemu and msemu (a member may connect Teams and Google
/// Calendar at once).
pub(crate) async fn start_with_teams() -> (TestApp, googleemu::Running, msemu::Running) {
    let mut directory = msemu::Directory::default();
    directory.apps[0].redirect_uris.clear();
    let config = msemu::Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        directory,
        allow_http_notifications: true,
        ..msemu::Config::default()
    };
    let teams = msemu::Emulator::start(config).await.unwrap();
    let registration = teams.emulator.world.lock().directory.apps[0].clone();
    let base = teams.base_url.clone();
    let (app, google) = start_with(
        |c| {
            c.ms_client_id = Some(registration.client_id.to_string());
            c.ms_client_secret = Some(registration.client_secret.clone().into());
            c.ms_login_url = base.clone();
            c.ms_graph_url = base;
        },
        |_| {},
    )
    .await;
    teams.emulator.world.lock().directory.apps[0].redirect_uris.push(app.url("/integrations/msteams/callback"));
    (app, google, teams)
}

/// Calendar calls made for `email` so far.
pub(crate) fn calls(emu: &googleemu::Running, email: &str) -> usize {
    emu.calendar_requests().iter().filter(|r| r.user.as_deref() == Some(email)).count()
}

/// Waits until `email`'s calendar calls stop growing for longer than a push's debounce (a
/// debounced read done); returns the count.
pub(crate) async fn settled(emu: &googleemu::Running, email: &str) -> usize {
    let mut last = calls(emu, email);
    loop {
        tokio::time::sleep(Duration::from_millis(3000)).await;
        let now = calls(emu, email);
        if now == last {
            return now;
        }
        last = now;
    }
}

/// The token of `email`'s push channel, as kehai keeps it (sealed): what a genuine push carries.
pub(crate) async fn channel_token(app: &TestApp, email: &str) -> String {
    let connection = app.state.store.connection_of(app.account(email).await, "gcal").await.unwrap().unwrap();
    let sealed = connection.subscription.unwrap().client_state;
    let place =
        kehai_store::secrets::Place::Connection(connection.id, kehai_store::secrets::ConnectionSecret::ClientState);
    secrecy::ExposeSecret::expose_secret(&app.state.secrets.open(&sealed.0, place).unwrap()).to_owned()
}
