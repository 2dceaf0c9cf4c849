//! The `kehai` command: serve the virtual office, run the demo, migrate the database and
//! administer spaces and members. Thin by design: everything it does lives in `kehai-server`.

use std::{
    io::{BufRead, IsTerminal},
    path::PathBuf,
    process::ExitCode,
};

use anyhow::Context;
use clap::{Parser, Subcommand};
use kehai_core::Role;
use kehai_server::{
    App, Config, LogFormat, admin,
    providers::msteams::{Teams, certificates},
};

mod demo;

/// kehai (気配): a self-hostable virtual office whose avatars show what their people are doing.
#[derive(Debug, Parser)]
#[command(version, about, long_about = None)]
struct Cli {
    /// Configuration file (default: ./kehai.toml if present). KEHAI_* variables override it.
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve kehai (migrates the database first).
    Serve,
    /// Run a demo: a `demo` space with guests allowed and two members, served locally, with an
    /// emulated Microsoft (msemu) for the Teams integration and an emulated Google (googleemu)
    /// for the Google Calendar integration.
    Demo {
        /// Where the emulated Microsoft listens (its control page is /_emu/ there).
        #[arg(long, default_value = "127.0.0.1:8081", value_name = "ADDRESS")]
        msemu_listen: std::net::SocketAddr,
        /// Where the emulated Google listens (its control page is /_emu/ there).
        #[arg(long, default_value = "127.0.0.1:8082", value_name = "ADDRESS")]
        googleemu_listen: std::net::SocketAddr,
    },
    /// Apply pending database migrations and exit.
    Migrate,
    /// Manage spaces.
    #[command(subcommand)]
    Space(SpaceCommand),
    /// Manage the members of a space.
    #[command(subcommand)]
    Member(MemberCommand),
    /// Manage the master key that seals tokens at rest.
    #[command(subcommand)]
    Keys(KeysCommand),
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// Re-seal every stored secret under a new master key, in one transaction.
    ///
    /// With the key file (<data dir>/secret.key) a new key is generated and replaces it. With
    /// KEHAI_SECRET_KEY, give the new key in another variable (--new-key-env) and set
    /// KEHAI_SECRET_KEY to it afterwards. Stop kehai first (every instance): it refuses to run
    /// while one serves the database.
    Rotate {
        /// Read the new key (base64 of 32 bytes) from this environment variable.
        #[arg(long, value_name = "VAR")]
        new_key_env: Option<String>,
    },
    /// Make a new certificate for Graph to encrypt Teams presence with, and move every
    /// subscription to it.
    ///
    /// The old private keys stay until no subscription uses them and Graph has stopped retrying
    /// notifications encrypted for them (four hours); a subscription that cannot be moved now
    /// (Microsoft unreachable, a refused sign-in) is moved by the serving kehai within a minute
    /// (or when it starts). kehai may keep serving meanwhile.
    RotateCert,
}

#[derive(Debug, Subcommand)]
enum SpaceCommand {
    /// Create a space.
    Create {
        /// The space's URL name: 2–63 of a–z, 0–9 and '-' (the page is /s/<slug>).
        slug: String,
        /// The space's human name.
        #[arg(long)]
        name: String,
        /// Let people without an account join with a display name only.
        #[arg(long)]
        allow_guests: bool,
    },
    /// Set how a space takes guests: `off`, `open` (anyone at /s/<slug>/guest) or `link` (only
    /// through a secret guest link, printed once; running it again makes a new link and the
    /// old one stops working).
    ///
    /// Guests see every member's avatar and status, Teams presence included. Guests already in
    /// stay until they leave (a day at most).
    Guests {
        /// The space's slug.
        slug: String,
        /// How guests may join.
        #[arg(value_enum)]
        access: Access,
    },
}

/// `kehai space guests`' choices.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Access {
    Off,
    Open,
    Link,
}

