//! The `msemu` binary: the emulator on its own port (default 127.0.0.1:8081).

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use anyhow::Context;
use clap::Parser;
use msemu::{Config, Directory, Emulator};

/// An emulator of the Microsoft identity platform and Microsoft Graph presence, for tests and demos.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// Address to listen on.
    #[arg(long, env = "MSEMU_LISTEN", default_value = "127.0.0.1:8081")]
    listen: SocketAddr,
    /// Directory TOML file (tenants, users, apps); the built-in one when absent.
    #[arg(long, env = "MSEMU_DIRECTORY", value_name = "FILE")]
    directory: Option<PathBuf>,
    /// Also serve HTTPS here, with a certificate from a CA made at start.
    #[arg(long, env = "MSEMU_TLS_LISTEN")]
    tls_listen: Option<SocketAddr>,
    /// Where to write that CA's certificate (PEM), for clients to trust.
    #[arg(long, env = "MSEMU_CA_FILE", value_name = "FILE", default_value = "msemu-ca.pem")]
    ca_file: PathBuf,
    /// Accept http:// notification URLs (local use only; Graph demands HTTPS).
    #[arg(long, env = "MSEMU_ALLOW_HTTP_NOTIFICATIONS")]
    allow_http_notifications: bool,
    /// Seconds without activity after which an Available user becomes Away.
    #[arg(long, env = "MSEMU_IDLE_SECONDS", default_value_t = 300)]
    idle_seconds: u64,
    /// Presence requests allowed per app and tenant in 30 s before 429.
    #[arg(long, env = "MSEMU_PRESENCE_LIMIT", default_value_t = 1500)]
    presence_limit: usize,
    /// Access-token lifetime in seconds.
    #[arg(long, env = "MSEMU_ACCESS_TOKEN_SECONDS", default_value_t = 3599)]
    access_token_seconds: u64,
    /// Subscriptions asked for less than this many seconds are granted this long.
    #[arg(long, env = "MSEMU_MIN_SUBSCRIPTION_SECONDS", default_value_t = 2700)]
    min_subscription_seconds: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt().with_env_filter(tracing_subscriber::EnvFilter::new("info")).init();
    let cli = Cli::parse();
    let directory = match &cli.directory {
        Some(path) => {
            let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
            Directory::parse(&text).with_context(|| format!("invalid directory {}", path.display()))?
        }
        None => Directory::default(),
    };
    let config = Config {
        listen: cli.listen,
        directory,
        access_token_lifetime: Duration::from_secs(cli.access_token_seconds),
        tls_listen: cli.tls_listen,
        allow_http_notifications: cli.allow_http_notifications,
        idle_after: Duration::from_secs(cli.idle_seconds),
        presence_requests_per_30s: cli.presence_limit,
        min_subscription_lifetime: Duration::from_secs(cli.min_subscription_seconds),
        ..Config::default()
    };
    let running = Emulator::start(config).await.with_context(|| format!("cannot listen on {}", cli.listen))?;
    println!("msemu is serving at {}", running.base_url);
    if let (Some(url), Some(pem)) = (&running.tls_base_url, &running.ca_pem) {
        std::fs::write(&cli.ca_file, pem).with_context(|| format!("cannot write {}", cli.ca_file.display()))?;
        println!("and at {url} (trust {})", cli.ca_file.display());
    }
    tokio::signal::ctrl_c().await?;
    Ok(())
}
