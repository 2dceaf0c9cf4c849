//! An identity provider's signing keys (its JSON Web Key Set), fetched when first needed and
//! kept; fetched again when a token names a key the set does not have (providers rotate their
//! keys). The id tokens checked with them come from the provider's token endpoint, never from a
//! visitor, so an unknown key id is a rotation, not an attack, and is always looked for.

use jsonwebtoken::DecodingKey;
use serde::Deserialize;
use serde_json::Value;
use tokio::sync::Mutex;

/// Why no key could be had.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The set could not be fetched or read.
    #[error("cannot fetch the signing keys: {0}")]
    Unavailable(String),
    /// The set has no usable RSA key with that id.
    #[error("signed with an unknown key {0}")]
    Unknown(String),
}

#[derive(Debug, Clone, Deserialize)]
struct Jwk {
    kid: String,
    n: String,
    e: String,
}

/// The keys published at one `jwks_uri`.
#[derive(Debug)]
pub struct KeySet {
    http: reqwest::Client,
    uri: String,
    keys: Mutex<Vec<Jwk>>,
}

impl KeySet {
    pub fn new(http: reqwest::Client, jwks_uri: impl Into<String>) -> Self {
        KeySet { http, uri: jwks_uri.into(), keys: Mutex::default() }
    }

    /// The RSA key `kid`.
    pub async fn key(&self, kid: &str) -> Result<DecodingKey, KeyError> {
        let mut keys = self.keys.lock().await;
        if !keys.iter().any(|k| k.kid == kid) {
            *keys = self.fetch().await?;
        }
        let key = keys.iter().find(|k| k.kid == kid).ok_or_else(|| KeyError::Unknown(kid.to_owned()))?;
        DecodingKey::from_rsa_components(&key.n, &key.e).map_err(|e| KeyError::Unknown(format!("{kid} ({e})")))
    }

    async fn fetch(&self) -> Result<Vec<Jwk>, KeyError> {
        #[derive(Deserialize)]
        struct Jwks {
            keys: Vec<Value>,
        }
        let unavailable = |e: reqwest::Error| KeyError::Unavailable(e.without_url().to_string());
        let response = self.http.get(&self.uri).send().await.map_err(unavailable)?;
        if !response.status().is_success() {
            return Err(KeyError::Unavailable(format!("the key set answered {}", response.status())));
        }
        let jwks: Jwks = response.json().await.map_err(unavailable)?;
        // Keys of other types (or without n/e) are not ours to use.
        Ok(jwks.keys.into_iter().filter_map(|k| serde_json::from_value(k).ok()).collect())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    };

    use axum::{Json, Router, routing::get};
    use serde_json::json;

    use super::*;

    // A real RSA public key's modulus and exponent (RFC 7517, appendix A.1).
    const N: &str = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw";

    async fn serve(keys: Arc<std::sync::Mutex<Vec<&'static str>>>, fetches: Arc<AtomicUsize>) -> String {
        let app = Router::new().route(
            "/certs",
            get(move || {
                let keys = keys.lock().unwrap().clone();
                fetches.fetch_add(1, Ordering::SeqCst);
                async move {
                    let keys: Vec<Value> =
                        keys.iter().map(|kid| json!({"kty": "RSA", "kid": kid, "n": N, "e": "AQAB"})).collect();
                    Json(json!({ "keys": keys }))
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/certs", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        url
    }

    #[tokio::test]
    async fn keys_are_kept_and_fetched_again_for_a_new_id() {
        let keys = Arc::new(std::sync::Mutex::new(vec!["one"]));
        let fetches = Arc::new(AtomicUsize::new(0));
        let set = KeySet::new(crate::client(), serve(keys.clone(), fetches.clone()).await);
        assert!(set.key("one").await.is_ok());
        assert!(set.key("one").await.is_ok());
        assert_eq!(fetches.load(Ordering::SeqCst), 1, "kept");
        // The provider rotates: a token names the new key.
        keys.lock().unwrap().push("two");
        assert!(set.key("two").await.is_ok(), "fetched again");
        assert!(set.key("one").await.is_ok(), "the old one is still published");
        assert_eq!(fetches.load(Ordering::SeqCst), 2);
        assert_eq!(set.key("made-up").await.err(), Some(KeyError::Unknown("made-up".into())));
        assert_eq!(fetches.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn an_unreachable_key_set_is_unavailable_not_unknown() {
        let set = KeySet::new(crate::client(), "http://127.0.0.1:9/certs");
        assert!(matches!(set.key("one").await, Err(KeyError::Unavailable(_))));
    }
}
