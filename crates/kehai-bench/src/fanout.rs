//! e. Fan-out: one presence change delivered to 10,000 open event streams of one space, timed
//! from the notification's POST to the avatar frame at each stream — beside the same fan-out by
//! a bare axum server that forwards one `tokio::sync::broadcast` to its SSE streams (the
//! baseline: what this machine takes to write 10,000 frames to 10,000 sockets and read them).
//!
//! kehai serves a seeded office ([`crate::office`]) in its own process, and so does the
//! baseline: 10,000 streams need 10,000 sockets on each side, more than one process may open
//! here. The streams are pages of 100 members, 100 pages each (every page receives the whole
//! space's snapshot when it opens; 10,000 different people would make that snapshot, not the
//! fan-out, the cost). They are read by a minimal HTTP/1.1 reader, so that the client costs as
//! little of the shared CPU as it can. The memory kehai gains per open stream is measured on the
//! way.

use std::{
    net::SocketAddr,
    time::{Duration, Instant},
};

use futures::StreamExt;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    sync::mpsc,
};

use crate::{
    Sizes,
    load::percentile,
    office::{Kehai, Office, Plan},
    report::{Report, Row},
    rig::SPACE,
};

const SECTION: &str = "e. fan-out";
/// The changes made, one after the other (availability, activity): each activity is new to
/// the avatar, so its frame is recognised by it. The first ones warm up and are not timed: a
/// server's first notification also parses its certificate's key and fetches the signing keys
/// of the validation tokens, which a running server has done long before.
const CHANGES: [(&str, &str); 4] =
    [("Away", "Away"), ("DoNotDisturb", "Presenting"), ("Busy", "InAMeeting"), ("BeRightBack", "BeRightBack")];
const WARM_UP: usize = 1;
/// Streams opened at once.
const OPENING: usize = 64;

/// With `profile`, kehai is profiled with `perf record` while the changes are fanned out.
pub async fn run(sizes: &Sizes, profile: Option<&std::path::Path>, report: &mut Report) -> anyhow::Result<()> {
    let streams = sizes.fanout_members * sizes.fanout_pages_per_member;
    let baseline = baseline(streams).await?;

    let plan = Plan {
        members: sizes.fanout_members,
        database_url: None,
        sessions_per_member: sizes.fanout_pages_per_member,
        life_ms: 3_540_000,
    };
    let office = Office::seed(&plan).await?;
    let (mut kehai, _) = office.serve().await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let closed = kehai.status("VmRSS:");
    let address: SocketAddr = office.base.trim_start_matches("http://").parse()?;
    let path = format!("/s/{SPACE}/events");
    let mut open = Streams::open(address, &path, office.cookies.iter().map(|c| Some(c.as_str()))).await?;
    kehai.check_alive()?;
    // The arrivals of the pages' people are fanned out too; let them pass.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let open_rss = kehai.status("VmRSS:");

    let member = office.members.first().ok_or_else(|| anyhow::anyhow!("no members"))?;
    let token = msemu::notify::validation_token_for(&office.emu.emulator, member.subscription)?;
    let webhook = format!("{}/webhooks/msgraph", office.base);
    let client = reqwest::Client::new();
    let profiling = match profile {
        Some(dir) => Some(kehai.profile(&dir.join("fanout.perf.data")).await?),
        None => None,
    };
    let mut latencies = open
        .time(|change| {
            let (emu, client, webhook) = (&office.emu.emulator, &client, &webhook);
            let status = CHANGES[change];
            let body = msemu::notify::prepared_change(emu, member.subscription, member.ms_user, status, &token);
            async move {
                let answer = client.post(webhook).header("content-type", "application/json").body(body?.to_string());
                let answer = answer.send().await?;
                anyhow::ensure!(answer.status().is_success(), "the notification was answered {}", answer.status());
                Ok(())
            }
        })
        .await?;
    if let Some(p) = profiling {
        p.finish()?;
    }
    kehai.check_alive()?;
    kehai.stop();

    let p99 = percentile(&mut latencies, 99.0);
    report.push(Row::time(SECTION, "POST to frame at every stream p50", percentile(&mut latencies, 50.0), None));
    report.push(Row::time(SECTION, "POST to frame at every stream p99", p99, Some(100.0)));
    report.push(Row::time(SECTION, "POST to frame at the last stream", percentile(&mut latencies, 100.0), None));
    report.push(Row::time(SECTION, "bare axum + broadcast p99 (baseline)", baseline, None));
    let per_stream = (open_rss.saturating_sub(closed) * 1024) as f64 / open.count.max(1) as f64;
    report.note(format!(
        "e. {} streams of {} members, {} changes timed after {WARM_UP} to warm up, each reached every stream; \
         kehai/baseline p99 {:.2}; kehai's memory per open stream: {per_stream:.0} bytes",
        open.count,
        plan.members,
        CHANGES.len() - WARM_UP,
        p99.as_secs_f64() / baseline.as_secs_f64().max(1e-9),
    ));
    Ok(())
}

