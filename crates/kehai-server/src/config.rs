//! Typed configuration, validated once at start-up.
//!
//! Sources, later ones winning: built-in defaults < `kehai.toml` in the working directory (or
//! the file given with `--config`) < `KEHAI_*` environment variables. Every field is documented
//! here and listed in `docs/configuration.md`; a test keeps the two in step.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
};

use figment::{
    Figment,
    providers::{Env, Format, Serialized, Toml},
};
use kehai_store::Database;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use url::Url;

/// All of kehai's settings.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `KEHAI_LISTEN`: the address the HTTP server binds.
    pub listen: SocketAddr,
    /// `KEHAI_PUBLIC_URL`: how browsers (and later Microsoft) reach this server. Decides whether
    /// cookies are `Secure` (https) and is the base of OAuth redirect and webhook URLs.
    pub public_url: Url,
    /// `KEHAI_DATABASE_URL`: `postgres://…` to use PostgreSQL; unset means SQLite in the data
    /// directory.
    #[serde(skip_serializing)]
    pub database_url: Option<SecretString>,
    /// `KEHAI_BUS_URL`: `nats://host:port` (or `tls://…`) of the NATS server that carries live
    /// updates between several kehai instances. Unset: one instance, updates stay in the process.
    #[serde(skip_serializing)]
    pub bus_url: Option<SecretString>,
    /// `KEHAI_SECRET_KEY`: the master key sealing tokens at rest (base64 of 32 bytes). Unset:
    /// `<data dir>/secret.key`, created on first start with mode 0600.
    #[serde(skip_serializing)]
    pub secret_key: Option<SecretString>,
    /// `KEHAI_MS_CLIENT_ID`: the application (client) id of kehai's Microsoft Entra app
    /// registration. Without it (and the secret) the Teams integration is off.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ms_client_id: Option<String>,
    /// `KEHAI_MS_CLIENT_SECRET`: that app registration's client secret.
    #[serde(skip_serializing)]
    pub ms_client_secret: Option<SecretString>,
    /// `KEHAI_MS_LOGIN_URL`: the Microsoft identity platform.
    pub ms_login_url: Url,
    /// `KEHAI_MS_GRAPH_URL`: Microsoft Graph.
    pub ms_graph_url: Url,
    /// `KEHAI_MS_TENANT`: `organizations` (work and school accounts of any organization), or one
    /// tenant's id or domain to admit only that organization.
    pub ms_tenant: String,
    /// `KEHAI_MS_NOTIFICATIONS`: `rich` (the presence arrives encrypted in the notification)
    /// or `basic` (the notification only says that it changed; kehai then reads it from Graph).
    pub ms_notifications: NotificationMode,
    /// `KEHAI_MS_SUBSCRIPTION_SECONDS`: how long presence subscriptions are made and renewed for
    /// (Graph allows at most an hour; each connection's are asked for up to a twelfth shorter, and
    /// renewed a sixth of it ahead of their end).
    pub ms_subscription_seconds: u64,
    /// `KEHAI_GOOGLE_CLIENT_ID`: the OAuth client id of kehai's Google Cloud project. Without it
    /// (and the secret) the Google Calendar integration is off.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub google_client_id: Option<String>,
    /// `KEHAI_GOOGLE_CLIENT_SECRET`: that OAuth client's secret.
    #[serde(skip_serializing)]
    pub google_client_secret: Option<SecretString>,
    /// `KEHAI_GOOGLE_ISSUER`: Google's OpenID Connect issuer; every OAuth endpoint is taken from
    /// its discovery document.
    pub google_issuer: Url,
    /// `KEHAI_GOOGLE_CALENDAR_URL`: the Google Calendar API v3.
    pub google_calendar_url: Url,
    /// `KEHAI_GOOGLE_HOSTED_DOMAINS`: the Google Workspace domains whose accounts may connect,
    /// comma-separated; empty: any Workspace (or Cloud Identity) organization's.
    pub google_hosted_domains: String,
    /// `KEHAI_GOOGLE_ALLOW_PERSONAL`: also take personal Google accounts (without an
    /// organization: `@gmail.com` and the like).
    pub google_allow_personal: bool,
    /// `KEHAI_GOOGLE_PUSH`: whether kehai asks Google to push calendar changes to
    /// `{public_url}/webhooks/gcal`: `auto` (when the public URL is https — Google pushes only
    /// to https addresses with a valid certificate), `on` (always: an emulator, a proxy that
    /// terminates https elsewhere) or `off` (never: calendars are polled).
    pub google_push: GooglePush,
    /// `KEHAI_GOOGLE_POLL_SECONDS`: how often a Google calendar is read without being told of a
    /// change — the safety read beside push channels, or the only reads without them. Unset: an
    /// hour with push channels (an https public URL), 5 minutes without.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub google_poll_seconds: Option<u64>,
    /// `KEHAI_RECONCILE_SECONDS`: how often every connected presence is read again, to catch
    /// changes a provider never delivered (by one instance of several).
    pub reconcile_seconds: u64,
    /// `KEHAI_MS_RECONCILE_SECONDS`: the former name of `reconcile_seconds`, still read; when it
    /// is given, it is the period (giving both, they must agree).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ms_reconcile_seconds: Option<u64>,
    /// `KEHAI_DATA_DIR`: where kehai keeps its files (the SQLite database, keys).
    pub data_dir: PathBuf,
    /// `KEHAI_LOG_FORMAT`: `pretty` for people, `json` for log collectors.
    pub log_format: LogFormat,
    /// `KEHAI_LOG`: which logs to write, in `tracing` filter syntax (`info`, `kehai=debug`, …).
    pub log: String,
    /// `KEHAI_LOGIN_ATTEMPTS_PER_MINUTE`: login attempts (and guest joins) allowed per client
    /// network each minute, and failed passwords per email address, before answers become 429.
    pub login_attempts_per_minute: u32,
    /// `KEHAI_MAX_GUESTS_PER_SPACE`: guests that may be in one space at once; more are told the
    /// space is full until some leave.
    pub max_guests_per_space: u32,
    /// `KEHAI_GUEST_JOINS_PER_MINUTE`: guest joins one space takes each minute, from everyone
    /// together (each client network is limited too, by `login_attempts_per_minute`).
    pub guest_joins_per_minute: u32,
    /// `KEHAI_TRUST_FORWARDED_FOR`: behind a reverse proxy, take the client address (for login
    /// rate limits) from the last `X-Forwarded-For` entry. Only set it when a proxy you run
    /// always sets that header, or clients could choose their own address.
    pub trust_forwarded_for: bool,
    /// `KEHAI_MAX_BODY_BYTES`: the largest request body accepted.
    pub max_body_bytes: usize,
    /// `KEHAI_SHUTDOWN_GRACE_SECONDS`: how long in-flight requests may take to finish after
    /// SIGTERM/SIGINT before the process exits anyway.
    pub shutdown_grace_seconds: u64,
    /// `KEHAI_HEADER_READ_TIMEOUT_SECONDS`: how long a connection may take to send a request's
    /// headers before it is dropped (slow clients cannot hold connections open).
    pub header_read_timeout_seconds: u64,
    /// `KEHAI_REQUEST_TIMEOUT_SECONDS`: how long a request (its body included) may take to be
    /// answered before it is cut off with 408; event streams are not held to it.
    pub request_timeout_seconds: u64,
    /// `KEHAI_MAX_STREAMS_PER_SESSION`: pages one session may hold open at once; opening another
    /// closes the oldest (which says why).
    pub max_streams_per_session: u32,
    /// `KEHAI_MAX_EVENT_STREAMS`: pages this instance keeps open at once, from everyone; beyond
    /// it a page is answered 503 and tries again.
    pub max_event_streams: u32,
    /// `KEHAI_HSTS_MAX_AGE_SECONDS`: with an https public URL, how long browsers are told to
    /// reach kehai over https only (`Strict-Transport-Security`); 0 sends no such header.
    pub hsts_max_age_seconds: u64,
}

