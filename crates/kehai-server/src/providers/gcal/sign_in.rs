//! Signing in with Google: what its refusals mean for the person, and the checks of one that
//! succeeded — the id token, the account's organization (`hd`: required unless personal
//! accounts are allowed, and among the configured domains; the `hd` kehai sent was only a hint
//! to the chooser), and the calendar permission (Google's consent page lets a person untick it).

use kehai_google::{GoogleError, scopes};

use super::{GoogleCalendar, errors::provider_error};
use crate::presence::{Outcome, SignInSecrets, SignedIn, Tokens};

/// What Google's `error` on the callback means for the person.
pub(super) fn refusal(error: &str) -> Outcome {
    match error {
        "access_denied" => Outcome::Cancelled,
        other => Outcome::Failed { detail: other.chars().take(64).collect() },
    }
}

/// Redeems the code and checks the account and what it granted; then reads the calendar now.
pub(super) async fn finish(google: &GoogleCalendar, code: &str, secrets: &SignInSecrets) -> Result<SignedIn, Outcome> {
    let failed = |e: GoogleError| match e {
        GoogleError::Transport(_) => Outcome::Unavailable,
        GoogleError::OAuth { error, .. } => Outcome::Failed { detail: error },
        GoogleError::Api { status, reason, .. } => Outcome::Failed { detail: format!("{status} {reason}") },
        GoogleError::IdToken(_) => Outcome::Failed { detail: "invalid_id_token".into() },
    };
    let tokens =
        google.identity.exchange_code(code, &secrets.pkce_verifier, &google.redirect_uri).await.map_err(failed)?;
    let id_token = tokens.id_token.as_deref().ok_or_else(|| Outcome::Failed { detail: "no id token".into() })?;
    let claims = google.identity.validate(id_token, &secrets.nonce).await.map_err(failed)?;
    let refused = match &claims.hd {
        None if !google.allow_personal => Some(Outcome::Personal),
        Some(hd) if !google.hosted_domains.is_empty() && !google.hosted_domains.contains(&hd.to_ascii_lowercase()) => {
            Some(Outcome::OtherOrganization)
        }
        _ => None,
    };
    let scope = tokens.scope.clone().unwrap_or_default();
    let refused = refused.or_else(|| (!scopes::granted(&scope, scopes::CALENDAR)).then_some(Outcome::ScopeMissing));
    if let Some(outcome) = refused {
        // Nothing is kept, and Google forgets the grant too.
        let grant = tokens.refresh_token.as_ref().unwrap_or(&tokens.access_token);
        if let Err(e) = google.identity.revoke(grant).await {
            tracing::info!(error = %e, "a refused Google sign-in could not be revoked");
        }
        return Err(outcome);
    }
    let user = claims.sub.clone();
    let reading = google.read_fresh(&tokens.access_token, None, &user, google.unpushed_poll_ms).await.map_err(|e| {
        tracing::warn!(error = %e, "the calendar of a new Google connection could not be read");
        match provider_error(e) {
            crate::presence::ProviderError::Unavailable(_) => Outcome::Unavailable,
            other => Outcome::Failed { detail: other.to_string().chars().take(64).collect() },
        }
    })?;
    Ok(SignedIn {
        tenant: claims.hd.unwrap_or_default(),
        user,
        scope: tokens.scope,
        reading,
        tokens: Tokens {
            access_token: tokens.access_token,
            refresh_token: tokens.refresh_token,
            expires_in: tokens.expires_in,
        },
    })
}
