//! A connection's access token, refreshed when it is about to lapse. The rotated refresh token
//! is stored together with the new access token, in one write that only updates an existing
//! connection (a connection deleted meanwhile stays deleted). A refresh the provider refuses for
//! good marks the connection Needs reconnect; a refused app registration marks it Error. A token
//! the provider refuses before its expiry is replaced once ([`authorized`]).

use kehai_store::{
    Claim, Connection, ConnectionId, ConnectionState, Sealed, TokenUpdate,
    secrets::{ConnectionSecret, Place},
};
use secrecy::{ExposeSecret, SecretString};

use super::{Error, Provider, ProviderError, Tokens, apply};
use crate::state::AppState;

/// Refresh this long before the access token lapses at most (tokens last about an hour)…
const MARGIN_MS: i64 = 5 * 60 * 1000;
/// …and at least a fifth of its life ahead, so that short-lived tokens are not refreshed on
/// every use.
const MARGIN_SHARE: i64 = 5;

/// When an access token that lives `expires_in` seconds from `now` lapses, and when to refresh it.
pub fn lifetime(now: i64, expires_in: u64) -> (i64, i64) {
    let life = i64::try_from(expires_in).unwrap_or(3600).saturating_mul(1000);
    (now + life, now + life - MARGIN_MS.min(life / MARGIN_SHARE))
}
/// A refresh is claimed for a minute at most (a token request retries for up to 30 s)…
const REFRESH_CLAIM_MS: i64 = 60_000;
/// …and an instance finding another one refreshing looks again every 50 ms for the new tokens,
/// for up to 30 s.
const REFRESH_POLL: std::time::Duration = std::time::Duration::from_millis(50);
const REFRESH_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// Calls the provider with the connection's access token. When the provider refuses a token
/// before its expiry (revoked by a password reset or a continuous-access-evaluation event), the
/// token is refreshed once and the call made again.
pub async fn authorized<T, F>(
    state: &AppState,
    provider: &dyn Provider,
    connection: &mut Connection,
    call: impl Fn(SecretString) -> F,
) -> Result<T, Error>
where
    F: Future<Output = Result<T, ProviderError>>,
{
    authorized_until(state, provider, connection, 0, call).await
}

/// [`authorized`] with a token valid until `until` at least (refreshed first if it is not).
pub async fn authorized_until<T, F>(
    state: &AppState,
    provider: &dyn Provider,
    connection: &mut Connection,
    until: i64,
    call: impl Fn(SecretString) -> F,
) -> Result<T, Error>
where
    F: Future<Output = Result<T, ProviderError>>,
{
    let token = token_for(state, provider, connection, None, until).await?;
    match call(token.clone()).await {
        Err(ProviderError::Unauthorized) => {
            let fresh = token_for(state, provider, connection, Some(&token), until).await?;
            Ok(call(fresh).await?)
        }
        other => Ok(other?),
    }
}

/// A usable access token for `connection` (refreshing and storing it if needed).
pub async fn access_token(
    state: &AppState,
    provider: &dyn Provider,
    connection: &mut Connection,
) -> Result<SecretString, Error> {
    token_for(state, provider, connection, None, 0).await
}

/// A usable access token valid until `until` at least, other than `refused` (one the provider
/// would not take) if given.
async fn token_for(
    state: &AppState,
    provider: &dyn Provider,
    connection: &mut Connection,
    refused: Option<&SecretString>,
    until: i64,
) -> Result<SecretString, Error> {
    let now = state.clock.now();
    let place = Place::Connection(connection.id, ConnectionSecret::AccessToken);
    // A value that does not open (a lost or wrong master key) can only be fixed by a new sign-in.
    let stored = |c: &Connection| state.secrets.open(&c.access_token.0, place).map_err(|_| Error::NeedsReconnect);
    let fresh_enough = |c: &Connection| c.access_refresh_at > now && c.access_expires_at >= until;
    if refused.is_none() && fresh_enough(connection) {
        return stored(connection);
    }
    // One refresh in flight per connection: each refresh rotates the refresh token, and two at
    // once would ask the provider twice and race to store theirs. Whoever waited finds the new
    // tokens stored. Within the process a lock orders them; across processes (other instances,
    // `kehai keys rotate-cert`) a claim in the database does.
    let gate = state.presence.refreshing.of(connection.id);
    let _refreshing = gate.lock().await;
    let waited = tokio::time::Instant::now();
    loop {
        *connection = state.store.connection(connection.id).await?.ok_or(Error::Gone)?;
        if connection.state != ConnectionState::Connected {
            return Err(Error::NeedsReconnect);
        }
        if fresh_enough(connection) {
            let token = stored(connection)?;
            // Unless it is the refused one (someone else's refresh replaced that meanwhile).
            if refused.is_none_or(|r| r.expose_secret() != token.expose_secret()) {
                return Ok(token);
            }
        }
        let now = state.clock.now();
        let mine = Claim { holder: &state.instance, now, until: now + REFRESH_CLAIM_MS };
        match state.store.claim_refresh(connection.id, mine).await? {
            true => break,
            false if waited.elapsed() < REFRESH_WAIT => tokio::time::sleep(REFRESH_POLL).await,
            false => return Err(Error::Unavailable("another instance is still refreshing the tokens")),
        }
    }
    let refreshed = refresh(state, provider, connection, now).await;
    // Storing the new tokens let go of the claim; otherwise it is let go of now.
    if refreshed.is_err()
        && let Err(e) = state.store.release_refresh(connection.id, &state.instance).await
    {
        tracing::warn!(error = %e, "could not let go of a refresh claim");
    }
    refreshed
}

