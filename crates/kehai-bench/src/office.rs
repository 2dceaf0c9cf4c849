//! A big office, seeded rather than signed into, and kehai serving it in a process of its own —
//! for the scale and fan-out figures, which measure kehai alone (its memory, its CPU) and need
//! more sockets than one process may open.
//!
//! The members, their Teams connections and subscriptions are written through the store (tokens
//! and client states sealed with the instance's key, as kehai seals them), and msemu is given the
//! matching refresh tokens, subscriptions and presences: the state a long run of real sign-ins
//! would leave. Every access token is due for a refresh, so the first use of each refreshes it
//! like a real one. Sessions are started through kehai's own session code.

use std::{
    path::{Path, PathBuf},
    process::{Child, Stdio},
    time::{Duration, Instant},
};

use anyhow::Context;
use futures::StreamExt;
use kehai_core::{Account, DisplayName, Email, Membership, PersonId, PersonKind, Role, SpaceId};
use kehai_server::{AppState, Config, presence::renewal, providers::msteams::Teams};
use kehai_store::{
    Connection, ConnectionId, ConnectionState, Sealed, SubscriptionRecord,
    secrets::{ConnectionSecret, Place},
};
use secrecy::SecretString;
use uuid::Uuid;

use crate::rig::{SPACE, email};

/// Seeded members never log in with a password.
const NO_PASSWORD: &str = "!seeded";
/// Members seeded at once.
const SEEDING: usize = 16;
const TENANT: &str = "contoso";
/// About the length of a Microsoft access token (a signed JWT).
const ACCESS_TOKEN_CHARS: usize = 2000;

/// How to seed an office.
#[derive(Debug, Clone)]
pub struct Plan {
    pub members: usize,
    /// `KEHAI_DATABASE_URL`; `None` for SQLite in a temporary directory.
    pub database_url: Option<String>,
    /// Browser sessions started per member.
    pub sessions_per_member: usize,
    /// The subscriptions' life (production: 59 minutes). As in steady state, each connection's
    /// lapses somewhere between kehai's renewal lead and the life its subscriptions are asked
    /// for, evenly across connections.
    pub life_ms: i64,
}

/// A seeded member.
#[derive(Debug, Clone)]
pub struct Member {
    pub ms_user: Uuid,
    pub subscription: Uuid,
}

/// A seeded office, with msemu knowing its members.
pub struct Office {
    pub emu: msemu::Running,
    /// kehai's base URL (once served).
    pub base: String,
    pub members: Vec<Member>,
    /// `kehai_session` cookie values, `sessions_per_member` per member.
    pub cookies: Vec<String>,
    settings: Settings,
    dir: tempfile::TempDir,
}

/// What kehai is configured with: as a [`Config`] for seeding, as its environment for serving.
#[derive(Debug, Clone)]
struct Settings {
    port: u16,
    data_dir: PathBuf,
    database_url: Option<String>,
    client_id: String,
    client_secret: String,
    microsoft: String,
    subscription_seconds: u64,
}

impl Settings {
    fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn config(&self) -> anyhow::Result<Config> {
        Ok(Config {
            listen: ([127, 0, 0, 1], self.port).into(),
            public_url: self.base().parse()?,
            data_dir: self.data_dir.clone(),
            database_url: self.database_url.clone().map(Into::into),
            ms_client_id: Some(self.client_id.clone()),
            ms_client_secret: Some(self.client_secret.clone().into()),
            ms_login_url: self.microsoft.parse()?,
            ms_graph_url: self.microsoft.parse()?,
            ms_subscription_seconds: self.subscription_seconds,
            ..Config::default()
        })
    }

    fn env(&self) -> Vec<(&'static str, String)> {
        let mut env = vec![
            ("KEHAI_LISTEN", format!("127.0.0.1:{}", self.port)),
            ("KEHAI_PUBLIC_URL", self.base()),
            ("KEHAI_DATA_DIR", self.data_dir.display().to_string()),
            ("KEHAI_MS_CLIENT_ID", self.client_id.clone()),
            ("KEHAI_MS_CLIENT_SECRET", self.client_secret.clone()),
            ("KEHAI_MS_LOGIN_URL", self.microsoft.clone()),
            ("KEHAI_MS_GRAPH_URL", self.microsoft.clone()),
            ("KEHAI_MS_SUBSCRIPTION_SECONDS", self.subscription_seconds.to_string()),
            ("KEHAI_LOG", "warn".to_owned()),
        ];
        env.extend(self.database_url.clone().map(|u| ("KEHAI_DATABASE_URL", u)));
        env
    }
}

