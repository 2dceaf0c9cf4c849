//! Signing in at Microsoft's identity platform: what its refusals mean for the person (an
//! organization that lets only administrators approve apps, a cancelled sign-in, a personal
//! account, an AADSTS code for the administrator), and redeeming the code of one that succeeded.

use kehai_microsoft::{CONSUMER_TENANT, MicrosoftError};

use super::{Teams, reading_of};
use crate::presence::{Outcome, SignInSecrets, SignedIn, Tokens};

/// AADSTS codes that mean an administrator must approve kehai for the organization.
const ADMIN_APPROVAL: &[u32] = &[90094, 65001, 900941, 90095];
/// AADSTS codes of a personal account where a work or school one is needed.
const PERSONAL: &[u32] = &[500208, 50020];
/// The AADSTS code of a person cancelling the consent.
const CANCELLED: u32 = 65004;

/// What Microsoft's `error` (and its description and subcode) means for the person.
pub(super) fn refusal(teams: &Teams, error: &str, description: &str, subcode: Option<&str>, state: &str) -> Outcome {
    let code = MicrosoftError::identity_code(description);
    match (error, code) {
        (_, Some(c)) if ADMIN_APPROVAL.contains(&c) => {
            Outcome::AdminApproval { admin_url: teams.identity.admin_consent_url(&teams.redirect_uri, state) }
        }
        ("consent_required", _) => {
            Outcome::AdminApproval { admin_url: teams.identity.admin_consent_url(&teams.redirect_uri, state) }
        }
        (_, Some(c)) if PERSONAL.contains(&c) => Outcome::Personal,
        ("access_denied", Some(CANCELLED)) => Outcome::Cancelled,
        ("access_denied", None) if subcode == Some("cancel") => Outcome::Cancelled,
        _ => Outcome::Failed { detail: detail(code, error) },
    }
}

/// The code shown to the person for their administrator: `AADSTS{code} ({error})`, or the error.
fn detail(code: Option<u32>, error: &str) -> String {
    code.map_or_else(|| error.to_owned(), |c| format!("AADSTS{c} ({error})"))
}

/// Redeems the code, validates the id token, refuses personal accounts and reads the presence:
/// kehai's scopes leave out `profile`, so the id token has no `oid`; the presence's `id` is the
/// user's object id.
pub(super) async fn finish(
    teams: &Teams,
    code: &str,
    secrets: &SignInSecrets,
    state: &str,
) -> Result<SignedIn, Outcome> {
    let failed = |e: MicrosoftError| match e {
        MicrosoftError::Transport(_) => Outcome::Unavailable,
        // The token endpoint's refusals mean what the authorize endpoint's do.
        MicrosoftError::Identity { error, description, .. } => refusal(teams, &error, &description, None, state),
        other => Outcome::Failed { detail: detail(other.aadsts(), &error_name(&other)) },
    };
    let tokens =
        teams.identity.exchange_code(code, &secrets.pkce_verifier, &teams.redirect_uri).await.map_err(failed)?;
    let id_token = tokens.id_token.as_deref().ok_or_else(|| Outcome::Failed { detail: "no id token".to_owned() })?;
    let claims = teams.id_tokens.validate(id_token, &secrets.nonce).await.map_err(failed)?;
    if claims.tid == CONSUMER_TENANT {
        return Err(Outcome::Personal);
    }
    let presence = teams.graph.my_presence(&tokens.access_token, &claims.tid).await.map_err(failed)?;
    Ok(SignedIn {
        tenant: claims.tid,
        user: presence.id.clone(),
        reading: reading_of(&presence),
        scope: None,
        tokens: Tokens {
            access_token: tokens.access_token,
            refresh_token: tokens.refresh_token,
            expires_in: tokens.expires_in,
        },
    })
}

/// The error's name for the page (never a token).
fn error_name(e: &MicrosoftError) -> String {
    match e {
        MicrosoftError::Identity { error, .. } => error.clone(),
        MicrosoftError::Graph { code, .. } => code.clone(),
        MicrosoftError::IdToken(_) => "invalid_id_token".into(),
        MicrosoftError::Transport(_) => "unavailable".into(),
    }
}
