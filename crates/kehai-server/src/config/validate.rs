//! Checking a loaded configuration: each setting that cannot be used is named, with what it must
//! be, before anything starts.

use secrecy::ExposeSecret;
use url::Url;

use super::{Config, ConfigError};

impl Config {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if !matches!(self.public_url.scheme(), "http" | "https") || self.public_url.host().is_none() {
            return Err(ConfigError(
                "setting `public_url` (KEHAI_PUBLIC_URL): must be an http:// or https:// URL".into(),
            ));
        }
        if self.database().is_none() {
            return Err(ConfigError(
                "setting `database_url` (KEHAI_DATABASE_URL): must start with postgres:// or postgresql:// \
                 (leave it unset for SQLite in the data directory)"
                    .into(),
            ));
        }
        if let Some(url) = &self.bus_url {
            let url = Url::parse(url.expose_secret()).ok();
            if !url.is_some_and(|u| matches!(u.scheme(), "nats" | "tls") && u.host().is_some()) {
                return Err(ConfigError(
                    "setting `bus_url` (KEHAI_BUS_URL): must be a nats:// or tls:// URL such as nats://127.0.0.1:4222"
                        .into(),
                ));
            }
        }
        if self.login_attempts_per_minute == 0 {
            return Err(ConfigError(
                "setting `login_attempts_per_minute` (KEHAI_LOGIN_ATTEMPTS_PER_MINUTE): must be at least 1".into(),
            ));
        }
        for (name, value) in [
            ("header_read_timeout_seconds (KEHAI_HEADER_READ_TIMEOUT_SECONDS)", self.header_read_timeout_seconds),
            ("request_timeout_seconds (KEHAI_REQUEST_TIMEOUT_SECONDS)", self.request_timeout_seconds),
            ("max_streams_per_session (KEHAI_MAX_STREAMS_PER_SESSION)", u64::from(self.max_streams_per_session)),
            ("max_event_streams (KEHAI_MAX_EVENT_STREAMS)", u64::from(self.max_event_streams)),
        ] {
            if value == 0 {
                return Err(ConfigError(format!("setting `{name}`: must be at least 1")));
            }
        }
        if self.max_guests_per_space == 0 || self.guest_joins_per_minute == 0 {
            return Err(ConfigError(
                "settings `max_guests_per_space` and `guest_joins_per_minute` (KEHAI_MAX_GUESTS_PER_SPACE, \
                 KEHAI_GUEST_JOINS_PER_MINUTE): must be at least 1 (to take no guests, turn them off in the space)"
                    .into(),
            ));
        }
        if !(10..=3540).contains(&self.ms_subscription_seconds) {
            return Err(ConfigError(
                "setting `ms_subscription_seconds` (KEHAI_MS_SUBSCRIPTION_SECONDS): must be 10 to 3540 (59 minutes)"
                    .into(),
            ));
        }
        if !(1..=86_400).contains(&self.reconcile_seconds()) {
            return Err(ConfigError(
                "setting `reconcile_seconds` (KEHAI_RECONCILE_SECONDS, formerly KEHAI_MS_RECONCILE_SECONDS): \
                 must be 1 to 86400 (a day)"
                    .into(),
            ));
        }
        if self.max_body_bytes < 1024 {
            return Err(ConfigError("setting `max_body_bytes` (KEHAI_MAX_BODY_BYTES): must be at least 1024".into()));
        }
        if self.ms_client_id.is_some() != self.ms_client_secret.is_some() {
            return Err(ConfigError(
                "settings `ms_client_id` and `ms_client_secret` (KEHAI_MS_CLIENT_ID, KEHAI_MS_CLIENT_SECRET): give both, or neither to turn the Teams integration off".into(),
            ));
        }
        for (name, url) in [
            ("ms_login_url (KEHAI_MS_LOGIN_URL)", &self.ms_login_url),
            ("ms_graph_url (KEHAI_MS_GRAPH_URL)", &self.ms_graph_url),
        ] {
            if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
                return Err(ConfigError(format!("setting `{name}`: must be an http:// or https:// URL")));
            }
        }
        if self.google_client_id.is_some() != self.google_client_secret.is_some() {
            return Err(ConfigError(
                "settings `google_client_id` and `google_client_secret` (KEHAI_GOOGLE_CLIENT_ID, \
                 KEHAI_GOOGLE_CLIENT_SECRET): give both, or neither to turn the Google Calendar integration off"
                    .into(),
            ));
        }
        for (name, url) in [
            ("google_issuer (KEHAI_GOOGLE_ISSUER)", &self.google_issuer),
            ("google_calendar_url (KEHAI_GOOGLE_CALENDAR_URL)", &self.google_calendar_url),
        ] {
            if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
                return Err(ConfigError(format!("setting `{name}`: must be an http:// or https:// URL")));
            }
        }
        if let Some(bad) = self.google_hosted_domains().into_iter().find(|d| !is_domain(d)) {
            return Err(ConfigError(format!(
                "setting `google_hosted_domains` (KEHAI_GOOGLE_HOSTED_DOMAINS): `{bad}` is not a domain \
                 (give domains such as example.com, separated by commas)"
            )));
        }
        if self.google_poll_seconds.is_some_and(|s| !(1..=86_400).contains(&s)) {
            return Err(ConfigError(
                "setting `google_poll_seconds` (KEHAI_GOOGLE_POLL_SECONDS): must be 1 to 86400 (a day)".into(),
            ));
        }
        if self.ms_tenant.trim().is_empty() || self.ms_tenant.contains('/') {
            return Err(ConfigError(
                "setting `ms_tenant` (KEHAI_MS_TENANT): a tenant id, domain or `organizations`".into(),
            ));
        }
        if self.log.trim().is_empty() {
            return Err(ConfigError("setting `log` (KEHAI_LOG): must not be empty".into()));
        }
        Ok(())
    }
}

/// A DNS name: labels of letters, digits and hyphens, at least two of them.
fn is_domain(d: &str) -> bool {
    let labels: Vec<&str> = d.split('.').collect();
    labels.len() >= 2
        && d.len() <= 253
        && labels.iter().all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        })
}
