//! What the token endpoint hands out and the Calendar API checks: opaque access tokens
//! (`ya29.…`, looked up, not parsed — Google's are opaque too), opaque refresh tokens (`1//…`)
//! with Google's limits, and RS256 id tokens with the claims of the OpenID Connect guide.

use serde_json::{Value, json};

use crate::{
    BaseUrl, Emulator,
    clock::real_now,
    directory::User,
    scopes::{self, Scopes},
    world::{AccessToken, Dead, Inner, RefreshToken, random_token},
};

/// "There is currently a limit of 100 refresh tokens per Google Account per OAuth 2.0 client
/// ID. If the limit is reached, creating a new refresh token automatically invalidates the
/// oldest refresh token without warning."
pub const LIVE_REFRESH_TOKENS: usize = 100;
/// A testing client's authorizations "expire seven days from the time of consent".
pub const TESTING_LIFETIME_MS: i64 = 7 * 86_400_000;
/// A refresh token unused for six months stops working.
pub const IDLE_LIFETIME_MS: i64 = 183 * 86_400_000;
/// Id tokens live an hour.
const ID_TOKEN_SECONDS: i64 = 3600;

/// A live access token, or `None` (unknown, expired, revoked).
pub fn access(world: &Inner, now: i64, token: &str) -> Option<AccessToken> {
    world.access_tokens.get(token).filter(|a| !a.revoked && a.expires > now).cloned()
}

/// Why a refresh token no longer works, if it does not.
pub fn refresh_problem(world: &Inner, now: i64, r: &RefreshToken) -> Option<&'static str> {
    if let Some(dead) = r.dead {
        return Some(match dead {
            Dead::Revoked => "revoked",
            Dead::Evicted => "evicted by the 101st refresh token",
        });
    }
    let testing = world.directory.client(&r.client_id).is_some_and(|c| c.testing);
    if testing && !scopes::only_basic(&r.scopes) && now - r.consented >= TESTING_LIFETIME_MS {
        return Some("lapsed 7 days after consent (testing client)");
    }
    if now - r.last_used >= IDLE_LIFETIME_MS {
        return Some("unused for six months");
    }
    None
}

/// A new refresh token for (user, client). The account's oldest live one for the client is
/// invalidated when this is the 101st.
pub fn new_refresh_token(world: &mut Inner, now: i64, user: &str, client_id: &str, scopes: &Scopes) -> String {
    let mut live: Vec<(String, i64)> = world
        .refresh_tokens
        .iter()
        .filter(|(_, r)| r.dead.is_none() && r.user.eq_ignore_ascii_case(user) && r.client_id == client_id)
        .map(|(k, r)| (k.clone(), r.consented))
        .collect();
    if live.len() >= LIVE_REFRESH_TOKENS {
        live.sort_by_key(|(_, consented)| *consented);
        for (oldest, _) in live.iter().take(live.len() + 1 - LIVE_REFRESH_TOKENS) {
            if let Some(r) = world.refresh_tokens.get_mut(oldest) {
                r.dead = Some(Dead::Evicted);
            }
        }
    }
    let token = format!("1//0{}", random_token(100));
    world.refresh_tokens.insert(
        token.clone(),
        RefreshToken {
            user: user.to_lowercase(),
            client_id: client_id.to_owned(),
            scopes: scopes.clone(),
            consented: now,
            last_used: now,
            dead: None,
        },
    );
    token
}

/// What a token response is for.
#[derive(Debug, Clone, Copy)]
pub struct Grant<'a> {
    pub user: &'a User,
    pub client_id: &'a str,
    pub scopes: &'a Scopes,
    /// Echoed in the id token.
    pub nonce: Option<&'a str>,
    /// The refresh token the access token belongs to (issued now or being used).
    pub refresh: Option<&'a str>,
    /// Whether the response shows the refresh token (only when it was just issued).
    pub new_refresh: bool,
}

