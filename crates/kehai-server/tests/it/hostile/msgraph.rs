//! Graph's webhook and its lifecycle webhook: anyone can post to them. Malformed bodies are
//! refused; forged notifications (made-up subscription, wrong clientState, bad validation
//! tokens) are taken (202) and dropped when checked.

use reqwest::Method;
use serde_json::json;

use super::{Actors, Case, Code::*, api, case, forged, nested, raw};

const WEBHOOK: &str = "/webhooks/msgraph";
const LIFECYCLE: &str = "/webhooks/msgraph/lifecycle";

pub(super) fn cases(a: &Actors<'_>) -> Vec<Case> {
    let Actors { forger, genuine, genuine_state, huge, .. } = a;
    vec![
        case(
            "broken JSON",
            raw(forger, Method::POST, WEBHOOK, "application/json", "{\"value\": ["),
            400,
            Json("invalid_notification"),
        ),
        case(
            "JSON that is not a collection",
            raw(forger, Method::POST, WEBHOOK, "application/json", "[]"),
            400,
            Json("invalid_notification"),
        ),
        case(
            "value of the wrong type",
            api(forger, Method::POST, WEBHOOK, Some(json!({"value": "x"}))),
            400,
            Json("invalid_notification"),
        ),
        case(
            "a notification without subscriptionId",
            api(forger, Method::POST, WEBHOOK, Some(json!({"value": [{}]}))),
            400,
            Json("invalid_notification"),
        ),
        case(
            "an empty body",
            raw(forger, Method::POST, WEBHOOK, "application/json", ""),
            400,
            Json("invalid_notification"),
        ),
        case(
            "invalid UTF-8",
            raw(
                forger,
                Method::POST,
                WEBHOOK,
                "application/json",
                b"{\"value\":[{\"subscriptionId\":\"\xff\xfe\"}]}".to_vec(),
            ),
            400,
            Json("invalid_notification"),
        ),
        case(
            "deep nesting",
            raw(
                forger,
                Method::POST,
                WEBHOOK,
                "application/json",
                format!("{{\"value\":[{{\"subscriptionId\":\"s\",\"resourceData\":{}}}]}}", nested(100_000)),
            ),
            400,
            Json("invalid_notification"),
        ),
        case(
            "a body over 1 MiB",
            raw(forger, Method::POST, WEBHOOK, "application/json", huge.clone()),
            413,
            Json("payload_too_large"),
        ),
        case(
            "a body over 1 MiB, lifecycle",
            raw(forger, Method::POST, LIFECYCLE, "application/json", huge.clone()),
            413,
            Json("payload_too_large"),
        ),
        case(
            "40,000 made-up notifications in one POST",
            raw(
                forger,
                Method::POST,
                WEBHOOK,
                "application/json",
                format!("{{\"value\":[{}]}}", vec![r#"{"subscriptionId":"x"}"#; 40_000].join(",")),
            ),
            413,
            Json("too_many_notifications"),
        ),
        case("GET on the webhook", api(forger, Method::GET, WEBHOOK, None), 405, Json("method_not_allowed")),
        case(
            "forged: unknown subscription",
            api(
                forger,
                Method::POST,
                WEBHOOK,
                Some(forged(genuine, |n| n["subscriptionId"] = json!("00000000-0000-0000-0000-000000000000"))),
            ),
            202,
            Accepted,
        ),
        case(
            "forged: wrong clientState",
            api(forger, Method::POST, WEBHOOK, Some(forged(genuine, |n| n["clientState"] = json!("guessed")))),
            202,
            Accepted,
        ),
        case(
            "forged: no clientState",
            api(
                forger,
                Method::POST,
                WEBHOOK,
                Some(forged(genuine, |n| {
                    n.as_object_mut().unwrap().remove("clientState");
                })),
            ),
            202,
            Accepted,
        ),
        case(
            "forged rich notification without validation tokens",
            api(
                forger,
                Method::POST,
                WEBHOOK,
                Some(forged(
                    genuine,
                    |n| n["encryptedContent"] = json!({"data": "AAAA", "dataSignature": "AAAA", "dataKey": "AAAA", "encryptionCertificateId": "x"}),
                )),
            ),
            202,
            Accepted,
        ),
        case(
            "forged rich notification with a made-up validation token",
            api(
                forger,
                Method::POST,
                WEBHOOK,
                Some({
                    let mut v = forged(
                        genuine,
                        |n| n["encryptedContent"] = json!({"data": "AAAA", "dataSignature": "AAAA", "dataKey": "AAAA", "encryptionCertificateId": "x"}),
                    );
                    v["validationTokens"] = json!(["eyJhbGciOiJSUzI1NiIsImtpZCI6Im1hZGUtdXAifQ.eyJ0aWQiOiJ4In0.c2ln"]);
                    v
                }),
            ),
            202,
            Accepted,
        ),
        case(
            "forged LIFECYCLE: subscriptionRemoved with a wrong clientState",
            api(
                forger,
                Method::POST,
                LIFECYCLE,
                Some(forged(genuine, |n| {
                    n["clientState"] = json!("guessed");
                    n["lifecycleEvent"] = json!("subscriptionRemoved");
                })),
            ),
            202,
            Accepted,
        ),
        case(
            "forged LIFECYCLE: reauthorizationRequired for an unknown subscription",
            api(
                forger,
                Method::POST,
                LIFECYCLE,
                Some(forged(genuine, |n| {
                    n["subscriptionId"] = json!("unknown");
                    n["clientState"] = json!(genuine_state);
                    n["lifecycleEvent"] = json!("reauthorizationRequired");
                })),
            ),
            202,
            Accepted,
        ),
    ]
}
