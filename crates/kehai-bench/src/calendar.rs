//! g. Google Calendar: Calendar API calls per connected member and hour in steady state with
//! push channels, beside the same members' calendars polled every five minutes, measured in the
//! same run; and how late the avatars of many members flip when their meetings all start at
//! once (on the hour).
//!
//! kehai and googleemu (the emulated Google) run in this process on loopback; members sign in
//! and connect Google Calendar through the real pages and OAuth flow. For the call counts time is
//! accelerated by shortening the reading intervals — the safety read with push (an hour), the
//! five-minute poll without — by one factor, and the members' calendars change at the rate
//! google-protocol.md §4.3 estimates (half a change per member-hour), half of the changes moving
//! busy time (a meeting) and half not (shown as free: a title, a guest); the weekly channel
//! replacement (two calls a week) is added from its schedule. googleemu counts the calls.

use std::time::{Duration, Instant};

use anyhow::Context;
use futures::StreamExt;
use googleemu::{EventKind, EventSpec};
use kehai_server::{AppState, Config, config::GooglePush};

use crate::{
    Sizes,
    load::percentile,
    report::{Report, Row},
    rig::between,
};

const SPACE: &str = "calendar";
const PASSWORD: &str = "calendars need passwords too";
/// Production: a safety read every hour with push, every five minutes without.
const SAFETY_S: f64 = 3600.0;
const POLL_S: f64 = 300.0;
/// Calendar changes per member-hour (google-protocol.md §4.3: 0.1–0.5 pings per member-hour).
const CHANGES_PER_HOUR: f64 = 0.5;
/// A channel is replaced once a week: one `watch` and one `stop`.
const REPLACEMENT_PER_HOUR: f64 = 2.0 / (7.0 * 24.0);

fn email(n: usize) -> String {
    format!("member{n}@example.com")
}

/// kehai and googleemu with members connected to Google Calendar.
struct CalendarRig {
    emu: googleemu::Running,
    base: String,
    stop: tokio::sync::oneshot::Sender<()>,
    server: tokio::task::JoinHandle<anyhow::Result<()>>,
    _dir: tempfile::TempDir,
    _state: AppState,
}

impl CalendarRig {
    async fn start(members: usize, push: bool, poll: Duration) -> anyhow::Result<CalendarRig> {
        let mut directory = googleemu::Directory::default();
        for n in 0..members {
            directory.users.push(googleemu::User {
                email: email(n),
                password: PASSWORD.into(),
                name: format!("Member {n}"),
                hd: Some("example.com".into()),
                sub: None,
                time_zone: "UTC".into(),
                admin_policy_enforced: false,
            });
        }
        let config = googleemu::Config {
            listen: "127.0.0.1:0".parse()?,
            directory,
            allow_http_push: true,
            ..googleemu::Config::default()
        };
        let emu = googleemu::Emulator::start(config).await?;
        let listener = kehai_server::listen_on("127.0.0.1:0".parse()?)?;
        let base = format!("http://{}", listener.local_addr()?);
        let dir = tempfile::tempdir()?;
        let client = emu.emulator.world.lock().directory.clients[0].clone();
        let config = Config {
            listen: listener.local_addr()?,
            public_url: base.parse()?,
            data_dir: dir.path().to_owned(),
            google_client_id: Some(client.client_id.clone()),
            google_client_secret: Some(client.client_secret.clone().into()),
            google_issuer: emu.issuer().parse()?,
            google_calendar_url: emu.url("/calendar/v3").parse()?,
            google_push: if push { GooglePush::On } else { GooglePush::Off },
            google_poll_seconds: Some(poll.as_secs().max(1)),
            login_attempts_per_minute: u32::MAX,
            ..Config::default()
        };
        emu.emulator.world.lock().directory.clients[0].redirect_uris =
            vec![format!("{base}/integrations/gcal/callback")];
        let app = kehai_server::App::build(config).await?;
        let store = std::sync::Arc::clone(&app.state.store);
        kehai_server::admin::create_space(&*store, SPACE, "Calendar", false).await?;
        for n in 0..members {
            let role = kehai_core::Role::Member;
            let name = format!("Member {n}");
            kehai_server::admin::add_member(&*store, SPACE, &email(n), Some(&name), Some(PASSWORD), role).await?;
        }
        let state = app.state.clone();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(kehai_server::run(app, listener, async move {
            let _ = stopped.await;
        }));
        let rig = CalendarRig { emu, base, stop, server, _dir: dir, _state: state };
        let connected: Vec<anyhow::Result<()>> =
            futures::stream::iter((0..members).map(|n| rig.connect(n))).buffer_unordered(4).collect().await;
        connected.into_iter().collect::<anyhow::Result<Vec<()>>>()?;
        Ok(rig)
    }