/// What Graph's presence notifications carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NotificationMode {
    /// Resource data encrypted for kehai's certificate: no Graph read per change.
    Rich,
    /// No resource data: every notification is followed by a presence read.
    Basic,
}

/// Whether Google pushes calendar changes ([`Config::google_push`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GooglePush {
    Auto,
    On,
    Off,
}

/// How logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Pretty,
    Json,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            public_url: Url::parse("http://127.0.0.1:8080").expect("constant URL"),
            database_url: None,
            bus_url: None,
            secret_key: None,
            ms_client_id: None,
            ms_client_secret: None,
            ms_login_url: Url::parse("https://login.microsoftonline.com").expect("constant URL"),
            ms_graph_url: Url::parse("https://graph.microsoft.com").expect("constant URL"),
            ms_tenant: "organizations".to_owned(),
            ms_notifications: NotificationMode::Rich,
            ms_subscription_seconds: 3540,
            google_client_id: None,
            google_client_secret: None,
            google_issuer: Url::parse(kehai_google::GOOGLE_ISSUER).expect("constant URL"),
            google_calendar_url: Url::parse("https://www.googleapis.com/calendar/v3").expect("constant URL"),
            google_hosted_domains: String::new(),
            google_allow_personal: false,
            google_push: GooglePush::Auto,
            google_poll_seconds: None,
            reconcile_seconds: 300,
            ms_reconcile_seconds: None,
            data_dir: PathBuf::from("./data"),
            log_format: LogFormat::Pretty,
            log: "info".to_owned(),
            login_attempts_per_minute: 10,
            max_guests_per_space: 50,
            guest_joins_per_minute: 30,
            trust_forwarded_for: false,
            max_body_bytes: 64 * 1024,
            shutdown_grace_seconds: 10,
            header_read_timeout_seconds: 10,
            request_timeout_seconds: 30,
            max_streams_per_session: 8,
            max_event_streams: 20_000,
            hsts_max_age_seconds: 31_536_000,
        }
    }
}

