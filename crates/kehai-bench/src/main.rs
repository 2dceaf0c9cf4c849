//! kehai's benchmarks, each figure beside its baseline measured in the same run:
//!
//! ```text
//! cargo run --release -p kehai-bench            # prints the table, writes docs/benchmarks.md
//! cargo run --release -p kehai-bench -- --quick # a small run, to see that everything works
//! ```
//!
//! kehai and msemu (the emulated Microsoft) run in this process on loopback; members sign in and
//! connect Teams through the real pages; msemu prepares notifications exactly as it sends them.
//! See `docs/benchmarks.md` for what each figure measures and the latest results.

mod calendar;
mod fanout;
mod graph_cost;
mod ingest;
mod latency;
mod load;
mod office;
mod overload;
mod postgres;
mod report;
mod rig;
mod scale;

use std::{path::PathBuf, time::Duration};

use clap::Parser;

/// kehai's benchmarks.
#[derive(Debug, Parser)]
#[command(about)]
struct Args {
    /// A small, fast run (figures are not representative; nothing is written unless --out).
    #[arg(long)]
    quick: bool,
    /// Where to write the results (default: docs/benchmarks.md, except with --quick).
    #[arg(long)]
    out: Option<PathBuf>,
    /// A PostgreSQL server (e.g. postgres://postgres@127.0.0.1:5432/test): ingestion and latency
    /// are measured on a fresh database there too, besides SQLite.
    #[arg(long, env = "KEHAI_BENCH_POSTGRES_URL")]
    postgres: Option<String>,
    /// Only these sections (a, b, c, d, e, f, g; comma-separated). Default: all.
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Record `perf` profiles of kehai while it is measured, into this directory (scale:
    /// scale.perf.data and scale-postgres.perf.data; fan-out: fanout.perf.data; read them with
    /// `perf report -i`).
    #[arg(long)]
    profile: Option<PathBuf>,
    /// Serve kehai as `kehai serve` does, configured from the environment: the scale benchmark
    /// runs kehai in a process of its own, to measure it alone.
    #[arg(long, hide = true)]
    serve: bool,
    /// Serve the fan-out's baseline (a bare axum server) on KEHAI_LISTEN.
    #[arg(long, hide = true)]
    serve_fanout_baseline: bool,
}

/// How much load each figure gets.
#[derive(Debug, Clone)]
pub struct Sizes {
    pub members: usize,
    /// Changes per member in the throughput runs.
    pub rounds: usize,
    /// How long each core decrypts for the RSA baseline.
    pub rsa_time: Duration,
    /// How long the paced runs last.
    pub paced: Duration,
    /// How long the run at ten times the peak lasts.
    pub overload: Duration,
    /// The subscription life of the accelerated Graph-cost run, and how many lives it counts.
    pub simulated_life: Duration,
    pub cost_lives: u32,
    pub cost_members: usize,
    /// Connections seeded for the scale figures, how long the instance settles after its first
    /// reconciliation, and the periods renewals are counted in ("minutes").
    pub scale_connections: usize,
    /// Their subscriptions' life (production: 59 minutes).
    pub scale_life: Duration,
    pub scale_settle: Duration,
    pub scale_minute: Duration,
    pub scale_minutes: u32,
    /// The fan-out's streams: this many members with this many pages each.
    pub fanout_members: usize,
    pub fanout_pages_per_member: usize,
    /// Google Calendar: members whose calls are counted, how much faster time runs for them and
    /// for how long; members whose meetings start at once.
    pub calendar_members: usize,
    pub calendar_speed: f64,
    pub calendar_window: Duration,
    pub boundary_members: usize,
}

impl Sizes {
    fn full() -> Sizes {
        Sizes {
            members: 200,
            rounds: 50,
            rsa_time: Duration::from_secs(3),
            paced: Duration::from_secs(5),
            overload: Duration::from_secs(2),
            simulated_life: Duration::from_secs(20),
            cost_lives: 6,
            cost_members: 200,
            scale_connections: 100_000,
            scale_life: Duration::from_secs(3540),
            scale_settle: Duration::from_secs(20),
            scale_minute: Duration::from_secs(60),
            scale_minutes: 3,
            fanout_members: 100,
            fanout_pages_per_member: 100,
            calendar_members: 100,
            // Whole seconds: the five-minute poll every 3 s, the hourly safety read every 36 s.
            calendar_speed: 100.0,
            calendar_window: Duration::from_secs(180),
            boundary_members: 1000,
        }
    }

    fn quick() -> Sizes {
        Sizes {
            members: 8,
            rounds: 3,
            rsa_time: Duration::from_millis(200),
            paced: Duration::from_millis(500),
            overload: Duration::from_millis(200),
            simulated_life: Duration::from_secs(10),
            cost_lives: 1,
            cost_members: 4,
            scale_connections: 300,
            // Short, so that a few renewals fall in the quick run's two seconds.
            scale_life: Duration::from_secs(60),
            scale_settle: Duration::from_secs(1),
            scale_minute: Duration::from_secs(2),
            scale_minutes: 2,
            fanout_members: 4,
            fanout_pages_per_member: 5,
            calendar_members: 4,
            calendar_speed: 300.0,
            calendar_window: Duration::from_secs(12),
            boundary_members: 20,
        }
    }

