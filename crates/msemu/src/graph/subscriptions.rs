//! `/subscriptions`: create (with the validation handshake), list, get, renew (PATCH), delete
//! and reauthorize — with the rules Graph documents for presence subscriptions
//! (<https://learn.microsoft.com/graph/changenotifications-for-presence>,
//! <https://learn.microsoft.com/graph/api/resources/subscription>).

use std::sync::Arc;

use axum::{
    Extension, Json,
    extract::{Path, State},
    http::StatusCode,
    response::{IntoResponse, Response},
};
use base64::{Engine, engine::general_purpose::STANDARD};
use serde_json::{Value, json};
use uuid::Uuid;

use super::{Caller, GraphError};
use crate::{
    BaseUrl, Emulator,
    world::{Subscription, now},
};

/// Presence subscriptions live at most 60 minutes; less is raised to the configured minimum
/// (Graph raises anything under 45 minutes to 45 minutes).
const MAX_MINUTES: i64 = 60;
const MAX_CLIENT_STATE: usize = 128;
const MAX_FILTER_IDS: usize = 650;

/// Graph's date-time format: seven fractional digits, UTC.
pub fn format_time(unix: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp(unix).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let format =
        time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:7]Z");
    t.format(&format).unwrap_or_default()
}

fn parse_time(s: &str) -> Option<i64> {
    use time::format_description::well_known::Rfc3339;
    time::OffsetDateTime::parse(s, &Rfc3339)
        .or_else(|_| time::OffsetDateTime::parse(&format!("{s}Z"), &Rfc3339))
        .ok()
        .map(|t| t.unix_timestamp())
}

/// The users a presence resource covers: `communications/presences/{id}` or
/// `/communications/presences?$filter=id in ('{id}', …)`.
pub fn parse_resource(resource: &str) -> Result<Vec<Uuid>, GraphError> {
    let invalid = || {
        GraphError::bad_request(format!(
            "Invalid resource '{resource}': expected communications/presences/{{id}} or communications/presences?$filter=id in ('{{id}}', ...)."
        ))
    };
    // The filter form also arrives URL-encoded (`id+in+(%27…%27)`, as Graph itself writes it in
    // notifications).
    let decoded: String = url::form_urlencoded::parse(format!("r={}", resource.replace('&', "%26")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default();
    let r = decoded.trim_start_matches('/');
    if let Some(id) = r.strip_prefix("communications/presences/") {
        return Uuid::parse_str(id).map(|u| vec![u]).map_err(|_| invalid());
    }
    let filter = r.strip_prefix("communications/presences?$filter=").ok_or_else(invalid)?;
    let list = filter.trim().strip_prefix("id in").ok_or_else(invalid)?.trim();
    let list = list.strip_prefix('(').and_then(|l| l.strip_suffix(')')).ok_or_else(invalid)?;
    let ids = list
        .split(',')
        .map(|s| s.trim().trim_matches('\'').trim())
        .map(Uuid::parse_str)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| invalid())?;
    if ids.is_empty() || ids.len() > MAX_FILTER_IDS {
        return Err(GraphError::bad_request(format!("A presence subscription covers 1 to {MAX_FILTER_IDS} users.")));
    }
    Ok(ids)
}

fn subscription_json(base: &BaseUrl, s: &Subscription) -> Value {
    json!({
        "@odata.context": base.join("/v1.0/$metadata#subscriptions/$entity"),
        "id": s.id.to_string(),
        "resource": s.resource,
        "applicationId": s.application_id.to_string(),
        "changeType": s.change_type,
        "clientState": s.client_state,
        "notificationUrl": s.notification_url,
        "notificationQueryOptions": null,
        "lifecycleNotificationUrl": s.lifecycle_notification_url,
        "expirationDateTime": format_time(s.expiration),
        "creatorId": s.creator_id.to_string(),
        "includeResourceData": s.include_resource_data,
        "latestSupportedTlsVersion": "v1_2",
        "encryptionCertificate": null,
        "encryptionCertificateId": s.encryption_certificate_id,
        "notificationUrlAppId": null,
    })
}

fn url_allowed(emu: &Emulator, url: &str, what: &str) -> Result<(), GraphError> {
    let parsed = url::Url::parse(url).map_err(|_| GraphError::bad_request(format!("Invalid {what} '{url}'.")))?;
    match parsed.scheme() {
        "https" => Ok(()),
        "http" if emu.config.allow_http_notifications => Ok(()),
        _ => Err(GraphError::bad_request(format!("The {what} must use HTTPS."))),
    }
}

/// An expiration within the allowed window, from now.
fn expiration(emu: &Emulator, value: Option<&Value>) -> Result<i64, GraphError> {
    let text =
        value.and_then(Value::as_str).ok_or_else(|| GraphError::bad_request("expirationDateTime is required."))?;
    let at =
        parse_time(text).ok_or_else(|| GraphError::bad_request(format!("Invalid expirationDateTime '{text}'.")))?;
    let now = now();
    if at <= now {
        return Err(GraphError::bad_request("Subscription expiration must be in the future."));
    }
    if at > now + MAX_MINUTES * 60 + 5 {
        return Err(GraphError::bad_request(format!(
            "Subscription expiration can only be {MAX_MINUTES} minutes in the future."
        )));
    }
    let min = i64::try_from(emu.config.min_subscription_lifetime.as_secs()).unwrap_or(0);
    Ok(at.max(now + min))
}

/// The encryption certificate (base64 DER), which must hold an RSA key of 2048–4096 bits.
fn certificate(value: Option<&Value>) -> Result<Vec<u8>, GraphError> {
    let text = value.and_then(Value::as_str).ok_or_else(|| {
        GraphError::bad_request(
            "encryptionCertificate and encryptionCertificateId are required when includeResourceData is true.",
        )
    })?;
    let der =
        STANDARD.decode(text.trim()).map_err(|_| GraphError::bad_request("encryptionCertificate is not base64."))?;
    let (n, _) = crate::keys::rsa_components(&der)
        .map_err(|_| GraphError::bad_request("encryptionCertificate is not an RSA certificate."))?;
    let bits = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(n).map(|m| m.len() * 8).unwrap_or(0);
    if !(2048..=4096).contains(&bits) {
        return Err(GraphError::bad_request("The encryption certificate's key must be RSA 2048 to 4096 bits."));
    }
    Ok(der)
}

/// The validation handshake: `POST url?validationToken=…` must be answered within 10 s with
/// 200 and the decoded token as plain text.
async fn handshake(emu: &Emulator, url: &str) -> Result<(), GraphError> {
    let token =
        format!("Validation: Testing client application reachability for subscription Request-Id: {}", Uuid::new_v4());
    let mut target = url::Url::parse(url).map_err(|_| GraphError::bad_request("Invalid notificationUrl."))?;
    target.query_pairs_mut().append_pair("validationToken", &token);
    let answer = emu
        .http
        .post(target)
        .header("content-type", "text/plain; charset=utf-8")
        .timeout(emu.config.handshake_timeout)
        .send()
        .await;
    let ok = match answer {
        Ok(r) if r.status() == reqwest::StatusCode::OK => {
            // The endpoint must answer 200, text/plain, with the URL-decoded token as the body.
            let plain = r
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.trim().to_ascii_lowercase().starts_with("text/plain"));
            plain && r.text().await.is_ok_and(|body| body == token)
        }
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(GraphError::new(
            StatusCode::BAD_REQUEST,
            "InvalidRequest",
            "Subscription validation request failed. Notification endpoint must respond with 200 OK to validation request.",
        ))
    }
}

