//! A real kehai server on `127.0.0.1:0` with a fresh SQLite database, and HTTP clients that
//! behave like browsers (cookies, forms, event streams). `microsoft` adds msemu, `google`
//! googleemu.

pub mod google;
pub mod microsoft;

use std::{sync::Arc, time::Duration};

use futures::StreamExt;
use kehai_core::Role;
use kehai_server::{
    App, AppState, Config, admin,
    clock::{Clock, ManualClock, SystemClock},
};
use reqwest::{StatusCode, redirect::Policy};
use tokio::{net::TcpListener, sync::mpsc, task::JoinHandle};

pub const PASSWORD: &str = "correct horse battery";

/// Providers a test offers beside those configured, made for the server's clock.
pub type Offer = Arc<dyn Fn(&Arc<ManualClock>) -> Vec<kehai_server::presence::Known> + Send + Sync>;

/// A running server: space `alpha` (guests allowed: alice, bob) and `beta` (no guests: carol).
pub struct TestApp {
    pub base: String,
    pub state: AppState,
    /// The server's clock: starts at the real time and moves only when a test says so.
    pub clock: Arc<ManualClock>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    pub server: Option<JoinHandle<anyhow::Result<()>>>,
    config: Config,
    offer: Option<Offer>,
    _dir: tempfile::TempDir,
}

/// Sends kehai's and msemu's logs to the test's output, which is shown when the test fails:
/// a failure that happens once in a while can then be read, not guessed at. `KEHAI_TEST_LOG`
/// (a tracing filter) says what to log.
pub fn capture_logs() {
    let filter = std::env::var("KEHAI_TEST_LOG")
        .unwrap_or_else(|_| "info,kehai_server=debug,kehai_store=debug,msemu=debug".to_owned());
    let _already = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_ansi(false)
        .with_test_writer()
        .try_init();
}

impl TestApp {
    pub async fn start() -> TestApp {
        Self::start_with(|_| {}).await
    }

    /// The same server on a fresh PostgreSQL database (from `KEHAI_TEST_POSTGRES_URL`), with the
    /// database's name; `None` (skip) when none is configured outside CI.
    pub async fn start_on_postgres() -> Option<(TestApp, String)> {
        let (url, name) = postgres_database().await?;
        let app = Self::start_with(|c| c.database_url = Some(url.into())).await;
        Some((app, name))
    }

