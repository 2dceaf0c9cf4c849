//! Graph change notifications: the payload, rich notifications' decryption, and the validation
//! tokens that prove Microsoft sent them
//! (<https://learn.microsoft.com/graph/change-notifications-with-resource-data>).
//!
//! Order of checks for a rich notification, cheapest and safest first: validation tokens (JWT
//! signatures, no RSA private-key work), then the HMAC of the ciphertext, then the RSA-OAEP
//! unwrap and AES decryption.

use std::{collections::HashMap, sync::Arc};

use aws_lc_rs::{
    cipher::{AES_256, DecryptionContext, PaddedBlockDecryptingKey, UnboundCipherKey},
    hmac,
    rsa::{OAEP_SHA1_MGF1SHA1, OaepPrivateDecryptingKey, PrivateDecryptingKey},
};
use base64::{Engine, engine::general_purpose::STANDARD};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::Value;
use tokio::sync::RwLock;

use crate::{MicrosoftConfig, MicrosoftError};

/// The service principal of Graph's change tracking, which signs validation tokens (their `azp`,
/// or `appid` in version 1.0 tokens).
pub const PUBLISHER: &str = "0bf30f3b-4a52-48df-9a82-234910c4a086";

/// The most notifications one POST may carry. Graph batches a few at a time (one POST can mix
/// several subscriptions, tenants and apps sharing the URL, but nowhere near this many); anyone
/// can POST, and a megabyte of `{"subscriptionId":"x"}` would otherwise be some 45,000 items,
/// each to look up.
pub const MAX_NOTIFICATIONS: usize = 1000;

/// One POST to a notification URL.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NotificationBatch {
    #[serde(deserialize_with = "at_most_max")]
    pub value: Vec<ChangeNotification>,
    #[serde(default)]
    pub validation_tokens: Option<Vec<String>>,
}

/// Why a POSTed body is not a notification collection kehai takes.
#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    #[error("more than {MAX_NOTIFICATIONS} notifications in one POST")]
    TooMany,
    #[error("not a change-notification collection: {0}")]
    Invalid(serde_json::Error),
}

/// What [`at_most_max`] says when it stops: recognised by [`NotificationBatch::parse`].
const TOO_MANY: &str = "kehai: too many notifications";

impl NotificationBatch {
    /// A POSTed body as Graph's notification collection — what the webhook does with every body
    /// anyone sends (fuzzed: `fuzz/fuzz_targets/webhook_body.rs`). Parsing stops at the
    /// [`MAX_NOTIFICATIONS`]th + 1 item, having kept no more.
    pub fn parse(body: &[u8]) -> Result<NotificationBatch, BatchError> {
        serde_json::from_slice(body)
            .map_err(|e| if e.to_string().starts_with(TOO_MANY) { BatchError::TooMany } else { BatchError::Invalid(e) })
    }
}

/// `value`, refused past [`MAX_NOTIFICATIONS`] items without reading (or keeping) the rest.
fn at_most_max<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Vec<ChangeNotification>, D::Error> {
    struct Items;
    impl<'de> serde::de::Visitor<'de> for Items {
        type Value = Vec<ChangeNotification>;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "an array of at most {MAX_NOTIFICATIONS} notifications")
        }

        fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(16));
            while let Some(item) = seq.next_element()? {
                if items.len() == MAX_NOTIFICATIONS {
                    return Err(serde::de::Error::custom(TOO_MANY));
                }
                items.push(item);
            }
            Ok(items)
        }
    }
    deserializer.deserialize_seq(Items)
}

/// One change (or lifecycle) notification. `Debug` hides the client state.
#[derive(Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChangeNotification {
    pub subscription_id: String,
    #[serde(default)]
    pub client_state: Option<String>,
    #[serde(default)]
    pub change_type: Option<String>,
    #[serde(default)]
    pub lifecycle_event: Option<String>,
    #[serde(default)]
    pub resource: Option<String>,
    #[serde(default)]
    pub resource_data: Option<Value>,
    #[serde(default)]
    pub tenant_id: Option<String>,
    #[serde(default)]
    pub encrypted_content: Option<EncryptedContent>,
}

