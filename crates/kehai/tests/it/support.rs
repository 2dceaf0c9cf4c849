//! What the tests of the `kehai` command share: services they need, and a browser going through
//! kehai's pages and msemu's sign-in.

use std::{
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use reqwest::{StatusCode, redirect::Policy};

/// A service the test needs: its URL from `var`, else `default`; `None` (skip) when it does not
/// answer outside CI.
pub async fn service(var: &str, default: &str) -> Option<String> {
    let url = std::env::var(var).ok().filter(|u| !u.is_empty()).unwrap_or_else(|| default.to_owned());
    let parsed = url::Url::parse(&url).unwrap();
    let addr = format!("{}:{}", parsed.host_str().unwrap(), parsed.port().unwrap());
    if tokio::net::TcpStream::connect(&addr).await.is_ok() {
        return Some(url);
    }
    assert_ne!(std::env::var("CI").as_deref(), Ok("true"), "CI=true but nothing answers at {addr} ({var})");
    eprintln!("skipping: nothing answers at {addr} ({var})");
    None
}

/// A fresh database on the PostgreSQL server at `base`, dropped with the guard.
pub struct Database {
    base: String,
    name: String,
    pub url: String,
}

impl Database {
    pub async fn create(base: &str) -> Database {
        use sqlx::Connection;
        let name = format!("kehai_it_{}", uuid::Uuid::new_v4().simple());
        let mut admin = sqlx::PgConnection::connect(base).await.unwrap();
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&mut admin).await.unwrap();
        let mut url = url::Url::parse(base).unwrap();
        url.set_path(&format!("/{name}"));
        Database { base: base.to_owned(), name, url: url.to_string() }
    }

    pub async fn drop_database(&self) {
        use sqlx::Connection;
        if let Ok(mut admin) = sqlx::PgConnection::connect(&self.base).await {
            let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name)))
                .execute(&mut admin)
                .await;
        }
    }
}

/// The `kehai` command with `args`, in `dir` (its data directory) and with `env`. Its database is
/// the one `env` names (`KEHAI_DATABASE_URL`), else SQLite in `dir` — never one the test's own
/// environment happens to name.
pub fn command(env: &[(String, String)], dir: &std::path::Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kehai"));
    cmd.args(args).current_dir(dir).env("KEHAI_DATA_DIR", dir).env_remove("KEHAI_DATABASE_URL");
    cmd.envs(env.iter().map(|(k, v)| (k, v)));
    cmd
}

/// `kehai member add` of `members` (email, display name) to `space`, all with `password`, eight
/// commands at a time.
pub fn add_members(
    env: &[(String, String)],
    dir: &std::path::Path,
    space: &str,
    members: &[(String, String)],
    password: &str,
) {
    for batch in members.chunks(8) {
        let children: Vec<_> = batch
            .iter()
            .map(|(email, name)| {
                let mut cmd = command(env, dir, &["member", "add", space, email, "--name", name]);
                cmd.args(["--password-env", "MEMBER_PASSWORD"]).env("MEMBER_PASSWORD", password);
                cmd.stdin(Stdio::null()).stdout(Stdio::null()).spawn().unwrap()
            })
            .collect();
        for mut child in children {
            assert!(child.wait().unwrap().success(), "member add");
        }
    }
}

/// Running `kehai serve` processes, killed when the test ends however it ends.
pub struct Instances(pub Vec<std::process::Child>);