    /// The server's configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// From now on the server's clock follows the real time (for tests that run for minutes).
    pub fn clock_follows_real_time(&self) {
        let clock = Arc::clone(&self.clock);
        tokio::spawn(async move {
            loop {
                clock.set(SystemClock.now());
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        });
    }

    pub async fn start_with(adjust: impl FnOnce(&mut Config)) -> TestApp {
        Self::start_offering(adjust, None).await
    }

    /// [`TestApp::start_with`], the server offering the providers `offer` makes too.
    pub async fn start_offering(adjust: impl FnOnce(&mut Config), offer: Option<Offer>) -> TestApp {
        capture_logs();
        let dir = tempfile::tempdir().expect("temp dir");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let mut config = Config {
            listen: addr,
            public_url: format!("http://{addr}").parse().expect("url"),
            data_dir: dir.path().to_owned(),
            ..Config::default()
        };
        adjust(&mut config);
        let store = admin::open_store(&config).await.expect("store");
        let saved = config.clone();
        admin::create_space(&*store, "alpha", "Alpha office", true).await.expect("alpha");
        admin::create_space(&*store, "beta", "Beta office", false).await.expect("beta");
        for (space, email, name) in [
            ("alpha", "alice@example.com", "Alice"),
            ("alpha", "bob@example.com", "Bob"),
            ("beta", "carol@example.com", "Carol"),
        ] {
            admin::add_member(&*store, space, email, Some(name), Some(PASSWORD), Role::Member).await.expect("member");
        }
        let clock = Arc::new(ManualClock::new(SystemClock.now()));
        let more = offer.as_ref().map_or_else(Vec::new, |offer| offer(&clock));
        let (state, stop, server) = serve(config, store, clock.clone(), listener, more);
        TestApp {
            base: format!("http://{addr}"),
            state,
            clock,
            stop: Some(stop),
            server: Some(server),
            config: saved,
            offer,
            _dir: dir,
        }
    }

    /// Stops the server and starts it again on the same address, data and database — as an
    /// operator's restart does.
    pub async fn restart(&mut self) {
        self.shutdown().await.expect("shutdown");
        let listener = TcpListener::bind(self.config.listen).await.expect("the same address again");
        let store = admin::open_store(&self.config).await.expect("store");
        let more = self.offer.as_ref().map_or_else(Vec::new, |offer| offer(&self.clock));
        let (state, stop, server) = serve(self.config.clone(), store, self.clock.clone(), listener, more);
        (self.state, self.stop, self.server) = (state, Some(stop), Some(server));
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Another instance of this server at its own address, sharing its database, its clock and
    /// its bus — as instances share PostgreSQL and NATS. (Cookies do not care for ports: a
    /// client of this server sends its cookies there too.)
    pub async fn another_instance(&self) -> Instance {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let config =
            Config { listen: addr, public_url: format!("http://{addr}").parse().expect("url"), ..self.config.clone() };
        let app =
            App::with_bus(config, Arc::clone(&self.state.store), self.clock.clone(), Arc::clone(&self.state.live.bus))
                .expect("app");
        let state = app.state.clone();
        let (stop, rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(kehai_server::run(app, listener, async move {
            let _ = rx.await;
        }));
        Instance { base: format!("http://{addr}"), state, _stop: stop, _server: server }
    }

    /// A browser-like client without a session.
    pub fn client(&self) -> Client {
        Client {
            http: reqwest::Client::builder().cookie_store(true).redirect(Policy::none()).build().expect("client"),
            base: self.base.clone(),
            csrf: None,
        }
    }

    /// A client logged in as `email`.
    pub async fn member(&self, email: &str) -> Client {
        let mut c = self.client();
        let r = c.login(email, PASSWORD, "/s/alpha").await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER, "login of {email} failed");
        c
    }

    /// A client that joined `alpha` as a guest.
    pub async fn guest(&self, name: &str) -> Client {
        let mut c = self.client();
        let csrf = c.form_csrf("/s/alpha/guest").await;
        let r = c.post_form("/s/alpha/guest", &[("display_name", name), ("csrf", &csrf)]).await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER, "guest join failed");
        c.load_space("alpha").await;
        c
    }

    /// The id of the account with this email.
    pub async fn account(&self, email: &str) -> kehai_core::PersonId {
        let email = kehai_core::Email::parse(email).expect("email");
        self.state.store.account_by_email(&email).await.expect("store").expect("an account").0.id
    }

    /// The avatars of a space as stored (not as a page sees them).
    pub async fn stored_avatars(&self, slug: &str) -> Vec<kehai_core::Avatar> {
        let slug = kehai_core::SpaceSlug::parse(slug).expect("slug");
        let space = self.state.store.space_by_slug(&slug).await.expect("store").expect("space");
        self.state.store.avatars(space.id).await.expect("store")
    }

    /// Every row of every table of the SQLite database, as text (`quote()` of each column), in a
    /// stable order: two dumps are equal when nothing was stored, changed or deleted.
    pub async fn sqlite_dump(&self) -> Vec<String> {
        use sqlx::Row;
        assert!(self.config.database_url.is_none(), "not on SQLite");
        let path = self.config.data_dir.join("kehai.db");
        let url = format!("sqlite://{}?mode=ro", path.display());
        let pool = sqlx::SqlitePool::connect(&url).await.expect("open the database read-only");
        let tables: Vec<String> = sqlx::query_scalar(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name NOT LIKE '_sqlx%' ORDER BY name",
        )
        .fetch_all(&pool)
        .await
        .expect("tables");
        let mut dump = Vec::new();
        for table in tables {
            let columns: Vec<String> =
                sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT name FROM pragma_table_info('{table}')")))
                    .fetch_all(&pool)
                    .await
                    .expect("columns");
            let row = columns.iter().map(|c| format!("quote(\"{c}\")")).collect::<Vec<_>>().join(" || '|' || ");
            let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT '{table}|' || {row} AS r FROM \"{table}\" ORDER BY 1"
            )))
            .fetch_all(&pool)
            .await
            .expect("rows");
            dump.extend(rows.iter().map(|r| r.get::<String, _>("r")));
        }
        pool.close().await;
        dump
    }

    /// Runs one statement on the SQLite database, behind the server's back.
    pub async fn sqlite_execute(&self, statement: &str) {
        assert!(self.config.database_url.is_none(), "not on SQLite");
        let path = self.config.data_dir.join("kehai.db");
        let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", path.display())).await.expect("open");
        sqlx::query(sqlx::AssertSqlSafe(statement.to_owned())).execute(&pool).await.expect("statement");
        pool.close().await;
    }

    /// Triggers a graceful shutdown and waits for `run` to return.
    pub async fn shutdown(&mut self) -> anyhow::Result<()> {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        match self.server.take() {
            Some(s) => tokio::time::timeout(Duration::from_secs(20), s).await.expect("shutdown in time").expect("join"),
            None => Ok(()),
        }
    }
}

