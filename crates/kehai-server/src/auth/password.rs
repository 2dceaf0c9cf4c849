//! Password hashing with argon2id, off the async threads (a hash takes tens of milliseconds and
//! 19 MiB). Checks at login are bounded ([`Checker`]): a flood of attempts from many networks
//! gets 429 instead of filling the blocking pool with hundreds of hashes and gigabytes.

use argon2::{
    Argon2, PasswordHash, PasswordHasher, PasswordVerifier,
    password_hash::{SaltString, rand_core::OsRng},
};
use kehai_core::NewPassword;

/// Hashes a new password into a PHC string (`$argon2id$…`).
pub async fn hash(password: &NewPassword) -> anyhow::Result<String> {
    let password = password.clone();
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default()
            .hash_password(password.expose().as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| anyhow::anyhow!("hashing failed: {e}"))
    })
    .await?
}

/// Password checks at login, at most about two per core at once.
#[derive(Debug)]
pub struct Checker {
    permits: std::sync::Arc<tokio::sync::Semaphore>,
}

/// Every permitted check is running: try again in a moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Busy;

impl Default for Checker {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get);
        Checker::new(2 * cores)
    }
}

impl Checker {
    pub fn new(at_once: usize) -> Checker {
        Checker { permits: std::sync::Arc::new(tokio::sync::Semaphore::new(at_once.max(1))) }
    }

    /// [`verify`], or [`Busy`] at once when as many checks as allowed are running. The permit
    /// goes with the hashing itself: a request dropped meanwhile (the client hung up, the
    /// request timed out) leaves it taken until the hash is done, so cancelling cannot pile up
    /// hashes on the blocking pool.
    pub async fn verify(&self, stored: Option<String>, password: String) -> Result<bool, Busy> {
        let permit = std::sync::Arc::clone(&self.permits).try_acquire_owned().map_err(|_| Busy)?;
        Ok(run_verify(stored, password, Some(permit)).await)
    }

    /// Takes every permit (tests: a server whose checks are all running).
    #[doc(hidden)]
    pub fn hold_all(&self) -> tokio::sync::SemaphorePermit<'_> {
        let all = u32::try_from(self.permits.available_permits()).unwrap_or(u32::MAX);
        self.permits.try_acquire_many(all).unwrap_or_else(|_| unreachable!("the permits were just counted"))
    }
}

/// Checks `password` against a stored hash. With no hash (unknown email) a fixed hash is checked
/// instead, so that the answer takes as long and reveals nothing about which emails exist.
pub async fn verify(stored: Option<String>, password: String) -> bool {
    run_verify(stored, password, None).await
}

/// [`verify`], holding `permit` until the hash is done.
async fn run_verify(
    stored: Option<String>,
    password: String,
    permit: Option<tokio::sync::OwnedSemaphorePermit>,
) -> bool {
    tokio::task::spawn_blocking(move || {
        let _permit = permit;
        let stored = stored.unwrap_or_else(|| DUMMY_HASH.to_owned());
        let Ok(parsed) = PasswordHash::new(&stored) else {
            return false;
        };
        Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok()
    })
    .await
    .unwrap_or(false)
}

/// argon2id (default parameters) of a random password nobody knows.
const DUMMY_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$0bY5pYQ1nq3mwnSaBBD5J5WQ0mG5QpZJ1uoUa3o5Y9I";

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hash_then_verify() {
        let p = NewPassword::parse("correct horse battery").unwrap();
        let h = hash(&p).await.unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(!h.contains("correct horse"));
        assert!(verify(Some(h.clone()), "correct horse battery".into()).await);
        assert!(!verify(Some(h), "wrong horse battery".into()).await);
        assert!(!verify(None, "correct horse battery".into()).await);
        assert!(PasswordHash::new(DUMMY_HASH).is_ok(), "the dummy hash must parse, or unknown emails answer faster");
    }

    #[tokio::test]
    async fn checks_beyond_the_bound_are_refused_at_once() {
        let checker = Checker::new(1);
        let held = checker.hold_all();
        assert_eq!(checker.verify(None, "x".into()).await, Err(Busy));
        drop(held);
        assert_eq!(checker.verify(None, "x".into()).await, Ok(false));
    }

    #[tokio::test]
    async fn a_check_given_up_on_keeps_its_place_until_its_hash_is_done() {
        let checker = std::sync::Arc::new(Checker::new(1));
        let given_up = {
            let checker = std::sync::Arc::clone(&checker);
            tokio::spawn(async move { checker.verify(None, "x".into()).await })
        };
        while checker.permits.available_permits() > 0 {
            tokio::task::yield_now().await;
        }
        // The request goes away (the client hung up): the hash it started still runs.
        given_up.abort();
        let _ = given_up.await;
        assert_eq!(checker.verify(None, "x".into()).await, Err(Busy), "its place was given back too soon");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while checker.permits.available_permits() == 0 {
            assert!(std::time::Instant::now() < deadline, "the place never came back");
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }
}
