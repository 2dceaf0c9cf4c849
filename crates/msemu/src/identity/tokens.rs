//! The tokens msemu issues: id tokens (claims exactly as documented for v2.0), access tokens
//! for Graph (JWTs that msemu's Graph verifies), and opaque refresh tokens.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use uuid::Uuid;

use super::scopes;
use crate::{
    BaseUrl, Emulator,
    directory::{Tenant, User},
    world::{Inner, Refresh, now, random_token},
};

/// The claims of a Graph access token that msemu reads back.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccessClaims {
    pub aud: String,
    pub iss: String,
    pub iat: i64,
    pub nbf: i64,
    pub exp: i64,
    /// The app.
    pub appid: String,
    pub oid: String,
    pub tid: String,
    /// Space-separated Graph permissions.
    pub scp: String,
    /// The token's unique id (revocation is by `uti`).
    pub uti: String,
    pub ver: String,
}

/// `sub` is pairwise: the same person has a different `sub` in each app.
fn pairwise_sub(user: Uuid, client_id: Uuid) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, format!("{user}:{client_id}").as_bytes());
    base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, &digest.as_ref()[..24])
}

/// What a token response is for.
#[derive(Debug, Clone, Copy)]
pub struct Grant<'a> {
    pub user: &'a User,
    pub tenant: &'a Tenant,
    pub client_id: Uuid,
    pub scopes: &'a [String],
    /// The `{tenant}` of the URL the grant came through (kept with refresh tokens).
    pub tenant_path: &'a str,
    pub nonce: Option<&'a str>,
}

/// The successful token response for a grant, registering a new refresh token.
pub fn issue(emu: &Emulator, world: &mut Inner, base: &BaseUrl, grant: Grant<'_>) -> anyhow::Result<Value> {
    let Grant { user, tenant, client_id, scopes, tenant_path, nonce } = grant;
    let now = now();
    let lifetime = emu.config.access_token_lifetime.as_secs() as i64;
    let has = |s: &str| scopes.iter().any(|x| x == s);
    let keys = emu.world.keys();

    let access = AccessClaims {
        aud: scopes::GRAPH.to_owned(),
        iss: format!("https://sts.windows.net/{}/", tenant.id),
        iat: now,
        nbf: now,
        exp: now + lifetime,
        appid: client_id.to_string(),
        oid: user.id.to_string(),
        tid: tenant.id.to_string(),
        scp: scopes::graph(scopes).join(" "),
        uti: random_token(),
        ver: "1.0".to_owned(),
    };
    world.access_tokens.retain(|_, (_, exp)| *exp > now);
    world.revoked_access.retain(|uti| world.access_tokens.contains_key(uti));
    world.access_tokens.insert(access.uti.clone(), (user.id, access.exp));
    let mut response = json!({
        "token_type": "Bearer",
        "scope": scopes::granted(scopes),
        "expires_in": lifetime,
        "ext_expires_in": lifetime,
        "access_token": keys.sign(&access)?,
    });
    if has("offline_access") {
        let refresh = random_token();
        world.refresh_tokens.insert(
            refresh.clone(),
            Refresh {
                user: user.id,
                client_id,
                scopes: scopes.to_vec(),
                tenant_path: tenant_path.to_owned(),
                issued: now,
                last_used: now,
                revoked: false,
            },
        );
        response["refresh_token"] = Value::String(refresh);
    }
    if has("openid") {
        let mut id = json!({
            "aud": client_id.to_string(),
            "iss": base.join(&format!("/{}/v2.0", tenant.id)),
            "iat": now,
            "nbf": now,
            "exp": now + 3600,
            "sub": pairwise_sub(user.id, client_id),
            "tid": tenant.id.to_string(),
            "ver": "2.0",
            "aio": random_token(),
            "rh": random_token(),
            "uti": random_token(),
        });
        if let Some(nonce) = nonce {
            id["nonce"] = Value::String(nonce.to_owned());
        }
        // `oid`, `preferred_username` and `name` need the `profile` scope; `email` the `email` one.
        if has("profile") {
            id["oid"] = Value::String(user.id.to_string());
            id["preferred_username"] = Value::String(user.email.clone());
            id["name"] = Value::String(user.display_name.clone());
        }
        if has("email") {
            id["email"] = Value::String(user.email.clone());
        }
        if tenant.personal {
            id["idp"] = Value::String("https://sts.windows.net/9188040d-6c67-4c5b-b112-36a304b66dad/".to_owned());
        }
        response["id_token"] = Value::String(keys.sign(&id)?);
    }
    Ok(response)
}
