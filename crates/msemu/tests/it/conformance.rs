//! msemu checked by Microsoft's own client libraries (Python): `MSEMU_TEST_PYTHON` names a
//! Python with the packages of `conformance/requirements.txt` (the test command makes one).
//! Without it the checks are skipped — except with `CI=true`, where that is a failure.

use std::process::Command;

use serde_json::Value;

use crate::support::{REDIRECT_URI, app, start_with};

fn python() -> Option<String> {
    match std::env::var("MSEMU_TEST_PYTHON") {
        Ok(p) if !p.is_empty() => Some(p),
        _ if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!(
                "CI=true but MSEMU_TEST_PYTHON is not set: the conformance checks cannot be skipped in CI"
            )
        }
        _ => {
            eprintln!(
                "skipping: set MSEMU_TEST_PYTHON to a Python with conformance/requirements.txt"
            );
            None
        }
    }
}

/// Runs a conformance script (off the async threads: msemu answers it meanwhile); returns the
/// JSON line it printed.
async fn run(python: String, script: &'static str, args: Vec<String>) -> Value {
    tokio::task::spawn_blocking(move || run_blocking(&python, script, &args))
        .await
        .expect("script task")
}

fn run_blocking(python: &str, script: &str, args: &[String]) -> Value {
    let path = format!("{}/conformance/{script}", env!("CARGO_MANIFEST_DIR"));
    let out = Command::new(python)
        .arg(&path)
        .args(args)
        .output()
        .expect("python runs");
    assert!(
        out.status.success(),
        "{script} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(stdout.lines().last().unwrap_or("")).expect("a JSON line")
}

#[tokio::test(flavor = "multi_thread")]
async fn msal_completes_a_code_flow_with_pkce_and_a_refresh() {
    let Some(python) = python() else { return };
    let emu = start_with(|c| c.tls_listen = Some("127.0.0.1:0".parse().unwrap())).await;
    let base = emu
        .tls_base_url
        .clone()
        .unwrap()
        .as_str()
        .trim_end_matches('/')
        .to_owned();
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, emu.ca_pem.as_deref().unwrap()).unwrap();
    let (client_id, secret) = app(&emu);
    let args = [
        base.as_str(),
        ca.to_str().unwrap(),
        &client_id,
        &secret,
        REDIRECT_URI,
        "alice@example.com",
        "alice-password",
    ];
    let result = run(
        python,
        "msal_flow.py",
        args.iter().map(|a| a.to_string()).collect(),
    )
    .await;
    let contoso = emu
        .emulator
        .world
        .lock()
        .directory
        .tenant("contoso")
        .unwrap()
        .id
        .to_string();
    assert_eq!(result["tid"], contoso);
    assert_eq!(result["aud"], client_id);
    assert_eq!(result["iss"], format!("{base}/{contoso}/v2.0"));
    assert_eq!(result["refresh_rotated"], true);
    let scope = result["scope"].as_str().unwrap_or("");
    assert!(
        scope
            .split(' ')
            .any(|s| s == "https://graph.microsoft.com/Presence.Read.All"),
        "{result}"
    );
}
