//! Several instances: three `kehai serve` processes on one PostgreSQL database and one NATS
//! server, behind a round-robin balancer (as a load balancer would put them), with msemu as
//! Microsoft. 200 members connect Teams through whichever instance answers; presences change at
//! msemu; every change must reach the event streams open on every instance; one instance is
//! killed with SIGKILL mid-run; afterwards no subscription lapsed, none was renewed twice, and
//! every avatar is right.

use std::{
    collections::HashMap,
    process::Stdio,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use futures::StreamExt;
use reqwest::{StatusCode, redirect::Policy};
use serde_json::{Value, json};

use crate::support::{
    Database, Instances, add_members, command, connect_teams, free_port, log_in, msemu_with, run_ok, service,
    wait_ready,
};

const MEMBERS: usize = 200;
const SPACE: &str = "office";
const PASSWORD: &str = "several instances, one office";
/// Short subscriptions, so that every connection is renewed several times during the run.
const SUBSCRIPTION_SECONDS: i64 = 60;
/// Statuses set at msemu, and the emoji kehai shows for each.
const STATUSES: [(&str, &str); 5] =
    [("Busy", "🔴"), ("DoNotDisturb", "⛔"), ("InAMeeting", "📅"), ("InACall", "📞"), ("AppearAway", "💤")];

/// A round-robin HTTP balancer in front of the instances: the public URL Microsoft and browsers
/// use. A request an instance cannot take (it is dead) goes to the next one.
struct Balancer {
    backends: Vec<String>,
    next: AtomicUsize,
    http: reqwest::Client,
}

async fn forward(
    axum::extract::State(balancer): axum::extract::State<Arc<Balancer>>,
    request: axum::extract::Request,
) -> axum::response::Response {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, 1 << 20).await.unwrap_or_default();
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str()).to_owned();
    for _ in 0..balancer.backends.len() {
        let backend = &balancer.backends[balancer.next.fetch_add(1, Ordering::Relaxed) % balancer.backends.len()];
        let mut to = balancer.http.request(parts.method.clone(), format!("{backend}{path}")).body(body.clone());
        for (name, value) in &parts.headers {
            if name != "host" {
                to = to.header(name, value);
            }
        }
        match to.send().await {
            Ok(answer) => {
                let mut back = axum::response::Response::builder().status(answer.status());
                for (name, value) in answer.headers() {
                    if !matches!(name.as_str(), "transfer-encoding" | "connection" | "content-length") {
                        back = back.header(name, value);
                    }
                }
                let bytes = answer.bytes().await.unwrap_or_default();
                return back.body(axum::body::Body::from(bytes)).unwrap();
            }
            Err(e) if e.is_connect() => continue,
            Err(_) => break,
        }
    }
    axum::response::Response::builder().status(502).body(axum::body::Body::empty()).unwrap()
}

async fn start_balancer(backends: Vec<String>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let balancer = Arc::new(Balancer {
        backends,
        next: AtomicUsize::new(0),
        http: reqwest::Client::builder().redirect(Policy::none()).build().unwrap(),
    });
    let app = axum::Router::new().fallback(forward).with_state(balancer);
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}")
}

