//! Crash recovery: one `kehai serve` with 500 members connected to Teams at msemu. msemu
//! delivers 10,000 presence changes while kehai is killed with SIGKILL at random moments (while
//! serving, while starting, while catching up) and started again. Within 60 s of its last start
//! answering (and of the last change) every avatar shows the presence msemu has, and every
//! connection is there once — none lost, none doubled, at kehai or at msemu. On SQLite (three
//! seeds) and on PostgreSQL (two); each seed is printed: `KEHAI_CRASH_SEED=n` runs the same kill
//! times and changes again.

use std::{
    collections::{HashMap, HashSet},
    process::Stdio,
    time::{Duration, Instant},
};

use futures::StreamExt;
use rand::{Rng, SeedableRng, rngs::StdRng};
use reqwest::StatusCode;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::support::{
    Database, Instances, add_members, command, connect_teams, free_port, log_in, msemu_with, run_ok, service,
    wait_ready,
};

const MEMBERS: usize = 500;
const CHANGES: usize = 10_000;
/// How long msemu takes to make the changes (their notifications go out as they are made).
const DRIVE: Duration = Duration::from_secs(10);
const KILLS: usize = 4;
const SPACE: &str = "office";
const PASSWORD: &str = "crashes lose nothing here";
/// msemu's statuses but Available (which msemu turns into Away when idle): each shows an emoji
/// or, for the offline ones, the member's own (none here).
fn statuses() -> Vec<&'static str> {
    msemu::control::actions::STATUSES.iter().map(|s| s.0).filter(|s| *s != "Available").collect()
}

fn email(n: usize) -> String {
    format!("user{n}@contoso.example")
}

