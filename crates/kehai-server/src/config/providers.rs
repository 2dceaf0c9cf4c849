//! The presence providers' settings, as their clients take them: Microsoft Teams (`ms_*`) and
//! Google Calendar (`google_*`), with what follows from them (whether Google can push here, how
//! often a calendar is read).

use super::{Config, GooglePush};

impl Config {
    /// The Microsoft side, when the Teams integration is configured.
    pub fn microsoft(&self) -> Option<kehai_microsoft::MicrosoftConfig> {
        Some(kehai_microsoft::MicrosoftConfig {
            login_url: self.ms_login_url.clone(),
            graph_url: self.ms_graph_url.clone(),
            tenant: self.ms_tenant.clone(),
            client_id: self.ms_client_id.clone()?,
            client_secret: self.ms_client_secret.clone()?,
        })
    }

    /// The Google side, when the Google Calendar integration is configured.
    pub fn google(&self) -> Option<kehai_google::GoogleConfig> {
        Some(kehai_google::GoogleConfig {
            issuer: self.google_issuer.clone(),
            calendar_url: self.google_calendar_url.clone(),
            client_id: self.google_client_id.clone()?,
            client_secret: self.google_client_secret.clone()?,
        })
    }

    /// The Workspace domains taken (lower case); empty: any organization's.
    pub fn google_hosted_domains(&self) -> Vec<String> {
        self.google_hosted_domains.split(',').map(|d| d.trim().to_ascii_lowercase()).filter(|d| !d.is_empty()).collect()
    }

    /// Whether Google pushes calendar changes to this server: `google_push`, which by default
    /// says yes for a public https address (Google pushes to nothing else).
    pub fn google_push(&self) -> bool {
        match self.google_push {
            GooglePush::Auto => self.public_url.scheme() == "https",
            GooglePush::On => true,
            GooglePush::Off => false,
        }
    }

    /// How often a Google calendar that has no channel (Google refused or could not make one,
    /// or pushes are off) is read, in seconds: `google_poll_seconds`, by default 5 minutes.
    pub fn google_unpushed_poll_seconds(&self) -> u64 {
        self.google_poll_seconds.unwrap_or(300)
    }

    /// How often a Google calendar is read without a push, in seconds.
    pub fn google_poll_seconds(&self) -> u64 {
        self.google_poll_seconds.unwrap_or(if self.google_push() { 3600 } else { 300 })
    }
}
