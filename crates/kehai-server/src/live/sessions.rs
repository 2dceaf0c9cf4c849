//! Which event streams belong to which session, so that ending a session (logout, expiry, a
//! new login) closes its open pages at once instead of leaving a live feed behind.

use std::{collections::HashMap, sync::Mutex};

use tokio_util::sync::CancellationToken;

#[derive(Debug, Default)]
pub struct SessionStreams {
    by_session: Mutex<HashMap<String, CancellationToken>>,
}

impl SessionStreams {
    /// A token cancelled when the session with this id hash ends.
    pub fn token(&self, id_hash: &str) -> CancellationToken {
        let mut map = self.by_session.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(id_hash.to_owned()).or_default().child_token()
    }

    /// Closes every stream of the session.
    pub fn end(&self, id_hash: &str) {
        let removed = self.by_session.lock().unwrap_or_else(|p| p.into_inner()).remove(id_hash);
        if let Some(token) = removed {
            token.cancel();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ending_a_session_cancels_its_streams_only() {
        let s = SessionStreams::default();
        let (a1, a2, b) = (s.token("a"), s.token("a"), s.token("b"));
        s.end("a");
        assert!(a1.is_cancelled() && a2.is_cancelled());
        assert!(!b.is_cancelled());
        assert!(!s.token("a").is_cancelled(), "a later session with the same hash starts afresh");
    }
}
