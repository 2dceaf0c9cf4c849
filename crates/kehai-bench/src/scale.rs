//! d. Scale: one kehai instance in its own process with 100,000 Teams connections, in steady
//! state — resident memory, idle CPU, how evenly the renewals fall per minute, and the time
//! from start to ready.
//!
//! The office is seeded ([`crate::office`]) with subscriptions at evenly spread points of their
//! renewal cycles, as steady state leaves them. `kehai serve` then starts on it, reads every
//! presence again once (the start-up reconciliation) and is watched through `/proc` while it
//! renews what falls due — each renewal refreshing its access token first, as in production.
//! An empty office served the same way is the memory baseline.

use std::time::{Duration, Instant};

use kehai_server::presence::renewal;

use crate::{
    Sizes,
    office::{Office, Plan},
    postgres::Database,
    report::{Report, Row},
};

const SECTION: &str = "d. scale";

/// On SQLite, or on a fresh database of the PostgreSQL server at `postgres`. With `profile`,
/// kehai is profiled with `perf record` during the steady-state window.
pub async fn run(
    sizes: &Sizes,
    postgres: Option<&str>,
    profile: Option<&std::path::Path>,
    report: &mut Report,
) -> anyhow::Result<()> {
    let empty = Database::fresh(postgres).await?;
    let measured = empty_rss(sizes, Database::url(&empty)).await;
    Database::drop_fresh(empty).await;
    let empty = measured?;
    let database = Database::fresh(postgres).await?;
    let profile =
        profile.map(|dir| dir.join(if postgres.is_some() { "scale-postgres.perf.data" } else { "scale.perf.data" }));
    let measured = measure(sizes, Database::url(&database), empty, profile.as_deref(), report).await;
    Database::drop_fresh(database).await;
    measured
}