impl Office {
    pub async fn seed(plan: &Plan) -> anyhow::Result<Office> {
        let emu = start_msemu(plan).await?;
        let dir = tempfile::tempdir()?;
        let registration = emu.emulator.world.lock().directory.apps[0].clone();
        let settings = Settings {
            port: std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port(),
            data_dir: dir.path().to_owned(),
            database_url: plan.database_url.clone(),
            client_id: registration.client_id.to_string(),
            client_secret: registration.client_secret.clone(),
            microsoft: emu.base_url.to_string(),
            subscription_seconds: u64::try_from(plan.life_ms / 1000)?,
        };
        emu.emulator.world.lock().directory.apps[0].redirect_uris =
            vec![format!("{}/integrations/msteams/callback", settings.base())];
        // Built on the database, never served: seeding goes through its store, keys and sessions.
        let app = kehai_server::App::build(settings.config()?).await?;
        let mut office = Office { emu, base: settings.base(), members: Vec::new(), cookies: Vec::new(), settings, dir };
        office.fill(&app.state, plan).await?;
        Ok(office)
    }

    async fn fill(&mut self, state: &AppState, plan: &Plan) -> anyhow::Result<()> {
        let teams = Teams::offered(state).context("Teams is configured")?;
        let certificate = state.store.current_certificate().await?.context("an encryption certificate")?;
        let der = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, &certificate.certificate)?;
        let space = kehai_server::admin::create_space(&*state.store, SPACE, "Bench", false).await?;
        let (users, tenant, app_id) = {
            let mut world = self.emu.emulator.world.lock();
            let tenant = world.directory.tenants.iter().find(|t| t.name == TENANT).context("the tenant")?.id;
            let ids: Vec<Uuid> =
                world.directory.users.iter().filter(|u| u.email.starts_with("member")).map(|u| u.id).collect();
            // Each presence as last shown: nothing changed while kehai was down.
            let users: Vec<(Uuid, String)> = ids.into_iter().map(|u| (u, world.next_sequence())).collect();
            (users, tenant, world.directory.apps[0].client_id)
        };
        anyhow::ensure!(users.len() == plan.members, "msemu has {} of {} members", users.len(), plan.members);

        let n = plan.members.max(1) as f64;
        let seeded: Vec<anyhow::Result<Seeded>> = futures::stream::iter(users.into_iter().enumerate())
            .map(|(i, (user, sequence))| {
                let member = ToSeed { i, user, sequence, phase: i as f64 / n };
                seed_member(state, space.id, member, tenant, &certificate.id, plan)
            })
            .buffer_unordered(SEEDING)
            .collect()
            .await;

