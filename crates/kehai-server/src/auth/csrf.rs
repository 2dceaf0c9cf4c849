//! CSRF tokens derived from a cookie the attacker's page can neither read nor set.
//!
//! Under a session: token = base64url(SHA-256("kehai-csrf-v1:" ‖ session cookie)). Mutations must
//! send it: the JSON API in the `X-CSRF-Token` header, HTML forms in a `csrf` field. Comparison
//! is constant-time.
//!
//! Before login (the login and guest-join forms) the token is bound to the `kehai_csrf` cookie
//! and to the client's network with kehai's own signature and its time:
//! `<issued>.<HMAC(seed, network, issued)>`, good for [`PRE_SESSION_TTL_SECS`]. A plain double
//! submit would let whoever can plant that cookie (a sibling subdomain, a network attacker on
//! http) choose a seed and compute its token; signed, only kehai makes tokens, a pair the
//! attacker had issued to themselves works from their own network only, and it lapses.

use kehai_store::secrets::Signer;
use subtle::ConstantTimeEq;

/// The header the JSON API reads.
pub const HEADER: &str = "x-csrf-token";
/// The pre-login cookie that seeds the login and guest-join forms' token.
pub const PRE_SESSION_COOKIE: &str = "kehai_csrf";

pub fn token_for(seed: &str) -> String {
    crate::opaque::hash(&[b"kehai-csrf-v1:", seed.as_bytes()])
}

/// The token of a session's connect links (see [`crate::auth::SessionCookie::connect_token`]).
pub fn connect_token_for(session_cookie: &str) -> String {
    crate::opaque::hash(&[b"kehai-connect-v1:", session_cookie.as_bytes()])
}

/// True when `given` is the token for `seed`.
pub fn verify(seed: &str, given: &str) -> bool {
    !seed.is_empty() && bool::from(token_for(seed).as_bytes().ct_eq(given.as_bytes()))
}

/// How long a login or guest-join form may stay open before its token has lapsed (the form then
/// comes back with a fresh one and says so).
pub const PRE_SESSION_TTL_SECS: i64 = 12 * 3600;
const PRE_SESSION: &str = "pre-session-csrf";

/// The pre-login token for `seed` and the client's `network`, issued at `now_secs`.
pub fn pre_session_token(signer: &Signer, seed: &str, network: &str, now_secs: i64) -> String {
    let issued = now_secs.to_string();
    format!("{issued}.{}", signer.sign(PRE_SESSION, &[seed.as_bytes(), network.as_bytes(), issued.as_bytes()]))
}

/// True when `given` is a pre-login token kehai issued for `seed` and `network` within the last
/// [`PRE_SESSION_TTL_SECS`].
pub fn verify_pre_session(signer: &Signer, seed: &str, network: &str, given: &str, now_secs: i64) -> bool {
    let Some((issued, tag)) = given.split_once('.') else { return false };
    let Ok(at) = issued.parse::<i64>() else { return false };
    !seed.is_empty()
        && (now_secs - PRE_SESSION_TTL_SECS..=now_secs + 60).contains(&at)
        && signer.verify(PRE_SESSION, &[seed.as_bytes(), network.as_bytes(), issued.as_bytes()], tag)
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

    #[test]
    fn pre_session_tokens_are_kehais_own_bound_to_their_seed_and_lapse() {
        let key = kehai_store::secrets::MasterKey::generate().unwrap();
        let signer = Signer::new(&key);
        let now = 1_800_000_000;
        let net = "192.0.2.7";
        let t = pre_session_token(&signer, "seed-a", net, now);
        assert!(verify_pre_session(&signer, "seed-a", net, &t, now + 10));
        assert!(!verify_pre_session(&signer, "seed-b", net, &t, now), "another seed");
        assert!(!verify_pre_session(&signer, "seed-a", "198.51.100.1", &t, now), "another network");
        assert!(!verify_pre_session(&signer, "seed-a", net, &t, now + PRE_SESSION_TTL_SECS + 1), "lapsed");
        assert!(!verify_pre_session(&signer, "seed-a", net, &t, now - 3600), "from the future");
        // Whoever knows a seed cannot make its token (the plain double submit's hash is refused).
        assert!(!verify_pre_session(&signer, "seed-a", net, &token_for("seed-a"), now));
        let other = Signer::new(&kehai_store::secrets::MasterKey::generate().unwrap());
        assert!(!verify_pre_session(&other, "seed-a", net, &t, now), "another server's key");
        let (issued, tag) = t.split_once('.').unwrap();
        let moved = format!("{}.{tag}", issued.parse::<i64>().unwrap() + 100);
        assert!(!verify_pre_session(&signer, "seed-a", net, &moved, now), "its time is signed");
    }
}
