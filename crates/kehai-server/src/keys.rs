//! The master key that seals secrets at rest: `KEHAI_SECRET_KEY` (base64 of 32 bytes), or the
//! file `<data dir>/secret.key`, generated with mode 0600 on first start. Start-up refuses a key
//! file that other users can read: whoever reads it reads every stored token.

use std::path::{Path, PathBuf};

use kehai_store::secrets::{MasterKey, Place, SecretError};
use secrecy::ExposeSecret;

use crate::Config;

/// Why there is no usable master key, in words for the operator.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("invalid configuration: setting `secret_key` (KEHAI_SECRET_KEY): {0}")]
    BadSetting(SecretError),
    #[error("the key file {0} is not a valid key: {1}")]
    BadFile(PathBuf, SecretError),
    #[error("the key file {path} can be read by other users (mode {mode:o}): run `chmod 600 {path}`", path = .0.display(), mode = .1)]
    Exposed(PathBuf, u32),
    #[error("cannot use the key file {0}: {1}")]
    Io(PathBuf, std::io::Error),
    #[error(
        "a `kehai keys rotate` was interrupted: {} holds the previous key. If kehai cannot open its secrets with \
         secret.key, put that file back as secret.key; then delete it",
        .0.display()
    )]
    Interrupted(PathBuf),
    #[error("the master key does not open the secrets in the database: restore the right key file or KEHAI_SECRET_KEY")]
    WrongKey,
}

/// The key file's place.
pub fn key_file(config: &Config) -> PathBuf {
    config.data_dir.join("secret.key")
}

/// The configured master key, creating the key file if there is neither setting nor file.
pub fn load(config: &Config) -> Result<MasterKey, KeyError> {
    if let Some(text) = &config.secret_key {
        return MasterKey::from_base64(text.expose_secret()).map_err(KeyError::BadSetting);
    }
    let path = key_file(config);
    let interrupted = path.with_extension("key.old");
    if interrupted.exists() {
        return Err(KeyError::Interrupted(interrupted));
    }
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            refuse_if_exposed(&path)?;
            MasterKey::from_base64(&text).map_err(|e| KeyError::BadFile(path.clone(), e))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => create(&path),
        Err(e) => Err(KeyError::Io(path, e)),
    }
}

fn refuse_if_exposed(path: &Path) -> Result<(), KeyError> {
    match kehai_store::files::mode_if_shared(path).map_err(|e| KeyError::Io(path.to_owned(), e))? {
        Some(mode) => Err(KeyError::Exposed(path.to_owned(), mode)),
        None => Ok(()),
    }
}

/// Writes a new key, readable by the owner only from the first byte (no window where others
/// could read it).
fn create(path: &Path) -> Result<MasterKey, KeyError> {
    let io = |e| KeyError::Io(path.to_owned(), e);
    if let Some(dir) = path.parent() {
        kehai_store::files::create_private_dir(dir).map_err(io)?;
    }
    let key = MasterKey::generate().map_err(|e| KeyError::BadFile(path.to_owned(), e))?;
    write_private(path, &key)?;
    tracing::info!(path = %path.display(), "created the master key file");
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(dir: &Path) -> Config {
        Config { data_dir: dir.to_owned(), ..Config::default() }
    }

    #[test]
    fn the_key_file_is_made_private_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let first = load(&config(dir.path())).unwrap();
        let again = load(&config(dir.path())).unwrap();
        assert_eq!(first.to_base64().expose_secret(), again.to_base64().expose_secret());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(key_file(&config(dir.path()))).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
    }

    #[cfg(unix)]
    #[test]
    fn a_key_file_others_can_read_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        load(&config(dir.path())).unwrap();
        let path = key_file(&config(dir.path()));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = load(&config(dir.path())).unwrap_err().to_string();
        assert!(err.contains("chmod 600") && err.contains("644"), "{err}");
    }

    #[test]
    fn the_setting_wins_and_is_checked() {
        let dir = tempfile::tempdir().unwrap();
        let key = MasterKey::generate().unwrap();
        let mut c = config(dir.path());
        c.secret_key = Some(key.to_base64());
        assert_eq!(load(&c).unwrap().to_base64().expose_secret(), key.to_base64().expose_secret());
        assert!(!key_file(&c).exists(), "no file when the setting is given");
        c.secret_key = Some("too short".to_owned().into());
        assert!(load(&c).unwrap_err().to_string().contains("KEHAI_SECRET_KEY"));
    }
}

