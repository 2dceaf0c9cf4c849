//! Secret hygiene: the whole journey with logging at trace level — a member logs in, connects
//! Teams through msemu's sign-in, presences arrive as rich notifications, the access token is
//! refreshed and the subscription renewed — then the logs and the database (the SQLite files'
//! bytes; a PostgreSQL dump) and the `Debug` of the stored records are searched for every token,
//! secret, clientState and key that msemu and kehai produced. None may appear in plain text.

use std::{
    process::{Child, Command, Stdio},
    sync::Arc,
    time::{Duration, Instant},
};

use base64::{Engine, engine::general_purpose::STANDARD};
use kehai_store::secrets::{ConnectionSecret, MasterKey, Place, SecretBox};
use reqwest::cookie::CookieStore;
use secrecy::ExposeSecret;
use serde_json::json;

use crate::support::{
    Database, browser_with, connect_teams, free_port, log_in_as, msemu_with, run_ok, service, wait_ready,
};

const SPACE: &str = "office";
const EMAIL: &str = "hygiene@contoso.example";
const PASSWORD: &str = "a member's password, never logged";
/// The master key (base64 of 32 bytes).
const MASTER_KEY: &str = "a2VoYWktc2VjcmV0LWh5Z2llbmUtdGVzdC1rZXktMzI=";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_reaches_the_trace_logs_or_the_sqlite_files() {
    journey(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_reaches_the_trace_logs_or_a_postgresql_dump() {
    let Some(postgres) = service("KEHAI_TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/test").await else {
        return;
    };
    let db = Database::create(&postgres).await;
    let outcome = futures::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(journey(Some(&db)))).await;
    db.drop_database().await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

/// Stops the server (SIGTERM, as an operator does) when dropped.
struct Serving(Child);

impl Drop for Serving {
    fn drop(&mut self) {
        let _ = Command::new("kill").arg(self.0.id().to_string()).status();
        let _ = self.0.wait();
    }
}

async fn journey(postgres: Option<&Database>) {
    // msemu with one more person, short-lived access tokens (refreshed within the journey) and
    // half-minute subscriptions (renewed within it).
    let people = vec![(EMAIL.to_owned(), "Hygiene".to_owned())];
    let emu = msemu_with(people, |c| c.access_token_lifetime = Duration::from_secs(20)).await;
    let port = free_port();
    let public = format!("http://127.0.0.1:{port}");
    let app = {
        let mut world = emu.emulator.world.lock();
        world.directory.apps[0].redirect_uris = vec![format!("{public}/integrations/msteams/callback")];
        world.directory.apps[0].clone()
    };
    let dir = tempfile::tempdir().unwrap();
    let mut env = vec![
        ("KEHAI_SECRET_KEY", MASTER_KEY.to_owned()),
        ("KEHAI_MS_CLIENT_ID", app.client_id.to_string()),
        ("KEHAI_MS_CLIENT_SECRET", app.client_secret.clone()),
        ("KEHAI_MS_LOGIN_URL", emu.base_url.to_string()),
        ("KEHAI_MS_GRAPH_URL", emu.base_url.to_string()),
        ("KEHAI_MS_SUBSCRIPTION_SECONDS", "30".to_owned()),
        ("KEHAI_PUBLIC_URL", public.clone()),
        ("KEHAI_LISTEN", format!("127.0.0.1:{port}")),
        ("KEHAI_LOG", "trace".to_owned()),
        ("MEMBER_PASSWORD", PASSWORD.to_owned()),
    ];
    if let Some(db) = postgres {
        env.push(("KEHAI_DATABASE_URL", db.url.clone()));
    }
    let kehai = |args: &[&str]| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_kehai"));
        cmd.args(args).current_dir(dir.path()).env("KEHAI_DATA_DIR", dir.path()).env_remove("KEHAI_DATABASE_URL");
        cmd.envs(env.iter().map(|(k, v)| (k, v)));
        cmd
    };
    run_ok(kehai(&["space", "create", SPACE, "--name", "Office"]));
    run_ok(kehai(&["member", "add", SPACE, EMAIL, "--name", "Hygiene", "--password-env", "MEMBER_PASSWORD"]));
    let log = dir.path().join("kehai.log");
    let file = std::fs::File::create(&log).unwrap();
    let mut serve = kehai(&["serve"]);
    serve.stdout(Stdio::from(file.try_clone().unwrap())).stderr(Stdio::from(file));
    let serving = Serving(serve.spawn().unwrap());
    wait_ready(&public).await;

    // The member logs in, connects Teams, and their presence follows msemu.
    let jar = Arc::new(reqwest::cookie::Jar::default());
    let member = log_in_as(browser_with(Arc::clone(&jar)), &public, EMAIL, PASSWORD, SPACE).await;
    connect_teams(&member, &public, &emu, EMAIL, SPACE).await;
    let shows = |status: &'static str, emoji: &'static str| {
        let (member, public, emu) = (member.clone(), public.clone(), &emu);
        async move {
            let r = reqwest::Client::new()
                .put(emu.url(&format!("/_emu/api/users/{EMAIL}/presence")))
                .json(&json!({ "status": status }))
                .send()
                .await
                .unwrap();
            assert!(r.status().is_success());
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                let avatars: serde_json::Value = member
                    .get(format!("{public}/api/spaces/{SPACE}/avatars"))
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                let list = avatars["avatars"].as_array().or(avatars.as_array()).cloned().unwrap_or_default();
                if list.iter().any(|a| a["display_name"] == "Hygiene" && a["emoji"] == emoji) {
                    return;
                }
                assert!(Instant::now() < deadline, "{status} never shown");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    shows("Busy", "🔴").await;
    shows("DoNotDisturb", "⛔").await;

    // Until the access token was refreshed (the refresh token rotated) and the subscription
    // renewed; then notifications still flow.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (refreshed, renewed) = {
            let world = emu.emulator.world.lock();
            (world.refresh_tokens.len() >= 2, world.subscriptions.values().any(|s| !s.renewals.is_empty()))
        };
        if refreshed && renewed {
            break;
        }
        assert!(Instant::now() < deadline, "refreshed: {refreshed}, renewed: {renewed}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    shows("InAMeeting", "📅").await;
    let session_cookie = jar.cookies(&public.parse().unwrap()).unwrap().to_str().unwrap().to_owned();
    let page = member.get(format!("{public}/s/{SPACE}")).send().await.unwrap().text().await.unwrap();
    let csrf = crate::support::between(&page, "name=\"csrf\" value=\"", "\"").map(str::to_owned);
    drop(serving);

    // Every secret of the journey, by name.
    let mut secrets: Vec<(String, Vec<u8>)> = Vec::new();
    let mut add = |name: String, value: &str| secrets.push((name, value.as_bytes().to_vec()));
    add("the member's password".into(), PASSWORD);
    add("the master key".into(), MASTER_KEY);
    add("the client secret".into(), &app.client_secret);
    add("the master key's bytes".into(), "kehai-secret-hygiene-test-key-32");
    for cookie in session_cookie.split("; ") {
        let (name, value) = cookie.split_once('=').unwrap();
        if value.len() >= 16 {
            add(format!("the cookie {name}"), value);
        }
    }
    if let Some(csrf) = &csrf {
        add("a CSRF token".into(), csrf);
    }
    {
        let world = emu.emulator.world.lock();
        for token in world.refresh_tokens.keys() {
            add("a refresh token msemu issued".into(), token);
        }
        for code in world.codes.keys() {
            add("an authorization code".into(), code);
        }
        for s in world.subscriptions.values() {
            add("a subscription's clientState".into(), s.client_state.as_deref().unwrap());
        }
    }
    // What kehai keeps, opened with the master key: the tokens it holds now and the key of its
    // encryption certificate.
    let store = match postgres {
        Some(db) => kehai_store::open(&kehai_store::Database::Postgres(db.url.clone())).await.unwrap(),
        None => kehai_store::open(&kehai_store::Database::Sqlite(dir.path().join("kehai.db"))).await.unwrap(),
    };
    let sealed = SecretBox::new(&MasterKey::from_base64(MASTER_KEY).unwrap());
    let connection = store.connected_connections("msteams", None, 10).await.unwrap().pop().expect("the connection");
    let id = connection.id.0.to_string();
    let mut opened = |name: &str, sealed_value: &str, place: Place<'_>| {
        let value = sealed.open(sealed_value, place).unwrap();
        secrets.push((name.to_owned(), value.expose_secret().as_bytes().to_vec()));
    };
    opened(
        "the access token",
        &connection.access_token.0,
        Place::Connection(connection.id, ConnectionSecret::AccessToken),
    );
    let refresh = connection.refresh_token.clone().unwrap();
    opened("the refresh token", &refresh.0, Place::Connection(connection.id, ConnectionSecret::RefreshToken));
    let client_state = connection.subscription.clone().unwrap().client_state;
    opened("the clientState", &client_state.0, Place::Connection(connection.id, ConnectionSecret::ClientState));
    let certificate = store.current_certificate().await.unwrap().expect("a certificate");
    let key = sealed.open(&certificate.private_key.0, Place::CertificateKey(&certificate.id)).unwrap();
    let der = STANDARD.decode(key.expose_secret()).unwrap();
    // A stretch from the middle of the private key, as text and as bytes.
    secrets.push(("the certificate's private key (base64)".into(), key.expose_secret().as_bytes()[200..260].to_vec()));
    secrets.push(("the certificate's private key".into(), der[150..182].to_vec()));
    // Closed, not dropped: SQLite writes its log back into the file as it closes, which must
    // be over before the files are read.
    store.close().await;
    drop(store);
    // What a `{:?}` of the stored records would print.
    let debug = format!("{connection:?} {certificate:?}").into_bytes();
    assert!(contains(&debug, id.as_bytes()), "Debug prints the connection");

    // Where they must not be: the logs, and the database as stored.
    let logs = std::fs::read(&log).unwrap();
    let logs_text = String::from_utf8_lossy(&logs);
    assert!(logs_text.contains("TRACE"), "logged at trace level");
    assert!(logs_text.contains(&id), "the logs name the connection (ids are not secrets)");
    let stored = match postgres {
        Some(db) => {
            let dump = Command::new("pg_dump").args(["--data-only", &db.url]).output().unwrap();
            assert!(dump.status.success(), "{}", String::from_utf8_lossy(&dump.stderr));
            dump.stdout
        }
        None => ["kehai.db", "kehai.db-wal", "kehai.db-shm"]
            .iter()
            .filter_map(|f| std::fs::read(dir.path().join(f)).ok())
            .flatten()
            .collect(),
    };
    assert!(contains(&stored, connection.external_user.as_bytes()), "the database holds the connection");
    assert!(secrets.len() >= 12, "{} secrets", secrets.len());
    let found: Vec<String> = secrets
        .iter()
        .flat_map(|(name, value)| {
            assert!(value.len() >= 16, "{name} is too short to search for");
            [("the logs", &logs), ("the database", &stored), ("Debug of the records", &debug)]
                .into_iter()
                .filter(|(_, haystack)| contains(haystack, value))
                .map(move |(place, _)| format!("{name} in {place}"))
        })
        .collect();
    assert!(found.is_empty(), "secrets in plain text: {found:?}");
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}
