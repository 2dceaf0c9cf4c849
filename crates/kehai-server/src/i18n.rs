//! Japanese and English: one catalog per language (`locales/{en,ja}.toml`), chosen per request.
//!
//! The language is, in order: a `?lang=` query (remembered in the `kehai_lang` cookie by
//! [`remember_language`]), that cookie, the browser's `Accept-Language`, else English.
//! Templates never hold UI text: they call `t.get("key")`. Strings for the page script live under
//! the `js.` keys and reach it as JSON.

use std::collections::BTreeMap;

use axum::{
    extract::{FromRequestParts, Request},
    http::{HeaderMap, HeaderValue, header, request::Parts},
    middleware::Next,
    response::Response,
};

use crate::auth::cookies;

/// A UI language.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Locale {
    En,
    Ja,
}

impl Locale {
    pub const ALL: [Locale; 2] = [Locale::En, Locale::Ja];

    pub fn code(self) -> &'static str {
        match self {
            Locale::En => "en",
            Locale::Ja => "ja",
        }
    }

    pub fn parse(s: &str) -> Option<Locale> {
        match s.trim().to_ascii_lowercase().as_str() {
            "en" => Some(Locale::En),
            "ja" => Some(Locale::Ja),
            _ => None,
        }
    }

    /// The best of our languages for an `Accept-Language` header (by q-value, then order).
    pub fn from_accept_language(header: &str) -> Option<Locale> {
        let mut best: Option<(f32, Locale)> = None;
        for item in header.split(',') {
            let mut parts = item.split(';');
            let tag = parts.next().unwrap_or("").trim();
            let q = parts.find_map(|p| p.trim().strip_prefix("q=")).and_then(|q| q.parse::<f32>().ok()).unwrap_or(1.0);
            let primary = tag.split('-').next().unwrap_or("");
            if let Some(locale) = Locale::parse(primary)
                && q > 0.0
                && best.is_none_or(|(bq, _)| q > bq)
            {
                best = Some((q, locale));
            }
        }
        best.map(|(_, l)| l)
    }
}

const COOKIE: &str = "kehai_lang";

/// What every provider says on its card (`{provider}.card.*`): the page draws each card, and its
/// script each state, with these.
pub const CARD_KEYS: &[&str] = &[
    "name",
    "what",
    "notice",
    "connect",
    "disconnect",
    "toggle",
    "needs_reconnect",
    "available",
    "now_connected",
    "now_disconnected",
    "disconnect_title",
    "disconnect_text",
];

/// What every provider says on the sign-in popup's last page (`{provider}.*`).
pub const RESULT_KEYS: &[&str] = &[
    "done_title",
    "done",
    "expired_title",
    "expired",
    "admin_title",
    "admin",
    "approved_title",
    "approved",
    "cancelled_title",
    "cancelled",
    "personal_title",
    "personal",
    "other_organization_title",
    "other_organization",
    "scope_title",
    "scope",
    "taken_title",
    "taken",
    "failed_title",
    "failed",
    "unavailable",
    "members_only_title",
    "members_only",
    "not_configured_title",
    "not_configured",
];

/// One language's strings, flattened to dotted keys.
#[derive(Debug)]
pub struct Catalog {
    pub locale: Locale,
    strings: BTreeMap<String, String>,
}

impl Catalog {
    fn parse(locale: Locale, text: &str) -> anyhow::Result<Catalog> {
        let table: toml::Table = toml::from_str(text)?;
        let mut strings = BTreeMap::new();
        flatten("", &table, &mut strings)?;
        Ok(Catalog { locale, strings })
    }

    /// The string for `key`. A missing key shows as the key itself (a test forbids them).
    pub fn get<'a>(&'a self, key: &'a str) -> &'a str {
        self.strings.get(key).map(String::as_str).unwrap_or(key)
    }

    /// `get` with `{name}` placeholders filled in.
    pub fn fill(&self, key: &str, args: &[(&str, &str)]) -> String {
        args.iter().fold(self.get(key).to_owned(), |s, (k, v)| s.replace(&format!("{{{k}}}"), v))
    }

    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.strings.keys().map(String::as_str)
    }

    /// The strings of the page script (`js.*`), without the prefix.
    pub fn script_strings(&self) -> BTreeMap<&str, &str> {
        self.section("js")
    }

    /// The strings under `prefix.` (`msteams.card`), by the rest of their key.
    pub fn section(&self, prefix: &str) -> BTreeMap<&str, &str> {
        let prefix = format!("{prefix}.");
        self.strings.iter().filter_map(|(k, v)| k.strip_prefix(prefix.as_str()).map(|k| (k, v.as_str()))).collect()
    }
}

fn flatten(prefix: &str, table: &toml::Table, out: &mut BTreeMap<String, String>) -> anyhow::Result<()> {
    for (k, v) in table {
        let key = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
        match v {
            toml::Value::String(s) => {
                out.insert(key, s.clone());
            }
            toml::Value::Table(t) => flatten(&key, t, out)?,
            _ => anyhow::bail!("catalog key {key} is not a string"),
        }
    }
    Ok(())
}

/// Both catalogs, loaded once at start-up.
#[derive(Debug)]
pub struct Catalogs {
    en: Catalog,
    ja: Catalog,
}

impl Catalogs {
    pub fn load() -> anyhow::Result<Catalogs> {
        Ok(Catalogs {
            en: Catalog::parse(Locale::En, include_str!("../locales/en.toml"))?,
            ja: Catalog::parse(Locale::Ja, include_str!("../locales/ja.toml"))?,
        })
    }

    pub fn get(&self, locale: Locale) -> &Catalog {
        match locale {
            Locale::En => &self.en,
            Locale::Ja => &self.ja,
        }
    }
}

