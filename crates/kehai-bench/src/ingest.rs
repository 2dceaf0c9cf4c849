//! a. Ingestion: rich notifications per second through the whole path (HTTP, validation tokens,
//! clientState, HMAC, decryption, storage, fan-out) against the raw RSA-OAEP-2048 decryption rate
//! of the same cores; answer times at 2,000 notifications/s; and basic notifications taken per
//! second against a hello-world axum server.

use std::time::{Duration, Instant};

/// Notifications posted for the basic figure: what kehai's queue takes without a 503.
const QUEUED: usize = 1000;

use aws_lc_rs::rsa::{
    KeySize, OAEP_SHA1_MGF1SHA1, OaepPrivateDecryptingKey, OaepPublicEncryptingKey, PrivateDecryptingKey,
};

use crate::{
    Sizes,
    load::{self, percentile},
    report::{Report, Row},
    rig::Rig,
};

/// RSA-OAEP (SHA-1, as Graph wraps its keys) decryptions of a 2048-bit key per second, on every
/// core at once: the work one rich notification cannot do without.
pub fn rsa_decryptions_per_second(for_each_core: Duration) -> anyhow::Result<f64> {
    let private = PrivateDecryptingKey::generate(KeySize::Rsa2048)?;
    let public = OaepPublicEncryptingKey::new(private.public_key())?;
    let mut wrapped = vec![0; public.ciphertext_size()];
    let wrapped = public.encrypt(&OAEP_SHA1_MGF1SHA1, &[7; 32], &mut wrapped, None)?.to_vec();
    let key = OaepPrivateDecryptingKey::new(private)?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let done: u64 = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..cores)
            .map(|_| {
                let (key, wrapped) = (&key, &wrapped);
                scope.spawn(move || {
                    let mut out = vec![0; key.min_output_size()];
                    let (started, mut n) = (Instant::now(), 0u64);
                    while started.elapsed() < for_each_core {
                        if key.decrypt(&OAEP_SHA1_MGF1SHA1, wrapped, &mut out, None).is_ok() {
                            n += 1;
                        }
                    }
                    n
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap_or(0)).sum()
    });
    Ok(done as f64 / for_each_core.as_secs_f64())
}

/// Runs the ingestion figures on `rig` (rich subscriptions).
pub async fn run(rig: &Rig, sizes: &Sizes, report: &mut Report) -> anyhow::Result<()> {
    let url = format!("{}/webhooks/msgraph", rig.base);

    // Throughput, beside the RSA limit measured just before.
    let rsa = rsa_decryptions_per_second(sizes.rsa_time)?;
    let posts = load::prepare(rig, sizes.rounds, false)?;
    let n = posts.len() as u64;
    let before = rig.notifications_done();
    let (started, cpu) = (Instant::now(), load::cpu_time());
    load::flood(&url, posts.into_iter().map(|p| p.body).collect(), 64).await?;
    let finished = load::until(|| rig.notifications_done(), before + n, Duration::from_secs(300)).await?;
    let (elapsed, cpu) = ((finished - started).as_secs_f64(), (load::cpu_time() - cpu).as_secs_f64());
    let rate = n as f64 / elapsed;
    let cores = std::thread::available_parallelism().map_or(1, |c| c.get()) as f64;
    let applied = rig.state.metrics.notifications_applied("msteams");
    report.push(Row::ratio(
        "a. ingestion",
        "rich notifications/s, whole path",
        rate,
        "RSA-OAEP-2048 decryptions/s, same cores",
        rsa,
        Some(0.7),
    ));
    report.note(format!(
        "a. {n} rich notifications (one per POST, {} members), {applied} applied in all so far, {} stale; \
         the cores were {:.0} % busy (load generator included), {:.0} µs of CPU per notification",
        rig.members.len(),
        rig.state.metrics.notifications_dropped("msteams", "stale"),
        100.0 * cpu / (elapsed * cores),
        1e6 * cpu / n as f64,
    ));

    // The same with Graph's batching: ten notifications to a POST.
    let posts = load::prepare(rig, sizes.rounds, false)?;
    let n = posts.len() as u64;
    let bodies = load::batched(&posts, 10);
    let before = rig.notifications_done();
    let started = Instant::now();
    load::flood(&url, bodies, 16).await?;
    let finished = load::until(|| rig.notifications_done(), before + n, Duration::from_secs(300)).await?;
    report.push(Row::ratio(
        "a. ingestion",
        "rich notifications/s, 10 per POST",
        n as f64 / (finished - started).as_secs_f64(),
        "RSA-OAEP-2048 decryptions/s, same cores",
        rsa,
        Some(0.7),
    ));

    // Answer times at a steady 2,000/s.
    let posts = load::prepare(rig, sizes.paced_rounds(2000, rig.members.len()), false)?;
    let count = posts.len();
    let before = rig.notifications_done();
    let timed = load::paced(&url, posts.into_iter().map(|p| p.body).collect(), 2000).await?;
    let span = timed.last().map_or(Duration::ZERO, |t| t.sent - timed[0].sent);
    let refused = timed.iter().filter(|t| !t.taken).count();
    let mut answers: Vec<Duration> = timed.into_iter().map(|t| t.answer).collect();
    report.push(Row::time("a. ingestion", "answer time p50 at 2,000/s", percentile(&mut answers, 50.0), None));
    report.push(Row::time("a. ingestion", "answer time p99 at 2,000/s", percentile(&mut answers, 99.0), Some(5.0)));
    report.note(format!(
        "a. {count} POSTs paced over {:.1} s; {refused} answered 503 (queue full: come again) and were posted again",
        span.as_secs_f64()
    ));
    // Everything processed before the next figure.
    load::until(|| rig.notifications_done(), before + count as u64, Duration::from_secs(300)).await?;

    Ok(())
}

/// Basic notifications taken per second, beside a hello-world axum server. Last: kehai reads
/// each presence afterwards, within Graph's limit of 50 a second per app and tenant, and the
/// reads go on after this figure is taken. As many POSTs as kehai's queue holds: beyond, it
/// answers 503 until reads make room, and the figure would be Graph's limit instead.
pub async fn basic(rig: &Rig, report: &mut Report) -> anyhow::Result<()> {
    let url = format!("{}/webhooks/msgraph", rig.base);
    let rounds = (QUEUED / rig.members.len().max(1)).max(1);
    // Basic notifications taken per second, beside a hello-world axum server.
    let hello = hello_world().await?;
    let posts: Vec<String> = load::prepare(rig, rounds, true)?.into_iter().map(|p| p.body).collect();
    let n = posts.len() as f64;
    let at_hello = load::flood(&hello, posts.clone(), 64).await?;
    let at_kehai = load::flood(&url, posts, 64).await?;
    report.push(Row::ratio(
        "a. ingestion",
        "basic notifications taken/s",
        n / at_kehai.as_secs_f64(),
        "hello-world axum POSTs/s",
        n / at_hello.as_secs_f64(),
        None,
    ));
    Ok(())
}

/// An axum server answering every POST with 202 and nothing else: HTTP on this machine at its
/// cheapest. Returns its URL.
async fn hello_world() -> anyhow::Result<String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let app = axum::Router::new().route("/", axum::routing::post(|| async { axum::http::StatusCode::ACCEPTED }));
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(format!("http://{addr}/"))
}
