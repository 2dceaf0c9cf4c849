//! The `kehai` command as an operator uses it: a real binary, a real SQLite file — and, in
//! [`several`], three of them on PostgreSQL and NATS; in [`crash`], one killed again and again
//! while notifications arrive; in [`hygiene`], a whole journey logged at trace level, then
//! searched for secrets.

#![allow(clippy::unwrap_used)]

mod crash;
mod hygiene;
mod several;
mod support;

use std::{
    io::Write,
    path::Path,
    process::{Command, Output, Stdio},
    time::{Duration, Instant},
};

fn kehai(data: &Path, args: &[&str], stdin: Option<&str>, env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kehai"));
    cmd.args(args)
        .current_dir(data)
        .env("KEHAI_DATA_DIR", data)
        .env_remove("KEHAI_DATABASE_URL")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("kehai runs");
    if let Some(input) = stdin {
        child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    }
    drop(child.stdin.take());
    child.wait_with_output().unwrap()
}

fn ok(o: &Output) -> String {
    assert!(
        o.status.success(),
        "failed: {}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn fails(o: &Output, says: &str) {
    assert!(!o.status.success(), "should have failed: {}", String::from_utf8_lossy(&o.stdout));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains(says), "expected {says:?} in: {err}");
}

#[test]
fn every_command_has_help() {
    let dir = tempfile::tempdir().unwrap();
    for args in [
        vec!["--help"],
        vec!["serve", "--help"],
        vec!["demo", "--help"],
        vec!["migrate", "--help"],
        vec!["space", "create", "--help"],
        vec!["space", "guests", "--help"],
        vec!["member", "add", "--help"],
        vec!["member", "list", "--help"],
        vec!["keys", "rotate", "--help"],
        vec!["keys", "rotate-cert", "--help"],
    ] {
        let out = ok(&kehai(dir.path(), &args, None, &[]));
        assert!(out.contains("Usage:"), "{args:?}: {out}");
    }
    let add = ok(&kehai(dir.path(), &["member", "add", "--help"], None, &[]));
    assert!(add.contains("--password-env") && add.contains("standard input"));
    let o = kehai(dir.path(), &["member", "add", "demo", "a@example.com", "--password", "x"], None, &[]);
    assert_eq!(o.status.code(), Some(2), "there is no --password flag: passwords never go on the command line");
}

#[test]
fn spaces_and_members_are_administered_with_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    assert!(ok(&kehai(d, &["migrate"], None, &[])).contains("up to date"));
    assert!(d.join("kehai.db").exists(), "SQLite in the data directory");

    ok(&kehai(d, &["space", "create", "team", "--name", "The Team", "--allow-guests"], None, &[]));
    fails(&kehai(d, &["space", "create", "team", "--name", "Again"], None, &[]), "already exists");
    fails(&kehai(d, &["space", "create", "Bad Slug", "--name", "x"], None, &[]), "slug");

    ok(&kehai(
        d,
        &["member", "add", "team", "alice@example.com", "--name", "Alice", "--admin"],
        Some("a long enough secret\n"),
        &[],
    ));
    ok(&kehai(
        d,
        &["member", "add", "team", "bob@example.com", "--password-env", "BOB_PW"],
        None,
        &[("BOB_PW", "another long secret")],
    ));
    fails(
        &kehai(d, &["member", "add", "team", "ALICE@example.com"], Some("a long enough secret\n"), &[]),
        "already a member",
    );
    fails(
        &kehai(d, &["member", "add", "nowhere", "x@example.com"], Some("a long enough secret\n"), &[]),
        "there is no space",
    );
    let weak = kehai(d, &["member", "add", "team", "weak@example.com"], Some("short\n"), &[]);
    fails(&weak, "too weak");
    assert_eq!(String::from_utf8_lossy(&weak.stderr).matches("too weak").count(), 1, "said once");
    fails(&kehai(d, &["member", "add", "team", "empty@example.com"], Some(""), &[]), "empty");
    fails(&kehai(d, &["member", "add", "team", "not-an-email"], Some("a long enough secret\n"), &[]), "email");
    fails(
        &kehai(d, &["member", "add", "team", "c@example.com", "--password-env", "UNSET_VAR_X"], None, &[]),
        "UNSET_VAR_X",
    );

    let list = ok(&kehai(d, &["member", "list", "team"], None, &[]));
    let lines: Vec<_> = list.lines().collect();
    assert_eq!(lines, vec!["alice@example.com\tadmin\tAlice", "bob@example.com\tmember\tbob"]);
    fails(&kehai(d, &["member", "list", "nowhere"], None, &[]), "there is no space");
}

