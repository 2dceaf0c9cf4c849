//! This instance among others.
//!
//! Its data directory is its user's alone: created `0700`, and a wider existing one is warned
//! about at start ([`prepare_data_dir`]).
//!
//! One serving instance per SQLite database: a SQLite file has one writer and no way to share
//! claims or events between processes, so a second `kehai serve` (or `kehai demo`) on the same
//! file is refused at start with a clear message ([`claim`]). Administration commands (`kehai
//! member add`, `kehai keys rotate-cert`, …) are not instances and may run beside the server.
//!
//! Several instances share a PostgreSQL database. Each keeps a heartbeat claim there
//! ([`spawn_heartbeat`]); when one lapses (the instance was killed, or cut off), exactly one
//! other instance takes over: it tells every instance that whoever was here only through the
//! dead one has left, and reads every presence again, since the notifications the dead instance
//! had accepted and not yet shown died with it.

use std::{fs::File, path::PathBuf, time::Duration};

use kehai_store::{Claim, Database};
use tokio_util::sync::CancellationToken;

use crate::{config::Config, state::AppState};

/// A heartbeat lasts at most 30 seconds (less with short subscriptions: a twelfth of their life,
/// like every claim), and is renewed three times per life.
const HEARTBEAT_MAX_MS: i64 = 30_000;
const BEATS_PER_LIFE: u32 = 3;
/// Heartbeat claims are named `instance/<id>`.
const HEARTBEAT_PREFIX: &str = "instance/";

/// Keeps this instance's heartbeat claim until `stop` (then lets go of it: a clean stop has
/// drained its queue), and takes over from instances whose heartbeat lapsed. The task ends once
/// it has let go: a clean stop waits for it, so that commands which need every instance stopped
/// (`kehai keys rotate`) may run at once.
pub fn spawn_heartbeat(state: AppState, stop: CancellationToken) -> tokio::task::JoinHandle<()> {
    let life = state
        .presence
        .shortest_subscription_ms()
        .map_or(HEARTBEAT_MAX_MS, crate::presence::renewal::claim_ms)
        .min(HEARTBEAT_MAX_MS);
    let every = Duration::from_millis(u64::try_from(life).unwrap_or(1)) / BEATS_PER_LIFE;
    let name = format!("{HEARTBEAT_PREFIX}{}", state.instance);
    tokio::spawn(async move {
        loop {
            let now = state.clock.now();
            if let Err(e) = state.store.claim(&name, Claim { holder: &state.instance, now, until: now + life }).await {
                tracing::warn!(error = %e, "cannot renew this instance's heartbeat");
            }
            match state.store.take_lapsed(HEARTBEAT_PREFIX, now).await {
                Ok(dead) if !dead.is_empty() => take_over(&state, &dead),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "cannot look for instances that died"),
            }
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tokio::time::sleep(every) => {}
            }
        }
        if let Err(e) = state.store.release(&name, &state.instance).await {
            tracing::warn!(error = %e, "could not let go of this instance's heartbeat");
        }
    })
}

/// Takes over from instances whose heartbeat this instance took (`instance/<id>` names).
fn take_over(state: &AppState, dead: &[String]) {
    tracing::warn!(instances = ?dead, "other instances stopped without a goodbye: taking over");
    for name in dead {
        state.live.instance_gone(name.trim_start_matches(HEARTBEAT_PREFIX));
    }
    // Beside the heartbeat, which must go on meanwhile.
    let state = state.clone();
    tokio::spawn(async move {
        crate::presence::reconcile::all(&state).await;
    });
}

