//! f. Overload: the webhook's answer time at ten times the expected peak, and at the peak while
//! the database is slow. Graph slows down and then drops notification endpoints that take more
//! than 3 s to answer, so the figure is the slowest answer (p100), not a percentile (Graph's
//! rules: <https://learn.microsoft.com/graph/change-notifications-delivery-webhooks>).
//! Notifications kehai cannot take now are answered 503 with `Retry-After` (Graph sends them
//! again); these POSTs are not posted again here, so that the load stays what it is.

use std::time::Duration;

use crate::{
    Sizes,
    load::{self, Timed, percentile},
    report::{Report, Row},
    rig::Rig,
};

/// The expected peak: the 2,000 notifications a second of a. (an office of 10,000 members
/// whose presence changes every five seconds at once — the start of the working day).
pub const PEAK: u32 = 2000;
/// Graph's limit for an answer.
const ANSWER_MS: f64 = 3000.0;

/// Runs the overload figures on `rig` (rich subscriptions).
pub async fn run(rig: &Rig, sizes: &Sizes, report: &mut Report) -> anyhow::Result<()> {
    // Ten times the peak, for a short while (the bodies are prepared ahead, in memory).
    let rate = 10 * PEAK;
    let posts = load::prepare(rig, rounds(sizes.overload, rate, rig.members.len()), false)?;
    let before = rig.notifications_done();
    let timed = load::paced_with(&url(rig), posts.into_iter().map(|p| p.body).collect(), rate, false).await?;
    let measures = [
        "answer time p50 at 10× the peak (20,000/s)",
        "answer time p99 at 10× the peak (20,000/s)",
        "answer time p100 at 10× the peak (20,000/s)",
    ];
    let taken = rows(report, measures, "10× the peak", timed);
    load::until(|| rig.notifications_done(), before + taken, Duration::from_secs(300)).await?;

    // The peak while another writer holds the database's write lock 900 ms of every second.
    let slow = SlowDatabase::start(rig).await?;
    let posts = load::prepare(rig, rounds(sizes.paced, PEAK, rig.members.len()), false)?;
    let before = rig.notifications_done();
    let timed = load::paced_with(&url(rig), posts.into_iter().map(|p| p.body).collect(), PEAK, false).await;
    let held = slow.stop().await;
    let measures = [
        "answer time p50 at the peak, database slow",
        "answer time p99 at the peak, database slow",
        "answer time p100 at the peak, database slow",
    ];
    let taken = rows(report, measures, "the peak with a slow database", timed?);
    report.note(format!("f. the database's write lock was held {:.0} % of the time", 100.0 * held?));
    load::until(|| rig.notifications_done(), before + taken, Duration::from_secs(300)).await?;
    Ok(())
}

fn url(rig: &Rig) -> String {
    format!("{}/webhooks/msgraph", rig.base)
}

/// Rounds of every member's changes that last `time` at `per_second`.
fn rounds(time: Duration, per_second: u32, members: usize) -> usize {
    ((time.as_secs_f64() * f64::from(per_second)) / members.max(1) as f64).ceil().max(1.0) as usize
}

/// Reports the answer times of `timed` (p50, p99, p100 against Graph's 3 s) and what was taken;
/// returns how many were.
fn rows(report: &mut Report, measures: [&'static str; 3], said: &str, timed: Vec<Timed>) -> u64 {
    let span = timed.last().map_or(Duration::ZERO, |t| t.sent - timed[0].sent);
    let taken = timed.iter().filter(|t| t.taken).count();
    let unanswered = timed.iter().filter(|t| !t.answered).count();
    let n = timed.len();
    let mut answers: Vec<Duration> = timed.into_iter().map(|t| t.answer).collect();
    let (p50, p99, p100) =
        (percentile(&mut answers, 50.0), percentile(&mut answers, 99.0), percentile(&mut answers, 100.0));
    report.push(Row::time("f. overload", measures[0], p50, None));
    report.push(Row::time("f. overload", measures[1], p99, None));
    report.push(Row::time("f. overload", measures[2], p100, Some(ANSWER_MS)));
    report.note(format!(
        "f. {said}: {n} POSTs over {:.1} s ({:.0}/s), {taken} taken (202), {} answered 503 to come again{}",
        span.as_secs_f64(),
        n as f64 / span.as_secs_f64().max(1e-9),
        n - taken - unanswered,
        if unanswered > 0 { format!(", {unanswered} not answered (connection failed)") } else { String::new() },
    ));
    taken as u64
}

/// Another writer holding the database's write lock most of the time: SQLite's (`BEGIN
/// IMMEDIATE`), or PostgreSQL's on the tables a presence is written to (`LOCK … IN EXCLUSIVE
/// MODE`: reads go on, writes wait).
struct SlowDatabase {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<anyhow::Result<f64>>,
}

impl SlowDatabase {
    async fn start(rig: &Rig) -> anyhow::Result<SlowDatabase> {
        use sqlx::Connection;
        let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
        let mut writer = match &rig.database_url {
            Some(url) => Writer::Postgres(sqlx::PgConnection::connect(url).await?),
            None => Writer::Sqlite(
                sqlx::SqliteConnection::connect(&format!("sqlite://{}", rig.sqlite_path().display())).await?,
            ),
        };
        let task = tokio::spawn(async move {
            let (started, mut held) = (std::time::Instant::now(), Duration::ZERO);
            loop {
                writer.lock().await?;
                let locked = std::time::Instant::now();
                let done = tokio::time::timeout(Duration::from_millis(900), &mut stopped).await.is_ok();
                writer.run("COMMIT").await?;
                held += locked.elapsed();
                if done {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Ok(held.as_secs_f64() / started.elapsed().as_secs_f64())
        });
        Ok(SlowDatabase { stop, task })
    }

    /// Lets go of the lock; the share of the time it was held.
    async fn stop(self) -> anyhow::Result<f64> {
        let _ = self.stop.send(());
        self.task.await?
    }
}

/// The other writer's connection.
enum Writer {
    Sqlite(sqlx::SqliteConnection),
    Postgres(sqlx::PgConnection),
}

impl Writer {
    async fn run(&mut self, sql: &'static str) -> sqlx::Result<()> {
        match self {
            Writer::Sqlite(c) => sqlx::raw_sql(sql).execute(c).await.map(drop),
            Writer::Postgres(c) => sqlx::raw_sql(sql).execute(c).await.map(drop),
        }
    }

    /// Takes the write lock, in a transaction left open.
    async fn lock(&mut self) -> sqlx::Result<()> {
        match self {
            Writer::Sqlite(_) => self.run("BEGIN IMMEDIATE").await,
            Writer::Postgres(_) => self.run("BEGIN; LOCK TABLE connections, avatars IN EXCLUSIVE MODE").await,
        }
    }
}