#[derive(Debug, Subcommand)]
enum MemberCommand {
    /// Add a member to a space, creating the account if the email is new.
    ///
    /// The password of a new account is read from standard input (one line; prompted for on a
    /// terminal), or from the environment variable named by --password-env. It is never taken
    /// from the command line, where other users could see it.
    Add {
        /// The space's slug.
        space: String,
        /// The member's email (unique, case-insensitively).
        email: String,
        /// Display name in the space (default: the part of the email before '@').
        #[arg(long)]
        name: Option<String>,
        /// Make the member an admin of the space.
        #[arg(long)]
        admin: bool,
        /// Read the password from this environment variable instead of standard input.
        #[arg(long, value_name = "VAR")]
        password_env: Option<String>,
    },
    /// List the members of a space.
    List {
        /// The space's slug.
        space: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let config = Config::load(cli.config.as_deref())?;
    match cli.command {
        Command::Serve => {
            init_logging(&config)?;
            kehai_server::serve(config).await
        }
        Command::Demo { msemu_listen, googleemu_listen } => {
            demo::run(config, demo::Emulators { msemu: msemu_listen, googleemu: googleemu_listen }).await
        }
        Command::Migrate => {
            admin::open_store(&config).await?;
            println!("database is up to date");
            Ok(())
        }
        Command::Space(SpaceCommand::Create { slug, name, allow_guests }) => {
            let store = admin::open_store(&config).await?;
            let space = admin::create_space(&*store, &slug, &name, allow_guests).await?;
            println!(
                "created space {} ({}){}",
                space.slug,
                space.name.as_str(),
                if allow_guests { ", guests allowed" } else { "" }
            );
            if allow_guests {
                println!("note: guests see every member's avatar and status, Microsoft Teams presence included");
            }
            Ok(())
        }
        Command::Space(SpaceCommand::Guests { slug, access }) => {
            let store = admin::open_store(&config).await?;
            let access = match access {
                Access::Off => admin::GuestAccess::Off,
                Access::Open => admin::GuestAccess::Open,
                Access::Link => admin::GuestAccess::Link,
            };
            let link = admin::set_guests(&*store, &slug, access).await?;
            let base = config.public_url.as_str().trim_end_matches('/');
            match link {
                Some(link) => println!(
                    "guests join {slug} only through this link (any earlier link no longer works):\n{base}/s/{slug}/guest?link={}",
                    secrecy::ExposeSecret::expose_secret(&link)
                ),
                None if access == admin::GuestAccess::Off => println!("{slug} takes no guests now"),
                None => println!("guests join {slug} at {base}/s/{slug}/guest"),
            }
            if access != admin::GuestAccess::Off {
                println!("note: guests see every member's avatar and status, Microsoft Teams presence included");
            }
            Ok(())
        }
        Command::Member(MemberCommand::Add { space, email, name, admin: is_admin, password_env }) => {
            let store = admin::open_store(&config).await?;
            // Fail on a wrong space before asking for a password.
            admin::space(&*store, &space).await?;
            let password = read_password(password_env.as_deref())?;
            let role = if is_admin { Role::Admin } else { Role::Member };
            let member = admin::add_member(&*store, &space, &email, name.as_deref(), password.as_deref(), role).await?;
            println!("added {} to {} as {}", member.account.email.as_str(), space, member.role.as_str());
            Ok(())
        }
        Command::Keys(KeysCommand::Rotate { new_key_env }) => {
            let new_key = match new_key_env {
                Some(var) => {
                    let text =
                        std::env::var(&var).with_context(|| format!("the environment variable {var} is not set"))?;
                    Some(
                        kehai_store::secrets::MasterKey::from_base64(&text)
                            .with_context(|| format!("the environment variable {var} holds no valid key"))?,
                    )
                }
                None => None,
            };
            let store = admin::open_store(&config).await?;
            let rotated = kehai_server::keys::rotate(&config, &*store, new_key).await?;
            match rotated.file {
                Some(file) => println!("re-sealed {} values; the new key is in {}", rotated.values, file.display()),
                None => println!("re-sealed {} values; now set KEHAI_SECRET_KEY to the new key", rotated.values),
            }
            Ok(())
        }
        Command::Keys(KeysCommand::RotateCert) => {
            let app = App::build(config).await?;
            let teams = Teams::offered(&app.state).context(
                "Microsoft Teams is not configured: set KEHAI_MS_CLIENT_ID and KEHAI_MS_CLIENT_SECRET (see docs/configuration.md)",
            )?;
            let rotation = certificates::rotate(&app.state, &teams)
                .await
                .map_err(|e| anyhow::anyhow!("cannot rotate the encryption certificate: {e}"))?;
            println!(
                "new encryption certificate {}; {} subscription(s) moved to it",
                rotation.certificate_id, rotation.moved
            );
            if rotation.kept > 0 {
                println!(
                    "{} old certificate(s) kept until no subscription uses them and Graph's retries are over (4 hours)",
                    rotation.kept
                );
            }
            if rotation.failed > 0 {
                anyhow::bail!(
                    "{} subscription(s) could not be moved now (see the log); kehai serve keeps trying every minute",
                    rotation.failed
                );
            }
            Ok(())
        }
        Command::Member(MemberCommand::List { space }) => {
            let store = admin::open_store(&config).await?;
            for m in admin::members(&*store, &space).await? {
                println!("{}\t{}\t{}", m.account.email.as_str(), m.role.as_str(), m.display_name.as_str());
            }
            Ok(())
        }
    }
}

/// The password for `member add`: from the named variable, else standard input. `None` when
/// standard input is empty (an existing account needs none).
fn read_password(var: Option<&str>) -> anyhow::Result<Option<String>> {
    let password = if let Some(var) = var {
        std::env::var(var).with_context(|| format!("the environment variable {var} is not set"))?
    } else if std::io::stdin().is_terminal() {
        rpassword::prompt_password("Password (empty for an existing account): ")?
    } else {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line)?;
        line.trim_end_matches(['\r', '\n']).to_owned()
    };
    Ok((!password.is_empty()).then_some(password))
}

pub(crate) fn init_logging(config: &Config) -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_new(&config.log)
        .map_err(|e| anyhow::anyhow!("invalid configuration: setting `log` (KEHAI_LOG): {e}"))?;
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match config.log_format {
        LogFormat::Pretty => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
    Ok(())
}
