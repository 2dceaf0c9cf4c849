//! The configuration's tests: sources and their order, validation, defaults, and the docs kept
//! in step with the settings.
#![allow(clippy::result_large_err)] // figment::Jail's closures return its error type

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
    let doc = include_str!("../../../../docs/configuration.md");
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
