//! Id tokens (the sign-in) and validation tokens (rich notifications), checked as kehai checks
//! them: the header read for its key id (`key_id`), then the signature and claims
//! (`check_id_token`, `check_validation_token`). Fuzzed as any text (never accepted: it is not
//! signed by the key), as any header and claims bytes signed with the key, and as claims built
//! field by field. Nothing panics; what is accepted says what it must; and tokens made right
//! are accepted.
#![no_main]

use arbitrary::Arbitrary;
use kehai_fuzz::{CLIENT_ID, CONFIG, ISSUER, KEY, KID, NONCE, now};
use kehai_microsoft::{
    IdExpectations, check_id_token, key_id,
    notifications::{PUBLISHER, check_validation_token},
};
use libfuzzer_sys::fuzz_target;
use secrecy::SecretString;
use serde_json::{Value, json};

#[derive(Arbitrary, Debug)]
enum Input {
    /// Any text as a token.
    Text(String),
    /// Any header and claims bytes, signed.
    Signed { header: Vec<u8>, claims: Vec<u8> },
    /// An id token's claims, field by field.
    Id(Fields),
    /// A validation token's claims, field by field.
    Validation(Fields),
}

#[derive(Arbitrary, Debug)]
struct Fields {
    tid: String,
    /// This app as `aud`, or another.
    aud_ok: bool,
    /// The issuer for `tid` (for validation tokens: v2.0, v1.0, other).
    issuer: u8,
    /// The sign-in's nonce (id tokens), Graph's publisher in `azp`/`appid`/neither (validation).
    nonce_ok: bool,
    publisher: u8,
    /// Seconds from now to `exp`, and to `nbf` if any.
    exp_in: i32,
    nbf_in: Option<i32>,
    email: Option<String>,
}

fn nonce() -> SecretString {
    NONCE.into()
}

fn id_expectations(nonce: &SecretString) -> IdExpectations<'_> {
    IdExpectations { client_id: CLIENT_ID, issuer: ISSUER, nonce }
}

/// What kehai does with a token: its key id first, then the key it names (only ours exists).
fn check_id(token: &str) -> Option<kehai_microsoft::IdClaims> {
    let nonce = nonce();
    (key_id(token).ok()? == KID).then(|| check_id_token(token, &KEY.decoding, &id_expectations(&nonce)).ok())?
}

fn check_validation(token: &str) -> Option<(String, i64)> {
    (key_id(token).ok()? == KID).then(|| check_validation_token(token, &KEY.decoding, &CONFIG).ok())?
}

/// No `nbf`, or one well in the past (but not before 1970: times are unsigned).
fn in_the_past(nbf_in: Option<i32>) -> bool {
    nbf_in.is_none_or(|n| n < -300 && now() + i64::from(n) >= 0)
}

fn text<'a>(claims: &'a Value, name: &str) -> Option<&'a str> {
    claims.get(name).and_then(Value::as_str)
}

fn audience_is_ours(claims: &Value) -> bool {
    match claims.get("aud") {
        Some(Value::String(aud)) => aud == CLIENT_ID,
        Some(Value::Array(auds)) => auds.iter().any(|a| a.as_str() == Some(CLIENT_ID)),
        _ => false,
    }
}

/// What an accepted id token must say.
fn assert_id_token_right(claims: &[u8], accepted: &kehai_microsoft::IdClaims) {
    let claims: Value = serde_json::from_slice(claims).expect("accepted claims that are not JSON");
    assert!(audience_is_ours(&claims), "accepted another audience");
    assert_eq!(text(&claims, "tid"), Some(accepted.tid.as_str()));
    assert_eq!(text(&claims, "iss"), Some(ISSUER.replace("{tenantid}", &accepted.tid).as_str()));
    assert_eq!(text(&claims, "nonce"), Some(NONCE), "accepted another nonce");
    assert!(claims.get("exp").and_then(Value::as_f64).is_some_and(|exp| exp as i64 >= now() - 200));
}