/// The language of this request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lang(pub Locale);

fn query_lang(parts: &Parts) -> Option<Locale> {
    parts.uri.query()?.split('&').find_map(|kv| kv.strip_prefix("lang=")).and_then(Locale::parse)
}

fn choose(parts: &Parts) -> Locale {
    query_lang(parts)
        .or_else(|| cookies::get(&parts.headers, COOKIE).and_then(|v| Locale::parse(&v)))
        .or_else(|| {
            parts
                .headers
                .get(header::ACCEPT_LANGUAGE)
                .and_then(|v| v.to_str().ok())
                .and_then(Locale::from_accept_language)
        })
        .unwrap_or(Locale::En)
}

impl<S: Send + Sync> FromRequestParts<S> for Lang {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Lang(choose(parts)))
    }
}

/// Middleware: a `?lang=` choice is remembered for a year.
pub async fn remember_language(
    axum::extract::State(state): axum::extract::State<crate::state::AppState>,
    req: Request,
    next: Next,
) -> Response {
    let (parts, body) = req.into_parts();
    let chosen = query_lang(&parts);
    let mut response = next.run(Request::from_parts(parts, body)).await;
    if let Some(locale) = chosen {
        let cookie = cookies::set(COOKIE, locale.code(), Some(365 * 24 * 3600), state.config.secure_cookies());
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    response
}

/// The `Vary` a language-dependent page needs.
pub fn vary(headers: &mut HeaderMap) {
    headers.append(header::VARY, HeaderValue::from_static("Accept-Language, Cookie"));
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    #[test]
    fn accept_language() {
        assert_eq!(Locale::from_accept_language("ja-JP,ja;q=0.9,en;q=0.8"), Some(Locale::Ja));
        assert_eq!(Locale::from_accept_language("en-US,en;q=0.9,ja;q=0.8"), Some(Locale::En));
        assert_eq!(Locale::from_accept_language("fr;q=1, ja;q=0.5, en;q=0.7"), Some(Locale::En));
        assert_eq!(Locale::from_accept_language("fr, de"), None);
        assert_eq!(Locale::from_accept_language("ja;q=0"), None);
    }

    /// Every provider kehai knows has its card's strings, its result pages' and its notice, in
    /// every language.
    #[test]
    fn every_provider_speaks_both_languages() {
        let c = Catalogs::load().expect("catalogs parse");
        let clock: std::sync::Arc<dyn crate::clock::Clock> = std::sync::Arc::new(crate::clock::SystemClock);
        let known = crate::providers::known(&crate::Config::default(), &crate::ops::Metrics::new(), &clock);
        assert!(!known.is_empty());
        for locale in Locale::ALL {
            let t = c.get(locale);
            for provider in &known {
                let card = t.section(&format!("{}.card", provider.id));
                for key in CARD_KEYS {
                    assert!(card.contains_key(key), "{} has no {}.card.{key} in {locale:?}", provider.id, provider.id);
                }
                for key in RESULT_KEYS {
                    let key = format!("{}.{key}", provider.id);
                    assert!(t.strings.contains_key(&key), "no {key} in {locale:?}");
                }
            }
        }
    }

    #[test]
    fn catalogs_have_the_same_keys() {
        let c = Catalogs::load().expect("catalogs parse");
        let en: BTreeSet<_> = c.get(Locale::En).keys().collect();
        let ja: BTreeSet<_> = c.get(Locale::Ja).keys().collect();
        assert_eq!(en.difference(&ja).collect::<Vec<_>>(), Vec::<&&str>::new(), "missing in ja");
        assert_eq!(ja.difference(&en).collect::<Vec<_>>(), Vec::<&&str>::new(), "missing in en");
    }

    /// Every `t.get("…")` / `t.fill("…")` in the templates and every `strings.X` use in the page
    /// scripts names a key that exists.
    #[test]
    fn templates_and_scripts_use_only_existing_keys() {
        let c = Catalogs::load().expect("catalogs parse");
        let en = c.get(Locale::En);
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/templates");
        let mut used = 0;
        for entry in std::fs::read_dir(dir).expect("templates dir") {
            let text = std::fs::read_to_string(entry.expect("entry").path()).expect("template");
            for marker in ["t.get(\"", "t.fill(\""] {
                for (i, _) in text.match_indices(marker) {
                    let rest = &text[i + marker.len()..];
                    let key = &rest[..rest.find('"').expect("closing quote")];
                    assert!(en.keys().any(|k| k == key), "template uses unknown key {key}");
                    used += 1;
                }
            }
        }
        // The page's modules ask for their strings with t('key'), a provider's with
        // providerWords(provider, 'key'), and errors' with errorWords(code).
        let js: Vec<_> = c.get(Locale::En).script_strings().into_keys().collect();
        let card = [CARD_KEYS, &["not_configured"]].concat();
        for (module, script) in crate::pages::assets::SPACE_MODULES {
            for (i, _) in script.match_indices("t('") {
                // Only calls of t itself, not querySelector('…') and the like.
                if script[..i].ends_with(|c: char| c.is_alphanumeric() || c == '_' || c == '.') {
                    continue;
                }
                let rest = &script[i + 3..];
                let key = &rest[..rest.find('\'').expect("closing quote")];
                assert!(js.contains(&key), "{module} uses unknown key {key}");
                used += 1;
            }
            for (i, _) in script.match_indices("providerWords(provider, '") {
                let rest = &script[i + "providerWords(provider, '".len()..];
                let key = &rest[..rest.find('\'').expect("closing quote")];
                assert!(card.contains(&key), "{module} uses a provider's {key}, which providers need not have");
                used += 1;
            }
        }
        assert!(used > 20, "the scan found only {used} keys: is it still looking at the right syntax?");
    }
}
