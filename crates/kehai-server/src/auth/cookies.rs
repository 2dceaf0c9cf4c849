//! Reading and writing the few cookies kehai sets.
//!
//! Over https their names carry the `__Host-` prefix: browsers then accept them only when set
//! by this very host over https, `Secure`, for path `/` and without a `Domain` — a sibling
//! subdomain or a network attacker on plain http cannot plant a session or a CSRF seed. Over
//! http (a local demo) browsers refuse that prefix, and the plain names are used.

use axum::http::{HeaderMap, HeaderValue, header};
use cookie::{Cookie, SameSite};

/// The name the cookie `base` goes by: `__Host-<base>` over https.
pub fn name(base: &str, secure: bool) -> String {
    if secure { format!("__Host-{base}") } else { base.to_owned() }
}

/// The value of the first cookie called `name`.
pub fn get(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == name)
        .map(|c| c.value().to_owned())
}

/// A `Set-Cookie` value: HttpOnly, SameSite=Lax, path `/`, `Secure` on https.
/// `max_age: None` makes a browser-session cookie.
pub fn set(name: &str, value: &str, max_age_secs: Option<i64>, secure: bool) -> HeaderValue {
    let mut c = Cookie::build((name, value)).path("/").http_only(true).same_site(SameSite::Lax).secure(secure);
    if let Some(age) = max_age_secs {
        c = c.max_age(cookie::time::Duration::seconds(age));
    }
    HeaderValue::from_str(&c.build().to_string()).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// A `Set-Cookie` value that deletes `name`.
pub fn clear(name: &str, secure: bool) -> HeaderValue {
    set(name, "", Some(0), secure)
}