/// Where kehai keeps its state in a run.
enum Store {
    /// `kehai.db` in the data directory.
    Sqlite,
    /// A fresh database on the test server (its URL).
    Postgres(String),
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkills_while_notifications_arrive_lose_no_presence_and_no_connection() {
    sigkills(Store::Sqlite, 3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkills_on_postgres_lose_no_presence_and_no_connection() {
    let Some(postgres) = service("KEHAI_TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/test").await else {
        return;
    };
    let db = Database::create(&postgres).await;
    sigkills(Store::Postgres(db.url.clone()), 2).await;
    // Dropped only when the test passed: a failed one leaves its database to look at.
    db.drop_database().await;
}

/// The test on `store`, for `seeds` seeds.
async fn sigkills(store: Store, seeds: u64) {
    let people = (0..MEMBERS).map(|n| (email(n), format!("User {n}"))).collect();
    let emu = msemu_with(people, |_| {}).await;
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    emu.emulator.world.lock().directory.apps[0].redirect_uris = vec![format!("{base}/integrations/msteams/callback")];
    let app = emu.emulator.world.lock().directory.apps[0].clone();
    let mut env: Vec<(String, String)> = [
        ("KEHAI_LISTEN", format!("127.0.0.1:{port}")),
        ("KEHAI_PUBLIC_URL", base.clone()),
        ("KEHAI_MS_CLIENT_ID", app.client_id.to_string()),
        ("KEHAI_MS_CLIENT_SECRET", app.client_secret),
        ("KEHAI_MS_LOGIN_URL", emu.base_url.to_string()),
        ("KEHAI_MS_GRAPH_URL", emu.base_url.to_string()),
        ("KEHAI_LOGIN_ATTEMPTS_PER_MINUTE", "100000".to_owned()),
        ("KEHAI_LOG", "warn".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let dir = tempfile::tempdir().unwrap();
    // Where the checks read what kehai stored.
    let database_url = match store {
        Store::Sqlite => format!("sqlite://{}?mode=ro", dir.path().join("kehai.db").display()),
        Store::Postgres(url) => {
            env.push(("KEHAI_DATABASE_URL".to_owned(), url.clone()));
            url
        }
    };
    let serve = || command(&env, dir.path(), &["serve"]).stdout(Stdio::null()).spawn().unwrap();

    run_ok(command(&env, dir.path(), &["space", "create", SPACE, "--name", "Office"]));
    let members: Vec<_> = (0..MEMBERS).map(|n| (email(n), format!("User {n}"))).collect();
    add_members(&env, dir.path(), SPACE, &members, PASSWORD);
    let mut running = Instances(vec![serve()]);
    wait_ready(&base).await;
    futures::stream::iter(0..MEMBERS)
        .map(|n| {
            let (base, emu) = (base.clone(), &emu);
            async move {
                connect_teams(&log_in(&base, &email(n), PASSWORD, SPACE).await, &base, emu, &email(n), SPACE).await
            }
        })
        .buffer_unordered(8)
        .collect::<Vec<()>>()
        .await;
    let viewer = log_in(&base, &email(0), PASSWORD, SPACE).await;
    connections_are_whole(&emu, &database_url).await;

    let first: u64 = std::env::var("KEHAI_CRASH_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(rand::random);
    for seed in first..first + seeds {
        eprintln!("crash recovery: seed {seed} (KEHAI_CRASH_SEED={seed} runs it again)");
        let mut rng = StdRng::seed_from_u64(seed);
        let statuses = statuses();
        // Random changes, then everyone's last one at once: a burst the last kill falls into,
        // so that notifications kehai accepted (202) but had not applied die with it.
        let mut changes: Vec<(usize, &str)> = (0..CHANGES - MEMBERS)
            .map(|_| (rng.random_range(0..MEMBERS), statuses[rng.random_range(0..statuses.len())]))
            .collect();
        let last: Vec<(usize, &str)> =
            (0..MEMBERS).map(|n| (n, statuses[rng.random_range(0..statuses.len())])).collect();
        changes.extend(last);
        let mut kills: Vec<Duration> = (1..KILLS).map(|_| DRIVE.mul_f64(rng.random_range(0.0..1.0))).collect();
        kills.sort();
        let burst = std::sync::Arc::new(tokio::sync::Notify::new());
        let started = Instant::now();
        let drive = tokio::spawn(drive(emu.base_url.to_string(), changes, std::sync::Arc::clone(&burst)));
        for at in kills {
            tokio::time::sleep(at.saturating_sub(started.elapsed())).await;
            kill_and_start(&mut running, &serve, Duration::from_millis(rng.random_range(0..500))).await;
        }
        burst.notified().await;
        tokio::time::sleep(Duration::from_millis(rng.random_range(20..200))).await;
        kill_and_start(&mut running, &serve, Duration::from_millis(rng.random_range(0..500))).await;
        drive.await.unwrap();
        wait_ready(&base).await;
        let restarted = Instant::now();
        let deadline = restarted + Duration::from_secs(60);
        loop {
            let wrong = wrong_avatars(&emu, &viewer, &base).await;
            if wrong.is_empty() {
                eprintln!(
                    "seed {seed}: every avatar right {:.1} s after the last start",
                    restarted.elapsed().as_secs_f64()
                );
                break;
            }
            assert!(
                Instant::now() < deadline,
                "seed {seed}: {} avatars wrong 60 s after the last start, e.g. {:?}",
                wrong.len(),
                &wrong[..wrong.len().min(5)]
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        connections_are_whole(&emu, &database_url).await;
    }
}

/// SIGKILLs the running kehai, waits `down`, and starts it again (without waiting for it).
async fn kill_and_start(running: &mut Instances, serve: &impl Fn() -> std::process::Child, down: Duration) {
    let mut child = running.0.pop().unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    tokio::time::sleep(down).await;
    running.0.push(serve());
}

/// Makes `changes` at msemu: all but the last [`MEMBERS`] evenly over [`DRIVE`], then those at
/// once, telling `burst` when they start.
async fn drive(msemu: String, changes: Vec<(usize, &'static str)>, burst: std::sync::Arc<tokio::sync::Notify>) {
    let http = reqwest::Client::new();
    let msemu = msemu.trim_end_matches('/');
    let changed = |changes: &[(usize, &'static str)]| -> Vec<_> {
        changes
            .iter()
            .map(|&(n, status)| {
                set_status(http.clone(), format!("{msemu}/_emu/api/users/{}/presence", email(n)), status)
            })
            .collect()
    };
    let (paced, last) = changes.split_at(changes.len() - MEMBERS);
    let chunks = 100;
    let started = Instant::now();
    for (i, chunk) in paced.chunks(paced.len().div_ceil(chunks)).enumerate() {
        futures::future::join_all(changed(chunk)).await;
        tokio::time::sleep(DRIVE.mul_f64((i + 1) as f64 / chunks as f64).saturating_sub(started.elapsed())).await;
    }
    burst.notify_one();
    futures::stream::iter(changed(last)).buffer_unordered(32).collect::<Vec<()>>().await;
}

async fn set_status(http: reqwest::Client, url: String, status: &'static str) {
    let answer = http.put(url).json(&json!({ "status": status })).send().await.unwrap();
    assert_eq!(answer.status(), StatusCode::OK);
}

/// The members whose avatar does not show what msemu says (what the presence→emoji table gives,
/// or no emoji).
async fn wrong_avatars(emu: &msemu::Running, viewer: &reqwest::Client, base: &str) -> Vec<String> {
    let expected: HashMap<String, Option<String>> = {
        let world = emu.emulator.world.lock();
        (0..MEMBERS)
            .map(|n| {
                let id = world.directory.user_by_email(&email(n)).unwrap().id;
                let p = &world.presences[&id];
                let shown = kehai_core::presence::msteams::shown(&p.availability, &p.activity, p.out_of_office);
                (format!("User {n}"), shown.map(|s| s.emoji.as_str().to_owned()))
            })
            .collect()
    };
    let Ok(answer) = viewer.get(format!("{base}/api/spaces/{SPACE}/avatars")).send().await else {
        return vec!["kehai does not answer".into()];
    };
    let avatars: Vec<Value> = answer.json().await.unwrap_or_default();
    let shown: HashMap<&str, Option<&str>> =
        avatars.iter().filter_map(|a| Some((a["display_name"].as_str()?, a["emoji"].as_str()))).collect();
    let mut wrong: Vec<String> = expected
        .iter()
        .filter(|(name, emoji)| shown.get(name.as_str()).copied() != Some(emoji.as_deref()))
        .map(|(name, emoji)| format!("{name}: {:?} instead of {emoji:?}", shown.get(name.as_str())))
        .collect();
    wrong.sort();
    wrong
}

/// Every member has one connection, connected, in the space, with one subscription at msemu.
async fn connections_are_whole(emu: &msemu::Running, database_url: &str) {
    const CONNECTIONS: &str = "SELECT external_user, state, subscription_id FROM connections";
    const IN_SPACE: &str = "SELECT count(*) FROM connection_spaces WHERE enabled";
    // The same two queries through either engine's pool.
    macro_rules! read {
        ($pool:ty) => {{
            let pool = <$pool>::connect(database_url).await.unwrap();
            let rows = sqlx::query_as(CONNECTIONS).fetch_all(&pool).await.unwrap();
            let in_space = sqlx::query_scalar(IN_SPACE).fetch_one(&pool).await.unwrap();
            pool.close().await;
            (rows, in_space)
        }};
    }
    let (rows, in_space): (Vec<(String, String, Option<String>)>, i64) =
        if database_url.starts_with("sqlite:") { read!(sqlx::SqlitePool) } else { read!(sqlx::PgPool) };
    let users: HashSet<String> = {
        let world = emu.emulator.world.lock();
        (0..MEMBERS).map(|n| world.directory.user_by_email(&email(n)).unwrap().id.to_string()).collect()
    };
    assert_eq!(rows.len(), MEMBERS, "one connection per member");
    let connected: HashSet<String> = rows.iter().map(|(user, _, _)| user.clone()).collect();
    assert_eq!(connected, users, "every member's Microsoft account, once");
    assert!(rows.iter().all(|(_, state, _)| state == "connected"), "all connected");
    assert_eq!(in_space, MEMBERS as i64, "each connection on in the space");
    let subscriptions = emu.emulator.world.lock().subscriptions.clone();
    assert_eq!(subscriptions.len(), MEMBERS, "one subscription per member at msemu");
    let covered: HashSet<String> = subscriptions.values().flat_map(|s| s.users.iter().map(Uuid::to_string)).collect();
    assert_eq!(covered, users);
    let ours: HashSet<String> = rows.iter().filter_map(|(_, _, s)| s.clone()).collect();
    let theirs: HashSet<String> = subscriptions.keys().map(Uuid::to_string).collect();
    assert_eq!(ours, theirs, "kehai knows exactly msemu's subscriptions");
}