/// The environment every instance (and the administration commands) share.
fn shared_env(db: &Database, bus: &str, public: &str, emu: &msemu::Running) -> Vec<(String, String)> {
    let app = emu.emulator.world.lock().directory.apps[0].clone();
    [
        ("KEHAI_DATABASE_URL", db.url.clone()),
        ("KEHAI_BUS_URL", bus.to_owned()),
        ("KEHAI_PUBLIC_URL", public.to_owned()),
        // Several instances share one master key.
        ("KEHAI_SECRET_KEY", "a2VoYWktc2V2ZXJhbC1pbnN0YW5jZXMtdGVzdC1rZXk=".to_owned()),
        ("KEHAI_MS_CLIENT_ID", app.client_id.to_string()),
        ("KEHAI_MS_CLIENT_SECRET", app.client_secret),
        ("KEHAI_MS_LOGIN_URL", emu.base_url.to_string()),
        ("KEHAI_MS_GRAPH_URL", emu.base_url.to_string()),
        ("KEHAI_MS_SUBSCRIPTION_SECONDS", SUBSCRIPTION_SECONDS.to_string()),
        ("KEHAI_LOGIN_ATTEMPTS_PER_MINUTE", "100000".to_owned()),
        ("KEHAI_LOG", "warn".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

fn email(n: usize) -> String {
    format!("user{n}@contoso.example")
}

/// What one event stream has shown: each member's latest emoji and whether they are here, by
/// display name.
type Shown = Arc<Mutex<HashMap<String, (Option<String>, bool)>>>;

/// Opens the space's event stream at `instance` with `client`'s session and records every
/// avatar frame until the stream ends.
async fn watch(client: reqwest::Client, instance: String) -> Shown {
    let shown: Shown = Arc::default();
    let r =
        client.get(format!("{instance}/s/{SPACE}/events")).header("accept", "text/event-stream").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK, "the event stream at {instance}");
    let record = Arc::clone(&shown);
    tokio::spawn(async move {
        let mut body = r.bytes_stream();
        let mut buffer = String::new();
        while let Some(Ok(chunk)) = body.next().await {
            buffer.push_str(&String::from_utf8_lossy(&chunk));
            while let Some(end) = buffer.find("\n\n") {
                let frame: String = buffer.drain(..end + 2).collect();
                let data: String = frame.lines().filter_map(|l| l.strip_prefix("data:")).map(str::trim).collect();
                let Ok(data) = serde_json::from_str::<Value>(&data) else { continue };
                let avatars = match data.get("avatars") {
                    Some(list) => list.as_array().cloned().unwrap_or_default(),
                    None => vec![data],
                };
                let mut shown = record.lock().unwrap();
                for a in avatars {
                    if let Some(name) = a["display_name"].as_str() {
                        let here = a["here"].as_bool().unwrap_or(false);
                        shown.insert(name.to_owned(), (a["emoji"].as_str().map(str::to_owned), here));
                    }
                }
            }
        }
    });
    shown
}

/// Waits until `shown` has `expected` for every member; panics naming the first few wrong.
async fn until_shown(shown: &Shown, expected: &HashMap<String, String>, within: Duration, on: &str) {
    let deadline = Instant::now() + within;
    loop {
        let wrong: Vec<String> = {
            let shown = shown.lock().unwrap();
            expected
                .iter()
                .filter(|(name, emoji)| shown.get(*name).and_then(|(e, _)| e.as_deref()) != Some(emoji.as_str()))
                .map(|(name, emoji)| format!("{name}: {:?} instead of {emoji}", shown.get(name)))
                .collect()
        };
        if wrong.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{on}: {} avatars wrong, e.g. {:?}",
            wrong.len(),
            &wrong[..wrong.len().min(5)]
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Sets members' statuses at msemu (`wave` picks each one's status); returns what each avatar
/// must show.
async fn change(emu: &msemu::Running, members: impl Iterator<Item = usize>, wave: usize) -> HashMap<String, String> {
    let http = reqwest::Client::new();
    let mut expected = HashMap::new();
    for n in members {
        let (status, emoji) = STATUSES[(n + wave) % STATUSES.len()];
        let r = http
            .put(emu.url(&format!("/_emu/api/users/{}/presence", email(n))))
            .json(&json!({ "status": status }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        expected.insert(format!("User {n}"), emoji.to_owned());
    }
    expected
}

/// Members whose change in wave 2 died with the killed instance.
const QUIET: usize = 10;

/// Member `n` becomes Do not disturb at msemu without a notification; returns what their avatar
/// must show.
fn quietly_do_not_disturb(emu: &msemu::Running, n: usize) -> (String, String) {
    let mut world = emu.emulator.world.lock();
    let id = world.directory.user_by_email(&email(n)).unwrap().id;
    let sequence = world.next_sequence();
    let presence = world.presences.get_mut(&id).unwrap();
    presence.availability = "DoNotDisturb".into();
    presence.activity = "DoNotDisturb".into();
    presence.sequence = sequence;
    (format!("User {n}"), "⛔".to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_instances_share_postgres_and_nats_and_one_dies_without_losing_anything() {
    let Some(postgres) = service("KEHAI_TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/test").await else {
        return;
    };
    let Some(nats) = service("KEHAI_TEST_NATS_URL", "nats://127.0.0.1:4222").await else { return };
    let db = Database::create(&postgres).await;
    let outcome = futures::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(run(&db, &nats))).await;
    db.drop_database().await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

async fn run(db: &Database, nats: &str) {
    // msemu with 200 more people in contoso, granting minute-long subscriptions and asking for
    // reauthorization only when a subscription is about to lapse unrenewed.
    let people = (0..MEMBERS).map(|n| (email(n), format!("User {n}"))).collect();
    let emu = msemu_with(people, |c| c.reauthorization_lead = Duration::from_secs(3)).await;

    let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let instances: Vec<String> = ports.iter().map(|p| format!("http://127.0.0.1:{p}")).collect();
    let public = start_balancer(instances.clone()).await;
    emu.emulator.world.lock().directory.apps[0].redirect_uris = vec![format!("{public}/integrations/msteams/callback")];
    let env = shared_env(db, nats, &public, &emu);
    let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();

    // The operator's set-up, once for all instances.
    run_ok(command(&env, dirs[0].path(), &["migrate"]));
    run_ok(command(&env, dirs[0].path(), &["space", "create", SPACE, "--name", "Office"]));
    let members: Vec<_> = (0..MEMBERS).map(|n| (email(n), format!("User {n}"))).collect();
    add_members(&env, dirs[0].path(), SPACE, &members, PASSWORD);

    let mut running = Instances(Vec::new());
    for (port, dir) in ports.iter().zip(&dirs) {
        let mut cmd = command(&env, dir.path(), &["serve"]);
        cmd.env("KEHAI_LISTEN", format!("127.0.0.1:{port}")).stdout(Stdio::null());
        running.0.push(cmd.spawn().unwrap());
    }
    for instance in &instances {
        wait_ready(instance).await;
    }

    // 200 members connect, eight at a time, each step on whichever instance the balancer picks.
    futures::stream::iter(0..MEMBERS)
        .map(|n| {
            let (public, emu) = (public.clone(), &emu);
            async move {
                let c = log_in(&public, &email(n), PASSWORD, SPACE).await;
                connect_teams(&c, &public, emu, &email(n), SPACE).await
            }
        })
        .buffer_unordered(8)
        .collect::<Vec<()>>()
        .await;
    let subscriptions = |emu: &msemu::Running| emu.emulator.world.lock().subscriptions.clone();
    let made = subscriptions(&emu);
    assert_eq!(made.len(), MEMBERS, "one subscription per connection");

    // A page open on every instance: User i's on instance i, each logged in through the
    // balancer.
    let mut shown = Vec::new();
    for (i, instance) in instances.iter().enumerate() {
        shown.push(watch(log_in(&public, &email(i), PASSWORD, SPACE).await, instance.clone()).await);
    }

    // Wave 1, all instances up: every change reaches the pages on every instance.
    let expected = change(&emu, 0..MEMBERS, 1).await;
    for (i, s) in shown.iter().enumerate() {
        until_shown(s, &expected, Duration::from_secs(30), &format!("wave 1, instance {i}")).await;
    }

    // Wave 2: instance 2 is killed halfway through. Its queued notifications die with it; the
    // others take over (its heartbeat lapses) and read every presence again.
    let mut expected = change(&emu, QUIET..MEMBERS / 2, 2).await;
    // The changes instance 2 had accepted and not yet shown when it died: made at msemu
    // without a notification (whether any real one is caught in its queue is luck).
    expected.extend((0..QUIET).map(|n| quietly_do_not_disturb(&emu, n)));
    running.0[2].kill().unwrap();
    running.0[2].wait().unwrap();
    let killed = Instant::now();
    expected.extend(change(&emu, MEMBERS / 2..MEMBERS, 2).await);
    for (i, s) in shown.iter().enumerate().take(2) {
        until_shown(s, &expected, Duration::from_secs(30), &format!("wave 2, instance {i}")).await;
    }

    // Through more than a subscription's life after the kill, renewals go on on the survivors.
    let life = Duration::from_secs(SUBSCRIPTION_SECONDS as u64);
    tokio::time::sleep((life + Duration::from_secs(5)).saturating_sub(killed.elapsed())).await;
    let expected = change(&emu, 0..MEMBERS, 3).await;
    for (i, s) in shown.iter().enumerate().take(2) {
        until_shown(s, &expected, Duration::from_secs(30), &format!("wave 3, instance {i}")).await;
    }

    // Who is here is the same on every instance, whichever instance announced a change: Users
    // 0 and 1 (pages on the survivors) are here; User 2 left with instance 2.
    for (i, s) in shown.iter().enumerate().take(2) {
        let here = |name: &str| s.lock().unwrap().get(name).map(|(_, here)| *here);
        let deadline = Instant::now() + Duration::from_secs(30);
        while (here("User 0"), here("User 1"), here("User 2")) != (Some(true), Some(true), Some(false)) {
            assert!(Instant::now() < deadline, "instance {i}: {:?}", (here("User 0"), here("User 1"), here("User 2")));
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    // At msemu: the same 200 subscriptions (none lapsed and made anew), each renewed on time
    // (never more than a life apart, the last one still running) and never twice (a renewal
    // comes at most half a life ahead of the lapse: renewals closer than a third of a life
    // apart are two instances renewing the same subscription).
    let now = msemu::world::now();
    let after = subscriptions(&emu);
    let mut ids: Vec<_> = after.keys().collect();
    let mut before: Vec<_> = made.keys().collect();
    ids.sort();
    before.sort();
    assert_eq!(ids, before, "no subscription was made anew");
    for s in after.values() {
        assert!(s.expiration > now, "subscription {} lapsed", s.id);
        let mut times = vec![s.created];
        times.extend(&s.renewals);
        times.push(now);
        assert!(!s.renewals.is_empty(), "subscription {} never renewed", s.id);
        for gap in times.windows(2).map(|w| w[1] - w[0]) {
            assert!(gap < SUBSCRIPTION_SECONDS, "subscription {}: {gap} s without renewal", s.id);
        }
        for gap in s.renewals.windows(2).map(|w| w[1] - w[0]) {
            assert!(
                gap >= SUBSCRIPTION_SECONDS / 3,
                "subscription {} renewed twice ({gap} s apart): {:?}",
                s.id,
                s.renewals
            );
        }
    }

    // And every avatar is right, as a fresh page on a survivor sees it.
    let page = log_in(&public, &email(1), PASSWORD, SPACE).await;
    let avatars: Value =
        page.get(format!("{}/api/spaces/{SPACE}/avatars", instances[0])).send().await.unwrap().json().await.unwrap();
    let avatars = avatars["avatars"].as_array().or(avatars.as_array()).cloned().unwrap_or_default();
    let right = avatars
        .iter()
        .filter(|a| a["display_name"].as_str().and_then(|n| expected.get(n)).is_some_and(|e| a["emoji"] == **e))
        .count();
    assert_eq!(right, MEMBERS, "{avatars:?}");
}