type Stop = tokio::sync::oneshot::Sender<()>;

/// Another instance of a [`TestApp`] ([`TestApp::another_instance`]), serving until dropped.
pub struct Instance {
    pub base: String,
    pub state: AppState,
    _stop: Stop,
    _server: JoinHandle<anyhow::Result<()>>,
}

impl Instance {
    /// `client`'s browser (its cookies), talking to this instance.
    pub fn as_seen_by(&self, client: &Client) -> Client {
        Client { http: client.http.clone(), base: self.base.clone(), csrf: client.csrf.clone() }
    }
}

fn serve(
    config: Config,
    store: Arc<dyn kehai_store::Store>,
    clock: Arc<ManualClock>,
    listener: TcpListener,
    more: Vec<kehai_server::presence::Known>,
) -> (AppState, Stop, JoinHandle<anyhow::Result<()>>) {
    let app = App::with_store_offering(config, store, clock, more).expect("app");
    let state = app.state.clone();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(kehai_server::run(app, listener, async move {
        let _ = rx.await;
    }));
    (state, tx, server)
}

pub struct Client {
    pub http: reqwest::Client,
    pub base: String,
    /// The CSRF token of the last space page loaded.
    pub csrf: Option<String>,
}

impl Client {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.http.get(self.url(path)).send().await.expect("GET")
    }

    pub async fn post_form(&self, path: &str, form: &[(&str, &str)]) -> reqwest::Response {
        self.http.post(self.url(path)).form(form).send().await.expect("POST")
    }

    /// The link the Connect button of `space`'s page opens for `provider`: with the session's
    /// connect token.
    pub async fn connect_link(&self, provider: &str, space: &str) -> String {
        self.connect_link_from(space, provider, space).await
    }

    /// The same, for `space`, with the token of the page of `page` (a space this client may
    /// open).
    pub async fn connect_link_from(&self, page: &str, provider: &str, space: &str) -> String {
        let html = self.get(&format!("/s/{page}")).await.text().await.expect("html");
        let token = between(&html, "\"connect\":\"", "\"").expect("the page's connect token");
        format!("/integrations/{provider}/connect?space={space}&connect={token}")
    }

    /// The hidden `csrf` field of the form on `path`.
    pub async fn form_csrf(&self, path: &str) -> String {
        let html = self.get(path).await.text().await.expect("html");
        between(&html, "name=\"csrf\" value=\"", "\"").unwrap_or_else(|| panic!("no csrf field on {path}"))
    }

    pub async fn login(&mut self, email: &str, password: &str, next: &str) -> reqwest::Response {
        let csrf = self.form_csrf(&format!("/login?next={next}")).await;
        self.post_form("/login", &[("email", email), ("password", password), ("csrf", &csrf), ("next", next)]).await
    }

    /// Fills in the form on `path` (its CSRF token added to `fields`) and posts it, both from the
    /// client address `from` as a trusted proxy reports it (`trust_forwarded_for` on).
    pub async fn post_form_from(&self, from: &str, path: &str, fields: &[(&str, &str)]) -> reqwest::Response {
        let form = self.http.get(self.url(path)).header("x-forwarded-for", from).send().await.expect("GET");
        let html = form.text().await.expect("html");
        let csrf = between(&html, "name=\"csrf\" value=\"", "\"").expect("a csrf field");
        let mut fields = fields.to_vec();
        fields.push(("csrf", &csrf));
        self.http.post(self.url(path)).header("x-forwarded-for", from).form(&fields).send().await.expect("POST")
    }

    /// [`Client::login`] from the client address `from` ([`Client::post_form_from`]).
    pub async fn login_from(&self, from: &str, email: &str, password: &str) -> reqwest::Response {
        self.post_form_from(from, "/login", &[("email", email), ("password", password), ("next", "/")]).await
    }

    /// Loads a space page and keeps its CSRF token; returns the page's JSON data.
    pub async fn load_space(&mut self, slug: &str) -> serde_json::Value {
        let r = self.get(&format!("/s/{slug}")).await;
        assert_eq!(r.status(), StatusCode::OK, "space page {slug}");
        let html = r.text().await.expect("html");
        let data =
            between(&html, "<script type=\"application/json\" id=\"page-data\">", "</script>").expect("page data");
        let data: serde_json::Value = serde_json::from_str(&data).expect("page data is JSON");
        self.csrf = data["csrf"].as_str().map(str::to_owned);
        data
    }

    /// `PUT /api/spaces/{slug}/me` with this client's CSRF token.
    pub async fn put_me(&self, slug: &str, body: serde_json::Value) -> reqwest::Response {
        self.http
            .put(self.url(&format!("/api/spaces/{slug}/me")))
            .header("x-csrf-token", self.csrf.clone().expect("load the space page first"))
            .json(&body)
            .send()
            .await
            .expect("PUT")
    }

    /// A JSON `PUT` with the CSRF token of the last space page loaded.
    pub async fn put_json(&self, path: &str, body: &serde_json::Value) -> reqwest::Response {
        let csrf = self.csrf.clone().expect("a space page loaded first");
        self.http.put(self.url(path)).header("x-csrf-token", csrf).json(body).send().await.expect("PUT")
    }

    pub async fn avatars(&self, slug: &str) -> Vec<serde_json::Value> {
        let r = self.get(&format!("/api/spaces/{slug}/avatars")).await;
        assert_eq!(r.status(), StatusCode::OK);
        r.json().await.expect("avatars JSON")
    }

    /// Opens the space's event stream.
    pub async fn events(&self, slug: &str, last_event_id: Option<&str>) -> Events {
        let mut req = self.http.get(self.url(&format!("/s/{slug}/events")));
        if let Some(id) = last_event_id {
            req = req.header("last-event-id", id);
        }
        let response = req.send().await.expect("events");
        assert_eq!(response.status(), StatusCode::OK, "event stream of {slug}");
        assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/event-stream"));
        Events::read(response)
    }
}

