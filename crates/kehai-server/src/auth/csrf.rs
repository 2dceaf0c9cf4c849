//! CSRF tokens derived from a cookie the attacker's page can neither read nor set.
//!
//! token = base64url(SHA-256("kehai-csrf-v1:" ‖ cookie value)). Mutations must send it: the JSON
//! API in the `X-CSRF-Token` header, HTML forms in a `csrf` field. Comparison is constant-time.

use subtle::ConstantTimeEq;

/// The header the JSON API reads.
pub const HEADER: &str = "x-csrf-token";
/// The pre-login cookie that seeds the login and guest-join forms' token.
pub const PRE_SESSION_COOKIE: &str = "kehai_csrf";

pub fn token_for(seed: &str) -> String {
    crate::opaque::hash(&[b"kehai-csrf-v1:", seed.as_bytes()])
}

/// True when `given` is the token for `seed`.
pub fn verify(seed: &str, given: &str) -> bool {
    !seed.is_empty() && bool::from(token_for(seed).as_bytes().ct_eq(given.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_bind_to_their_seed() {
        let t = token_for("seed-a");
        assert!(verify("seed-a", &t));
        assert!(!verify("seed-b", &t));
        assert!(!verify("seed-a", ""));
        assert!(!verify("", &token_for("")));
        assert_ne!(t, "seed-a");
    }
}
