//! Change notifications and their delivery, as Graph documents them for webhooks
//! (<https://learn.microsoft.com/graph/change-notifications-delivery-webhooks>): every presence
//! change is posted to each live subscription covering the user — basic, or rich with the
//! resource data encrypted and `validationTokens`
//! (<https://learn.microsoft.com/graph/change-notifications-with-resource-data>). A 2xx within
//! 3 s counts as delivered; otherwise the post is retried with exponential backoff and a 10 s
//! timeout.

use std::{sync::Arc, time::Duration};

use serde_json::{Value, json};
use uuid::Uuid;

use crate::{
    Emulator, crypto, faults,
    graph::{presence::presence_json, subscriptions::format_time},
    world::{Subscription, now},
};

/// The service principal that signs Graph's validation tokens (Graph's change tracking; the
/// tokens' `azp`).
pub const PUBLISHER: &str = "0bf30f3b-4a52-48df-9a82-234910c4a086";

/// Tells every live subscription covering `user` that their presence changed. A subscription
/// whose authorization lapsed has its notifications withheld until it is reauthorized, as Graph
/// does when the access token a subscription was made with expires.
pub fn presence_changed(emu: &Arc<Emulator>, user: Uuid) {
    let (subscriptions, presence) = {
        let mut world = emu.world.lock();
        let now = now();
        let subs: Vec<Subscription> =
            world.subscriptions.values().filter(|s| s.expiration > now && s.users.contains(&user)).cloned().collect();
        (subs, world.presence(user))
    };
    for sub in subscriptions {
        let body = match notification(emu, &sub, user, presence_json(user, &presence)) {
            Ok(body) => body,
            Err(e) => {
                tracing::warn!(error = %e, subscription = %sub.id, "could not build a notification");
                continue;
            }
        };
        let mut world = emu.world.lock();
        if now() >= sub.authorized_until {
            if let Some(s) = world.subscriptions.get_mut(&sub.id) {
                s.withheld.push(body);
            }
            continue;
        }
        let fault = faults::take(&mut world, faults::Target::Notifications);
        let held = std::mem::take(&mut world.reordered);
        drop(world);
        send(emu, sub.id, &sub.notification_url, body, fault, Post::Change);
        // Notifications held back by a "reorder" fault go out after this one.
        for (id, url, body) in held {
            let emu = Arc::clone(emu);
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(200)).await;
                deliver(&emu, id, &url, body, Post::Change).await;
            });
        }
    }
}

/// Sends one notification, as a fault (if any) says.
fn send(emu: &Arc<Emulator>, id: Uuid, url: &str, body: Value, fault: Option<faults::Fault>, kind: Post) {
    let copies = match fault.as_ref().map(|f| f.kind) {
        Some(faults::Kind::Drop) => 0,
        Some(faults::Kind::Duplicate) => 2,
        Some(faults::Kind::Reorder) if kind == Post::Change => {
            emu.world.lock().reordered.push((id, url.to_owned(), body));
            return;
        }
        _ => 1,
    };
    let delay = match fault {
        Some(f) if f.kind == faults::Kind::Delay => Duration::from_millis(f.delay_ms.unwrap_or(5_000)),
        _ => Duration::ZERO,
    };
    for _ in 0..copies {
        let (emu, url, body) = (Arc::clone(emu), url.to_owned(), body.clone());
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            deliver(&emu, id, &url, body, kind).await;
        });
    }
}

/// Delivers notifications that were withheld, now that the subscription is reauthorized.
pub fn release(emu: &Arc<Emulator>, id: Uuid, url: &str, bodies: Vec<Value>) {
    for body in bodies {
        send(emu, id, url, body, None, Post::Change);
    }
}

/// Posts `reauthorizationRequired` to the subscription's lifecycle URL: the lifecycle event Graph
/// sends when a subscription must be reauthorized
/// (<https://learn.microsoft.com/graph/change-notifications-lifecycle-events>).
pub fn reauthorization_required(emu: &Arc<Emulator>, sub: &Subscription) {
    let Some(url) = sub.lifecycle_notification_url.clone() else {
        return;
    };
    let body = json!({ "value": [{
        "subscriptionId": sub.id.to_string(),
        "subscriptionExpirationDateTime": format_time(sub.expiration),
        "tenantId": sub.tenant_id.to_string(),
        "clientState": sub.client_state,
        "lifecycleEvent": "reauthorizationRequired",
    }]});
    let fault = faults::take(&mut emu.world.lock(), faults::Target::Notifications);
    send(emu, sub.id, &url, body, fault, Post::Lifecycle);
}