#[test]
fn invalid_configuration_names_the_setting() {
    let dir = tempfile::tempdir().unwrap();
    fails(&kehai(dir.path(), &["migrate"], None, &[("KEHAI_LISTEN", "nonsense")]), "KEHAI_LISTEN");
    fails(&kehai(dir.path(), &["migrate"], None, &[("KEHAI_LOG_FORMAT", "xml")]), "KEHAI_LOG_FORMAT");
    fails(&kehai(dir.path(), &["--config", "missing.toml", "migrate"], None, &[]), "missing.toml");
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[test]
fn demo_serves_a_ready_space_reuses_its_data_and_stops_on_sigterm_and_ctrl_c() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let msemu_port = free_port();
    let googleemu_port = free_port();
    let start = |dir: &Path| {
        Command::new(env!("CARGO_BIN_EXE_kehai"))
            .args([
                "demo",
                "--msemu-listen",
                &format!("127.0.0.1:{msemu_port}"),
                "--googleemu-listen",
                &format!("127.0.0.1:{googleemu_port}"),
            ])
            .current_dir(dir)
            .env_remove("KEHAI_DATA_DIR")
            .env_remove("KEHAI_DATABASE_URL")
            .env("KEHAI_LISTEN", format!("127.0.0.1:{port}"))
            .env("KEHAI_PUBLIC_URL", &base)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };
    for round in 0..2 {
        let child = start(dir.path());
        let deadline = Instant::now() + Duration::from_secs(30);
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            loop {
                if reqwest::get(format!("{base}/readyz")).await.is_ok_and(|r| r.status().is_success()) {
                    break;
                }
                assert!(Instant::now() < deadline, "demo did not become ready (round {round})");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            // Alice logs in with the printed password.
            let c = reqwest::Client::builder()
                .cookie_store(true)
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap();
            let html = c.get(format!("{base}/login")).send().await.unwrap().text().await.unwrap();
            let csrf = html.split("name=\"csrf\" value=\"").nth(1).unwrap().split('"').next().unwrap().to_owned();
            let r = c
                .post(format!("{base}/login"))
                .form(&[
                    ("email", "alice@example.com"),
                    ("password", "kehai-demo-password"),
                    ("csrf", &csrf),
                    ("next", "/s/demo"),
                ])
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), reqwest::StatusCode::SEE_OTHER, "round {round}");
            let avatars: Vec<serde_json::Value> =
                c.get(format!("{base}/api/spaces/demo/avatars")).send().await.unwrap().json().await.unwrap();
            let names: Vec<_> = avatars.iter().map(|a| a["display_name"].as_str().unwrap()).collect();
            assert_eq!(names, vec!["Alice", "Bob"]);
            let r = c.get(format!("{base}/s/demo/guest")).send().await.unwrap();
            assert_eq!(r.status(), reqwest::StatusCode::SEE_OTHER, "a member is sent on to the space");
            // What Alice saved in the first round is there in the second.
            let page = c.get(format!("{base}/s/demo")).send().await.unwrap().text().await.unwrap();
            let csrf = page.split("\"csrf\":\"").nth(1).unwrap().split('"').next().unwrap().to_owned();
            if round == 0 {
                let r = c
                    .put(format!("{base}/api/spaces/demo/me"))
                    .header("x-csrf-token", &csrf)
                    .json(&serde_json::json!({"emoji": "☕"}))
                    .send()
                    .await
                    .unwrap();
                assert!(r.status().is_success(), "{}", r.status());
            } else {
                assert_eq!(avatars[0]["emoji"], "☕", "the data of the first start is reused");
            }
            // The Teams integration points at the emulated Microsoft, whose control page is up.
            let page = c.get(format!("{base}/s/demo")).send().await.unwrap().text().await.unwrap();
            assert!(
                page.contains("id=\"integration-msteams\" data-provider=\"msteams\" data-state=\"loading\""),
                "Teams is configured in the demo"
            );
            let token = support::between(&page, "\"connect\":\"", "\"").expect("the page's connect token");
            let r =
                c.get(format!("{base}/integrations/msteams/connect?space=demo&connect={token}")).send().await.unwrap();
            let to = r.headers()["location"].to_str().unwrap().to_owned();
            assert!(
                to.starts_with(&format!("http://127.0.0.1:{msemu_port}/organizations/oauth2/v2.0/authorize")),
                "{to}"
            );
            let control = reqwest::get(format!("http://127.0.0.1:{msemu_port}/_emu/")).await.unwrap();
            assert!(control.status().is_success());
            // And Google Calendar at the emulated Google.
            assert!(page.contains("id=\"integration-gcal\" data-provider=\"gcal\" data-state=\"loading\""));
            let r = c.get(format!("{base}/integrations/gcal/connect?space=demo&connect={token}")).send().await.unwrap();
            let to = r.headers()["location"].to_str().unwrap().to_owned();
            assert!(to.starts_with(&format!("http://127.0.0.1:{googleemu_port}/o/oauth2/v2/auth?")), "{to}");
            let control = reqwest::get(format!("http://127.0.0.1:{googleemu_port}/_emu/")).await.unwrap();
            assert!(control.status().is_success());
        });
        // Stopped as a service manager does, then as Ctrl-C does.
        let signal = if round == 0 { "-TERM" } else { "-INT" };
        assert!(Command::new("kill").args([signal, &child.id().to_string()]).status().unwrap().success());
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "demo exits cleanly on {signal}");
        let printed = String::from_utf8_lossy(&out.stdout);
        assert!(printed.contains(&format!("{base}/s/demo")) && printed.contains("kehai-demo-password"), "{printed}");
        assert!(printed.contains(&format!("http://127.0.0.1:{msemu_port}/_emu/")), "{printed}");
        assert!(printed.contains(&format!("http://127.0.0.1:{googleemu_port}/_emu/")), "{printed}");
        assert!(dir.path().join("demo-data/kehai.db").exists(), "demo data in ./demo-data");
    }
}