/// The text between `start` and the next `end`.
pub fn between(text: &str, start: &str, end: &str) -> Option<String> {
    let from = text.find(start)? + start.len();
    let len = text[from..].find(end)?;
    Some(text[from..from + len].to_owned())
}

/// One Server-Sent Event.
#[derive(Debug, Clone)]
pub struct Sse {
    pub event: String,
    pub id: Option<String>,
    pub data: serde_json::Value,
}

/// The events of an open stream, parsed as they arrive. Dropping it closes the connection.
pub struct Events {
    rx: mpsc::UnboundedReceiver<Sse>,
    task: JoinHandle<()>,
}

impl Drop for Events {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Events {
    fn read(response: reqwest::Response) -> Events {
        let (tx, rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            let mut body = response.bytes_stream();
            let mut buf = String::new();
            let (mut event, mut id, mut data) = (String::new(), None, String::new());
            while let Some(Ok(chunk)) = body.next().await {
                buf.push_str(&String::from_utf8_lossy(&chunk));
                while let Some(nl) = buf.find('\n') {
                    let line: String = buf.drain(..=nl).collect();
                    let line = line.trim_end_matches(['\n', '\r']);
                    if line.is_empty() {
                        if !data.is_empty() {
                            let parsed = serde_json::from_str(&data).expect("event data is JSON");
                            let _ = tx.send(Sse { event: std::mem::take(&mut event), id: id.take(), data: parsed });
                        }
                        data.clear();
                    } else if let Some(v) = line.strip_prefix("event:") {
                        event = v.trim().to_owned();
                    } else if let Some(v) = line.strip_prefix("id:") {
                        id = Some(v.trim().to_owned());
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push_str(v.strip_prefix(' ').unwrap_or(v));
                    }
                }
            }
        });
        Events { rx, task }
    }

