//! A connection's access token, refreshed when it is about to lapse. The rotated refresh token
//! is stored together with the new access token, in one write that only updates an existing
//! connection (a connection deleted meanwhile stays deleted). A refresh Microsoft refuses for
//! good marks the connection Needs reconnect; a refused client secret marks it Error. A token
//! Graph refuses before its expiry is replaced once ([`authorized`]).

use kehai_microsoft::{MicrosoftError, Tokens};
use kehai_store::{Claim, Connection, ConnectionId, ConnectionState, Sealed, TokenUpdate, secrets::row_label};
use secrecy::{ExposeSecret, SecretString};

use super::Teams;
use crate::state::AppState;

/// Refresh this long before the access token lapses at most (Microsoft's last about an hour)…
const MARGIN_MS: i64 = 5 * 60 * 1000;
/// …and at least a fifth of its life ahead, so that short-lived tokens are not refreshed on
/// every use.
const MARGIN_SHARE: i64 = 5;

/// When an access token that lives `expires_in` seconds from `now` lapses, and when to refresh it.
pub fn lifetime(now: i64, expires_in: u64) -> (i64, i64) {
    let life = i64::try_from(expires_in).unwrap_or(3600).saturating_mul(1000);
    (now + life, now + life - MARGIN_MS.min(life / MARGIN_SHARE))
}
/// A refresh is claimed for a minute at most (the identity call retries for up to 30 s)…
const REFRESH_CLAIM_MS: i64 = 60_000;
/// …and an instance finding another one refreshing looks again every 50 ms for the new tokens,
/// for up to 30 s.
const REFRESH_POLL: std::time::Duration = std::time::Duration::from_millis(50);
const REFRESH_WAIT: std::time::Duration = std::time::Duration::from_secs(30);
/// Microsoft's refresh tokens lapse after 90 days unused.
const REFRESH_MS: i64 = 90 * 24 * 3600 * 1000;

/// Why no token could be had.
#[derive(Debug)]
pub enum TokenError {
    /// Microsoft refused the sign-in for good: the member must connect again.
    NeedsReconnect,
    /// Anything else (Microsoft unreachable, the connection gone): try later.
    Unavailable(String),
}

impl std::fmt::Display for TokenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TokenError::NeedsReconnect => f.write_str("Microsoft no longer accepts the sign-in"),
            TokenError::Unavailable(why) => write!(f, "no access token: {why}"),
        }
    }
}

/// Whether an identity error means only a new interactive sign-in helps.
fn needs_sign_in(e: &MicrosoftError) -> bool {
    match e {
        MicrosoftError::Identity { error, .. } => {
            matches!(error.as_str(), "invalid_grant" | "interaction_required" | "consent_required" | "login_required")
        }
        _ => false,
    }
}

/// Why a Graph call with a connection's token failed.
#[derive(Debug)]
pub enum CallError {
    Token(TokenError),
    Graph(MicrosoftError),
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::Token(e) => e.fmt(f),
            CallError::Graph(e) => e.fmt(f),
        }
    }
}

/// Calls Graph with the connection's access token. When Graph refuses a token before its expiry
/// (401: revoked by a password reset or a continuous-access-evaluation event), the token is
/// refreshed once and the call made again.
pub async fn authorized<T, F>(
    state: &AppState,
    teams: &Teams,
    connection: &mut Connection,
    call: impl Fn(SecretString) -> F,
) -> Result<T, CallError>
where
    F: Future<Output = Result<T, MicrosoftError>>,
{
    authorized_until(state, teams, connection, 0, call).await
}

/// [`authorized`] with a token valid until `until` at least (refreshed first if it is not).
pub async fn authorized_until<T, F>(
    state: &AppState,
    teams: &Teams,
    connection: &mut Connection,
    until: i64,
    call: impl Fn(SecretString) -> F,
) -> Result<T, CallError>
where
    F: Future<Output = Result<T, MicrosoftError>>,
{
    let token = token_for(state, teams, connection, None, until).await.map_err(CallError::Token)?;
    match call(token.clone()).await {
        Err(MicrosoftError::Graph { status: 401, .. }) => {
            let fresh = token_for(state, teams, connection, Some(&token), until).await.map_err(CallError::Token)?;
            call(fresh).await.map_err(CallError::Graph)
        }
        other => other.map_err(CallError::Graph),
    }
}

/// A usable access token for `connection` (refreshing and storing it if needed).
pub async fn access_token(
    state: &AppState,
    teams: &Teams,
    connection: &mut Connection,
) -> Result<SecretString, TokenError> {
    token_for(state, teams, connection, None, 0).await
}

