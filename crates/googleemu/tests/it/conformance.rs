//! googleemu checked by Google's own client libraries (Python): `GOOGLEEMU_TEST_PYTHON` names a
//! Python with the packages of `conformance/requirements.txt` (the test command makes one).
//! Without it the checks are skipped — except with `CI=true`, where that is a failure.

use std::process::Command;

use googleemu::{EventKind, EventSpec};
use serde_json::{Value, json};

use crate::{hook::Hook, support::*};

fn python() -> Option<String> {
    match std::env::var("GOOGLEEMU_TEST_PYTHON") {
        Ok(p) if !p.is_empty() => Some(p),
        _ if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("CI=true but GOOGLEEMU_TEST_PYTHON is not set: the conformance checks cannot be skipped in CI")
        }
        _ => {
            eprintln!("skipping: set GOOGLEEMU_TEST_PYTHON to a Python with conformance/requirements.txt");
            None
        }
    }
}

/// Runs a conformance script (off the async threads: googleemu answers it meanwhile); returns
/// the JSON line it printed last.
async fn run(python: String, script: &'static str, args: Vec<String>) -> Value {
    tokio::task::spawn_blocking(move || run_blocking(&python, script, &args)).await.expect("script task")
}

fn run_blocking(python: &str, script: &str, args: &[String]) -> Value {
    let path = format!("{}/conformance/{script}", env!("CARGO_MANIFEST_DIR"));
    let out = Command::new(python)
        .arg(&path)
        .args(args)
        // The scripts set what they need themselves; nothing from the caller's environment.
        .env_remove("OAUTHLIB_INSECURE_TRANSPORT")
        .env_remove("OAUTHLIB_RELAX_TOKEN_SCOPE")
        // No __pycache__ beside the scripts (they import pages.py).
        .env("PYTHONDONTWRITEBYTECODE", "1")
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

fn base(emu: &googleemu::Running) -> String {
    emu.url("")
}

#[tokio::test(flavor = "multi_thread")]
async fn google_auth_oauthlib_completes_the_code_flow_and_sees_the_scope_change() {
    let Some(python) = python() else { return };
    let emu = start().await;
    let args = [base(&emu), CLIENT_ID.into(), SECRET.into(), REDIRECT_URI.into(), "alice@example.com".into()];
    let result = run(python, "oauth_flow.py", args.to_vec()).await;

    let warning = result["scope_warning"].as_str().expect("oauthlib's Warning without OAUTHLIB_RELAX_TOKEN_SCOPE");
    assert!(warning.starts_with("Scope has changed from"), "{warning}");
    assert!(warning.contains(EMAIL), "{warning}");
    assert_eq!(
        result["authorization_query"],
        json!({"code_challenge_method": "S256", "access_type": "offline", "prompt": "consent select_account", "include_granted_scopes": "true"})
    );
    assert_eq!(
        result["redirect"],
        json!({"scope": format!("{FREEBUSY} {EMAIL} openid"), "hd": "example.com", "prompt": "consent", "authuser": "0"})
    );
    assert_eq!(
        result["token_keys"],
        json!(["access_token", "expires_at", "expires_in", "id_token", "refresh_token", "scope", "token_type"])
    );
    assert_eq!(result["refresh_token"], true);
    assert_eq!(result["granted_scopes"], json!([FREEBUSY, EMAIL, "openid"]));
    let claims = &result["claims"];
    assert_eq!((claims["aud"].as_str(), claims["azp"].as_str()), (Some(CLIENT_ID), Some(CLIENT_ID)));
    assert_eq!((claims["email"].as_str(), claims["email_verified"].as_bool()), (Some("alice@example.com"), Some(true)));
    assert_eq!(claims["hd"], "example.com");
    assert_eq!(claims["iss"], base(&emu));
}

#[tokio::test(flavor = "multi_thread")]
async fn google_auth_refreshes_verifies_id_tokens_and_sees_revocation_as_invalid_grant() {
    let Some(python) = python() else { return };
    let emu = start().await;
    let tokens = connect(&emu, "dave@other.example", KEHAI_SCOPES).await;
    let refresh_token = tokens["refresh_token"].as_str().unwrap().to_owned();
    let result = run(python, "google_auth.py", vec![base(&emu), CLIENT_ID.into(), SECRET.into(), refresh_token]).await;

    assert_eq!(result["refreshed"], true, "{result}");
    assert_eq!(result["kept_refresh_token"], true);
    let sub = claims(tokens["id_token"].as_str().unwrap())["sub"].clone();
    for certs in ["jwks", "pem"] {
        let verified = &result["verified"][certs];
        assert_eq!(verified["aud"], CLIENT_ID, "{certs}");
        assert_eq!(verified["email"], "dave@other.example", "{certs}");
        assert_eq!(verified["hd"], "other.example", "{certs}");
        assert_eq!(verified["sub"], sub, "{certs}");
    }
    assert_eq!(result["revoke_status"], 200);
    let error = result["refresh_error"].as_str().expect("RefreshError after the revocation");
    assert!(error.contains("invalid_grant") && error.contains("Token has been expired or revoked."), "{error}");
    assert_eq!(result["retryable"], false);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_api_client_queries_free_busy_lists_events_watches_and_stops() {
    let Some(python) = python() else { return };
    let emu = start().await;
    let mut hook = Hook::start().await;
    emu.add_event("alice@example.com", EventSpec::now(EventKind::Meeting, 30).summary("Secret")).unwrap();
    emu.add_event(
        "alice@example.com",
        EventSpec::starting_in(EventKind::OutOfOffice, time::Duration::hours(2), time::Duration::hours(3)),
    )
    .unwrap();
    emu.add_event(
        "alice@example.com",
        EventSpec::starting_in(EventKind::Declined, time::Duration::hours(6), time::Duration::hours(1)),
    )
    .unwrap();
    let tokens = connect(&emu, "alice@example.com", KEHAI_SCOPES).await;
    let narrow =
        access_token(&emu, "alice@example.com", "openid https://www.googleapis.com/auth/calendar.events").await;
    let args = vec![
        base(&emu),
        CLIENT_ID.into(),
        SECRET.into(),
        tokens["refresh_token"].as_str().unwrap().to_owned(),
        hook.url.clone(),
        narrow,
    ];
    let result = run(python, "calendar_client.py", args).await;

    assert_eq!(result["freebusy"]["kind"], "calendar#freeBusy");
    assert!(result["freebusy"]["timeMin"].as_str().unwrap().ends_with(".000Z"));
    assert_eq!(
        result["freebusy"]["busy"].as_array().unwrap().len(),
        2,
        "the meeting and the OOO, not the declined: {result}"
    );
    let items = result["events"]["items"].as_array().unwrap();
    let types: Vec<&str> = items.iter().map(|e| e["eventType"].as_str().unwrap()).collect();
    assert_eq!(types, ["default", "outOfOffice", "default"]);
    assert!(items.iter().all(|e| e.get("summary").is_none()), "the mask and stubs keep titles out");
    assert_eq!(result["events"].as_object().unwrap().len(), 1, "only items, as masked");

    let channel = &result["channel"];
    assert_eq!(channel["kind"], "api#channel");
    assert_eq!(channel["token"], "sdk-channel-token");
    assert!(channel["expiration"].is_string());
    assert_eq!(result["stopped"], "", "the client reads the 204 as an empty body");
    let sync = hook.next().await;
    assert_eq!(sync.state(), "sync");
    assert_eq!(sync.header("x-goog-channel-id"), channel["id"].as_str());
    assert_eq!(sync.header("x-goog-channel-token"), Some("sdk-channel-token"));
    let made = emu.channels();
    assert!(made.iter().any(|c| c.id == channel["id"].as_str().unwrap() && c.stopped), "stopped at the emulator");

    assert_eq!(
        result["http_error"],
        json!({"status": 403, "reason": "Request had insufficient authentication scopes.", "detail_reason": "ACCESS_TOKEN_SCOPE_INSUFFICIENT"})
    );
    let requests = emu.calendar_requests();
    let list = requests.iter().find(|r| r.operation.as_deref() == Some("calendar.events.list")).unwrap();
    assert_eq!(list.fields.as_deref(), Some("items(eventType,status,transparency,start,end)"));
    assert!(list.query.contains("eventTypes=outOfOffice&eventTypes=focusTime&eventTypes=default"), "{}", list.query);
    assert!(list.query.contains("alt=json"));
}
