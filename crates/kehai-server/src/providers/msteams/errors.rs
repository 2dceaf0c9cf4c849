//! Microsoft's errors in the engine's terms.

use kehai_microsoft::MicrosoftError;

use crate::presence::ProviderError;

/// Identity-platform errors after which only a new interactive sign-in helps.
const SIGN_IN_REFUSED: &[&str] = &["invalid_grant", "interaction_required", "consent_required", "login_required"];

/// AADSTS codes that refuse kehai's own app registration: an expired or wrong client secret
/// (7000215, 7000222) or an unknown application (700016) — for the operator to fix.
const APP_REFUSED: &[u32] = &[7000215, 7000222, 700016];

/// What a Microsoft error means to the engine.
pub fn provider_error(e: MicrosoftError) -> ProviderError {
    match &e {
        MicrosoftError::Transport(why) => ProviderError::Unavailable(why.clone()),
        MicrosoftError::Graph { status: 401, .. } => ProviderError::Unauthorized,
        MicrosoftError::Graph { status: 404, .. } => ProviderError::NotFound,
        MicrosoftError::Graph { status: 429 | 500..=599, .. } => ProviderError::Unavailable(e.to_string()),
        MicrosoftError::Identity { error, .. } if SIGN_IN_REFUSED.contains(&error.as_str()) => {
            ProviderError::SignInRefused(e.to_string())
        }
        MicrosoftError::Identity { code: Some(code), .. } if APP_REFUSED.contains(code) => {
            ProviderError::AppRefused(e.to_string())
        }
        MicrosoftError::Identity { error, .. } if error == "temporarily_unavailable" => {
            ProviderError::Unavailable(e.to_string())
        }
        _ => ProviderError::Refused(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity(error: &str, code: Option<u32>) -> MicrosoftError {
        MicrosoftError::Identity { error: error.into(), code, description: String::new() }
    }

    fn graph(status: u16) -> MicrosoftError {
        MicrosoftError::Graph { status, code: "x".into(), message: String::new(), retry_after: None }
    }

    #[test]
    fn microsoft_errors_in_the_engines_terms() {
        assert!(matches!(provider_error(identity("invalid_grant", Some(50173))), ProviderError::SignInRefused(_)));
        assert!(matches!(provider_error(identity("interaction_required", None)), ProviderError::SignInRefused(_)));
        assert!(matches!(provider_error(identity("invalid_client", Some(7000215))), ProviderError::AppRefused(_)));
        assert!(matches!(provider_error(identity("unauthorized_client", Some(700016))), ProviderError::AppRefused(_)));
        assert!(matches!(provider_error(identity("invalid_request", Some(90002))), ProviderError::Refused(_)));
        assert!(matches!(provider_error(identity("temporarily_unavailable", None)), ProviderError::Unavailable(_)));
        assert_eq!(provider_error(graph(401)), ProviderError::Unauthorized);
        assert_eq!(provider_error(graph(404)), ProviderError::NotFound);
        assert!(matches!(provider_error(graph(429)), ProviderError::Unavailable(_)));
        assert!(matches!(provider_error(graph(503)), ProviderError::Unavailable(_)));
        assert!(matches!(provider_error(graph(400)), ProviderError::Refused(_)));
        assert!(matches!(provider_error(MicrosoftError::Transport("timeout".into())), ProviderError::Unavailable(_)));
    }
}