impl std::fmt::Debug for ChangeNotification {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChangeNotification")
            .field("subscription_id", &self.subscription_id)
            .field("lifecycle_event", &self.lifecycle_event)
            .field("encrypted", &self.encrypted_content.is_some())
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EncryptedContent {
    pub data: String,
    pub data_signature: String,
    pub data_key: String,
    pub encryption_certificate_id: String,
    #[serde(default)]
    pub encryption_certificate_thumbprint: Option<String>,
}

fn refused(what: &str) -> MicrosoftError {
    MicrosoftError::Transport(format!("encrypted content refused: {what}"))
}

/// A certificate's private key, parsed once (parsing and checking an RSA key costs about as much
/// as a decryption with it).
pub struct DecryptionKey(OaepPrivateDecryptingKey);

impl std::fmt::Debug for DecryptionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DecryptionKey(..)")
    }
}

impl DecryptionKey {
    /// The key from its PKCS#8 DER.
    pub fn from_pkcs8(der: &[u8]) -> Result<DecryptionKey, MicrosoftError> {
        let private = PrivateDecryptingKey::from_pkcs8(der).map_err(|_| refused("unusable private key"))?;
        Ok(DecryptionKey(OaepPrivateDecryptingKey::new(private).map_err(|_| refused("unusable private key"))?))
    }
}

/// Decrypts resource data with the certificate's PKCS#8 private key: HMAC checked before the
/// plaintext is produced.
pub fn decrypt(private_key_pkcs8: &[u8], content: &EncryptedContent) -> Result<Vec<u8>, MicrosoftError> {
    decrypt_with(&DecryptionKey::from_pkcs8(private_key_pkcs8)?, content)
}

/// [`decrypt`] with a parsed key.
pub fn decrypt_with(key: &DecryptionKey, content: &EncryptedContent) -> Result<Vec<u8>, MicrosoftError> {
    let bad = refused;
    let data = STANDARD.decode(content.data.trim()).map_err(|_| bad("data is not base64"))?;
    let signature = STANDARD.decode(content.data_signature.trim()).map_err(|_| bad("signature is not base64"))?;
    let wrapped = STANDARD.decode(content.data_key.trim()).map_err(|_| bad("key is not base64"))?;
    let oaep = &key.0;
    let mut key = vec![0u8; oaep.min_output_size()];
    let key = oaep
        .decrypt(&OAEP_SHA1_MGF1SHA1, &wrapped, &mut key, None)
        .map_err(|_| bad("the key does not unwrap"))?
        .to_vec();
    if key.len() != 32 {
        return Err(bad("the key is not 32 bytes"));
    }
    hmac::verify(&hmac::Key::new(hmac::HMAC_SHA256, &key), &data, &signature)
        .map_err(|_| bad("the signature does not match"))?;
    let mut iv = [0u8; 16];
    iv.copy_from_slice(&key[..16]);
    let cipher =
        PaddedBlockDecryptingKey::cbc_pkcs7(UnboundCipherKey::new(&AES_256, &key).map_err(|_| bad("bad key"))?)
            .map_err(|_| bad("bad key"))?;
    let mut buffer = data;
    let plain =
        cipher.decrypt(&mut buffer, DecryptionContext::Iv128(iv.into())).map_err(|_| bad("does not decrypt"))?;
    Ok(plain.to_vec())
}

#[derive(Debug, Clone, Deserialize)]
struct Jwk {
    kid: String,
    n: String,
    e: String,
}