    /// A browser with member `n` logged in.
    async fn log_in(&self, n: usize) -> anyhow::Result<reqwest::Client> {
        crate::rig::log_in(&self.base, SPACE, &email(n), PASSWORD).await
    }

    /// Member `n` connects Google Calendar: kehai's connect link, googleemu's account chooser
    /// and consent page, kehai's callback.
    async fn connect(&self, n: usize) -> anyhow::Result<()> {
        let c = self.log_in(n).await?;
        let page = c.get(format!("{}/s/{SPACE}", self.base)).send().await?.text().await?;
        let token = between(&page, "\"connect\":\"", "\"").context("the connect token")?.to_owned();
        let r = c.get(format!("{}/integrations/gcal/connect?space={SPACE}&connect={token}", self.base)).send().await?;
        let chooser = c.get(location(&r)?).send().await?.text().await?;
        let input =
            |html: &str, name: &str| between(html, &format!("name=\"{name}\" value=\""), "\"").map(str::to_owned);
        let email = email(n);
        let form = [
            ("flow", input(&chooser, "flow").context("the chooser")?),
            ("csrf", input(&chooser, "csrf").context("the chooser's token")?),
            ("email", email),
            ("password", PASSWORD.to_owned()),
        ];
        let consent = c.post(self.emu.url("/o/oauth2/v2/auth/signin")).form(&form).send().await?.text().await?;
        let mut form = vec![
            ("flow", input(&consent, "flow").context("the consent page")?),
            ("csrf", input(&consent, "csrf").context("the consent page's token")?),
            ("decision", "allow".to_owned()),
        ];
        for scope in consent.split("type=\"checkbox\" name=\"scope\" value=\"").skip(1) {
            form.push(("scope", scope[..scope.find('"').unwrap_or(0)].to_owned()));
        }
        let back = c.post(self.emu.url("/o/oauth2/v2/auth/consent")).form(&form).send().await?;
        let done = c.get(location(&back)?).send().await?.text().await?;
        anyhow::ensure!(between(&done, "data-outcome=\"", "\"") == Some("connected"), "member {n} did not connect");
        Ok(())
    }

    fn calls(&self) -> usize {
        self.emu.calendar_requests().len()
    }

    async fn stop(self) -> anyhow::Result<()> {
        let _ = self.stop.send(());
        self.server.await?
    }
}

fn location(r: &reqwest::Response) -> anyhow::Result<String> {
    Ok(r.headers().get("location").context("a redirect")?.to_str()?.to_owned())
}

/// Calendar calls per member and simulated hour over `window`, with the safety or poll interval
/// `interval_s` (production seconds) shortened by `speed`, and the members' calendars changing
/// at [`CHANGES_PER_HOUR`] simulated.
async fn calls_per_member_hour(
    members: usize,
    push: bool,
    interval_s: f64,
    speed: f64,
    window: Duration,
) -> anyhow::Result<(f64, usize)> {
    // (kehai takes the interval in whole seconds: the speeds are chosen to give whole seconds.)
    let rig = CalendarRig::start(members, push, Duration::from_secs_f64(interval_s / speed)).await?;
    // Settled: the connections' first reads done, every kept calendar read once since.
    tokio::time::sleep(Duration::from_secs_f64(interval_s / speed) + Duration::from_secs(3)).await;
    let before = rig.calls();
    let simulated_hours = window.as_secs_f64() * speed / 3600.0;
    let changes = (members as f64 * CHANGES_PER_HOUR * simulated_hours).round() as usize;
    let every = window.div_f64(changes.max(1) as f64);
    let started = Instant::now();
    for change in 0..changes {
        let member = change % members;
        // Half move busy time, half do not; each a day ahead, clear of the window's boundaries.
        let kind = if change % 2 == 0 { EventKind::Meeting } else { EventKind::Free };
        let start = time::Duration::hours(20) + time::Duration::minutes(i64::try_from(change).unwrap_or(0) % 60);
        rig.emu.add_event(&email(member), EventSpec::starting_in(kind, start, time::Duration::minutes(30)))?;
        tokio::time::sleep_until((started + every * u32::try_from(change + 1).unwrap_or(u32::MAX)).into()).await;
    }
    tokio::time::sleep(window.saturating_sub(started.elapsed())).await;
    let calls = rig.calls() - before;
    rig.stop().await?;
    Ok((calls as f64 / members as f64 / simulated_hours, changes))
}

