//! `kehai demo`: a ready-to-try office on this machine.
//!
//! Creates (if absent) the space `demo` that allows guests, with members alice@example.com and
//! bob@example.com, then serves and prints where to go. The data lives in `./demo-data` unless
//! KEHAI_DATA_DIR (or the config file) says otherwise, so a second start reuses it.

use std::path::PathBuf;

use kehai_core::Role;
use kehai_server::{Config, admin, admin::AdminError};

/// The demo members' password, printed at start (demo data only).
pub const DEMO_PASSWORD: &str = "kehai-demo-password";
const MEMBERS: &[(&str, &str)] = &[("alice@example.com", "Alice"), ("bob@example.com", "Bob")];

pub async fn run(mut config: Config) -> anyhow::Result<()> {
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
    println!();
    println!("  kehai demo is starting (data in {})", config.data_dir.display());
    println!();
    println!("  Space:    {base}/s/demo");
    println!("  Members:  alice@example.com / {DEMO_PASSWORD}");
    println!("            bob@example.com   / {DEMO_PASSWORD}");
    println!("  Guests:   {base}/s/demo/guest");
    println!();
    println!("  Try: log in as Alice in one browser and join as a guest in another (or a private");
    println!("  window); click your avatar, then the pencil, and pick an emoji — the other window");
    println!("  follows live. Stop with Ctrl-C.");
    println!();
    crate::serve(config).await
}