/// What an accepted validation token must say.
fn assert_validation_token_right(claims: &[u8], (tid, exp): &(String, i64)) {
    let claims: Value = serde_json::from_slice(claims).expect("accepted claims that are not JSON");
    assert!(audience_is_ours(&claims), "accepted another audience");
    assert_eq!(text(&claims, "tid"), Some(tid.as_str()));
    let iss = text(&claims, "iss");
    assert!(
        iss == Some(&format!("https://login.microsoftonline.com/{tid}/v2.0"))
            || iss == Some(&format!("https://sts.windows.net/{tid}/")),
        "accepted issuer {iss:?}"
    );
    assert!(text(&claims, "azp") == Some(PUBLISHER) || text(&claims, "appid") == Some(PUBLISHER));
    assert!(*exp >= now() - 200);
}

fuzz_target!(|input: Input| {
    match input {
        Input::Text(token) => {
            assert!(check_id(&token).is_none(), "an unsigned id token was accepted");
            assert!(check_validation(&token).is_none(), "an unsigned validation token was accepted");
        }
        Input::Signed { header, claims } => {
            let token = KEY.sign(&header, &claims);
            if let Some(accepted) = check_id(&token) {
                assert_id_token_right(&claims, &accepted);
            }
            if let Some(accepted) = check_validation(&token) {
                assert_validation_token_right(&claims, &accepted);
            }
        }
        Input::Id(f) => {
            let mut claims = json!({
                "aud": if f.aud_ok { CLIENT_ID } else { "someone-else" },
                "iss": if f.issuer % 2 == 0 { ISSUER.replace("{tenantid}", &f.tid) } else { format!("https://sts.windows.net/{}/", f.tid) },
                "tid": f.tid,
                "sub": "subject",
                "nonce": if f.nonce_ok { NONCE.to_owned() } else { format!("{NONCE}-not") },
                "exp": now() + i64::from(f.exp_in),
            });
            if let Some(nbf) = f.nbf_in {
                claims["nbf"] = json!(now() + i64::from(nbf));
            }
            if let Some(email) = &f.email {
                claims["email"] = json!(email);
            }
            let bytes = claims.to_string().into_bytes();
            let accepted = check_id(&KEY.sign_claims(&claims));
            if let Some(accepted) = &accepted {
                assert_id_token_right(&bytes, accepted);
                assert_eq!(accepted.email, f.email);
            }
            let right = f.aud_ok && f.issuer % 2 == 0 && f.nonce_ok && f.exp_in > 300 && in_the_past(f.nbf_in);
            assert!(!right || accepted.is_some(), "a right id token was refused");
        }
        Input::Validation(f) => {
            let mut claims = json!({
                "aud": if f.aud_ok { CLIENT_ID } else { "someone-else" },
                "iss": match f.issuer % 3 {
                    0 => format!("https://login.microsoftonline.com/{}/v2.0", f.tid),
                    1 => format!("https://sts.windows.net/{}/", f.tid),
                    _ => format!("https://elsewhere.example/{}/", f.tid),
                },
                "tid": f.tid,
                "exp": now() + i64::from(f.exp_in),
            });
            match f.publisher % 3 {
                0 => claims["azp"] = json!(PUBLISHER),
                1 => claims["appid"] = json!(PUBLISHER),
                _ => claims["azp"] = json!("not-graph"),
            }
            if let Some(nbf) = f.nbf_in {
                claims["nbf"] = json!(now() + i64::from(nbf));
            }
            let bytes = claims.to_string().into_bytes();
            let accepted = check_validation(&KEY.sign_claims(&claims));
            if let Some(accepted) = &accepted {
                assert_validation_token_right(&bytes, accepted);
            }
            let right =
                f.aud_ok && f.issuer % 3 != 2 && f.publisher % 3 != 2 && f.exp_in > 300 && in_the_past(f.nbf_in);
            assert!(!right || accepted.is_some(), "a right validation token was refused");
        }
    }
});