/// Verifies validation tokens against Microsoft's published keys (v2.0 and v1.0 endpoints,
/// cached; fetched again when a token names a key not looked for yet — as after Microsoft
/// rotated its keys; at most once a second, the token waiting its turn — and a key the last
/// fetch did not have at most once a minute, so that tokens with made-up key ids cost few
/// requests. Only notifications with a known subscription's clientState get this far.)
#[derive(Clone)]
pub struct ValidationTokens {
    config: MicrosoftConfig,
    http: reqwest::Client,
    keys: Arc<RwLock<Keys>>,
    /// Held while the keys are fetched: one fetch at a time.
    fetching: Arc<tokio::sync::Mutex<()>>,
    /// Tokens verified already (by SHA-256), with the tenant they vouch for and their expiry:
    /// Graph sends the same token with many notifications, and a signature checked once need
    /// not be checked again while the token lasts.
    verified: Arc<std::sync::Mutex<Verified>>,
}

/// Verified tokens by SHA-256: the tenant each vouches for and its expiry.
type Verified = HashMap<[u8; 32], (String, i64)>;

/// Verified tokens remembered at most.
const VERIFIED_KEPT: usize = 1024;

/// The cached keys, when they were last fetched, and the key ids that fetch did not have.
#[derive(Default)]
struct Keys {
    keys: Vec<Jwk>,
    fetched: Option<std::time::Instant>,
    missing: std::collections::HashSet<String>,
}

impl Keys {
    /// When a token naming the unknown key `kid` may fetch the keys again (`None`: not now). A
    /// key id not looked for yet (Microsoft rotated its keys) fetches them as soon as the last
    /// fetch is [`REFETCH_MIN`] old — waiting for that, not dropping the notification; one the
    /// last fetch did not have, once that fetch is [`REFETCH_AFTER`] old.
    fn refetch_in(&self, kid: &str) -> Option<std::time::Duration> {
        let Some(at) = self.fetched else { return Some(std::time::Duration::ZERO) };
        if self.missing.contains(kid) {
            (at.elapsed() >= REFETCH_AFTER).then_some(std::time::Duration::ZERO)
        } else {
            Some(REFETCH_MIN.saturating_sub(at.elapsed()))
        }
    }
}

/// A key id the last fetch did not have is fetched again no sooner than this after it.
const REFETCH_AFTER: std::time::Duration = std::time::Duration::from_secs(60);
/// Fetches for key ids not looked for yet are at least this far apart.
const REFETCH_MIN: std::time::Duration = std::time::Duration::from_secs(1);
/// Missing key ids remembered at most.
const MISSING_KEPT: usize = 1024;

impl std::fmt::Debug for ValidationTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ValidationTokens { .. }")
    }
}

impl ValidationTokens {
    pub fn new(config: MicrosoftConfig) -> Self {
        ValidationTokens {
            config,
            http: kehai_oauth::client(),
            keys: Arc::default(),
            fetching: Arc::default(),
            verified: Default::default(),
        }
    }

    async fn fetch(&self) -> Result<Vec<Jwk>, MicrosoftError> {
        #[derive(Deserialize)]
        struct Jwks {
            keys: Vec<Value>,
        }
        let mut all = Vec::new();
        for path in ["/common/discovery/v2.0/keys", "/common/discovery/keys"] {
            let response = self
                .http
                .get(self.config.login(path))
                .send()
                .await
                .map_err(|e| MicrosoftError::Transport(e.without_url().to_string()))?;
            if let Ok(jwks) = response.json::<Jwks>().await {
                all.extend(jwks.keys.into_iter().filter_map(|k| serde_json::from_value::<Jwk>(k).ok()));
            }
        }
        Ok(all)
    }

