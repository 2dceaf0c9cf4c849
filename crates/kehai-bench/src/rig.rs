//! A kehai with members connected to Teams, as the benchmarks need it: msemu (the emulated
//! Microsoft) and kehai in this process, on loopback, and members who signed in and connected
//! through the real pages and OAuth flow.

use std::{collections::HashMap, time::Duration};

use anyhow::Context;
use kehai_server::{AppState, Config, config::NotificationMode};
use reqwest::{StatusCode, redirect::Policy};
use uuid::Uuid;

pub const SPACE: &str = "bench";
const PASSWORD: &str = "benchmarks need passwords too";

/// What a rig is made of.
#[derive(Debug, Clone)]
pub struct Plan {
    pub members: usize,
    pub mode: NotificationMode,
    /// `KEHAI_DATABASE_URL`; `None` for SQLite in a temporary directory.
    pub database_url: Option<String>,
    /// `KEHAI_MS_SUBSCRIPTION_SECONDS` (and msemu grants that).
    pub subscription_seconds: u64,
    /// msemu's access-token lifetime.
    pub token_lifetime: Duration,
}

impl Plan {
    pub fn new(members: usize) -> Plan {
        Plan {
            members,
            mode: NotificationMode::Rich,
            database_url: None,
            subscription_seconds: 3540,
            token_lifetime: Duration::from_secs(3599),
        }
    }
}

/// One connected member.
#[derive(Debug, Clone)]
pub struct Member {
    pub name: String,
    pub ms_user: Uuid,
    pub subscription: Uuid,
}

/// kehai and msemu running, with connected members.
pub struct Rig {
    pub emu: msemu::Running,
    pub state: AppState,
    /// kehai's base URL.
    pub base: String,
    pub members: Vec<Member>,
    /// kehai's database: PostgreSQL's URL, or `None` for SQLite in [`Rig::sqlite_path`].
    pub database_url: Option<String>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    server: tokio::task::JoinHandle<anyhow::Result<()>>,
    _dir: tempfile::TempDir,
}

pub fn email(n: usize) -> String {
    format!("member{n}@contoso.example")
}

impl Rig {
    pub async fn start(plan: &Plan) -> anyhow::Result<Rig> {
        Self::start_with(plan, |_| {}).await
    }

    /// A rig whose msemu is configured further.
    pub async fn start_with(plan: &Plan, emulator: impl FnOnce(&mut msemu::Config)) -> anyhow::Result<Rig> {
        let mut directory = msemu::Directory::default();
        for n in 0..plan.members {
            directory.users.push(msemu::directory::User {
                id: Uuid::new_v4(),
                tenant: "contoso".into(),
                email: email(n),
                display_name: format!("Member {n}"),
                password: None,
                admin: false,
            });
        }
        let mut emu_config = msemu::Config {
            listen: "127.0.0.1:0".parse()?,
            directory,
            allow_http_notifications: true,
            min_subscription_lifetime: Duration::from_secs(plan.subscription_seconds.min(10)),
            access_token_lifetime: plan.token_lifetime,
            // Graph's limit per app and tenant is about people, not benchmarks.
            presence_requests_per_30s: usize::MAX,
            ..msemu::Config::default()
        };
        emulator(&mut emu_config);
        let emu = msemu::Emulator::start(emu_config).await?;
        let listener = kehai_server::listen_on("127.0.0.1:0".parse()?)?;
        let addr = listener.local_addr()?;
        let dir = tempfile::tempdir()?;
        let registration = emu.emulator.world.lock().directory.apps[0].clone();
        let base = format!("http://{addr}");
        let config = Config {
            listen: addr,
            public_url: base.parse()?,
            data_dir: dir.path().to_owned(),
            database_url: plan.database_url.clone().map(Into::into),
            ms_client_id: Some(registration.client_id.to_string()),
            ms_client_secret: Some(registration.client_secret.clone().into()),
            ms_login_url: emu.base_url.clone(),
            ms_graph_url: emu.base_url.clone(),
            ms_notifications: plan.mode,
            ms_subscription_seconds: plan.subscription_seconds,
            login_attempts_per_minute: u32::MAX,
            ..Config::default()
        };
        emu.emulator.world.lock().directory.apps[0].redirect_uris =
            vec![format!("{base}/integrations/msteams/callback")];
        let app = kehai_server::App::build(config).await?;
        let store = std::sync::Arc::clone(&app.state.store);
        kehai_server::admin::create_space(&*store, SPACE, "Bench", false).await?;
        for n in 0..plan.members {
            let name = format!("Member {n}");
            let role = kehai_core::Role::Member;
            kehai_server::admin::add_member(&*store, SPACE, &email(n), Some(&name), Some(PASSWORD), role).await?;
        }
        let state = app.state.clone();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(kehai_server::run(app, listener, async move {
            let _ = stopped.await;
        }));
        let database_url = plan.database_url.clone();
        let mut rig = Rig { emu, state, base, members: Vec::new(), database_url, stop: Some(stop), server, _dir: dir };
        let connected: Vec<anyhow::Result<()>> = futures::StreamExt::collect(futures::StreamExt::buffer_unordered(
            futures::stream::iter((0..plan.members).map(|n| rig.connect(n))),
            4,
        ))
        .await;
        connected.into_iter().collect::<anyhow::Result<Vec<()>>>()?;
        rig.members = rig.connected_members();
        anyhow::ensure!(
            rig.members.len() == plan.members,
            "{} of {} members connected",
            rig.members.len(),
            plan.members
        );
        Ok(rig)
    }