/// Redeems the connection's refresh token and stores what the provider gives back (under the
/// connection's refresh claim, which storing them lets go of).
async fn refresh(
    state: &AppState,
    provider: &dyn Provider,
    connection: &mut Connection,
    now: i64,
) -> Result<SecretString, Error> {
    let Some(refresh) = &connection.refresh_token else {
        return Err(Error::NeedsReconnect);
    };
    let place = Place::Connection(connection.id, ConnectionSecret::RefreshToken);
    let refresh = state.secrets.open(&refresh.0, place).map_err(|_| Error::NeedsReconnect)?;
    match provider.refresh(&refresh).await {
        Ok(tokens) => {
            let update = sealed(state, provider, connection.id, &tokens, now)?;
            if !state.store.update_connection_tokens(connection.id, &update, Some(&state.instance)).await? {
                return Err(Error::Gone);
            }
            connection.access_token = update.access_token;
            connection.access_expires_at = update.access_expires_at;
            connection.access_refresh_at = update.access_refresh_at;
            if update.refresh_token.is_some() {
                connection.refresh_token = update.refresh_token;
                connection.refresh_expires_at = update.refresh_expires_at;
            }
            Ok(tokens.access_token)
        }
        Err(ProviderError::SignInRefused(_)) => {
            let why = format!("{} no longer accepts kehai's sign-in. Connect again.", provider.name());
            mark(state, connection, ConnectionState::NeedsReconnect, &why).await;
            Err(Error::NeedsReconnect)
        }
        Err(e @ ProviderError::AppRefused(_)) => {
            // The server's own app registration is refused: for the operator to fix.
            let why = format!(
                "kehai's {} app registration was refused (client secret or app id). Tell your kehai administrator.",
                provider.name()
            );
            mark(state, connection, ConnectionState::Error, &why).await;
            Err(e.into())
        }
        Err(e) => Err(e.into()),
    }
}

/// Tells the provider to forget the connection's sign-in ([`Provider::revoke`]), when it has a
/// refresh token; a failure is logged (the tokens are deleted by the caller all the same).
pub async fn revoke(state: &AppState, provider: &dyn Provider, connection: &Connection) {
    let Some(refresh) = &connection.refresh_token else { return };
    let place = Place::Connection(connection.id, ConnectionSecret::RefreshToken);
    let Ok(refresh) = state.secrets.open(&refresh.0, place) else { return };
    if let Err(e) = provider.revoke(&refresh).await {
        tracing::warn!(provider = provider.id(), error = %e, "the sign-in could not be revoked at the provider");
    }
}

/// Fresh tokens from the provider as they are stored: sealed for the connection's row, with
/// their expiry and refresh times (at sign-in and at every refresh).
pub fn sealed(
    state: &AppState,
    provider: &dyn Provider,
    connection: ConnectionId,
    tokens: &Tokens,
    now: i64,
) -> Result<TokenUpdate, Error> {
    let seal = |v: &SecretString, secret| {
        state
            .secrets
            .seal(v, Place::Connection(connection, secret))
            .map(Sealed)
            .map_err(|_| Error::Unavailable("a token could not be sealed"))
    };
    let (access_expires_at, access_refresh_at) = lifetime(now, tokens.expires_in);
    Ok(TokenUpdate {
        access_token: seal(&tokens.access_token, ConnectionSecret::AccessToken)?,
        access_expires_at,
        access_refresh_at,
        refresh_token: tokens.refresh_token.as_ref().map(|r| seal(r, ConnectionSecret::RefreshToken)).transpose()?,
        refresh_expires_at: tokens.refresh_token.as_ref().map(|_| now + provider.refresh_token_ms()),
        updated_at: now,
    })
}

/// Records a connection's failure and takes its presence off the avatars: a presence kehai can
/// no longer follow would soon be wrong. Under the connection's apply gate, so that a presence
/// being applied meanwhile cannot put it back ([`apply::apply`] checks the state).
async fn mark(state: &AppState, connection: &mut Connection, to: ConnectionState, why: &str) {
    let held = apply::hold(state, connection.id).await;
    connection.state = to;
    connection.last_error = Some(why.to_owned());
    if let Err(e) = state.store.set_connection_state(connection.id, to, Some(why), state.clock.now()).await {
        tracing::warn!(error = %e, "could not record a connection's state");
    }
    // The reconciliation skips connections that are not connected.
    if let Err(e) = apply::clear_everywhere(state, &held, connection).await {
        tracing::warn!(error = %e, "could not take a presence off the avatars");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_refreshed_five_minutes_or_a_fifth_of_their_life_ahead() {
        assert_eq!(lifetime(1_000, 3600), (1_000 + 3_600_000, 1_000 + 3_300_000));
        assert_eq!(lifetime(1_000, 10), (11_000, 9_000));
        assert_eq!(lifetime(0, 0), (0, 0));
    }
}