    /// Rounds of changes of `members` that last the paced time at `per_second`.
    pub fn paced_rounds(&self, per_second: u32, members: usize) -> usize {
        let posts = self.paced.as_secs_f64() * f64::from(per_second);
        (posts / members.max(1) as f64).ceil().max(1.0) as usize
    }
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let done = if args.serve {
        serve().await
    } else if args.serve_fanout_baseline {
        fanout::serve_baseline().await
    } else {
        run(args).await
    };
    match done {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// `kehai serve`, for [`scale`].
async fn serve() -> anyhow::Result<()> {
    let config = kehai_server::Config::load(None)?;
    let filter = tracing_subscriber::EnvFilter::try_new(&config.log)?;
    // Into a file the benchmark reads: no colours.
    tracing_subscriber::fmt().with_env_filter(filter).with_ansi(false).with_writer(std::io::stderr).init();
    kehai_server::serve(config).await
}

async fn run(args: Args) -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_from_env("KEHAI_LOG").unwrap_or_else(|_| "error".into());
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
    let sizes = if args.quick { Sizes::quick() } else { Sizes::full() };
    let mut report = report::Report::default();
    println!("kehai benchmarks ({})", if args.quick { "quick" } else { "full" });

    let wanted = |section: &str| args.only.is_empty() || args.only.iter().any(|s| s == section);
    let (a, b, f) = (wanted("a"), wanted("b"), wanted("f"));
    let mut databases = vec![(None, "")];
    let postgres = match &args.postgres {
        Some(server) if a || b || f => Some(postgres::Database::create(server).await?),
        _ => None,
    };
    if let Some(db) = &postgres {
        databases.push((Some(db.url.clone()), " (PostgreSQL)"));
    }
    for (database_url, suffix) in databases.into_iter().filter(|_| a || b || f) {
        let mut plan = rig::Plan::new(sizes.members);
        plan.database_url = database_url;
        let rig = rig::Rig::start(&plan).await?;
        report.section_suffix(suffix);
        // Latency first: it measures steady traffic, not the aftermath of the ingestion's flood
        // on the same database (see docs/benchmarks.md).
        if b {
            latency::run(&rig, &sizes, &mut report).await?;
        }
        if a {
            ingest::run(&rig, &sizes, &mut report).await?;
        }
        if a && suffix.is_empty() {
            ingest::basic(&rig, &mut report).await?;
        }
        if f {
            overload::run(&rig, &sizes, &mut report).await?;
        }
        report.section_suffix("");
        rig.stop().await?;
    }
    if let Some(db) = postgres {
        db.drop().await;
    }
    if wanted("c") {
        graph_cost::run(&sizes, &mut report).await?;
    }
    if wanted("d") {
        scale::run(&sizes, None, args.profile.as_deref(), &mut report).await?;
        if let Some(server) = &args.postgres {
            report.section_suffix(" (PostgreSQL)");
            let measured = scale::run(&sizes, Some(server), args.profile.as_deref(), &mut report).await;
            report.section_suffix("");
            measured?;
        }
    }
    if wanted("e") {
        fanout::run(&sizes, args.profile.as_deref(), &mut report).await?;
    }
    if wanted("g") {
        calendar::run(&sizes, &mut report).await?;
    }

    let out = args.out.or_else(|| (!args.quick).then(|| PathBuf::from("docs/benchmarks.md")));
    if let Some(out) = out {
        write(&out, &report, &std::env::args().collect::<Vec<_>>().join(" "))?;
        println!("written to {}", out.display());
    }
    let missed = report.rows.iter().filter(|r| r.met() == Some(false)).count();
    println!("{} figures, {missed} targets missed", report.rows.len());
    Ok(())
}

/// Replaces the results part of `path` (between its markers; the whole file when it has none),
/// keeping what people wrote around it.
fn write(path: &std::path::Path, report: &report::Report, command: &str) -> anyhow::Result<()> {
    const BEGIN: &str = "<!-- results: written by kehai-bench -->";
    const END: &str = "<!-- end of results -->";
    let results = format!(
        "{BEGIN}\nRun {} on {}.\n\nCommand: `cargo run --release -p kehai-bench` (ran as `{command}`)\n\n{}\n{}\n{}{END}",
        today(),
        machine(),
        report.table(),
        "Notes from the run:\n",
        report.notes.iter().map(|n| format!("- {n}\n")).collect::<String>(),
    );
    let old = std::fs::read_to_string(path).unwrap_or_default();
    let new = match (old.find(BEGIN), old.find(END)) {
        (Some(b), Some(e)) if b < e => format!("{}{results}{}", &old[..b], &old[e + END.len()..]),
        _ => format!("# Benchmarks\n\n{results}\n"),
    };
    std::fs::write(path, new)?;
    Ok(())
}

fn today() -> String {
    time::OffsetDateTime::now_utc().date().to_string()
}

/// The CPU, its cores, the memory and the kernel, from /proc.
fn machine() -> String {
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    let cpuinfo = read("/proc/cpuinfo");
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name").and_then(|r| r.split(':').nth(1)))
        .map_or("an unknown CPU".to_owned(), |m| m.trim().to_owned());
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mem_kb: u64 = read("/proc/meminfo")
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|r| r.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);
    let kernel = read("/proc/sys/kernel/osrelease");
    format!("{model}, {cores} cores, {} GiB, Linux {}", mem_kb / (1024 * 1024), kernel.trim())
}