#[cfg(unix)]
#[test]
fn serve_refuses_a_key_file_others_can_read() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("secret.key"), "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=").unwrap();
    std::fs::set_permissions(dir.path().join("secret.key"), std::fs::Permissions::from_mode(0o644)).unwrap();
    let o = kehai(dir.path(), &["serve"], None, &[("KEHAI_LISTEN", "127.0.0.1:0")]);
    fails(&o, "chmod 600");
}

#[test]
fn demo_says_which_address_is_taken() {
    let dir = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let free = || format!("127.0.0.1:{}", free_port());
    let listen = [("KEHAI_LISTEN", free())];
    let listen = [(listen[0].0, listen[0].1.as_str())];
    let o = kehai(
        dir.path(),
        &["demo", "--msemu-listen", &format!("127.0.0.1:{port}"), "--googleemu-listen", &free()],
        None,
        &listen,
    );
    fails(&o, "--msemu-listen");
    let o = kehai(
        dir.path(),
        &["demo", "--msemu-listen", &free(), "--googleemu-listen", &format!("127.0.0.1:{port}")],
        None,
        &listen,
    );
    fails(&o, "--googleemu-listen");
    // kehai's own address taken: named, with how to choose another, and nothing printed.
    let o = kehai(
        dir.path(),
        &["demo", "--msemu-listen", &free(), "--googleemu-listen", &free()],
        None,
        &[("KEHAI_LISTEN", &format!("127.0.0.1:{port}"))],
    );
    fails(&o, &format!("cannot listen on 127.0.0.1:{port}"));
    fails(&o, "KEHAI_LISTEN");
    assert!(!String::from_utf8_lossy(&o.stdout).contains("/s/demo"), "no banner for a demo that did not start");
    drop(taken);
}