/// The setting names, as in the file and after `KEHAI_` in the environment.
pub const SETTINGS: &[&str] = &[
    "listen",
    "public_url",
    "database_url",
    "bus_url",
    "secret_key",
    "ms_client_id",
    "ms_client_secret",
    "ms_login_url",
    "ms_graph_url",
    "ms_tenant",
    "ms_notifications",
    "ms_subscription_seconds",
    "google_client_id",
    "google_client_secret",
    "google_issuer",
    "google_calendar_url",
    "google_hosted_domains",
    "google_allow_personal",
    "google_push",
    "google_poll_seconds",
    "reconcile_seconds",
    "ms_reconcile_seconds",
    "data_dir",
    "log_format",
    "log",
    "login_attempts_per_minute",
    "max_guests_per_space",
    "guest_joins_per_minute",
    "trust_forwarded_for",
    "max_body_bytes",
    "shutdown_grace_seconds",
    "header_read_timeout_seconds",
    "request_timeout_seconds",
    "max_streams_per_session",
    "max_event_streams",
    "hsts_max_age_seconds",
];

/// One figment error in words that name the setting.
fn describe(e: &figment::Error) -> String {
    use figment::error::Kind;
    match &e.kind {
        // Unknown keys are reported with an empty path: the key is in the kind.
        Kind::UnknownField(key, _) => format!("unknown setting `{key}`"),
        kind => {
            let key = e.path.join(".");
            format!("setting `{key}` (KEHAI_{}): {kind}", key.to_uppercase())
        }
    }
}