pub async fn create(
    State(emu): State<Arc<Emulator>>,
    Extension(base): Extension<BaseUrl>,
    caller: Caller,
    body: Result<Json<Value>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, GraphError> {
    let Json(body) = body.map_err(|e| GraphError::bad_request(e.body_text()))?;
    require_presence_permission(&caller, "Create")?;
    let field = |k: &str| body.get(k).and_then(Value::as_str);
    let resource = field("resource").ok_or_else(|| GraphError::bad_request("resource is required."))?.to_owned();
    let users = parse_resource(&resource)?;
    {
        // Every id must be a work or school user of the caller's tenant: a wrong id (an app id,
        // another tenant's user) is an error, not a subscription that never fires.
        let world = emu.world.lock();
        if let Some(unknown) = users.iter().find(|id| {
            world.directory.user(**id).is_none_or(|u| {
                let t = world.directory.tenant_of(u);
                t.id != caller.tenant || t.personal
            })
        }) {
            return Err(GraphError::not_found(&format!("user '{unknown}'")));
        }
    }
    let change_type = field("changeType").unwrap_or("");
    if change_type != "updated" {
        return Err(GraphError::bad_request(format!(
            "changeType '{change_type}' is not supported for presence: use 'updated'."
        )));
    }
    let notification_url =
        field("notificationUrl").ok_or_else(|| GraphError::bad_request("notificationUrl is required."))?.to_owned();
    url_allowed(&emu, &notification_url, "notificationUrl")?;
    let lifecycle = field("lifecycleNotificationUrl").map(str::to_owned);
    if let Some(l) = &lifecycle {
        url_allowed(&emu, l, "lifecycleNotificationUrl")?;
    }
    let expiration = expiration(&emu, body.get("expirationDateTime"))?;
    let client_state = field("clientState").map(str::to_owned);
    if client_state.as_ref().is_some_and(|c| c.chars().count() > MAX_CLIENT_STATE) {
        return Err(GraphError::bad_request(format!("clientState is longer than {MAX_CLIENT_STATE} characters.")));
    }
    let rich = body.get("includeResourceData").and_then(Value::as_bool).unwrap_or(false);
    let (certificate, certificate_id) = if rich {
        let der = certificate(body.get("encryptionCertificate"))?;
        let id = field("encryptionCertificateId").filter(|i| !i.is_empty() && i.len() <= 128).ok_or_else(|| {
            GraphError::bad_request(
                "encryptionCertificateId is required when includeResourceData is true (at most 128 characters).",
            )
        })?;
        (Some(der), Some(id.to_owned()))
    } else {
        (None, None)
    };
    conflict(&emu.world.lock(), &caller)?;
    handshake(&emu, &notification_url).await?;
    if let Some(l) = &lifecycle {
        handshake(&emu, l).await?;
    }
    let now = now();
    let subscription = Subscription {
        id: Uuid::new_v4(),
        resource,
        users,
        change_type: change_type.to_owned(),
        notification_url,
        lifecycle_notification_url: lifecycle,
        expiration,
        client_state,
        include_resource_data: rich,
        encryption_certificate: certificate,
        encryption_certificate_id: certificate_id,
        application_id: caller.app,
        creator_id: caller.user,
        tenant_id: caller.tenant,
        authorized_until: caller.expires,
        created: now,
        renewals: Vec::new(),
        reauthorizations: Vec::new(),
        delivered: 0,
        failed_attempts: 0,
        withheld: Vec::new(),
        lifecycle_sent: false,
        lifecycle_notifications: 0,
        lifecycle_delivered: 0,
        base: base.clone(),
    };
    let json = subscription_json(&base, &subscription);
    let mut world = emu.world.lock();
    // Checked again: another create may have finished during the handshake.
    conflict(&world, &caller)?;
    world.subscriptions.insert(subscription.id, subscription);
    Ok((StatusCode::CREATED, Json(json)).into_response())
}

/// Graph allows one presence subscription per app per user: a live one means 409.
fn conflict(world: &crate::world::Inner, caller: &Caller) -> Result<(), GraphError> {
    let now = now();
    match world
        .subscriptions
        .values()
        .find(|s| s.application_id == caller.app && s.creator_id == caller.user && s.expiration > now)
    {
        Some(existing) => Err(GraphError::new(
            StatusCode::CONFLICT,
            "Conflict",
            format!("Subscription Id {} already exists for the requested combination", existing.id),
        )),
        None => Ok(()),
    }
}

/// The caller's app's live subscription `id`.
fn find(emu: &Emulator, caller: &Caller, id: &str) -> Result<Subscription, GraphError> {
    let id = Uuid::parse_str(id).map_err(|_| GraphError::not_found("subscription"))?;
    let world = emu.world.lock();
    world
        .subscriptions
        .get(&id)
        .filter(|s| s.application_id == caller.app && s.creator_id == caller.user && s.expiration > now())
        .cloned()
        .ok_or_else(|| GraphError::not_found("subscription"))
}

pub async fn list(
    State(emu): State<Arc<Emulator>>,
    Extension(base): Extension<BaseUrl>,
    caller: Caller,
) -> Json<Value> {
    let world = emu.world.lock();
    let now = now();
    let value: Vec<Value> = world
        .subscriptions
        .values()
        .filter(|s| s.application_id == caller.app && s.creator_id == caller.user && s.expiration > now)
        .map(|s| subscription_json(&base, s))
        .collect();
    Json(json!({ "@odata.context": base.join("/v1.0/$metadata#subscriptions"), "value": value }))
}

pub async fn get_one(
    State(emu): State<Arc<Emulator>>,
    Extension(base): Extension<BaseUrl>,
    Path(id): Path<String>,
    caller: Caller,
) -> Result<Json<Value>, GraphError> {
    Ok(Json(subscription_json(&base, &find(&emu, &caller, &id)?)))
}

/// Renews (new `expirationDateTime`), moves (`notificationUrl`, with a new handshake) or rotates
/// the encryption certificate. Any PATCH also reauthorizes with the caller's token.
pub async fn update(
    State(emu): State<Arc<Emulator>>,
    Extension(base): Extension<BaseUrl>,
    Path(id): Path<String>,
    caller: Caller,
    body: Result<Json<Value>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<Value>, GraphError> {
    let Json(body) = body.map_err(|e| GraphError::bad_request(e.body_text()))?;
    require_presence_permission(&caller, "Update")?;
    let sub = find(&emu, &caller, &id)?;
    if body.get("lifecycleNotificationUrl").is_some() && sub.lifecycle_notification_url.is_none() {
        return Err(GraphError::bad_request(
            "lifecycleNotificationUrl cannot be added to an existing subscription: delete it and create a new one.",
        ));
    }
    // Everything that can fail, and the handshake, before touching the stored subscription.
    let expiration = body.get("expirationDateTime").map(|v| expiration(&emu, Some(v))).transpose()?;
    let url = body.get("notificationUrl").and_then(Value::as_str).map(str::to_owned);
    if let Some(url) = &url {
        url_allowed(&emu, url, "notificationUrl")?;
        handshake(&emu, url).await?;
    }
    let certificate = body.get("encryptionCertificate").map(|c| certificate(Some(c))).transpose()?;
    let certificate_id = body.get("encryptionCertificateId").and_then(Value::as_str).map(str::to_owned);

    let (json, withheld, target) = {
        let mut world = emu.world.lock();
        // Gone meanwhile (deleted, expired, reset): nothing to update.
        let Some(s) = world.subscriptions.get_mut(&sub.id).filter(|s| s.expiration > now()) else {
            return Err(GraphError::not_found("subscription"));
        };
        if let Some(at) = expiration {
            s.expiration = at;
            s.renewals.push(now());
        }
        if let Some(url) = url {
            s.notification_url = url;
        }
        if certificate.is_some() {
            s.encryption_certificate = certificate;
            s.encryption_certificate_id = certificate_id.or(s.encryption_certificate_id.take());
        }
        // Any PATCH also reauthorizes with the caller's token.
        s.authorized_until = caller.expires;
        s.lifecycle_sent = false;
        (subscription_json(&base, s), std::mem::take(&mut s.withheld), s.notification_url.clone())
    };
    crate::notify::release(&emu, sub.id, &target, withheld);
    Ok(Json(json))
}

/// Creating, renewing or reauthorizing a presence subscription needs delegated Presence.Read.All.
fn require_presence_permission(caller: &Caller, operation: &str) -> Result<(), GraphError> {
    if caller.has("Presence.Read.All") {
        Ok(())
    } else {
        Err(GraphError::new(
            StatusCode::FORBIDDEN,
            "ExtensionError",
            format!(
                "Operation: {operation}; Exception: [Status Code: Forbidden; Reason: Presence subscriptions need the delegated permission Presence.Read.All.]"
            ),
        ))
    }
}

pub async fn delete(
    State(emu): State<Arc<Emulator>>,
    Path(id): Path<String>,
    caller: Caller,
) -> Result<StatusCode, GraphError> {
    let sub = find(&emu, &caller, &id)?;
    emu.world.lock().subscriptions.remove(&sub.id);
    Ok(StatusCode::NO_CONTENT)
}

pub async fn reauthorize(
    State(emu): State<Arc<Emulator>>,
    Path(id): Path<String>,
    caller: Caller,
) -> Result<StatusCode, GraphError> {
    require_presence_permission(&caller, "Reauthorize")?;
    let sub = find(&emu, &caller, &id)?;
    let withheld = {
        let mut world = emu.world.lock();
        let Some(s) = world.subscriptions.get_mut(&sub.id) else {
            return Err(GraphError::not_found("subscription"));
        };
        s.authorized_until = caller.expires;
        s.reauthorizations.push(now());
        s.lifecycle_sent = false;
        std::mem::take(&mut s.withheld)
    };
    crate::notify::release(&emu, sub.id, &sub.notification_url, withheld);
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resources() {
        let a = "2c8e4a60-7d1b-4f3e-9a5c-0b6d8f2e4a71";
        let b = "5d9f1b72-8e2c-4a4f-8b6d-1c7e9a3f5b82";
        assert_eq!(parse_resource(&format!("communications/presences/{a}")).unwrap().len(), 1);
        assert_eq!(parse_resource(&format!("/communications/presences/{a}")).unwrap().len(), 1);
        let filter = format!("/communications/presences?$filter=id in ('{a}', '{b}')");
        assert_eq!(parse_resource(&filter).unwrap().len(), 2);
        for bad in
            ["me/presence", "communications/presences/not-a-guid", "communications/presences?$filter=id eq 'x'", ""]
        {
            assert!(parse_resource(bad).is_err(), "{bad}");
        }
        let many: Vec<String> = (0..651).map(|_| format!("'{}'", Uuid::new_v4())).collect();
        assert!(parse_resource(&format!("communications/presences?$filter=id in ({})", many.join(","))).is_err());
    }

    #[test]
    fn graph_time_format() {
        assert_eq!(format_time(0), "1970-01-01T00:00:00.0000000Z");
        assert_eq!(parse_time("2023-09-14T10:00:00.0000000Z"), Some(1_694_685_600));
        assert_eq!(parse_time("2023-09-14T10:00:00.0000000"), Some(1_694_685_600), "no zone: UTC");
    }
}
