//! What the client tells its user about every call to Google: the server counts them in its
//! metrics. Labels are stable names (never a URL, a user or a token).

/// Told of the calls kehai makes to Google.
pub trait Observer: Send + Sync + std::fmt::Debug {
    /// Every Calendar request, retries included: its operation (`free_busy`, `status_events`,
    /// `watch`, `stop`) and the HTTP status (`None`: no answer).
    fn calendar_call(&self, operation: &'static str, status: Option<u16>);
    /// Every token call, once it has ended (after its retries): its grant (`authorization_code`,
    /// `refresh_token`) and outcome (`ok`, the OAuth error code such as `invalid_grant`, or
    /// `unavailable`).
    fn token_call(&self, grant: &'static str, outcome: &str);
}

/// Tells nobody.
#[derive(Debug, Default)]
pub struct Unobserved;

impl Observer for Unobserved {
    fn calendar_call(&self, _: &'static str, _: Option<u16>) {}
    fn token_call(&self, _: &'static str, _: &str) {}
}