    async fn key(&self, kid: &str) -> Result<DecodingKey, MicrosoftError> {
        let find =
            |keys: &[Jwk]| keys.iter().find(|k| k.kid == kid).map(|k| DecodingKey::from_rsa_components(&k.n, &k.e));
        let found = |k: Result<DecodingKey, _>| {
            k.map_err(|e: jsonwebtoken::errors::Error| MicrosoftError::IdToken(e.to_string()))
        };
        let unknown = || MicrosoftError::IdToken(format!("unknown key {kid}"));
        // One fetch at a time; the keys' lock is held only to read or swap them, never across
        // a request, so that tokens with known keys are verified meanwhile.
        let mut fetching = None;
        loop {
            let wait = {
                let cache = self.keys.read().await;
                if let Some(k) = find(&cache.keys) {
                    return found(k);
                }
                cache.refetch_in(kid).ok_or_else(unknown)?
            };
            if fetching.is_some() && wait.is_zero() {
                break;
            }
            tokio::time::sleep(wait).await;
            if fetching.is_none() {
                // Then look again: another caller may have fetched meanwhile.
                fetching = Some(self.fetching.lock().await);
            }
        }
        let fetched = self.fetch().await;
        let mut cache = self.keys.write().await;
        cache.fetched = Some(std::time::Instant::now());
        match fetched {
            Ok(fetched) if !fetched.is_empty() => {
                cache.keys = fetched;
                cache.missing.clear();
                match find(&cache.keys) {
                    Some(k) => found(k),
                    None => {
                        // Microsoft does not publish this key: made up, or long retired.
                        if cache.missing.len() >= MISSING_KEPT {
                            cache.missing.clear();
                        }
                        cache.missing.insert(kid.to_owned());
                        Err(unknown())
                    }
                }
            }
            // A failed or empty answer keeps the keys we have, and the key is looked for again
            // at the next token (a second later at the soonest).
            Ok(_) => Err(MicrosoftError::Transport("the signing keys came back empty".into())),
            Err(e) => Err(e),
        }
    }

    /// Checks one validation token: signature, `exp`/`nbf`, `aud` = this app, `iss` in the v1.0
    /// or v2.0 form with the token's tenant, and Graph's publisher in `azp` or `appid`.
    /// Returns the tenant it vouches for.
    pub async fn verify(&self, token: &str) -> Result<String, MicrosoftError> {
        let digest: [u8; 32] = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes())
            .as_ref()
            .try_into()
            .unwrap_or([0; 32]);
        let now = jsonwebtoken::get_current_timestamp();
        let now = i64::try_from(now).unwrap_or(i64::MAX);
        {
            let verified = self.verified.lock().unwrap_or_else(|p| p.into_inner());
            if let Some((tid, exp)) = verified.get(&digest)
                && *exp > now
            {
                return Ok(tid.clone());
            }
        }
        let (tid, exp) = self.check(token).await?;
        let mut verified = self.verified.lock().unwrap_or_else(|p| p.into_inner());
        if verified.len() >= VERIFIED_KEPT {
            verified.retain(|_, (_, exp)| *exp > now);
            if verified.len() >= VERIFIED_KEPT {
                verified.clear();
            }
        }
        verified.insert(digest, (tid.clone(), exp));
        Ok(tid)
    }

    /// [`ValidationTokens::verify`] without the memory: the tenant and the token's expiry.
    async fn check(&self, token: &str) -> Result<(String, i64), MicrosoftError> {
        let kid = crate::id_token::key_id(token).map_err(|_| refuse_token("malformed"))?;
        check_validation_token(token, &self.key(&kid).await?, &self.config)
    }
}

fn refuse_token(why: &str) -> MicrosoftError {
    MicrosoftError::IdToken(format!("validation token refused: {why}"))
}