    /// The next event within `secs` seconds.
    pub async fn next(&mut self, secs: u64) -> Option<Sse> {
        tokio::time::timeout(Duration::from_secs(secs), self.rx.recv()).await.ok().flatten()
    }

    /// Whether the server closes the stream within `secs` seconds (events before that are
    /// skipped). A stream that merely stays quiet does not count as closed.
    pub async fn closes_within(&mut self, secs: u64) -> bool {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match tokio::time::timeout(left, self.rx.recv()).await {
                Ok(None) => return true,
                Ok(Some(_)) => continue,
                Err(_) => return false,
            }
        }
    }

    /// Waits (up to 10 s) for an event that `pred` accepts, skipping others.
    pub async fn wait_for(&mut self, what: &str, pred: impl Fn(&Sse) -> bool) -> Sse {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match tokio::time::timeout(left, self.rx.recv()).await {
                Ok(Some(e)) if pred(&e) => return e,
                Ok(Some(_)) => continue,
                _ => panic!("no event {what} within 10 s"),
            }
        }
    }
}

/// The avatar of `name` in a snapshot or avatar list.
pub fn find<'a>(avatars: &'a [serde_json::Value], name: &str) -> Option<&'a serde_json::Value> {
    avatars.iter().find(|a| a["display_name"] == name)
}

/// Runs one statement on the PostgreSQL server of `KEHAI_TEST_POSTGRES_URL`.
/// A fresh PostgreSQL database made through `KEHAI_TEST_POSTGRES_URL`: its URL and name; `None`
/// (skip) when none is configured outside CI.
pub async fn postgres_database() -> Option<(String, String)> {
    let url = match std::env::var("KEHAI_TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => url,
        _ if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("CI=true but KEHAI_TEST_POSTGRES_URL is not set")
        }
        _ => {
            eprintln!("skipping: set KEHAI_TEST_POSTGRES_URL to run this test");
            return None;
        }
    };
    let name = format!("kehai_srv_{}", uuid::Uuid::new_v4().simple());
    postgres_admin(&url, &format!("CREATE DATABASE {name}")).await;
    let mut db_url = url::Url::parse(&url).expect("URL");
    db_url.set_path(&format!("/{name}"));
    Some((db_url.to_string(), name))
}

pub async fn postgres_admin(url: &str, statement: &str) {
    use sqlx::Connection;
    let mut admin = sqlx::PgConnection::connect(url).await.expect("PostgreSQL reachable");
    sqlx::raw_sql(sqlx::AssertSqlSafe(statement.to_owned())).execute(&mut admin).await.expect(statement);
}
