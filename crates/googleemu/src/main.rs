//! The `googleemu` binary: the emulator on its own port (default 127.0.0.1:8082).

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use anyhow::Context;
use clap::Parser;
use googleemu::{Config, Directory, Emulator, FreeBusyVisibility};

/// An emulator of Google's OAuth 2.0 / OpenID Connect and the Google Calendar API v3, for tests
/// and demos.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// Address to listen on.
    #[arg(long, env = "GOOGLEEMU_LISTEN", default_value = "127.0.0.1:8082")]
    listen: SocketAddr,
    /// Users and OAuth clients (TOML, the format of users.toml); the built-in ones when absent.
    #[arg(long, env = "GOOGLEEMU_USERS", value_name = "FILE")]
    users: Option<PathBuf>,
    /// The issuer of id tokens and discovery (default: the base URL, e.g. http://127.0.0.1:8082).
    #[arg(long, env = "GOOGLEEMU_ISSUER")]
    issuer: Option<String>,
    /// Accept http:// watch addresses (local use only; Google demands HTTPS).
    #[arg(long, env = "GOOGLEEMU_ALLOW_HTTP_PUSH")]
    allow_http_push: bool,
    /// Access-token lifetime in seconds.
    #[arg(long, env = "GOOGLEEMU_ACCESS_TOKEN_SECONDS", default_value_t = 3599)]
    access_token_seconds: u64,
    /// What events.list shows a token whose only events scope is calendar.events.freebusy:
    /// full, stubs or forbidden.
    #[arg(long, env = "GOOGLEEMU_FREEBUSY_VISIBILITY", default_value = "stubs")]
    freebusy_visibility: FreeBusyVisibility,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt().with_env_filter(tracing_subscriber::EnvFilter::new("info")).init();
    let cli = Cli::parse();
    let directory = match &cli.users {
        Some(path) => {
            let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
            Directory::parse(&text).with_context(|| format!("invalid users file {}", path.display()))?
        }
        None => Directory::default(),
    };
    let config = Config {
        listen: cli.listen,
        issuer: cli.issuer,
        directory,
        access_token_lifetime: Duration::from_secs(cli.access_token_seconds),
        allow_http_push: cli.allow_http_push,
        freebusy_visibility: cli.freebusy_visibility,
        ..Config::default()
    };
    let running = Emulator::start(config).await.with_context(|| format!("cannot listen on {}", cli.listen))?;
    println!("googleemu is serving at {}", running.base_url);
    tokio::signal::ctrl_c().await?;
    Ok(())
}
