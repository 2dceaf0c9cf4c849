//! A connection's access token, refreshed when it is about to lapse. The rotated refresh token
//! is stored together with the new access token, in one write. A refused refresh (revoked,
//! expired, consent withdrawn) marks the connection Needs reconnect.

use kehai_microsoft::MicrosoftError;
use kehai_store::{Connection, ConnectionState, Sealed};
use secrecy::SecretString;

use super::Teams;
use crate::state::AppState;

/// Refresh this long before the access token lapses.
const MARGIN_MS: i64 = 5 * 60 * 1000;

/// Why no token could be had.
#[derive(Debug)]
pub enum TokenError {
    /// Microsoft refused the refresh token: the member must connect again.
    NeedsReconnect,
    /// Anything else (Microsoft unreachable, storage): try later.
    Unavailable(String),
}

/// A usable access token for `connection` (refreshing and storing it if needed).
pub async fn access_token(
    state: &AppState,
    teams: &Teams,
    connection: &mut Connection,
) -> Result<SecretString, TokenError> {
    let id = connection.id.0.to_string();
    let row = |what: &str| kehai_store::secrets::row_label("connection", &id, what);
    let now = state.clock.now();
    if connection.access_expires_at - MARGIN_MS > now {
        return state
            .secrets
            .open(&connection.access_token.0, &row("access_token"))
            .map_err(|e| TokenError::Unavailable(e.to_string()));
    }
    let Some(refresh) = &connection.refresh_token else {
        return Err(TokenError::NeedsReconnect);
    };
    let refresh =
        state.secrets.open(&refresh.0, &row("refresh_token")).map_err(|e| TokenError::Unavailable(e.to_string()))?;
    match teams.identity.refresh(&refresh, &teams.redirect_uri).await {
        Ok(tokens) => {
            let seal = |v: &SecretString, what: &str| {
                state.secrets.seal(v, &row(what)).map(Sealed).map_err(|e| TokenError::Unavailable(e.to_string()))
            };
            connection.access_token = seal(&tokens.access_token, "access_token")?;
            connection.access_expires_at = now + i64::try_from(tokens.expires_in).unwrap_or(3600) * 1000;
            if let Some(r) = &tokens.refresh_token {
                connection.refresh_token = Some(seal(r, "refresh_token")?);
            }
            connection.updated_at = now;
            state.store.save_connection(connection).await.map_err(|e| TokenError::Unavailable(e.to_string()))?;
            Ok(tokens.access_token)
        }
        Err(e) if e.is_invalid_grant() => {
            connection.state = ConnectionState::NeedsReconnect;
            connection.last_error = Some("Microsoft no longer accepts kehai's sign-in. Connect again.".into());
            connection.updated_at = now;
            let _ = state.store.save_connection(connection).await;
            Err(TokenError::NeedsReconnect)
        }
        Err(MicrosoftError::Transport(e)) => Err(TokenError::Unavailable(e)),
        Err(e) => Err(TokenError::Unavailable(e.to_string())),
    }
}