#[test]
fn space_guests_sets_how_a_space_takes_guests_and_prints_its_link() {
    let dir = tempfile::tempdir().unwrap();
    let created = ok(&kehai(dir.path(), &["space", "create", "team", "--name", "Team", "--allow-guests"], None, &[]));
    assert!(created.contains("guests see every member's avatar and status"), "{created}");
    let public = [("KEHAI_PUBLIC_URL", "https://kehai.example.com")];
    let first = ok(&kehai(dir.path(), &["space", "guests", "team", "link"], None, &public));
    let link = |out: &str| out.lines().find(|l| l.starts_with("https://")).map(str::to_owned).unwrap();
    assert!(link(&first).starts_with("https://kehai.example.com/s/team/guest?link="), "{first}");
    let second = ok(&kehai(dir.path(), &["space", "guests", "team", "link"], None, &public));
    assert_ne!(link(&first), link(&second), "a new link each time");
    assert!(ok(&kehai(dir.path(), &["space", "guests", "team", "open"], None, &public)).contains("/s/team/guest"));
    assert!(ok(&kehai(dir.path(), &["space", "guests", "team", "off"], None, &[])).contains("takes no guests"));
    fails(&kehai(dir.path(), &["space", "guests", "team", "sometimes"], None, &[]), "invalid value");
    fails(&kehai(dir.path(), &["space", "guests", "nowhere", "open"], None, &[]), "there is no space `nowhere`");
}

#[test]
fn keys_rotate_replaces_the_key_file() {
    let dir = tempfile::tempdir().unwrap();
    ok(&kehai(dir.path(), &["migrate"], None, &[]));
    // The first start makes the key; rotating replaces it.
    let o = kehai(dir.path(), &["keys", "rotate"], None, &[]);
    let first = std::fs::read_to_string(dir.path().join("secret.key")).unwrap();
    assert!(ok(&o).contains("re-sealed 0 values"));
    ok(&kehai(dir.path(), &["keys", "rotate"], None, &[]));
    let second = std::fs::read_to_string(dir.path().join("secret.key")).unwrap();
    assert_ne!(first, second);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(dir.path().join("secret.key")).unwrap().permissions().mode() & 0o777, 0o600);
    }
    let env_key = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
    fails(&kehai(dir.path(), &["keys", "rotate"], None, &[("KEHAI_SECRET_KEY", env_key)]), "--new-key-env");
}

#[test]
fn an_interrupted_key_rotation_stops_the_start_with_instructions() {
    let dir = tempfile::tempdir().unwrap();
    ok(&kehai(dir.path(), &["keys", "rotate"], None, &[]));
    std::fs::copy(dir.path().join("secret.key"), dir.path().join("secret.key.old")).unwrap();
    let o = kehai(dir.path(), &["serve"], None, &[("KEHAI_LISTEN", "127.0.0.1:0")]);
    fails(&o, "interrupted");
}

/// A serving kehai would go on sealing refreshed tokens under the old key: rotating is refused
/// while it serves (SQLite: it holds the database), and nothing changes.
#[test]
fn keys_rotate_is_refused_while_kehai_serves() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut serving = spawn_serve(dir.path(), port);
    wait_ready(port);
    let key = std::fs::read_to_string(dir.path().join("secret.key")).unwrap();
    let o = kehai(dir.path(), &["keys", "rotate"], None, &[]);
    fails(&o, "`kehai keys rotate` needs kehai stopped");
    fails(&o, "Stop it");
    assert_eq!(std::fs::read_to_string(dir.path().join("secret.key")).unwrap(), key, "the key is unchanged");
    serving.kill().unwrap();
    serving.wait().unwrap();
    assert!(ok(&kehai(dir.path(), &["keys", "rotate"], None, &[])).contains("re-sealed"));
    assert_ne!(std::fs::read_to_string(dir.path().join("secret.key")).unwrap(), key);
}