    /// Each member with their Microsoft user and subscription, from msemu.
    fn connected_members(&self) -> Vec<Member> {
        let world = self.emu.emulator.world.lock();
        let by_user: HashMap<Uuid, Uuid> =
            world.subscriptions.values().flat_map(|s| s.users.iter().map(move |u| (*u, s.id))).collect();
        world
            .directory
            .users
            .iter()
            .filter_map(|u| {
                let subscription = *by_user.get(&u.id)?;
                let name = u.display_name.clone();
                u.email.starts_with("member").then_some(Member { name, ms_user: u.id, subscription })
            })
            .collect()
    }

    /// A browser with member `n` logged in.
    pub async fn log_in(&self, n: usize) -> anyhow::Result<reqwest::Client> {
        log_in(&self.base, SPACE, &email(n), PASSWORD).await
    }

    /// Member `n` connects Teams: kehai's connect link, msemu's sign-in and consent, kehai's
    /// callback.
    async fn connect(&self, n: usize) -> anyhow::Result<()> {
        let c = self.log_in(n).await?;
        let page = c.get(format!("{}/s/{SPACE}", self.base)).send().await?.text().await?;
        let token = between(&page, "\"connect\":\"", "\"").context("the space page's connect token")?.to_owned();
        let r =
            c.get(format!("{}/integrations/msteams/connect?space={SPACE}&connect={token}", self.base)).send().await?;
        let page = c.get(location(&r)?).send().await?.text().await?;
        let flow = between(&page, "name=\"flow\" value=\"", "\"").context("msemu's sign-in page")?.to_owned();
        let email = email(n);
        let form = [("flow", flow.as_str()), ("email", &email), ("password", "")];
        let mut answer = c.post(self.emu.url("/organizations/login")).form(&form).send().await?;
        if answer.status() == StatusCode::OK {
            let consent = answer.text().await?;
            let flow = between(&consent, "name=\"flow\" value=\"", "\"").context("msemu's consent page")?.to_owned();
            let form = [("flow", flow.as_str()), ("decision", "accept")];
            answer = c.post(self.emu.url("/organizations/consent")).form(&form).send().await?;
        }
        let done = c.get(location(&answer)?).send().await?.text().await?;
        anyhow::ensure!(between(&done, "data-outcome=\"", "\"") == Some("connected"), "member {n} did not connect");
        Ok(())
    }

    /// Where kehai's SQLite database is (when it is on SQLite).
    pub fn sqlite_path(&self) -> std::path::PathBuf {
        self._dir.path().join("kehai.db")
    }

    /// Graph requests msemu has answered so far.
    pub fn graph_requests(&self) -> u64 {
        self.emu.emulator.world.lock().requests.iter().filter(|(k, _)| k.contains(" /v1.0/")).map(|(_, n)| *n).sum()
    }

    /// Notifications kehai has finished with (applied, or dropped as stale).
    pub fn notifications_done(&self) -> u64 {
        let m = &self.state.metrics;
        m.notifications_applied("msteams") + m.notifications_dropped("msteams", "stale")
    }

    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.server.await?
    }
}

/// A browser logged in to kehai at `base` as `email`. Many log in at once in the benchmarks:
/// kehai checks a few passwords at a time and asks the rest to come again, which they do.
pub async fn log_in(base: &str, space: &str, email: &str, password: &str) -> anyhow::Result<reqwest::Client> {
    let c = reqwest::Client::builder().cookie_store(true).redirect(Policy::none()).build()?;
    for attempt in 0..600u64 {
        let page = c.get(format!("{base}/login?next=/s/{space}")).send().await?.text().await?;
        let csrf = between(&page, "name=\"csrf\" value=\"", "\"").context("a login form")?.to_owned();
        let form = [("email", email), ("password", password), ("csrf", &csrf), ("next", "/")];
        let r = c.post(format!("{base}/login")).form(&form).send().await?;
        // Only "come again" (login_busy, with Retry-After): a rate limit is a failure.
        if r.status() == StatusCode::TOO_MANY_REQUESTS && r.headers().contains_key("retry-after") {
            tokio::time::sleep(std::time::Duration::from_millis(200 + attempt % 300)).await;
            continue;
        }
        anyhow::ensure!(r.status() == StatusCode::SEE_OTHER, "login of {email}: {}", r.status());
        return Ok(c);
    }
    anyhow::bail!("login of {email}: still asked to come again after 600 tries")
}

pub fn between<'a>(s: &'a str, start: &str, end: &str) -> Option<&'a str> {
    let from = s.find(start)? + start.len();
    Some(&s[from..from + s[from..].find(end)?])
}

fn location(r: &reqwest::Response) -> anyhow::Result<String> {
    Ok(r.headers().get("location").context("a redirect")?.to_str()?.to_owned())
}