impl Drop for Instances {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

pub fn run_ok(mut cmd: Command) {
    let out = cmd.stdin(Stdio::null()).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

pub async fn wait_ready(base: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !reqwest::get(format!("{base}/readyz")).await.is_ok_and(|r| r.status().is_success()) {
        assert!(Instant::now() < deadline, "{base} did not become ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub fn between<'a>(s: &'a str, start: &str, end: &str) -> Option<&'a str> {
    let from = s.find(start)? + start.len();
    Some(&s[from..from + s[from..].find(end)?])
}

/// A browser's client: cookies, no redirects followed.
pub fn browser() -> reqwest::Client {
    reqwest::Client::builder().cookie_store(true).redirect(Policy::none()).build().unwrap()
}

/// A browser's client whose cookies the test can read in `jar`.
pub fn browser_with(jar: std::sync::Arc<reqwest::cookie::Jar>) -> reqwest::Client {
    reqwest::Client::builder().cookie_provider(jar).redirect(Policy::none()).build().unwrap()
}

pub fn location(r: &reqwest::Response) -> String {
    r.headers()["location"].to_str().unwrap().to_owned()
}

/// Logs `email` in at `public` (through a balancer, the login form and its answer may come
/// from different instances), bound for `space`.
pub async fn log_in(public: &str, email: &str, password: &str, space: &str) -> reqwest::Client {
    log_in_as(browser(), public, email, password, space).await
}

/// [`log_in`] with the browser `c`.
pub async fn log_in_as(c: reqwest::Client, public: &str, email: &str, password: &str, space: &str) -> reqwest::Client {
    let next = format!("/s/{space}");
    // Hundreds logging in at once: the server checks a few passwords at a time and asks the rest
    // to come again (429 with Retry-After), as a browser's person would.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let page = c.get(format!("{public}/login?next=/s/{space}")).send().await.unwrap().text().await.unwrap();
        let csrf = between(&page, "name=\"csrf\" value=\"", "\"").expect("a login form").to_owned();
        let form = [("email", email), ("password", password), ("csrf", &csrf), ("next", &next)];
        let r = c.post(format!("{public}/login")).form(&form).send().await.unwrap();
        // Only "come again" (login_busy, with Retry-After): any other refusal is the test's failure.
        if r.status() == StatusCode::TOO_MANY_REQUESTS
            && r.headers().contains_key("retry-after")
            && Instant::now() < deadline
        {
            let wait = r.headers().get("retry-after").and_then(|v| v.to_str().ok()?.parse().ok()).unwrap_or(1);
            tokio::time::sleep(Duration::from_millis(wait * 1000 / 2 + rand::random::<u64>() % 1000)).await;
            continue;
        }
        assert_eq!(r.status(), StatusCode::SEE_OTHER, "login of {email}");
        return c;
    }
}

/// `c` (logged in) connects Teams in `space`: kehai's connect link, msemu's sign-in and consent as
/// `email`, kehai's callback — each kehai step at `public` (through a balancer, on any instance).
pub async fn connect_teams(c: &reqwest::Client, public: &str, emu: &msemu::Running, email: &str, space: &str) {
    let page = c.get(format!("{public}/s/{space}")).send().await.unwrap().text().await.unwrap();
    let token = between(&page, "\"connect\":\"", "\"").expect("the space page's connect token").to_owned();
    let r = c.get(format!("{public}/integrations/msteams/connect?space={space}&connect={token}")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let page = c.get(location(&r)).send().await.unwrap().text().await.unwrap();
    let flow = between(&page, "name=\"flow\" value=\"", "\"").expect("msemu's sign-in").to_owned();
    let form = [("flow", flow.as_str()), ("email", email), ("password", "")];
    let mut answer = c.post(emu.url("/organizations/login")).form(&form).send().await.unwrap();
    if answer.status() == StatusCode::OK {
        let consent = answer.text().await.unwrap();
        let flow = between(&consent, "name=\"flow\" value=\"", "\"").expect("msemu's consent").to_owned();
        let form = [("flow", flow.as_str()), ("decision", "accept")];
        answer = c.post(emu.url("/organizations/consent")).form(&form).send().await.unwrap();
    }
    let callback = location(&answer);
    assert!(callback.starts_with(public), "{callback}");
    let done = c.get(callback).send().await.unwrap().text().await.unwrap();
    assert_eq!(between(&done, "data-outcome=\"", "\""), Some("connected"), "{email}");
}

/// msemu on loopback with `people` (email, display name) more in contoso, sending notifications
/// over plain HTTP and granting subscriptions of ten seconds and more; `adjust` changes the
/// rest.
pub async fn msemu_with(people: Vec<(String, String)>, adjust: impl FnOnce(&mut msemu::Config)) -> msemu::Running {
    let mut directory = msemu::Directory::default();
    for (email, display_name) in people {
        directory.users.push(msemu::directory::User {
            id: uuid::Uuid::new_v4(),
            tenant: "contoso".into(),
            email,
            display_name,
            password: None,
            admin: false,
        });
    }
    let mut config = msemu::Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        directory,
        allow_http_notifications: true,
        min_subscription_lifetime: Duration::from_secs(10),
        ..msemu::Config::default()
    };
    adjust(&mut config);
    msemu::Emulator::start(config).await.unwrap()
}