/// On PostgreSQL, instances share the database: rotating is refused while any instance's
/// heartbeat is live, and goes ahead once the last one stopped.
#[test]
fn keys_rotate_on_postgres_is_refused_while_an_instance_serves() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let Some(postgres) =
        rt.block_on(support::service("KEHAI_TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/test"))
    else {
        return;
    };
    let db = rt.block_on(support::Database::create(&postgres));
    let dir = tempfile::tempdir().unwrap();
    let old = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
    let new = "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=";
    let port = free_port();
    let env = [
        ("KEHAI_DATABASE_URL".to_owned(), db.url.clone()),
        ("KEHAI_SECRET_KEY".to_owned(), old.to_owned()),
        ("KEHAI_LISTEN".to_owned(), format!("127.0.0.1:{port}")),
        ("NEW_KEY".to_owned(), new.to_owned()),
    ];
    let rotate = || {
        let mut cmd = support::command(&env, dir.path(), &["keys", "rotate", "--new-key-env", "NEW_KEY"]);
        cmd.stdin(Stdio::null()).output().unwrap()
    };
    // While a command that needs kehai stopped runs (it holds `job/exclusive`), kehai does not start.
    let store = rt.block_on(kehai_store::open(&kehai_store::Database::Postgres(db.url.clone()))).unwrap();
    rt.block_on(store.migrate()).unwrap();
    let now =
        i64::try_from(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis()).unwrap();
    let claim = kehai_store::Claim { holder: "command/test", now, until: now + 60_000 };
    assert!(rt.block_on(store.claim("job/exclusive", claim)).unwrap());
    let refused = support::command(&env, dir.path(), &["serve"]).stdin(Stdio::null()).output().unwrap();
    fails(&refused, "a command that needs kehai stopped");
    rt.block_on(store.release("job/exclusive", "command/test")).unwrap();
    rt.block_on(store.close());
    let mut serving =
        support::command(&env, dir.path(), &["serve"]).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    wait_ready(port);
    fails(&rotate(), "1 instance(s) are serving this PostgreSQL database");
    // A clean stop lets go of the heartbeat at once.
    let term = Command::new("kill").args(["-TERM", &serving.id().to_string()]).status().unwrap();
    assert!(term.success());
    assert!(serving.wait().unwrap().success());
    assert!(ok(&rotate()).contains("now set KEHAI_SECRET_KEY to the new key"));
    rt.block_on(db.drop_database());
}

#[test]
fn keys_rotate_cert_makes_a_new_certificate_and_keeps_the_old_key() {
    let dir = tempfile::tempdir().unwrap();
    fails(&kehai(dir.path(), &["keys", "rotate-cert"], None, &[]), "Microsoft Teams is not configured");
    // No member is connected: nothing to move, and Microsoft is never called.
    let ms = [("KEHAI_MS_CLIENT_ID", "11111111-2222-3333-4444-555555555555"), ("KEHAI_MS_CLIENT_SECRET", "s3cret")];
    let first = ok(&kehai(dir.path(), &["keys", "rotate-cert"], None, &ms));
    assert!(first.contains("subscription(s) moved to it"), "{first}");
    assert!(first.contains("1 old certificate(s) kept"), "the one made at the start: {first}");
    let second = ok(&kehai(dir.path(), &["keys", "rotate-cert"], None, &ms));
    assert!(second.contains("2 old certificate(s) kept"), "{second}");
    let id = |out: &str| out.split_whitespace().nth(3).unwrap().trim_end_matches(';').to_owned();
    assert!(id(&first).starts_with("kehai-") && id(&first) != id(&second), "{first} / {second}");
}

/// `kehai serve` on `dir`'s data at `port`, in the background.
fn spawn_serve(dir: &Path, port: u16) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_kehai"))
        .arg("serve")
        .current_dir(dir)
        .env("KEHAI_DATA_DIR", dir)
        .env_remove("KEHAI_DATABASE_URL")
        .env("KEHAI_LISTEN", format!("127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// Waits up to 30 s for `/readyz` at `port`.
fn wait_ready(port: u16) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !reqwest::get(format!("http://127.0.0.1:{port}/readyz")).await.is_ok_and(|r| r.status().is_success()) {
            assert!(Instant::now() < deadline, "kehai did not become ready on port {port}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
}

#[test]
fn a_second_instance_on_the_same_sqlite_database_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut first = spawn_serve(dir.path(), port);
    wait_ready(port);
    let second = kehai(dir.path(), &["serve"], None, &[("KEHAI_LISTEN", &format!("127.0.0.1:{}", free_port()))]);
    fails(&second, "another kehai is already serving");
    fails(&second, "KEHAI_DATABASE_URL");
    // Administration beside the running instance is fine.
    ok(&kehai(dir.path(), &["space", "create", "ops", "--name", "Ops"], None, &[]));
    // Once the first is gone (even killed), the database is free again.
    first.kill().unwrap();
    first.wait().unwrap();
    let mut again = spawn_serve(dir.path(), port);
    wait_ready(port);
    again.kill().unwrap();
    again.wait().unwrap();
}