/// What `kehai keys rotate` did.
#[derive(Debug)]
pub struct Rotated {
    /// How many sealed values were re-sealed.
    pub values: usize,
    /// Where the new key now is: the key file, or `None` when it came from a variable.
    pub file: Option<PathBuf>,
}

/// Re-seals every stored secret under a new master key, in one transaction, while no kehai
/// serves the database ([`crate::instance::exclusive`]). With a key file,
/// the new key replaces it just before the transaction commits (written beside it first, then
/// renamed over it; put back if the commit fails). With `KEHAI_SECRET_KEY`, the new key is
/// `new_key` (from the variable the operator named); they set KEHAI_SECRET_KEY to it afterwards.
pub async fn rotate(
    config: &Config,
    store: &dyn kehai_store::Store,
    new_key: Option<MasterKey>,
) -> anyhow::Result<Rotated> {
    let now = crate::clock::Clock::now(&crate::clock::SystemClock);
    let alone = crate::instance::exclusive(config, store, "keys rotate", now).await?;
    let rotated = rotate_alone(config, store, new_key).await;
    alone.release(store).await;
    rotated
}

/// [`rotate`], once no kehai serves.
async fn rotate_alone(
    config: &Config,
    store: &dyn kehai_store::Store,
    new_key: Option<MasterKey>,
) -> anyhow::Result<Rotated> {
    use kehai_store::secrets::SecretBox;
    let old = load(config)?;
    let (new, file) = match (&config.secret_key, new_key) {
        (Some(_), Some(key)) => (key, None),
        (Some(_), None) => anyhow::bail!(
            "the master key comes from KEHAI_SECRET_KEY: give the new one with --new-key-env VAR (e.g. from `openssl rand -base64 32`)"
        ),
        (None, Some(key)) => (key, Some(key_file(config))),
        (None, None) => (MasterKey::generate()?, Some(key_file(config))),
    };
    let (old_box, new_box) = (SecretBox::new(&old), SecretBox::new(&new));
    let rekey = |place: Place<'_>, sealed: &str| new_box.seal(&old_box.open(sealed, place)?, place);
    let staged = file.as_ref().map(|f| f.with_extension("key.new"));
    if let Some(staged) = &staged {
        write_private(staged, &new)?;
    }
    // The old key stays beside the new one until the commit: a crash in between leaves both.
    let backup = file.as_ref().map(|f| f.with_extension("key.old"));
    let put_in_place = || match (&staged, &file, &backup) {
        (Some(staged), Some(file), Some(backup)) => {
            std::fs::copy(file, backup).map_err(|e| format!("cannot keep the old key in {}: {e}", backup.display()))?;
            std::fs::rename(staged, file).map_err(|e| format!("cannot replace {}: {e}", file.display()))
        }
        _ => Ok(()),
    };
    match store.reseal(&rekey, &put_in_place).await {
        Ok(values) => {
            if let Some(backup) = &backup {
                let _ = std::fs::remove_file(backup);
            }
            Ok(Rotated { values, file })
        }
        Err(e) => {
            // The transaction rolled back: the old key must be the one in place.
            if let Some(file) = &file
                && std::fs::read_to_string(file).ok().as_deref() != Some(old.to_base64().expose_secret())
            {
                let _ = std::fs::remove_file(file);
                write_private(file, &old)?;
            }
            for leftover in staged.iter().chain(backup.iter()) {
                let _ = std::fs::remove_file(leftover);
            }
            Err(e.into())
        }
    }
}

/// Writes a key file readable by its owner only.
fn write_private(path: &Path, key: &MasterKey) -> Result<(), KeyError> {
    use std::io::Write;
    let io = |e| KeyError::Io(path.to_owned(), e);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).map_err(io)?;
    file.write_all(key.to_base64().expose_secret().as_bytes()).map_err(io)?;
    file.sync_all().map_err(io)
}

/// Refuses a master key that does not open what the database holds (a lost key file replaced by
/// a new one, the wrong KEHAI_SECRET_KEY): better to stop than to lose every connection quietly.
pub async fn check_opens(state: &crate::AppState) -> Result<(), anyhow::Error> {
    if let Some(cert) = state.store.current_certificate().await?
        && state.secrets.open(&cert.private_key.0, Place::CertificateKey(&cert.id)).is_err()
    {
        return Err(KeyError::WrongKey.into());
    }
    Ok(())
}
