//! `kehai demo`: a ready-to-try office on this machine.
//!
//! Creates (if absent) the space `demo` that allows guests, with members alice@example.com and
//! bob@example.com, starts msemu (the emulated Microsoft) and googleemu (the emulated Google) in
//! the same process and points the Teams and Google Calendar integrations at them — unless
//! KEHAI_MS_* or KEHAI_GOOGLE_* name a real app registration or OAuth client — then serves and
//! prints where to go. The data lives in `./demo-data` unless KEHAI_DATA_DIR (or the config
//! file) says otherwise, so a second start reuses it.

use std::path::PathBuf;

use kehai_core::Role;
use kehai_server::{Config, admin, admin::AdminError};

/// The demo members' password, printed at start (demo data only).
pub const DEMO_PASSWORD: &str = "kehai-demo-password";
const MEMBERS: &[(&str, &str)] = &[("alice@example.com", "Alice"), ("bob@example.com", "Bob")];

/// Where the emulators listen.
#[derive(Debug, Clone, Copy)]
pub struct Emulators {
    pub msemu: std::net::SocketAddr,
    pub googleemu: std::net::SocketAddr,
}

pub async fn run(mut config: Config, listen: Emulators) -> anyhow::Result<()> {
    if config.data_dir == Config::default().data_dir && std::env::var_os("KEHAI_DATA_DIR").is_none() {
        config.data_dir = PathBuf::from("./demo-data");
    }
    crate::init_logging(&config)?;
    let store = admin::open_store(&config).await?;
    match admin::create_space(&*store, "demo", "Demo office", true).await {
        Ok(_) | Err(AdminError::SpaceExists(_)) => {}
        Err(e) => return Err(e.into()),
    }
    for (email, name) in MEMBERS {
        match admin::add_member(&*store, "demo", email, Some(name), Some(DEMO_PASSWORD), Role::Member).await {
            Ok(_) | Err(AdminError::AlreadyMember(..)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    drop(store);
    let base = config.public_url.as_str().trim_end_matches('/').to_owned();
    let emulator =
        if config.microsoft().is_none() { Some(start_msemu(&mut config, listen.msemu, &base).await?) } else { None };
    let google = if config.google().is_none() {
        Some(start_googleemu(&mut config, listen.googleemu, &base).await?)
    } else {
        None
    };
    // Both addresses are taken before anything is printed: a banner for a demo that then fails
    // to start would send people to the wrong place.
    let bound = kehai_server::bind(config).await?;
    let config = &bound.app.state.config;
    println!();
    println!("  kehai demo is running (data in {})", config.data_dir.display());
    println!();
    println!("  Space:    {base}/s/demo");
    println!("  Members:  alice@example.com / {DEMO_PASSWORD}");
    println!("            bob@example.com   / {DEMO_PASSWORD}");
    println!("  Guests:   {base}/s/demo/guest");
    if let Some(emu) = &emulator {
        let control = format!("{}/_emu/", emu.base_url.as_str().trim_end_matches('/'));
        println!("  Teams:    {control}  (the emulated Microsoft: set Alice's Teams status here)");
        println!("            Microsoft sign-in: alice@example.com / alice-password (Bob: bob-password)");
    }
    if let Some(emu) = &google {
        let control = format!("{}/_emu/", emu.base_url.as_str().trim_end_matches('/'));
        println!("  Google:   {control}  (the emulated Google: add a meeting to Alice's calendar here)");
        println!("            Google sign-in: alice@example.com / alice-password (Workspace example.com);");
        println!("            carol@gmail.com / carol-password is a personal account, which kehai refuses");
    }
    println!();
    println!("  Try: log in as Alice → click her avatar → pencil → Status → Connect, then set her Teams status");
    println!("       or add a meeting to her Google calendar.");
    println!("  Stop with Ctrl-C.");
    println!();
    kehai_server::serve_bound(bound).await
}

/// Starts the emulated Microsoft, with the demo's app registration accepting this server's
/// callback, and points the Teams settings at it.
async fn start_msemu(config: &mut Config, listen: std::net::SocketAddr, base: &str) -> anyhow::Result<msemu::Running> {
    let mut directory = msemu::Directory::default();
    let app = directory.apps.first_mut().ok_or_else(|| anyhow::anyhow!("msemu's directory has no app"))?;
    app.redirect_uris = vec![format!("{base}/integrations/msteams/callback")];
    let (client_id, secret) = (app.client_id.to_string(), app.client_secret.clone());
    let emu = msemu::Emulator::start(msemu::Config {
        listen,
        directory,
        allow_http_notifications: true,
        ..msemu::Config::default()
    })
    .await
    .map_err(|e| {
        anyhow::anyhow!(
            "cannot start the emulated Microsoft on {listen} ({e}); choose another address with --msemu-listen"
        )
    })?;
    config.ms_client_id = Some(client_id);
    config.ms_client_secret = Some(secret.into());
    config.ms_login_url = emu.base_url.clone();
    config.ms_graph_url = emu.base_url.clone();
    Ok(emu)
}

/// Starts the emulated Google, with the demo's OAuth client accepting this server's callback and
/// pushing to it over http, and points the Google Calendar settings at it.
async fn start_googleemu(
    config: &mut Config,
    listen: std::net::SocketAddr,
    base: &str,
) -> anyhow::Result<googleemu::Running> {
    let mut directory = googleemu::Directory::default();
    let client = directory.clients.first_mut().ok_or_else(|| anyhow::anyhow!("googleemu has no OAuth client"))?;
    client.redirect_uris = vec![format!("{base}/integrations/gcal/callback")];
    let (client_id, secret) = (client.client_id.clone(), client.client_secret.clone());
    let emu = googleemu::Emulator::start(googleemu::Config {
        listen,
        directory,
        allow_http_push: true,
        ..googleemu::Config::default()
    })
    .await
    .map_err(|e| {
        anyhow::anyhow!(
            "cannot start the emulated Google on {listen} ({e}); choose another address with --googleemu-listen"
        )
    })?;
    config.google_client_id = Some(client_id);
    config.google_client_secret = Some(secret.into());
    config.google_issuer = emu.issuer().parse()?;
    config.google_calendar_url = emu.url("/calendar/v3").parse()?;
    // The demo's address is http, where real Google would not push; the emulator does.
    config.google_push = kehai_server::config::GooglePush::On;
    Ok(emu)
}