async fn measure(
    sizes: &Sizes,
    database_url: Option<String>,
    empty: u64,
    profile: Option<&std::path::Path>,
    report: &mut Report,
) -> anyhow::Result<()> {
    let n = sizes.scale_connections;
    let plan = Plan { members: n, database_url, sessions_per_member: 0, life_ms: life_ms(sizes) };
    let seeding = Instant::now();
    let office = Office::seed(&plan).await?;
    let seeded = seeding.elapsed();
    let (mut kehai, ready) = office.serve().await?;
    let started = Instant::now() - ready;
    // The start-up reconciliation reads every presence, 650 at a time.
    let batches = n.div_ceil(650) as u64;
    while presence_reads(&office) < batches {
        kehai.check_alive()?;
        anyhow::ensure!(started.elapsed() < Duration::from_secs(1200), "the first reconciliation did not finish");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let reconciled = started.elapsed();
    // What the start-up took, mostly that reconciliation: another one runs every five minutes.
    let reconciling = kehai.cpu();
    // Let the last presences be looked at before counting idle time.
    tokio::time::sleep(sizes.scale_settle).await;
    let peak_at_start = kehai.status("VmHWM:");

    let window = sizes.scale_minute * sizes.scale_minutes;
    let from = msemu::world::now();
    let profiling = match profile {
        Some(to) => Some(kehai.profile(to).await?),
        None => None,
    };
    let cpu_before = kehai.cpu();
    let watching = Instant::now();
    let mut rss_max = 0u64;
    while watching.elapsed() < window {
        kehai.check_alive()?;
        rss_max = rss_max.max(kehai.status("VmRSS:"));
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let cpu = (kehai.cpu() - cpu_before).as_secs_f64() / watching.elapsed().as_secs_f64();
    if let Some(p) = profiling {
        p.finish()?;
    }
    let per_minute = renewals_per_period(&office, from, sizes.scale_minute, sizes.scale_minutes);
    let log = kehai.log();
    let warnings: Vec<&str> = log.lines().filter(|l| l.contains("WARN") || l.contains("ERROR")).collect();
    kehai.stop();

    let mib = |kb: u64| kb as f64 / 1024.0;
    report.push(Row::time(SECTION, "start to ready (/readyz)", ready, None));
    report.push(Row::time(SECTION, "start to every presence read again", reconciled, None));
    report.push(Row::amount(SECTION, "resident memory, steady state (max)", mib(rss_max), "MiB", Some(300.0)));
    report.push(Row::amount(SECTION, "resident memory, peak since start", mib(peak_at_start), "MiB", None));
    report.push(Row::amount(SECTION, "resident memory of an empty office (baseline)", mib(empty), "MiB", None));
    // One reconciliation per period (five minutes by default), at what the start-up one cost.
    let reconcile_share = reconciling.as_secs_f64() / kehai_server::Config::default().reconcile_seconds() as f64;
    report.push(Row::amount(SECTION, "CPU in steady state: renewals etc. (one core = 100 %)", cpu * 100.0, "%", None));
    report.push(Row::amount(SECTION, "+ reconciliation share (every 5 min)", reconcile_share * 100.0, "%", None));
    report.push(Row::amount(SECTION, "idle CPU (one core = 100 %)", (cpu + reconcile_share) * 100.0, "%", Some(5.0)));
    let mean = per_minute.iter().sum::<u64>() as f64 / per_minute.len().max(1) as f64;
    let busiest = per_minute.iter().copied().max().unwrap_or(0) as f64;
    if mean > 0.0 {
        report.push(Row::value(SECTION, "renewals: busiest minute / mean", busiest / mean, Some(2.0)));
    }
    let per_connection = (rss_max.saturating_sub(empty) * 1024) as f64 / n as f64;
    report.note(format!(
        "d. {n} connections seeded in {:.0} s; renewals per {} s: {per_minute:?} (steady state: {:.0} per minute); \
         {} warnings logged{}; memory per connection above the empty office: {per_connection:.0} bytes{}",
        seeded.as_secs_f64(),
        sizes.scale_minute.as_secs(),
        // Renewed every life_of - lead, on average the life less a 24th and the lead.
        n as f64 * 60_000.0 / (plan.life_ms as f64 * 23.0 / 24.0 - renewal::lead(plan.life_ms) as f64),
        warnings.len(),
        warnings.first().map(|w| format!(" (the first: {})", w.trim())).unwrap_or_default(),
        match plan.database_url {
            None => format!("; database {:.0} bytes per connection", office.sqlite_bytes() as f64 / n as f64),
            Some(_) => String::new(),
        }
    ));
    Ok(())
}

fn life_ms(sizes: &Sizes) -> i64 {
    i64::try_from(sizes.scale_life.as_millis()).unwrap_or(i64::MAX)
}

/// Resident memory (KiB) of kehai serving an office with no one in it, once ready.
async fn empty_rss(sizes: &Sizes, database_url: Option<String>) -> anyhow::Result<u64> {
    let plan = Plan { members: 0, database_url, sessions_per_member: 0, life_ms: life_ms(sizes) };
    let office = Office::seed(&plan).await?;
    let (kehai, _) = office.serve().await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss = kehai.status("VmRSS:");
    kehai.stop();
    Ok(rss)
}
/// Batch presence reads msemu has answered.
fn presence_reads(office: &Office) -> u64 {
    office
        .emu
        .emulator
        .world
        .lock()
        .requests
        .iter()
        .filter(|(k, _)| k.contains("getPresencesByUserId"))
        .map(|(_, n)| *n)
        .sum()
}

/// Renewals msemu received in each of `periods` periods of `period` from `from` (seconds).
fn renewals_per_period(office: &Office, from: i64, period: Duration, periods: u32) -> Vec<u64> {
    let period = i64::try_from(period.as_secs()).unwrap_or(60).max(1);
    let mut counts = vec![0u64; periods as usize];
    for s in office.emu.emulator.world.lock().subscriptions.values() {
        for at in &s.renewals {
            if let Ok(k) = usize::try_from((at - from) / period)
                && *at >= from
                && let Some(c) = counts.get_mut(k)
            {
                *c += 1;
            }
        }
    }
    counts
}