        let mut world = self.emu.emulator.world.lock();
        let created = msemu::world::now();
        for s in seeded {
            let s = s?;
            self.members.push(Member { ms_user: s.user, subscription: s.subscription });
            self.cookies.extend(s.cookies);
            world.presences.insert(
                s.user,
                msemu::world::Presence {
                    availability: "Offline".into(),
                    activity: "Offline".into(),
                    sequence: s.sequence,
                    out_of_office: false,
                    last_activity: created,
                    idle: false,
                },
            );
            world.refresh_tokens.insert(
                s.refresh_token,
                msemu::world::Refresh {
                    user: s.user,
                    client_id: app_id,
                    scopes: ["openid", "email", "offline_access", "Presence.Read.All"].map(str::to_owned).to_vec(),
                    tenant_path: "organizations".into(),
                    issued: created,
                    last_used: created,
                    revoked: false,
                },
            );
            let expiration = s.expires_at / 1000;
            world.subscriptions.insert(
                s.subscription,
                msemu::world::Subscription {
                    id: s.subscription,
                    resource: format!("communications/presences/{}", s.user),
                    users: vec![s.user],
                    change_type: "updated".into(),
                    notification_url: teams.notification_url.clone(),
                    lifecycle_notification_url: Some(teams.lifecycle_url.clone()),
                    expiration,
                    client_state: Some(s.client_state),
                    include_resource_data: true,
                    encryption_certificate: Some(der.clone()),
                    encryption_certificate_id: Some(certificate.id.clone()),
                    application_id: app_id,
                    creator_id: s.user,
                    tenant_id: tenant,
                    authorized_until: expiration,
                    created,
                    renewals: Vec::new(),
                    reauthorizations: Vec::new(),
                    delivered: 0,
                    failed_attempts: 0,
                    withheld: Vec::new(),
                    lifecycle_sent: false,
                    lifecycle_notifications: 0,
                    lifecycle_delivered: 0,
                    base: msemu::BaseUrl(self.emu.base_url.clone()),
                },
            );
        }
        Ok(())
    }

    /// Starts `kehai serve` on the office and waits until `/readyz` says it is ready; returns it
    /// with how long that took.
    pub async fn serve(&self) -> anyhow::Result<(Kehai, Duration)> {
        let log = self.dir.path().join("kehai.log");
        let started = Instant::now();
        let mut kehai = Kehai::spawn("--serve", &self.settings.env(), &log)?;
        let client = reqwest::Client::new();
        loop {
            if let Ok(r) = client.get(format!("{}/readyz", self.base)).send().await
                && r.status().is_success()
            {
                return Ok((kehai, started.elapsed()));
            }
            kehai.check_alive()?;
            anyhow::ensure!(started.elapsed() < Duration::from_secs(600), "kehai was not ready within ten minutes");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Bytes the database takes on disk (SQLite: the file and its write-ahead log).
    pub fn sqlite_bytes(&self) -> u64 {
        ["kehai.db", "kehai.db-wal"]
            .iter()
            .filter_map(|f| std::fs::metadata(self.dir.path().join(f)).ok())
            .map(|m| m.len())
            .sum()
    }
}

/// msemu with the plan's members, of one tenant whose administrator consented for everyone.
async fn start_msemu(plan: &Plan) -> anyhow::Result<msemu::Running> {
    let n = plan.members;
    let (defaults, life) = (msemu::Config::default(), Duration::from_millis(u64::try_from(plan.life_ms)?));
    let mut directory = msemu::Directory::default();
    for t in directory.tenants.iter_mut().filter(|t| t.name == TENANT) {
        t.admin_consent_granted = true;
    }
    for i in 0..n {
        directory.users.push(msemu::directory::User {
            id: Uuid::new_v4(),
            tenant: TENANT.into(),
            email: email(i),
            display_name: format!("Member {i}"),
            password: None,
            admin: false,
        });
    }
    let config = msemu::Config {
        listen: "127.0.0.1:0".parse()?,
        directory,
        allow_http_notifications: true,
        presence_requests_per_30s: usize::MAX,
        // Graph's own minimum, and its reauthorization lead (five minutes ahead of 59), shortened
        // with the plan's subscriptions.
        min_subscription_lifetime: defaults.min_subscription_lifetime.min(life),
        reauthorization_lead: defaults.reauthorization_lead.mul_f64((life.as_secs_f64() / 3540.0).min(1.0)),
        ..msemu::Config::default()
    };
    msemu::Emulator::start(config).await
}

/// A member to seed: the `i`th, their Microsoft user, their presence's sequence number and
/// where in its renewal cycle their subscription is (0: just due; towards 1: just renewed).
struct ToSeed {
    i: usize,
    user: Uuid,
    sequence: String,
    phase: f64,
}

/// A seeded member, with what msemu must know of them.
struct Seeded {
    user: Uuid,
    sequence: String,
    refresh_token: String,
    subscription: Uuid,
    client_state: String,
    expires_at: i64,
    cookies: Vec<String>,
}

async fn seed_member(
    state: &AppState,
    space: SpaceId,
    member: ToSeed,
    tenant: Uuid,
    certificate: &str,
    plan: &Plan,
) -> anyhow::Result<Seeded> {
    let ToSeed { i, user, sequence, phase } = member;
    let sessions = plan.sessions_per_member;
    let store = &*state.store;
    let now = state.clock.now();
    let name = format!("Member {i}");
    let account = Account { id: PersonId::new(), email: Email::parse(&email(i))? };
    store.create_account(&account, NO_PASSWORD, now).await?;
    let membership = Membership { space_id: space, account_id: account.id, role: Role::Member };
    store.add_member(&membership, &DisplayName::parse(&name)?, now).await?;
    let id = ConnectionId::new();
    // kehai's own schedule: renewed `lead` ahead, for `life_of` this connection.
    let lead = renewal::lead(plan.life_ms);
    let expires_at = now + lead + ((renewal::life_of(plan.life_ms, id) - lead) as f64 * phase) as i64;
    let refresh_token = msemu::world::random_token();
    let client_state = msemu::world::random_token();
    let seal = |value: &str, secret| -> anyhow::Result<Sealed> {
        let value = SecretString::from(value.to_owned());
        Ok(Sealed(state.secrets.seal(&value, Place::Connection(id, secret))?))
    };
    let subscription = Uuid::new_v4();
    let connection = Connection {
        id,
        account_id: account.id,
        provider: "msteams".to_owned(),
        external_tenant: tenant.to_string(),
        external_user: user.to_string(),
        // Due for a refresh (its first use refreshes it), and as long as a Microsoft access token.
        access_token: seal(&"due for a refresh ".repeat(ACCESS_TOKEN_CHARS / 18), ConnectionSecret::AccessToken)?,
        access_expires_at: now,
        access_refresh_at: now,
        refresh_token: Some(seal(&refresh_token, ConnectionSecret::RefreshToken)?),
        refresh_expires_at: Some(now + 90 * 24 * 3600 * 1000),
        subscription: Some(SubscriptionRecord {
            id: subscription.to_string(),
            expires_at,
            client_state: seal(&client_state, ConnectionSecret::ClientState)?,
            certificate_id: Some(certificate.to_owned()),
            resource: None,
        }),
        state: ConnectionState::Connected,
        last_error: None,
        last_sequence: Some(sequence.clone()),
        next_check_at: None,
        granted_scope: None,
        previous_subscription: None,
        connected_at: now,
        updated_at: now,
    };
    store.save_connection(&connection).await?;
    store.set_connection_space(id, space, true).await?;
    let mut cookies = Vec::with_capacity(sessions);
    for _ in 0..sessions {
        let (_, header) = kehai_server::auth::session::start(state, account.id, PersonKind::Member, None)
            .await
            .map_err(|e| anyhow::anyhow!("cannot start a session: {e:?}"))?;
        let cookie = header.to_str()?.split(';').next().and_then(|c| c.split_once('=')).map(|(_, v)| v.to_owned());
        cookies.push(cookie.context("a session cookie")?);
    }
    Ok(Seeded { user, sequence, refresh_token, subscription, client_state, expires_at, cookies })
}

/// kehai serving in a child process (this binary with `--serve`), its log in a file; or a
/// baseline server.
pub struct Kehai {
    child: Child,
    log: PathBuf,
}

impl Kehai {
    /// This binary with `mode` (`--serve`…) in a child process.
    pub fn spawn(mode: &str, env: &[(&str, String)], log: &Path) -> anyhow::Result<Kehai> {
        let out = std::fs::File::create(log)?;
        let child = std::process::Command::new(std::env::current_exe()?)
            .arg(mode)
            .env_clear()
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdout(Stdio::null())
            .stderr(out)
            .spawn()?;
        Ok(Kehai { child, log: log.to_owned() })
    }

    /// An error with the end of its log when it has exited.
    pub fn check_alive(&mut self) -> anyhow::Result<()> {
        if let Some(status) = self.child.try_wait()? {
            let text = std::fs::read_to_string(&self.log).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            let tail = lines[lines.len().saturating_sub(20)..].join("\n");
            anyhow::bail!("kehai exited ({status}):\n{tail}");
        }
        Ok(())
    }

    /// A `/proc/<pid>/status` figure (`VmRSS:`, `VmHWM:`), in KiB.
    pub fn status(&self, field: &str) -> u64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|r| r.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    }

    /// CPU time used so far.
    pub fn cpu(&self) -> Duration {
        crate::load::cpu_time_of(&format!("/proc/{}/stat", self.child.id()))
    }

    /// Warnings and errors it logged.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn stop(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts `perf record` (call graphs) on it, writing `to`; [`Profile::finish`] ends it.
    pub async fn profile(&self, to: &Path) -> anyhow::Result<Profile> {
        let perf = std::process::Command::new("perf")
            .args(["record", "-F", "999", "-g", "-q", "-o"])
            .arg(to)
            .args(["-p", &self.child.id().to_string()])
            .stdout(Stdio::null())
            .spawn()
            .context("perf (install linux-perf) for --profile")?;
        // perf attaches asynchronously (without holding up the runtime's thread meanwhile).
        tokio::time::sleep(Duration::from_millis(500)).await;
        Ok(Profile(perf))
    }
}

/// A `perf record` running.
pub struct Profile(Child);

impl Profile {
    /// Stops recording (SIGINT, as Ctrl-C would) and waits for the file to be written.
    pub fn finish(mut self) -> anyhow::Result<()> {
        std::process::Command::new("kill").args(["-INT", &self.0.id().to_string()]).status()?;
        self.0.wait()?;
        Ok(())
    }
}
