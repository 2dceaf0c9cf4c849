//! Health, readiness, metrics, headers, the OpenAPI document and graceful shutdown.

use std::time::Duration;

use futures::StreamExt;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::TestApp;

#[tokio::test]
async fn health_and_readiness() {
    let app = TestApp::start().await;
    let c = app.client();
    assert_eq!(c.get("/healthz").await.status(), StatusCode::OK);
    assert_eq!(c.get("/readyz").await.status(), StatusCode::OK);
}

/// On PostgreSQL the whole app works the same, and readiness follows the database.
#[tokio::test]
async fn on_postgresql_readiness_follows_the_database() {
    let Some((app, name)) = TestApp::start_on_postgres().await else {
        return;
    };
    let mut alice = app.member("alice@example.com").await;
    alice.load_space("alpha").await;
    assert_eq!(alice.put_me("alpha", json!({"emoji": "🐘"})).await.status(), StatusCode::OK);
    assert_eq!(crate::support::find(&alice.avatars("alpha").await, "Alice").unwrap()["own_emoji"], "🐘");
    assert_eq!(alice.get("/readyz").await.status(), StatusCode::OK);

    let url = std::env::var("KEHAI_TEST_POSTGRES_URL").unwrap();
    crate::support::postgres_admin(&url, &format!("DROP DATABASE {name} WITH (FORCE)")).await;
    let r = alice.get("/readyz").await;
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(alice.get("/healthz").await.status(), StatusCode::OK, "the process itself is fine");
}