/// One pass of msemu's clock: idle users become Away, and subscriptions whose authorization or
/// life is about to end get `reauthorizationRequired`.
pub fn tick(emu: &Arc<Emulator>) {
    let now = now();
    let idle_after = emu.config.idle_after.as_secs() as i64;
    let lead = emu.config.reauthorization_lead.as_secs() as i64;
    let (gone_idle, lapsing) = {
        let mut world = emu.world.lock();
        let mut gone_idle = Vec::new();
        let ids: Vec<Uuid> = world.presences.keys().copied().collect();
        for id in ids {
            let p = &world.presences[&id];
            if p.availability == "Available" && !p.idle && now - p.last_activity >= idle_after {
                let sequence = world.next_sequence();
                if let Some(p) = world.presences.get_mut(&id) {
                    p.availability = "Away".into();
                    p.activity = "Away".into();
                    p.idle = true;
                    p.sequence = sequence;
                }
                gone_idle.push(id);
            }
        }
        let mut lapsing = Vec::new();
        for s in world.subscriptions.values_mut() {
            let ending = s.authorized_until.min(s.expiration);
            if s.expiration > now && !s.lifecycle_sent && ending - now <= lead {
                s.lifecycle_sent = true;
                s.lifecycle_notifications += 1;
                lapsing.push(s.clone());
            }
        }
        (gone_idle, lapsing)
    };
    for user in gone_idle {
        presence_changed(emu, user);
    }
    for sub in lapsing {
        reauthorization_required(emu, &sub);
    }
}

/// The notification body for one change of `user` under `sub`.
fn notification(emu: &Emulator, sub: &Subscription, user: Uuid, resource: Value) -> anyhow::Result<Value> {
    notification_with(sub, user, resource, || validation_token(emu, sub))
}

/// For load generators (kehai's benchmarks): records that `user` is now (`availability`,
/// `activity`) and returns the body Graph would post for it under subscription `id`, without
/// sending anything. Rich bodies carry `validation_token` (one from [`validation_token_for`] serves
/// a day), so that preparing many costs no signature each.
pub fn prepared_change(
    emu: &Emulator,
    id: Uuid,
    user: Uuid,
    (availability, activity): (&str, &str),
    validation_token: &str,
) -> anyhow::Result<Value> {
    let (sub, presence) = {
        let mut world = emu.world.lock();
        let sub = world.subscriptions.get(&id).cloned().ok_or_else(|| anyhow::anyhow!("no subscription {id}"))?;
        let mut p = world.presence(user);
        p.availability = availability.to_owned();
        p.activity = activity.to_owned();
        p.sequence = world.next_sequence();
        world.presences.insert(user, p.clone());
        (sub, p)
    };
    notification_with(&sub, user, presence_json(user, &presence), || Ok(validation_token.to_owned()))
}

/// A validation token for subscription `id`'s (app, tenant), valid for a day.
pub fn validation_token_for(emu: &Emulator, id: Uuid) -> anyhow::Result<String> {
    let sub =
        emu.world.lock().subscriptions.get(&id).cloned().ok_or_else(|| anyhow::anyhow!("no subscription {id}"))?;
    validation_token(emu, &sub)
}

fn notification_with(
    sub: &Subscription,
    user: Uuid,
    mut resource: Value,
    validation_token: impl FnOnce() -> anyhow::Result<String>,
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
        // Basic presence notifications carry no availability or activity (Graph since June 2024).
        return Ok(json!({ "value": [item] }));
    }
    let (Some(cert), Some(cert_id)) = (&sub.encryption_certificate, &sub.encryption_certificate_id) else {
        anyhow::bail!("a rich subscription without a certificate");
    };
    resource["@odata.type"] = json!("#microsoft.graph.presence");
    resource["@odata.id"] = json!(format!("users/{user}/presence"));
    let encrypted = crypto::encrypt(cert, cert_id, resource.to_string().as_bytes())?;
    item["encryptedContent"] = serde_json::to_value(encrypted)?;
    Ok(json!({ "value": [item], "validationTokens": [validation_token()?] }))
}

/// A validation token for the subscription's (app, tenant): a v2.0 JWT from the publisher.
fn validation_token(emu: &Emulator, sub: &Subscription) -> anyhow::Result<String> {
    let now = now();
    let claims = json!({
        "aud": sub.application_id.to_string(),
        "iss": sub.base.join(&format!("/{}/v2.0", sub.tenant_id)),
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

/// What a post is: a change notification or a lifecycle notification (counted apart).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Post {
    Change,
    Lifecycle,
}

/// Posts `body` until a 2xx arrives, the subscription is gone or expired, or the retry period
/// (Graph: 4 hours) is over.
async fn deliver(emu: &Emulator, subscription: Uuid, url: &str, body: Value, kind: Post) {
    let delivery = &emu.config.delivery;
    let started = tokio::time::Instant::now();
    let mut wait = delivery.retry_base;
    let mut attempt = 0u32;
    loop {
        let alive = emu.world.lock().subscriptions.get(&subscription).is_some_and(|s| s.expiration > now());
        if !alive {
            return;
        }
        let timeout = if attempt == 0 { delivery.first_timeout } else { delivery.retry_timeout };
        attempt += 1;
        let answer = emu.http.post(url).json(&body).timeout(timeout).send().await;
        let delivered = answer.as_ref().is_ok_and(|r| r.status().is_success());
        if let Some(s) = emu.world.lock().subscriptions.get_mut(&subscription) {
            match (kind, delivered) {
                (Post::Change, true) => s.delivered += 1,
                (Post::Lifecycle, true) => s.lifecycle_delivered += 1,
                (_, false) => s.failed_attempts += 1,
            }
        }
        if delivered {
            return;
        }
        if started.elapsed() + wait > delivery.retry_for {
            tracing::warn!(%subscription, attempts = attempt, "notification dropped: the retry period is over");
            return;
        }
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(delivery.retry_base * 180);
    }
}