/// Creates the data directory readable by kehai's user only; an existing one that others may
/// read is warned about (and its mode returned): it holds the database and the master key. On
/// PostgreSQL with the key in `KEHAI_SECRET_KEY` nothing is kept there, and nothing is made.
pub fn prepare_data_dir(config: &Config) -> anyhow::Result<Option<u32>> {
    let dir = &config.data_dir;
    if config.database_url.is_some() && config.secret_key.is_some() {
        return Ok(None);
    }
    let cannot = |e| anyhow::anyhow!("cannot create the data directory {}: {e}", dir.display());
    if !dir.exists() {
        kehai_store::files::create_private_dir(dir).map_err(cannot)?;
        return Ok(None);
    }
    let shared = kehai_store::files::mode_if_shared(dir).map_err(cannot)?;
    if let Some(mode) = shared {
        tracing::warn!(
            dir = %dir.display(),
            mode = format!("{mode:o}"),
            "other users can open the data directory (it holds the database and the master key): run `chmod 700` on it"
        );
    }
    Ok(shared)
}

/// Held by a command that must not run while kehai serves (`kehai keys rotate`), until
/// [`Alone::release`]d: on SQLite the instance lock, on PostgreSQL the `job/exclusive` claim,
/// which a starting instance looks for ([`arrive`]).
#[derive(Debug)]
pub struct Alone {
    _lock: Option<InstanceLock>,
    claim: Option<String>,
}

impl Alone {
    /// Lets starting instances in again.
    pub async fn release(self, store: &dyn kehai_store::Store) {
        if let Some(holder) = &self.claim
            && let Err(e) = store.release(EXCLUSIVE, holder).await
        {
            tracing::warn!(error = %e, "could not let go of the exclusive claim: it lapses by itself");
        }
    }
}

/// The claim a command needing every instance stopped holds (PostgreSQL).
const EXCLUSIVE: &str = "job/exclusive";
/// How long it holds it at most, should the command die without letting go.
const EXCLUSIVE_MS: i64 = 15 * 60 * 1000;

/// For a command that must not run while kehai serves (`kehai keys rotate`: a serving instance
/// would go on sealing refreshed tokens under the old key). SQLite: this process takes the
/// database as an instance would. PostgreSQL: it claims `job/exclusive` first, then looks for
/// live heartbeats — refused while any instance's is (a clean stop lets go of it at once, a
/// killed instance's lapses within 30 seconds). A starting instance writes its heartbeat first,
/// then looks for the claim ([`arrive`]): of the two, one always sees the other.
pub async fn exclusive(
    config: &Config,
    store: &dyn kehai_store::Store,
    command: &str,
    now: kehai_core::Millis,
) -> anyhow::Result<Alone> {
    let stop_first = |serving: String| {
        anyhow::anyhow!("`kehai {command}` needs kehai stopped: {serving}. Stop it, then run `kehai {command}` again.")
    };
    match take(config)? {
        Taken::Held(lock) => return Ok(Alone { _lock: Some(lock), claim: None }),
        Taken::Shared => {}
        Taken::Busy { db, .. } => return Err(stop_first(format!("a kehai is serving {}", db.display()))),
    }
    let holder = format!("command/{}", uuid::Uuid::new_v4().simple());
    if !store.claim(EXCLUSIVE, Claim { holder: &holder, now, until: now + EXCLUSIVE_MS }).await? {
        anyhow::bail!("another command that needs kehai stopped is running on this database: wait for it to finish");
    }
    let alone = Alone { _lock: None, claim: Some(holder) };
    let serving = store.held(HEARTBEAT_PREFIX, now).await?;
    if serving.is_empty() {
        return Ok(alone);
    }
    alone.release(store).await;
    Err(stop_first(format!(
        "{} instance(s) are serving this PostgreSQL database (their heartbeats are live)",
        serving.len()
    )))
}

/// Before an instance serves (PostgreSQL): writes its heartbeat, then makes sure no command that
/// needs every instance stopped is running ([`exclusive`]).
pub async fn arrive(state: &AppState) -> anyhow::Result<()> {
    if !matches!(state.config.database(), Some(Database::Postgres(_))) {
        return Ok(());
    }
    let (name, now) = (format!("{HEARTBEAT_PREFIX}{}", state.instance), state.clock.now());
    state.store.claim(&name, Claim { holder: &state.instance, now, until: now + HEARTBEAT_MAX_MS }).await?;
    if state.store.held(EXCLUSIVE, now).await?.is_empty() {
        return Ok(());
    }
    let _ = state.store.release(&name, &state.instance).await;
    anyhow::bail!(
        "a command that needs kehai stopped (`kehai keys rotate`) is running on this database: start kehai when it has finished"
    )
}