#[tokio::test]
async fn metrics_count_requests_by_route_streams_and_avatars_here() {
    let app = TestApp::start().await;
    let alice = app.member("alice@example.com").await;
    alice.avatars("alpha").await;
    alice.avatars("alpha").await;
    let mut stream = alice.events("alpha", None).await;
    stream.next(5).await.expect("snapshot");
    let text = alice.get("/metrics").await.text().await.unwrap();
    let line = |prefix: &str| text.lines().find(|l| l.starts_with(prefix)).map(str::to_owned);
    let avatars = line("kehai_http_requests_total{method=\"GET\",route=\"/api/spaces/{slug}/avatars\",status=\"200\"}")
        .unwrap_or_else(|| panic!("no avatars route counter in\n{text}"));
    assert!(avatars.ends_with(" 2"), "{avatars}");
    assert!(!text.contains("/api/spaces/alpha/"), "raw paths must not become labels");
    assert_eq!(line("kehai_event_streams_open ").as_deref(), Some("kehai_event_streams_open 1"));
    assert_eq!(line("kehai_avatars_here ").as_deref(), Some("kehai_avatars_here 1"));
    drop(stream);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let text = alice.get("/metrics").await.text().await.unwrap();
        if text.lines().any(|l| l == "kehai_event_streams_open 0") && text.lines().any(|l| l == "kehai_avatars_here 0")
        {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the closed stream is still counted:\n{text}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn every_answer_has_a_request_id_and_security_headers() {
    let app = TestApp::start().await;
    let c = app.client();
    for path in ["/login", "/healthz", "/api/spaces/alpha/avatars", "/nope"] {
        let r = c.get(path).await;
        let h = r.headers();
        assert!(h.get("x-request-id").is_some_and(|v| !v.is_empty()), "{path}");
        let csp = h["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("frame-ancestors 'none'") && csp.contains("script-src 'self'"), "{path}: {csp}");
        assert!(!csp.contains("unsafe-inline"), "{csp}");
        assert_eq!(h["x-content-type-options"], "nosniff");
        assert!(h.get("referrer-policy").is_some());
    }
    let r = c.get("/nope").await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "route_not_found");
}

/// Reached over https (behind a TLS proxy), kehai tells browsers to come back over https only,
/// for the configured time; over http (a local demo) it never does.
#[tokio::test]
async fn over_https_answers_carry_strict_transport_security() {
    let https = TestApp::start_with(|c| c.public_url = "https://kehai.example.com".parse().unwrap()).await;
    for path in ["/login", "/healthz", "/nope"] {
        let r = https.client().get(path).await;
        assert_eq!(
            r.headers().get("strict-transport-security").map(|v| v.to_str().unwrap()),
            Some("max-age=31536000"),
            "{path}"
        );
    }
    let short = TestApp::start_with(|c| {
        c.public_url = "https://kehai.example.com".parse().unwrap();
        c.hsts_max_age_seconds = 600;
    })
    .await;
    assert_eq!(short.client().get("/login").await.headers()["strict-transport-security"], "max-age=600");
    let off = TestApp::start_with(|c| {
        c.public_url = "https://kehai.example.com".parse().unwrap();
        c.hsts_max_age_seconds = 0;
    })
    .await;
    assert!(off.client().get("/login").await.headers().get("strict-transport-security").is_none(), "0 turns it off");
    let http = TestApp::start().await;
    assert!(http.client().get("/login").await.headers().get("strict-transport-security").is_none(), "not over http");
}

/// A client that sends its request headers a little at a time and never finishes (slowloris)
/// is dropped once the header-read time is over: it cannot hold connections open.
#[tokio::test]
async fn a_client_that_never_finishes_its_headers_is_dropped() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = TestApp::start_with(|c| c.header_read_timeout_seconds = 1).await;
    // Headers begun and never finished; a first byte and nothing more; nothing at all.
    for start in [&b"GET /healthz HTTP/1.1\r\nHost: kehai\r\nX-Slow: "[..], b"P", b""] {
        let mut slow = tokio::net::TcpStream::connect(app.config().listen).await.unwrap();
        slow.write_all(start).await.unwrap();
        let mut rest = Vec::new();
        let closed = tokio::time::timeout(Duration::from_secs(5), slow.read_to_end(&mut rest)).await;
        let start = String::from_utf8_lossy(start);
        assert!(closed.is_ok(), "the connection that sent {start:?} is still open after 5 s");
        assert!(!String::from_utf8_lossy(&rest).contains("200 OK"), "no request was answered");
    }
    // A client that sends its headers in time is answered.
    assert_eq!(app.client().get("/healthz").await.status(), StatusCode::OK);
}

/// A request whose body comes too slowly is cut off with 408 `request_timeout`: it cannot hold
/// a worker either.
#[tokio::test]
async fn a_request_that_takes_too_long_is_cut_off() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = TestApp::start_with(|c| c.request_timeout_seconds = 1).await;
    let mut slow = tokio::net::TcpStream::connect(app.config().listen).await.unwrap();
    slow.write_all(
        b"POST /login HTTP/1.1\r\nHost: kehai\r\nContent-Type: application/x-www-form-urlencoded\r\n\
          Content-Length: 1000\r\n\r\nemail=a",
    )
    .await
    .unwrap();
    let mut answer = vec![0; 4096];
    let n =
        tokio::time::timeout(Duration::from_secs(5), slow.read(&mut answer)).await.expect("answered in time").unwrap();
    let answer = String::from_utf8_lossy(&answer[..n]);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("request_timeout"), "{answer}");
}