/// The successful token response: an access token, and an id token when `openid` is granted.
pub fn respond(emu: &Emulator, world: &mut Inner, base: &BaseUrl, grant: Grant<'_>) -> anyhow::Result<Value> {
    let now = emu.clock.now_ms();
    let lifetime = i64::try_from(emu.config.access_token_lifetime.as_secs()).unwrap_or(3599);
    let access = format!("ya29.a0{}", random_token(150));
    world.access_tokens.retain(|_, a| a.expires > now - 86_400_000);
    world.access_tokens.insert(
        access.clone(),
        AccessToken {
            user: grant.user.email.to_lowercase(),
            client_id: grant.client_id.to_owned(),
            scopes: grant.scopes.clone(),
            expires: now + lifetime * 1000,
            refresh: grant.refresh.map(str::to_owned),
            revoked: false,
        },
    );
    let mut response = json!({
        "access_token": access,
        "expires_in": lifetime,
        "scope": scopes::join(grant.scopes),
        "token_type": "Bearer",
    });
    if let (true, Some(refresh)) = (grant.new_refresh, grant.refresh) {
        response["refresh_token"] = json!(refresh);
    }
    if grant.scopes.contains(scopes::OPENID) {
        response["id_token"] = json!(id_token(emu, base, grant, &access)?);
    }
    Ok(response)
}

/// `at_hash`: base64url of the left half of the access token's SHA-256 (OpenID Connect Core
/// 3.1.3.6).
pub fn at_hash(access_token: &str) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, access_token.as_bytes());
    base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, &digest.as_ref()[..16])
}

/// An id token: `iss`, `azp`, `aud`, `sub`, `at_hash`, `iat`, `exp`; `hd` for organization
/// accounts only; `email` and `email_verified` (a boolean) with the email scope; the names with
/// the profile scope (no `picture`: googleemu has no photos); `nonce` when the request had one. Stamped in real time: the
/// client checks `iat`/`exp` against its own clock.
fn id_token(emu: &Emulator, base: &BaseUrl, grant: Grant<'_>, access_token: &str) -> anyhow::Result<String> {
    let user = grant.user;
    let iat = real_now().unix_timestamp();
    let mut claims = json!({
        "iss": emu.issuer(base),
        "azp": grant.client_id,
        "aud": grant.client_id,
        "sub": user.sub(),
        "at_hash": at_hash(access_token),
        "iat": iat,
        "exp": iat + ID_TOKEN_SECONDS,
    });
    if let Some(hd) = &user.hd {
        claims["hd"] = json!(hd);
    }
    if grant.scopes.contains(scopes::EMAIL) {
        claims["email"] = json!(user.email);
        claims["email_verified"] = json!(true);
    }
    if grant.scopes.contains(scopes::PROFILE) {
        claims["name"] = json!(user.name);
        claims["given_name"] = json!(user.given_name());
        if let Some((_, family)) = user.name.split_once(' ') {
            claims["family_name"] = json!(family);
        }
    }
    if let Some(nonce) = grant.nonce {
        claims["nonce"] = json!(nonce);
    }
    emu.world.keys().sign(&claims)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_hash_matches_the_openid_connect_example() {
        // OpenID Connect Core, Appendix A.3: access token "jHkWEdUXMU1BwAsC4vtUsZwnNvTIxEl0z9K3vx5KF0Y"
        // has at_hash "77QmUPtjPfzWtF2AnpK9RQ".
        assert_eq!(at_hash("jHkWEdUXMU1BwAsC4vtUsZwnNvTIxEl0z9K3vx5KF0Y"), "77QmUPtjPfzWtF2AnpK9RQ");
    }

    #[test]
    fn the_101st_refresh_token_evicts_the_oldest() {
        let mut world = Inner::default();
        let scopes = scopes::parse("openid").unwrap();
        let first = new_refresh_token(&mut world, 1, "a@x", "c", &scopes);
        for i in 2..=100 {
            new_refresh_token(&mut world, i, "a@x", "c", &scopes);
        }
        assert!(world.refresh_tokens[&first].dead.is_none());
        let other_client = new_refresh_token(&mut world, 101, "a@x", "other", &scopes);
        assert!(world.refresh_tokens[&first].dead.is_none(), "other clients do not count");
        new_refresh_token(&mut world, 102, "a@x", "c", &scopes);
        assert_eq!(world.refresh_tokens[&first].dead, Some(Dead::Evicted));
        assert!(world.refresh_tokens[&other_client].dead.is_none());
        let live = world.refresh_tokens.values().filter(|r| r.client_id == "c" && r.dead.is_none()).count();
        assert_eq!(live, 100);
    }
}