/// Checks a validation token signed with `key`: the signature, `exp`/`nbf`, `aud` = this app,
/// `iss` in the v1.0 or v2.0 form with the token's tenant, and Graph's publisher in `azp` or
/// `appid`. Returns the tenant it vouches for and its expiry. No I/O:
/// [`ValidationTokens::verify`] finds the key, then calls this (and so can a fuzzer).
pub fn check_validation_token(
    token: &str,
    key: &DecodingKey,
    config: &MicrosoftConfig,
) -> Result<(String, i64), MicrosoftError> {
    let mut validation = Validation::new(Algorithm::RS256);
    validation.set_audience(&[&config.client_id]);
    validation.leeway = 120;
    validation.validate_nbf = true;
    let claims =
        jsonwebtoken::decode::<Value>(token, key, &validation).map_err(|e| refuse_token(&e.to_string()))?.claims;
    let text = |n: &str| claims.get(n).and_then(Value::as_str);
    let tid = text("tid").ok_or_else(|| refuse_token("no tid"))?;
    let v2 = config.login(&format!("/{tid}/v2.0"));
    let v1 = format!("https://sts.windows.net/{tid}/");
    if !matches!(text("iss"), Some(iss) if iss == v2 || iss == v1) {
        return Err(refuse_token("wrong issuer"));
    }
    if text("azp") != Some(PUBLISHER) && text("appid") != Some(PUBLISHER) {
        return Err(refuse_token("not from Microsoft Graph"));
    }
    let exp = claims.get("exp").and_then(Value::as_i64).ok_or_else(|| refuse_token("no exp"))?;
    Ok((tid.to_owned(), exp))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_post_carries_at_most_max_notifications() {
        let body = |n: usize| {
            let item = r#"{"subscriptionId":"x"}"#;
            format!(r#"{{"value":[{}]}}"#, vec![item; n].join(","))
        };
        assert_eq!(
            NotificationBatch::parse(body(MAX_NOTIFICATIONS).as_bytes()).map(|b| b.value.len()).ok(),
            Some(1000)
        );
        assert!(matches!(NotificationBatch::parse(body(MAX_NOTIFICATIONS + 1).as_bytes()), Err(BatchError::TooMany)));
        assert!(matches!(NotificationBatch::parse(body(45_000).as_bytes()), Err(BatchError::TooMany)));
        assert!(matches!(NotificationBatch::parse(b"{\"value\": 3}"), Err(BatchError::Invalid(_))));
        assert!(matches!(NotificationBatch::parse(b"[]"), Err(BatchError::Invalid(_))));
    }

    /// Microsoft's own test vector decrypts to the expected plaintext.
    #[test]
    fn decrypts_microsofts_vector() {
        let v: Value =
            serde_json::from_str(include_str!("../../../testdata/graph-rich-notification-vector.json")).unwrap();
        let pem = v["private_key_pkcs8_pem"].as_str().unwrap();
        let der = STANDARD.decode(pem.lines().filter(|l| !l.starts_with("-----")).collect::<String>()).unwrap();
        let content: EncryptedContent = serde_json::from_value(v["encryptedContent"].clone()).unwrap();
        let plain = decrypt(&der, &content).unwrap();
        let expected: Value = serde_json::from_str(v["expected_plaintext_json"].as_str().unwrap()).unwrap();
        assert_eq!(serde_json::from_slice::<Value>(&plain).unwrap(), expected);

        let mut forged = content.clone();
        forged.data_signature = STANDARD.encode([0u8; 32]);
        assert!(decrypt(&der, &forged).is_err(), "a wrong HMAC is refused before decrypting");
    }

    /// After Microsoft rotates its keys, the first token with the new key fetches them (as soon
    /// as the last fetch is a second old); a key the last fetch did not have waits a minute.
    #[test]
    fn unknown_keys_fetch_again_soon_and_missing_ones_once_a_minute() {
        use std::time::{Duration, Instant};
        // (Checked: a host up for less than a minute has no instant a minute ago.)
        let Some(ago_61) = Instant::now().checked_sub(Duration::from_secs(61)) else { return };
        let ago = |secs| Instant::now().checked_sub(Duration::from_secs(secs));
        assert_eq!(Keys::default().refetch_in("any"), Some(Duration::ZERO), "nothing fetched yet");
        let keys = Keys { fetched: Some(Instant::now()), ..Keys::default() };
        let wait = keys.refetch_in("new").unwrap();
        assert!(wait > Duration::from_millis(900) && wait <= REFETCH_MIN, "a second after the last fetch: {wait:?}");
        let mut keys = Keys { fetched: ago(2), ..Keys::default() };
        keys.missing.insert("made-up".into());
        assert_eq!(keys.refetch_in("rotated"), Some(Duration::ZERO), "a key not looked for yet: at once");
        assert_eq!(keys.refetch_in("made-up"), None, "a key the last fetch did not have: not yet");
        keys.fetched = Some(ago_61);
        assert_eq!(keys.refetch_in("made-up"), Some(Duration::ZERO), "after a minute");
    }
}