pub async fn run(sizes: &Sizes, report: &mut Report) -> anyhow::Result<()> {
    let speed = sizes.calendar_speed;
    let window = sizes.calendar_window;
    let members = sizes.calendar_members;
    let (pushed, changes) = calls_per_member_hour(members, true, SAFETY_S, speed, window).await?;
    let (polled, _) = calls_per_member_hour(members, false, POLL_S, speed, window).await?;
    let with_push = pushed + REPLACEMENT_PER_HOUR;
    report.push(Row::value("g. Google Calendar", "calls per member-hour, 5-minute polling", polled, None));
    report.push(Row::value("g. Google Calendar", "calls per member-hour with push", with_push, Some(3.0)));
    report.note(format!(
        "g. {members} members, time ×{speed:.0}, {:.1} simulated hours, {changes} calendar changes \
         (half moving busy time); the weekly channel replacement adds {REPLACEMENT_PER_HOUR:.3}",
        window.as_secs_f64() * speed / 3600.0
    ));
    boundaries(sizes.boundary_members, report).await
}

/// Every member's meeting starts at the same instant: how late each avatar shows it, as a page
/// holding the space's event stream sees it.
async fn boundaries(members: usize, report: &mut Report) -> anyhow::Result<()> {
    let rig = CalendarRig::start(members, true, Duration::from_secs(3600)).await?;
    let page = rig.log_in(0).await?;
    let stream = page
        .get(format!("{}/s/{SPACE}/events", rig.base))
        .header("accept", "text/event-stream")
        .send()
        .await?
        .error_for_status()?;
    let (frames, mut arrivals) = tokio::sync::mpsc::unbounded_channel::<(String, time::OffsetDateTime)>();
    tokio::spawn(async move {
        let mut body = stream.bytes_stream();
        let mut buffer = String::new();
        while let Some(Ok(chunk)) = body.next().await {
            let at = time::OffsetDateTime::now_utc();
            buffer.push_str(&String::from_utf8_lossy(&chunk));
            while let Some(end) = buffer.find("\n\n") {
                let frame: String = buffer.drain(..end + 2).collect();
                let data: String = frame.lines().filter_map(|l| l.strip_prefix("data:")).map(str::trim).collect();
                let Ok(avatar) = serde_json::from_str::<serde_json::Value>(&data) else { continue };
                if avatar["presence"]["emoji"] == "📅"
                    && let Some(name) = avatar["display_name"].as_str()
                    && frames.send((name.to_owned(), at)).is_err()
                {
                    return;
                }
            }
        }
    });
    // "On the hour": every meeting starts at the same whole second, after the pushes of their
    // creation have been read.
    let lead = Duration::from_secs(8) + Duration::from_millis(u64::try_from(members).unwrap_or(0) * 5);
    let start = (time::OffsetDateTime::now_utc() + lead).replace_millisecond(0)?;
    for n in 0..members {
        let spec = EventSpec::at(EventKind::Meeting, start, start + time::Duration::minutes(30));
        rig.emu.add_event(&email(n), spec)?;
    }
    let calls_before_start = loop {
        let calls = rig.calls();
        if time::OffsetDateTime::now_utc() >= start - time::Duration::seconds(1) {
            break calls;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let mut late = Vec::with_capacity(members);
    let deadline = Instant::now() + lead + Duration::from_secs(60);
    let mut seen = std::collections::HashSet::new();
    while seen.len() < members && Instant::now() < deadline {
        let Ok(Some((name, at))) = tokio::time::timeout(Duration::from_secs(5), arrivals.recv()).await else {
            continue;
        };
        if at >= start && seen.insert(name) {
            late.push(Duration::try_from(at - start).unwrap_or(Duration::ZERO));
        }
    }
    anyhow::ensure!(late.len() == members, "{} of {members} avatars flipped", late.len());
    let calls_at_boundary = rig.calls() - calls_before_start;
    report.push(Row::time("g. Google Calendar", "boundary flip lateness p50", percentile(&mut late, 50.0), None));
    report.push(Row::time(
        "g. Google Calendar",
        "boundary flip lateness p99",
        percentile(&mut late, 99.0),
        Some(1000.0),
    ));
    report.push(Row::value(
        "g. Google Calendar",
        "Calendar calls at the boundary",
        calls_at_boundary as f64,
        Some(0.0),
    ));
    report.note(format!(
        "g. boundary: {members} members' meetings starting at the same second, seen on a page's event stream"
    ));
    rig.stop().await
}
