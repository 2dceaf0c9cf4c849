//! Google's errors in the engine's terms.

use kehai_google::GoogleError;

use crate::presence::ProviderError;

/// What a Google error means to the engine.
pub fn provider_error(e: GoogleError) -> ProviderError {
    match &e {
        GoogleError::Transport(why) => ProviderError::Unavailable(why.clone()),
        // Revoked, expired (a "testing" client's seven days), an administrator's policy: only a
        // new consent helps.
        GoogleError::OAuth { error, .. } if error == "invalid_grant" => ProviderError::SignInRefused(e.to_string()),
        GoogleError::OAuth { error, .. } if matches!(error.as_str(), "invalid_client" | "unauthorized_client") => {
            ProviderError::AppRefused(e.to_string())
        }
        GoogleError::OAuth { error, .. }
            if matches!(error.as_str(), "temporarily_unavailable" | "server_error" | "internal_failure") =>
        {
            ProviderError::Unavailable(e.to_string())
        }
        GoogleError::Api { status: 401, .. } => ProviderError::Unauthorized,
        GoogleError::Api { status: 404, .. } => ProviderError::NotFound,
        GoogleError::Api { status, .. } if e.is_rate_limited() || *status >= 500 || *status == 200 => {
            ProviderError::Unavailable(e.to_string())
        }
        _ => ProviderError::Refused(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(status: u16, reason: &str) -> GoogleError {
        GoogleError::Api { status, reason: reason.into(), message: String::new(), retry_after: None }
    }

    fn oauth(error: &str) -> GoogleError {
        GoogleError::OAuth { error: error.into(), description: String::new() }
    }

    #[test]
    fn google_errors_in_the_engines_terms() {
        assert!(matches!(provider_error(oauth("invalid_grant")), ProviderError::SignInRefused(_)));
        assert!(matches!(provider_error(oauth("invalid_client")), ProviderError::AppRefused(_)));
        assert!(matches!(provider_error(oauth("temporarily_unavailable")), ProviderError::Unavailable(_)));
        assert!(matches!(provider_error(oauth("invalid_request")), ProviderError::Refused(_)));
        assert_eq!(provider_error(api(401, "authError")), ProviderError::Unauthorized);
        assert_eq!(provider_error(api(404, "notFound")), ProviderError::NotFound);
        assert!(matches!(provider_error(api(403, "userRateLimitExceeded")), ProviderError::Unavailable(_)));
        assert!(matches!(provider_error(api(429, "rateLimitExceeded")), ProviderError::Unavailable(_)));
        assert!(matches!(provider_error(api(503, "backendError")), ProviderError::Unavailable(_)));
        assert!(matches!(provider_error(api(403, "insufficientPermissions")), ProviderError::Refused(_)));
        assert!(matches!(provider_error(GoogleError::Transport("timeout".into())), ProviderError::Unavailable(_)));
    }
}