/// Every operation in `/openapi.json` is a route of the server that answers as documented.
/// (Every API route is documented by construction: the router is built from the documented
/// handlers.)
#[tokio::test]
async fn openapi_matches_the_routes() {
    let app = TestApp::start().await;
    let mut alice = app.member("alice@example.com").await;
    alice.load_space("alpha").await;
    let doc: Value = alice.get("/openapi.json").await.json().await.unwrap();
    let paths = doc["paths"].as_object().expect("paths");
    let mut documented = Vec::new();
    for (path, ops) in paths {
        for method in ops.as_object().unwrap().keys() {
            documented.push(format!("{} {path}", method.to_uppercase()));
            let url = alice.url(&path.replace("{slug}", "alpha").replace("{provider}", "msteams"));
            let mut req = alice.http.request(method.to_uppercase().parse().unwrap(), url);
            req = req.header("x-csrf-token", alice.csrf.clone().unwrap()).json(&json!({}));
            let r = req.send().await.unwrap();
            let status = r.status();
            assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
            let body: Value = r.json().await.unwrap_or(Value::Null);
            assert_ne!(body["error"]["code"], "route_not_found", "{method} {path}");
            // Whatever it answered (an empty body is not a valid toggle, say), it is documented.
            let documented_status = ops[method.as_str()]["responses"].get(status.as_str()).is_some();
            assert!(documented_status, "{method} {path} answered {status}, which its operation does not document");
        }
    }
    documented.sort();
    let schemes = doc["components"]["securitySchemes"].as_object().expect("security schemes");
    assert_eq!(schemes["session"]["name"], "kehai_session");
    assert_eq!(schemes["csrf"]["name"], "X-CSRF-Token");
    assert_eq!(
        documented,
        vec![
            "DELETE /api/spaces/{slug}/integrations/{provider}",
            "GET /api/spaces/{slug}/avatars",
            "GET /api/spaces/{slug}/integrations/{provider}",
            "PUT /api/spaces/{slug}/integrations/{provider}",
            "PUT /api/spaces/{slug}/me",
        ]
    );
    // An undocumented method on a documented path is not a route.
    let r = alice.http.delete(alice.url("/api/spaces/alpha/me")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn graceful_shutdown_lets_in_flight_requests_finish() {
    let mut app = TestApp::start().await;
    let mut alice = app.member("alice@example.com").await;
    alice.load_space("alpha").await;
    // A request whose body is still arriving when the shutdown begins.
    let chunks = futures::stream::iter([(Duration::ZERO, "{\"emoji\": "), (Duration::from_millis(800), "\"🌸\"}")])
        .then(|(delay, chunk)| async move {
            tokio::time::sleep(delay).await;
            Ok::<_, std::io::Error>(chunk)
        });
    let request = alice
        .http
        .put(alice.url("/api/spaces/alpha/me"))
        .header("x-csrf-token", alice.csrf.clone().unwrap())
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(chunks))
        .send();
    let in_flight = tokio::spawn(request);
    tokio::time::sleep(Duration::from_millis(300)).await;
    app.shutdown().await.expect("run returns Ok");
    // `run` returned only after the request was handled.
    let stored = app.stored_avatars("alpha").await;
    let alice_avatar = stored.iter().find(|a| a.display_name.as_str() == "Alice").unwrap();
    assert_eq!(
        alice_avatar.own_emoji.as_ref().map(|e| e.as_str()),
        Some("🌸"),
        "run returned before the request finished"
    );
    let response = in_flight.await.unwrap().expect("the in-flight request is answered");
    assert_eq!(response.status(), StatusCode::OK);
    let avatar: Value = response.json().await.unwrap();
    assert_eq!(avatar["own_emoji"], "🌸");
}

#[tokio::test]
async fn graceful_shutdown_closes_streams_and_returns() {
    let mut app = TestApp::start().await;
    let alice = app.member("alice@example.com").await;
    let mut stream = alice.events("alpha", None).await;
    stream.next(5).await.expect("snapshot");
    app.shutdown().await.expect("run returns Ok");
    assert!(stream.closes_within(5).await, "the stream must end");
    assert!(reqwest::get(app.url("/healthz")).await.is_err(), "no longer listening");
}

/// Graph's validation handshake on both webhook paths: within 10 s, 200, `text/plain` and the
/// URL-decoded token.
#[tokio::test]
async fn webhooks_answer_the_validation_handshake() {
    let app = TestApp::start().await;
    let token = "Validation: Testing client application reachability for subscription Request-Id: 7f1c <b>&</b>";
    for path in ["/webhooks/msgraph", "/webhooks/msgraph/lifecycle"] {
        let mut url = url::Url::parse(&app.url(path)).unwrap();
        url.query_pairs_mut().append_pair("validationToken", token);
        let r =
            reqwest::Client::new().post(url).header("content-type", "text/plain; charset=utf-8").send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{path}");
        assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/plain"));
        assert_eq!(r.text().await.unwrap(), token, "{path}: the decoded token, verbatim");
    }
}