/// A usable access token valid until `until` at least, other than `refused` (one Graph would not
/// take) if given.
async fn token_for(
    state: &AppState,
    teams: &Teams,
    connection: &mut Connection,
    refused: Option<&SecretString>,
    until: i64,
) -> Result<SecretString, TokenError> {
    let id = connection.id.0.to_string();
    let row = |what: &str| row_label("connection", &id, what);
    let now = state.clock.now();
    // A value that does not open (a lost or wrong master key) can only be fixed by a new sign-in.
    let stored = |c: &Connection| {
        state.secrets.open(&c.access_token.0, &row("access_token")).map_err(|_| TokenError::NeedsReconnect)
    };
    let fresh_enough = |c: &Connection| c.access_refresh_at > now && c.access_expires_at >= until;
    if refused.is_none() && fresh_enough(connection) {
        return stored(connection);
    }
    // One refresh in flight per connection: each refresh rotates the refresh token, and two at
    // once would ask Microsoft twice and race to store theirs. Whoever waited finds the new
    // tokens stored. Within the process a lock orders them; across processes (other instances,
    // `kehai keys rotate-cert`) a claim in the database does.
    let gate = teams.refreshing.of(connection.id);
    let _refreshing = gate.lock().await;
    // Other instances refresh too: one at a time per connection, by claim.
    let waited = tokio::time::Instant::now();
    loop {
        match state.store.connection_of(connection.account_id, "msteams").await {
            Ok(Some(current)) if current.id == connection.id => *connection = current,
            Ok(_) => return Err(TokenError::Unavailable("the connection was removed meanwhile".into())),
            Err(e) => return Err(TokenError::Unavailable(e.to_string())),
        }
        if connection.state != ConnectionState::Connected {
            return Err(TokenError::NeedsReconnect);
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
        match state.store.claim_refresh(connection.id, mine).await {
            Ok(true) => break,
            Ok(false) if waited.elapsed() < REFRESH_WAIT => tokio::time::sleep(REFRESH_POLL).await,
            Ok(false) => return Err(TokenError::Unavailable("another instance is still refreshing".into())),
            Err(e) => return Err(TokenError::Unavailable(e.to_string())),
        }
    }
    let refreshed = refresh(state, teams, connection, now).await;
    // Storing the new tokens let go of the claim; otherwise it is let go of now.
    if refreshed.is_err()
        && let Err(e) = state.store.release_refresh(connection.id, &state.instance).await
    {
        tracing::warn!(error = %e, "could not let go of a refresh claim");
    }
    refreshed
}

/// Redeems the connection's refresh token and stores what Microsoft gives back (under the
/// connection's refresh claim, which storing them lets go of).
async fn refresh(
    state: &AppState,
    teams: &Teams,
    connection: &mut Connection,
    now: i64,
) -> Result<SecretString, TokenError> {
    let unopenable = |_| TokenError::NeedsReconnect;
    let Some(refresh) = &connection.refresh_token else {
        return Err(TokenError::NeedsReconnect);
    };
    let label = row_label("connection", &connection.id.0.to_string(), "refresh_token");
    let refresh = state.secrets.open(&refresh.0, &label).map_err(unopenable)?;
    match teams.identity.refresh(&refresh, &teams.redirect_uri).await {
        Ok(tokens) => {
            let update = sealed(state, connection.id, &tokens, now).map_err(TokenError::Unavailable)?;
            let stored = state
                .store
                .update_connection_tokens(connection.id, &update, Some(&state.instance))
                .await
                .map_err(|e| TokenError::Unavailable(e.to_string()))?;
            if !stored {
                return Err(TokenError::Unavailable("the connection was removed meanwhile".into()));
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
        Err(e) if needs_sign_in(&e) => {
            mark(
                state,
                teams,
                connection,
                ConnectionState::NeedsReconnect,
                "Microsoft no longer accepts kehai's sign-in. Connect again.",
            )
            .await;
            Err(TokenError::NeedsReconnect)
        }
        Err(e @ MicrosoftError::Identity { .. })
            if e.aadsts().is_some_and(|c| matches!(c, 7000215 | 7000222 | 700016)) =>
        {
            // The server's own app registration is refused: for the operator to fix.
            mark(state, teams, connection, ConnectionState::Error, "kehai's Microsoft app registration was refused (client secret or app id). Tell your kehai administrator.").await;
            Err(TokenError::Unavailable(e.to_string()))
        }
        Err(e) => Err(TokenError::Unavailable(e.to_string())),
    }
}

/// Fresh tokens from Microsoft as they are stored: sealed for the connection's row, with their
/// expiry and refresh times (at sign-in and at every refresh).
pub fn sealed(state: &AppState, connection: ConnectionId, tokens: &Tokens, now: i64) -> Result<TokenUpdate, String> {
    let id = connection.0.to_string();
    let seal = |v: &SecretString, what: &str| {
        state.secrets.seal(v, &row_label("connection", &id, what)).map(Sealed).map_err(|e| e.to_string())
    };
    let (access_expires_at, access_refresh_at) = lifetime(now, tokens.expires_in);
    Ok(TokenUpdate {
        access_token: seal(&tokens.access_token, "access_token")?,
        access_expires_at,
        access_refresh_at,
        refresh_token: tokens.refresh_token.as_ref().map(|r| seal(r, "refresh_token")).transpose()?,
        refresh_expires_at: tokens.refresh_token.as_ref().map(|_| now + REFRESH_MS),
        updated_at: now,
    })
}

/// Records a connection's failure and takes its presence off the avatars: a presence kehai can
/// no longer follow would soon be wrong. Under the connection's apply lock, so that a presence
/// being applied meanwhile cannot put it back ([`super::sync::apply`] checks the state).
async fn mark(state: &AppState, teams: &Teams, connection: &mut Connection, to: ConnectionState, why: &str) {
    let gate = teams.applying.of(connection.id);
    let _applying = gate.lock().await;
    connection.state = to;
    connection.last_error = Some(why.to_owned());
    if let Err(e) = state.store.set_connection_state(connection.id, to, Some(why), state.clock.now()).await {
        tracing::warn!(error = %e, "could not record a connection's state");
    }
    // Logged where it failed; the reconciliation skips connections that are not connected.
    let _ = super::set_override(state, connection.id, connection.account_id, None).await;
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
