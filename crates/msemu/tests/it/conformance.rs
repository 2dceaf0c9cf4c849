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
            panic!("CI=true but MSEMU_TEST_PYTHON is not set: the conformance checks cannot be skipped in CI")
        }
        _ => {
            eprintln!("skipping: set MSEMU_TEST_PYTHON to a Python with conformance/requirements.txt");
            None
        }
    }
}

/// Runs a conformance script (off the async threads: msemu answers it meanwhile); returns the
/// JSON line it printed.
async fn run(python: String, script: &'static str, args: Vec<String>) -> Value {
    tokio::task::spawn_blocking(move || run_blocking(&python, script, &args)).await.expect("script task")
}

fn run_blocking(python: &str, script: &str, args: &[String]) -> Value {
    let path = format!("{}/conformance/{script}", env!("CARGO_MANIFEST_DIR"));
    let out = Command::new(python).arg(&path).args(args).output().expect("python runs");
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
    let base = emu.tls_base_url.clone().unwrap().as_str().trim_end_matches('/').to_owned();
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, emu.ca_pem.as_deref().unwrap()).unwrap();
    let (client_id, secret) = app(&emu);
    let args =
        [base.as_str(), ca.to_str().unwrap(), &client_id, &secret, REDIRECT_URI, "alice@example.com", "alice-password"];
    let result = run(python, "msal_flow.py", args.iter().map(|a| a.to_string()).collect()).await;
    let contoso = emu.emulator.world.lock().directory.tenant("contoso").unwrap().id.to_string();
    assert_eq!(result["tid"], contoso);
    assert_eq!(result["aud"], client_id);
    assert_eq!(result["iss"], format!("{base}/{contoso}/v2.0"));
    assert_eq!(result["refresh_rotated"], true);
    let scope = result["scope"].as_str().unwrap_or("");
    assert!(scope.split(' ').any(|s| s == "https://graph.microsoft.com/Presence.Read.All"), "{result}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_graph_sdk_reads_presence_and_manages_a_subscription() {
    let Some(python) = python() else { return };
    let emu = start_with(|_| {}).await;
    let hook = crate::webhook::Webhook::start().await;
    let scope = "openid offline_access https://graph.microsoft.com/Presence.Read.All";
    let token = crate::support::access_token(&emu, "alice@example.com", "alice-password", scope).await;
    crate::support::set_status(&emu, "alice@example.com", "InACall").await;
    let alice = emu.emulator.world.lock().directory.user_by_email("alice@example.com").unwrap().id.to_string();
    let base = emu.base_url.as_str().trim_end_matches('/').to_owned();
    let result = run(python, "graph_sdk.py", vec![base, token, hook.url.clone(), alice.clone()]).await;

    assert_eq!(result["presence"]["id"], alice);
    assert_eq!(
        (result["presence"]["availability"].as_str(), result["presence"]["activity"].as_str()),
        (Some("Busy"), Some("InACall"))
    );
    assert!(result["presence"]["sequence"].as_str().is_some_and(|s| !s.is_empty()));
    assert_eq!(result["created"]["client_state"], "sdk-client-state");
    assert_eq!(result["created"]["resource"], format!("communications/presences/{alice}"));
    assert!(result["renewed_expires"].as_str().unwrap() > result["created"]["expires"].as_str().unwrap(), "{result}");
    assert_eq!(result["error_after_delete"]["status"], 404);
    assert_eq!(result["error_after_delete"]["code"], "ResourceNotFound");
    assert_eq!(hook.handshakes(), 1);
    let stats: Value = reqwest::get(emu.url("/_emu/api/subscriptions")).await.unwrap().json().await.unwrap();
    assert_eq!(stats["subscriptions"].as_array().map(Vec::len), Some(0), "deleted at msemu");
}