/// Held while this process serves a SQLite database: an exclusive lock on `<db>.lock`, released
/// when dropped (or when the process dies, however it dies).
#[derive(Debug)]
pub struct InstanceLock {
    _file: File,
}

/// Claims the database for this instance; `None` on PostgreSQL, where instances share it.
pub fn claim(config: &Config) -> anyhow::Result<Option<InstanceLock>> {
    match take(config)? {
        Taken::Held(lock) => Ok(Some(lock)),
        Taken::Shared => Ok(None),
        Taken::Busy { db, lock } => Err(anyhow::anyhow!(
            "another kehai is already serving {} (it holds {}): SQLite allows one instance. \
             Stop the other one, or run several instances on PostgreSQL (KEHAI_DATABASE_URL).",
            db.display(),
            lock.display()
        )),
    }
}

/// What taking the SQLite database's lock file came to.
enum Taken {
    Held(InstanceLock),
    /// PostgreSQL: nothing to take.
    Shared,
    /// Another process holds `lock`.
    Busy {
        db: PathBuf,
        lock: PathBuf,
    },
}

fn take(config: &Config) -> anyhow::Result<Taken> {
    let Some(Database::Sqlite(db)) = config.database() else { return Ok(Taken::Shared) };
    let path = PathBuf::from(format!("{}.lock", db.display()));
    if let Some(dir) = path.parent() {
        kehai_store::files::create_private_dir(dir)
            .map_err(|e| anyhow::anyhow!("cannot create the data directory {}: {e}", dir.display()))?;
    }
    kehai_store::files::create_private_file(&path)
        .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", path.display()))?;
    let file =
        File::options().write(true).open(&path).map_err(|e| anyhow::anyhow!("cannot open {}: {e}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(Taken::Held(InstanceLock { _file: file })),
        Err(std::fs::TryLockError::WouldBlock) => Ok(Taken::Busy { db, lock: path }),
        Err(std::fs::TryLockError::Error(e)) => Err(anyhow::anyhow!("cannot lock {}: {e}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[test]
    fn the_data_directory_is_made_private_and_a_shared_one_is_told() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let config = Config { data_dir: dir.path().join("data"), ..Config::default() };
        assert_eq!(prepare_data_dir(&config).ok(), Some(None));
        let mode = |p: &std::path::Path| std::fs::metadata(p).map(|m| m.permissions().mode() & 0o777).ok();
        assert_eq!(mode(&config.data_dir), Some(0o700));
        let lock = claim(&config).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(mode(&config.data_dir.join("kehai.db.lock")), Some(0o600), "the lock file");
        drop(lock);
        std::fs::set_permissions(&config.data_dir, std::fs::Permissions::from_mode(0o755))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(prepare_data_dir(&config).ok(), Some(Some(0o755)), "warned about, left as it is");
    }

    #[test]
    fn a_second_instance_on_one_sqlite_file_is_refused_until_the_first_is_gone() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let config = Config { data_dir: dir.path().to_owned(), ..Config::default() };
        let first = claim(&config).unwrap_or_else(|e| panic!("{e}"));
        assert!(first.is_some());
        let refused = claim(&config).unwrap_err().to_string();
        assert!(
            refused.contains("another kehai is already serving") && refused.contains("KEHAI_DATABASE_URL"),
            "{refused}"
        );
        drop(first);
        assert!(claim(&config).unwrap_or_else(|e| panic!("{e}")).is_some(), "free again");
        let postgres =
            Config { database_url: Some("postgres://x@127.0.0.1/db".to_owned().into()), ..Config::default() };
        assert!(claim(&postgres).unwrap_or_else(|e| panic!("{e}")).is_none(), "PostgreSQL is shared");
    }
}