/// `http://` plus the listen address, with a wildcard address read as this machine.
fn url_of(listen: SocketAddr) -> Url {
    let host = match listen.ip() {
        ip if ip.is_unspecified() => std::net::IpAddr::from([127, 0, 0, 1]),
        ip => ip,
    };
    Url::parse(&format!("http://{}", SocketAddr::new(host, listen.port())))
        .unwrap_or_else(|_| Config::default().public_url)
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

/// A configuration that cannot be used; the message names the setting.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {0}")]
pub struct ConfigError(String);

impl Config {
    /// Loads defaults, then `file` (or `./kehai.toml` if it exists), then `KEHAI_*` variables.
    /// A `file` given explicitly must exist.
    pub fn load(file: Option<&Path>) -> Result<Config, ConfigError> {
        // What the operator said, without the defaults (to know what they left out).
        let mut given = Figment::new();
        match file {
            Some(path) if !path.is_file() => {
                return Err(ConfigError(format!("configuration file {} does not exist", path.display())));
            }
            Some(path) => given = given.merge(Toml::file_exact(path)),
            None if Path::new("kehai.toml").is_file() => given = given.merge(Toml::file_exact("kehai.toml")),
            None => {}
        }
        // Other KEHAI_* variables (KEHAI_TEST_POSTGRES_URL, …) belong to other programs.
        given = given.merge(Env::prefixed("KEHAI_").filter(|key| SETTINGS.iter().any(|s| key == *s)));
        let derive_public_url = !given.contains("public_url");
        let reconcile_given = given.contains("reconcile_seconds");
        let mut config: Config = Figment::from(Serialized::defaults(Config::default()))
            .merge(given)
            .extract()
            .map_err(|errors| ConfigError(errors.into_iter().map(|e| describe(&e)).collect::<Vec<_>>().join("; ")))?;
        if derive_public_url {
            // Only the address changed: the server is reached there, not at the default URL.
            config.public_url = url_of(config.listen);
        }
        if let Some(old) = config.ms_reconcile_seconds
            && reconcile_given
            && old != config.reconcile_seconds
        {
            return Err(ConfigError(
                "settings `reconcile_seconds` and `ms_reconcile_seconds` (KEHAI_RECONCILE_SECONDS, \
                 KEHAI_MS_RECONCILE_SECONDS): the second is the first's former name; give one"
                    .into(),
            ));
        }
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
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

    /// The database this configuration names; `None` if `database_url` is not a PostgreSQL URL.
    pub fn database(&self) -> Option<Database> {
        match &self.database_url {
            None => Some(Database::Sqlite(self.data_dir.join("kehai.db"))),
            Some(url) => {
                let url = url.expose_secret();
                (url.starts_with("postgres://") || url.starts_with("postgresql://"))
                    .then(|| Database::Postgres(url.to_owned()))
            }
        }
    }

    /// How often every connected presence is read again, in seconds: `reconcile_seconds`, or its
    /// former name `ms_reconcile_seconds` when that is given.
    pub fn reconcile_seconds(&self) -> u64 {
        self.ms_reconcile_seconds.unwrap_or(self.reconcile_seconds)
    }

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

    /// Whether cookies must carry `Secure`.
    pub fn secure_cookies(&self) -> bool {
        self.public_url.scheme() == "https"
    }

    /// The `Strict-Transport-Security` value to send: only when browsers reach kehai over https
    /// (over http a browser ignores it, and a local demo must stay reachable).
    pub fn strict_transport_security(&self) -> Option<String> {
        (self.secure_cookies() && self.hsts_max_age_seconds > 0)
            .then(|| format!("max-age={}", self.hsts_max_age_seconds))
    }
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("listen", &self.listen)
            .field("public_url", &self.public_url.as_str())
            .field("database", &self.database())
            .field("secret_key", &self.secret_key.as_ref().map(|_| "<redacted>"))
            .field("ms_client_id", &self.ms_client_id)
            .field("ms_client_secret", &self.ms_client_secret.as_ref().map(|_| "<redacted>"))
            .field("ms_login_url", &self.ms_login_url.as_str())
            .field("ms_graph_url", &self.ms_graph_url.as_str())
            .field("ms_tenant", &self.ms_tenant)
            .field("ms_notifications", &self.ms_notifications)
            .field("ms_subscription_seconds", &self.ms_subscription_seconds)
            .field("google_client_id", &self.google_client_id)
            .field("google_client_secret", &self.google_client_secret.as_ref().map(|_| "<redacted>"))
            .field("google_issuer", &self.google_issuer.as_str())
            .field("google_calendar_url", &self.google_calendar_url.as_str())
            .field("google_hosted_domains", &self.google_hosted_domains)
            .field("google_allow_personal", &self.google_allow_personal)
            .field("google_push", &self.google_push())
            .field("google_poll_seconds", &self.google_poll_seconds())
            .field("reconcile_seconds", &self.reconcile_seconds())
            .field("data_dir", &self.data_dir)
            .field("log_format", &self.log_format)
            .field("log", &self.log)
            .field("login_attempts_per_minute", &self.login_attempts_per_minute)
            .field("trust_forwarded_for", &self.trust_forwarded_for)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("shutdown_grace_seconds", &self.shutdown_grace_seconds)
            .finish()
    }
}

#[cfg(test)]
#[allow(clippy::result_large_err)] // figment::Jail's closures return its error type
mod tests {
    use figment::Jail;

    use super::*;

    #[test]
    fn defaults_then_file_then_environment() {
        Jail::expect_with(|jail| {
            let c = Config::load(None).expect("defaults load");
            assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
            assert_eq!(c.public_url.as_str(), "http://127.0.0.1:8080/");
            assert_eq!(c.database(), Some(Database::Sqlite(PathBuf::from("./data/kehai.db"))));
            assert_eq!(c.log_format, LogFormat::Pretty);

            jail.create_file("kehai.toml", "listen = \"127.0.0.1:9000\"\nlog_format = \"json\"\n")?;
            let c = Config::load(None).expect("file loads");
            assert_eq!(c.listen.port(), 9000);
            assert_eq!(c.log_format, LogFormat::Json);

            jail.set_env("KEHAI_LISTEN", "127.0.0.1:9100");
            jail.set_env("KEHAI_TEST_POSTGRES_URL", "postgres://ignored");
            let c = Config::load(None).expect("env loads");
            assert_eq!(c.listen.port(), 9100, "environment beats the file");
            assert_eq!(c.public_url.as_str(), "http://127.0.0.1:9100/", "derived from listen when not given");
            jail.set_env("KEHAI_LISTEN", "0.0.0.0:9200");
            assert_eq!(Config::load(None).expect("loads").public_url.as_str(), "http://127.0.0.1:9200/");
            jail.set_env("KEHAI_PUBLIC_URL", "https://kehai.example");
            assert_eq!(Config::load(None).expect("loads").public_url.as_str(), "https://kehai.example/");
            assert_eq!(c.log_format, LogFormat::Json, "file beats the defaults");
            Ok(())
        });
    }

    #[test]
    fn explicit_file_must_exist() {
        Jail::expect_with(|_| {
            let err = Config::load(Some(Path::new("missing.toml"))).unwrap_err().to_string();
            assert!(err.contains("missing.toml"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn invalid_settings_are_named() {
        for (var, value, named) in [
            ("KEHAI_LISTEN", "not an address", "KEHAI_LISTEN"),
            ("KEHAI_PUBLIC_URL", "ftp://x", "KEHAI_PUBLIC_URL"),
            ("KEHAI_PUBLIC_URL", "nope", "KEHAI_PUBLIC_URL"),
            ("KEHAI_DATABASE_URL", "mysql://x", "KEHAI_DATABASE_URL"),
            ("KEHAI_BUS_URL", "redis://127.0.0.1:6379", "KEHAI_BUS_URL"),
            ("KEHAI_BUS_URL", "127.0.0.1:4222", "KEHAI_BUS_URL"),
            ("KEHAI_LOG_FORMAT", "xml", "KEHAI_LOG_FORMAT"),
            ("KEHAI_LOGIN_ATTEMPTS_PER_MINUTE", "0", "KEHAI_LOGIN_ATTEMPTS_PER_MINUTE"),
            ("KEHAI_MS_CLIENT_ID", "only-the-id", "KEHAI_MS_CLIENT_SECRET"),
            ("KEHAI_MS_LOGIN_URL", "ftp://x", "KEHAI_MS_LOGIN_URL"),
            ("KEHAI_MS_RECONCILE_SECONDS", "0", "KEHAI_MS_RECONCILE_SECONDS"),
            ("KEHAI_RECONCILE_SECONDS", "0", "KEHAI_RECONCILE_SECONDS"),
            ("KEHAI_GOOGLE_CLIENT_SECRET", "only-the-secret", "KEHAI_GOOGLE_CLIENT_ID"),
            ("KEHAI_GOOGLE_ISSUER", "accounts.google.com", "KEHAI_GOOGLE_ISSUER"),
            ("KEHAI_GOOGLE_HOSTED_DOMAINS", "example.com, not a domain", "KEHAI_GOOGLE_HOSTED_DOMAINS"),
            ("KEHAI_GOOGLE_POLL_SECONDS", "0", "KEHAI_GOOGLE_POLL_SECONDS"),
            ("KEHAI_GOOGLE_ALLOW_PERSONAL", "perhaps", "KEHAI_GOOGLE_ALLOW_PERSONAL"),
            ("KEHAI_GOOGLE_PUSH", "sometimes", "KEHAI_GOOGLE_PUSH"),
        ] {
            Jail::expect_with(|jail| {
                jail.set_env(var, value);
                let err = Config::load(None).unwrap_err().to_string();
                assert!(err.contains(named), "{var}={value}: {err}");
                Ok(())
            });
        }
    }

    /// Google's settings: domains read as a list, the poll interval by whether Google can push.
    #[test]
    fn google_settings_have_their_defaults_and_are_read() {
        Jail::expect_with(|jail| {
            let c = Config::load(None).expect("defaults");
            assert!(c.google().is_none(), "off without a client");
            assert_eq!(c.google_poll_seconds(), 300, "http: no push, polled every 5 minutes");
            jail.set_env("KEHAI_PUBLIC_URL", "https://kehai.example.com");
            assert_eq!(Config::load(None).expect("https").google_poll_seconds(), 3600, "pushed: an hourly safety read");
            jail.set_env("KEHAI_GOOGLE_PUSH", "off");
            assert!(!Config::load(None).expect("off").google_push(), "an operator behind NAT turns it off");
            jail.set_env("KEHAI_GOOGLE_PUSH", "on");
            jail.set_env("KEHAI_GOOGLE_POLL_SECONDS", "120");
            jail.set_env("KEHAI_GOOGLE_CLIENT_ID", "id.apps.googleusercontent.com");
            jail.set_env("KEHAI_GOOGLE_CLIENT_SECRET", "s3cret-google");
            jail.set_env("KEHAI_GOOGLE_HOSTED_DOMAINS", " Example.com,example.co.jp ,");
            jail.set_env("KEHAI_GOOGLE_ALLOW_PERSONAL", "true");
            let c = Config::load(None).expect("configured");
            assert_eq!(c.google_poll_seconds(), 120);
            assert_eq!(c.google_hosted_domains(), ["example.com", "example.co.jp"]);
            assert!(c.google_allow_personal);
            assert_eq!(c.google().expect("on").issuer.as_str(), "https://accounts.google.com/");
            assert!(!format!("{c:?}").contains("s3cret-google"), "Debug hides the secret");
            Ok(())
        });
    }

    /// The reconciliation's period has the engine's name; its former, Microsoft-only name is
    /// still read, from the file and the environment.
    #[test]
    fn the_reconciliation_period_is_read_under_both_names() {
        Jail::expect_with(|jail| {
            assert_eq!(Config::load(None).expect("defaults").reconcile_seconds(), 300);
            jail.set_env("KEHAI_MS_RECONCILE_SECONDS", "120");
            assert_eq!(Config::load(None).expect("the former name").reconcile_seconds(), 120);
            jail.set_env("KEHAI_RECONCILE_SECONDS", "120");
            assert_eq!(Config::load(None).expect("both, agreeing").reconcile_seconds(), 120);
            jail.set_env("KEHAI_RECONCILE_SECONDS", "60");
            let err = Config::load(None).unwrap_err().to_string();
            assert!(err.contains("give one"), "{err}");
            Ok(())
        });
        Jail::expect_with(|jail| {
            jail.create_file("kehai.toml", "reconcile_seconds = 45\n")?;
            assert_eq!(Config::load(None).expect("the file").reconcile_seconds(), 45);
            jail.create_file("kehai.toml", "ms_reconcile_seconds = 46\n")?;
            assert_eq!(Config::load(None).expect("the former name in the file").reconcile_seconds(), 46);
            Ok(())
        });
    }

    #[test]
    fn unknown_keys_in_the_file_are_refused() {
        Jail::expect_with(|jail| {
            jail.create_file("kehai.toml", "lisen = \"127.0.0.1:1\"\n")?;
            let err = Config::load(None).unwrap_err().to_string();
            assert!(err.contains("unknown setting `lisen`"), "{err}");
            Ok(())
        });
    }

    /// `docs/configuration.md` lists every setting with its default.
    #[test]
    fn configuration_doc_lists_every_setting() {
        let doc = include_str!("../../../docs/configuration.md");
        let defaults = serde_json::to_value(Config::default()).expect("serializes");
        for key in SETTINGS {
            let row = doc
                .lines()
                .find(|l| l.starts_with(&format!("| `KEHAI_{}` | `{key}` |", key.to_uppercase())))
                .unwrap_or_else(|| panic!("docs/configuration.md has no row for {key}"));
            let default = match &defaults.get(key).cloned().unwrap_or_default() {
                serde_json::Value::Null => "*(unset)*".to_owned(),
                serde_json::Value::String(s) => format!("`{}`", s.trim_end_matches('/')),
                other => format!("`{other}`"),
            };
            assert!(row.contains(&default), "the row of {key} does not give the default {default}: {row}");
        }
        assert_eq!(doc.matches("| `KEHAI_").count(), SETTINGS.len(), "the doc lists a setting that does not exist");
    }

    /// A field missing from `SETTINGS` would be silently ignored in the environment.
    #[test]
    fn settings_lists_every_field() {
        let serialized = serde_json::to_value(Config::default()).expect("serializes");
        let mut fields: Vec<&str> = serialized.as_object().expect("object").keys().map(String::as_str).collect();
        fields.push("database_url"); // never serialized: it may hold a password
        fields.push("bus_url"); // never serialized: it may hold a password
        fields.push("secret_key"); // never serialized: it is a key
        fields.push("ms_client_id"); // not serialized when unset
        fields.push("ms_reconcile_seconds"); // not serialized when unset (the former name)
        fields.push("ms_client_secret"); // never serialized: it is a secret
        fields.push("google_client_id"); // not serialized when unset
        fields.push("google_client_secret"); // never serialized: it is a secret
        fields.push("google_poll_seconds"); // not serialized when unset
        fields.sort_unstable();
        let mut listed = SETTINGS.to_vec();
        listed.sort_unstable();
        assert_eq!(fields, listed);
    }

    #[test]
    fn debug_hides_the_database_password() {
        Jail::expect_with(|jail| {
            jail.set_env("KEHAI_DATABASE_URL", "postgres://kehai:hunter2secret@db/kehai");
            let c = Config::load(None).expect("loads");
            assert!(!format!("{c:?}").contains("hunter2secret"));
            Ok(())
        });
    }
}
