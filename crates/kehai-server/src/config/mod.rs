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

mod providers;
#[cfg(test)]
mod tests;
mod validate;

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