/// The baseline's p99 over the same changes and as many streams.
async fn baseline(streams: usize) -> anyhow::Result<Duration> {
    let dir = tempfile::tempdir()?;
    let address: SocketAddr = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
    let mut server =
        Kehai::spawn("--serve-fanout-baseline", &[("KEHAI_LISTEN", address.to_string())], &dir.path().join("log"))?;
    let client = reqwest::Client::new();
    let started = Instant::now();
    while client.get(format!("http://{address}/events")).send().await.is_err() {
        server.check_alive()?;
        anyhow::ensure!(started.elapsed() < Duration::from_secs(30), "the baseline server did not start");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut open = Streams::open(address, "/events", std::iter::repeat_n(None, streams)).await?;
    let change = format!("http://{address}/change");
    let mut latencies = open
        .time(|change_n| {
            let post = client.post(&change).body(CHANGES[change_n].1);
            async move {
                post.send().await?.error_for_status()?;
                Ok(())
            }
        })
        .await?;
    server.stop();
    Ok(percentile(&mut latencies, 99.0))
}

/// `--serve-fanout-baseline`: `GET /events` streams a snapshot, then every frame `POST /change`
/// makes (its body is the activity), rendered once and sent through one broadcast channel.
pub async fn serve_baseline() -> anyhow::Result<()> {
    use axum::{
        Router,
        response::sse::{Event, Sse},
        routing::{get, post},
    };
    let (tx, _) = tokio::sync::broadcast::channel::<Event>(256);
    let events = {
        let tx = tx.clone();
        get(move || {
            let rx = tx.subscribe();
            async move {
                let snapshot = futures::stream::once(async { Event::default().event("snapshot").data("{}") });
                let changes = futures::stream::unfold(rx, |mut rx| async move {
                    let event = rx.recv().await.ok()?;
                    Some((event, rx))
                });
                Sse::new(snapshot.chain(changes).map(Ok::<_, std::convert::Infallible>))
            }
        })
    };
    let change = post(move |activity: String| async move {
        let data = serde_json::json!({ "display_name": "Member 0", "presence": { "activity": activity } });
        let _ = tx.send(Event::default().event("avatar").data(data.to_string()));
    });
    let listen: SocketAddr = std::env::var("KEHAI_LISTEN")?.parse()?;
    let listener = tokio::net::TcpListener::bind(listen).await?;
    axum::serve(listener, Router::new().route("/events", events).route("/change", change)).await?;
    Ok(())
}

/// Open event streams, each reporting (change, when) as every change's frame arrives.
struct Streams {
    count: usize,
    frames: mpsc::UnboundedReceiver<(usize, Instant)>,
}

impl Streams {
    /// Opens a stream of `path` per cookie (`None`: without), each once its first frame came.
    async fn open<'a>(
        address: SocketAddr,
        path: &str,
        cookies: impl Iterator<Item = Option<&'a str>>,
    ) -> anyhow::Result<Streams> {
        let (seen, frames) = mpsc::unbounded_channel();
        let opened: Vec<anyhow::Result<()>> = futures::stream::iter(cookies)
            .map(|cookie| open(address, path, cookie, seen.clone()))
            .buffer_unordered(OPENING)
            .collect()
            .await;
        let count = opened.into_iter().collect::<anyhow::Result<Vec<()>>>()?.len();
        Ok(Streams { count, frames })
    }

    /// Makes each change (`change(i)` answers once it was accepted) and times its frame at
    /// every stream, from just before the change was asked for (but for the warm-up's).
    async fn time<F, Fut>(&mut self, mut change: F) -> anyhow::Result<Vec<Duration>>
    where
        F: FnMut(usize) -> Fut,
        Fut: Future<Output = anyhow::Result<()>>,
    {
        let mut latencies = Vec::with_capacity(self.count * CHANGES.len());
        for n in 0..CHANGES.len() {
            let asked = Instant::now();
            change(n).await?;
            let deadline = asked + Duration::from_secs(30);
            let mut reached = 0;
            while reached < self.count {
                let left = deadline.saturating_duration_since(Instant::now());
                match tokio::time::timeout(left, self.frames.recv()).await {
                    Ok(Some((c, at))) if c == n => {
                        if n >= WARM_UP {
                            latencies.push(at - asked);
                        }
                        reached += 1;
                    }
                    Ok(Some(_)) => {}
                    _ => anyhow::bail!("change {n} reached {reached} of {} streams in 30 s", self.count),
                }
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        Ok(latencies)
    }
}

/// Opens one event stream over a plain socket and waits for its first frame; from then on a task
/// watches it for the changes' frames (each change's activity, in order).
async fn open(
    address: SocketAddr,
    path: &str,
    cookie: Option<&str>,
    seen: mpsc::UnboundedSender<(usize, Instant)>,
) -> anyhow::Result<()> {
    let mut socket = tokio::net::TcpStream::connect(address).await?;
    let cookie = cookie.map(|c| format!("cookie: {}={c}\r\n", kehai_server::auth::session::COOKIE)).unwrap_or_default();
    let request = format!("GET {path} HTTP/1.1\r\nhost: {address}\r\naccept: text/event-stream\r\n{cookie}\r\n");
    socket.write_all(request.as_bytes()).await?;
    let mut received = Vec::new();
    let mut buffer = vec![0u8; 4096];
    // The response head, then the end of the first frame (the snapshot).
    loop {
        let n = socket.read(&mut buffer).await?;
        anyhow::ensure!(n > 0, "the stream ended before its first frame");
        received.extend_from_slice(&buffer[..n]);
        if let Some(head) = find(&received, b"\r\n\r\n") {
            anyhow::ensure!(
                received.starts_with(b"HTTP/1.1 200"),
                "the stream was refused: {}",
                String::from_utf8_lossy(&received[..head])
            );
            if find(&received[head..], b"\n\n").is_some_and(|end| end > 4) {
                break;
            }
        }
    }
    let markers: Vec<Vec<u8>> = CHANGES.iter().map(|(_, a)| format!("\"activity\":\"{a}\"").into_bytes()).collect();
    tokio::spawn(async move {
        let mut next = 0;
        // The end of what came before too: a marker may straddle two reads.
        let mut window: Vec<u8> = Vec::new();
        while let Ok(n) = socket.read(&mut buffer).await
            && n > 0
        {
            let at = Instant::now();
            let Some(marker) = markers.get(next) else { continue };
            window.extend_from_slice(&buffer[..n]);
            if find(&window, marker).is_some() {
                if seen.send((next, at)).is_err() {
                    return;
                }
                next += 1;
                window.clear();
            } else {
                window.drain(..window.len().saturating_sub(marker.len()));
            }
        }
    });
    Ok(())
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
