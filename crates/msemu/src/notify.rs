//! Change notifications (§3.2) and their delivery (§3.4): every presence change is posted to
//! each live subscription covering the user — basic, or rich with the resource data encrypted
//! (§4.2) and `validationTokens` (§3.3). A 2xx within 3 s counts as delivered; otherwise the
//! post is retried with exponential backoff and a 10 s timeout.

use std::{sync::Arc, time::Duration};

use serde_json::{Value, json};
use uuid::Uuid;

use crate::{
    Emulator, crypto,
    graph::{presence::presence_json, subscriptions::format_time},
    world::{Subscription, now},
};

/// The service principal that signs Graph's validation tokens (§3.3).
pub const PUBLISHER: &str = "0bf30f3b-4a52-48df-9a82-234910c4a086";

/// Tells every live subscription covering `user` that their presence changed.
pub fn presence_changed(emu: &Arc<Emulator>, user: Uuid) {
    let (subscriptions, presence) = {
        let mut world = emu.world.lock();
        let now = now();
        let subs: Vec<Subscription> = world
            .subscriptions
            .values()
            .filter(|s| s.expiration > now && s.users.contains(&user))
            .cloned()
            .collect();
        (subs, world.presence(user))
    };
    for sub in subscriptions {
        let resource = presence_json(user, &presence);
        match notification(emu, &sub, user, resource) {
            Ok(body) => {
                let emu = Arc::clone(emu);
                tokio::spawn(
                    async move { deliver(&emu, sub.id, &sub.notification_url, body).await },
                );
            }
            Err(e) => {
                tracing::warn!(error = %e, subscription = %sub.id, "could not build a notification")
            }
        }
    }
}

/// The notification body for one change of `user` under `sub`.
fn notification(
    emu: &Emulator,
    sub: &Subscription,
    user: Uuid,
    mut resource: Value,
) -> anyhow::Result<Value> {
    let mut item = json!({
        "subscriptionId": sub.id.to_string(),
        "clientState": sub.client_state,
        "changeType": "updated",
        "resource": format!("communications/presences/{user}"),
        "subscriptionExpirationDateTime": format_time(sub.expiration),
        "resourceData": {
            "@odata.id": format!("users/{user}/presence"),
            "@odata.type": "#microsoft.graph.presence",
            "id": user.to_string(),
        },
        "tenantId": sub.tenant_id.to_string(),
        "organizationId": sub.tenant_id.to_string(),
    });
    if !sub.include_resource_data {
        // Basic presence notifications carry no availability or activity (§0.4).
        return Ok(json!({ "value": [item] }));
    }
    let (Some(cert), Some(cert_id)) = (&sub.encryption_certificate, &sub.encryption_certificate_id)
    else {
        anyhow::bail!("a rich subscription without a certificate");
    };
    resource["@odata.type"] = json!("#microsoft.graph.presence");
    resource["@odata.id"] = json!(format!("users/{user}/presence"));
    let encrypted = crypto::encrypt(cert, cert_id, resource.to_string().as_bytes())?;
    item["encryptedContent"] = serde_json::to_value(encrypted)?;
    Ok(json!({ "value": [item], "validationTokens": [validation_token(emu, sub)?] }))
}

/// A validation token for the subscription's (app, tenant): a v2.0 JWT from the publisher.
fn validation_token(emu: &Emulator, sub: &Subscription) -> anyhow::Result<String> {
    let now = now();
    let claims = json!({
        "aud": sub.application_id.to_string(),
        "iss": emu.login_base().join(&format!("/{}/v2.0", sub.tenant_id)),
        "iat": now,
        "nbf": now,
        "exp": now + 86_400,
        "aio": crate::world::random_token(),
        "azp": PUBLISHER,
        "azpacr": "2",
        "oid": Uuid::new_v5(&Uuid::NAMESPACE_OID, PUBLISHER.as_bytes()).to_string(),
        "rh": crate::world::random_token(),
        "sub": Uuid::new_v5(&Uuid::NAMESPACE_OID, PUBLISHER.as_bytes()).to_string(),
        "tid": sub.tenant_id.to_string(),
        "uti": crate::world::random_token(),
        "ver": "2.0",
    });
    emu.world.keys().sign(&claims)
}

/// Posts `body` until a 2xx arrives or the attempts run out.
async fn deliver(emu: &Emulator, subscription: Uuid, url: &str, body: Value) {
    let delivery = &emu.config.delivery;
    let mut wait = delivery.retry_base;
    for attempt in 0..delivery.max_attempts {
        let timeout = if attempt == 0 {
            delivery.first_timeout
        } else {
            delivery.retry_timeout
        };
        let answer = emu.http.post(url).json(&body).timeout(timeout).send().await;
        let delivered = answer.as_ref().is_ok_and(|r| r.status().is_success());
        if let Some(s) = emu.world.lock().subscriptions.get_mut(&subscription) {
            if delivered {
                s.delivered += 1;
            } else {
                s.failed_attempts += 1;
            }
        }
        if delivered {
            return;
        }
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(Duration::from_secs(3600));
    }
    tracing::warn!(%subscription, "notification dropped after {} attempts", delivery.max_attempts);
}
