//! The control API (`/_emu/api/…`, JSON), documented in msemu's README.

use std::sync::Arc;

use axum::{
    Json,
    extract::{Path, State, rejection::JsonRejection},
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::{get, post, put},
};
use serde::Deserialize;
use serde_json::{Value, json};

use super::actions::{self, Failure};
use crate::{Emulator, graph::subscriptions::format_time, world::now};

pub fn router() -> axum::Router<Arc<Emulator>> {
    axum::Router::new()
        .route("/_emu/api/users", get(users))
        .route("/_emu/api/users/{user}/presence", put(set_presence))
        .route("/_emu/api/users/{user}/activity", post(activity))
        .route("/_emu/api/users/{user}/revoke", post(revoke))
        .route("/_emu/api/users/{user}/consents/withdraw", post(withdraw_consents))
        .route("/_emu/api/subscriptions", get(subscriptions))
        .route("/_emu/api/tenants/{tenant}/admin-consent", post(admin_consent))
        .route("/_emu/api/keys/rotate", post(rotate_keys))
        .route("/_emu/api/faults", post(add_fault).get(list_faults).delete(clear_faults))
        .route("/_emu/api/requests", get(requests))
        .route("/_emu/api/reset", post(reset))
}

fn answer(result: Result<(), Failure>) -> Response {
    match result {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(failure) => error(failure),
    }
}

fn error((status, message): Failure) -> Response {
    (status, Json(json!({ "error": message }))).into_response()
}

/// Users with their presence.
pub fn users_json(emu: &Emulator) -> Value {
    let mut world = emu.world.lock();
    let users = world.directory.users.clone();
    let list: Vec<Value> = users
        .iter()
        .map(|u| {
            let p = world.presence(u.id);
            json!({
                "id": u.id, "email": u.email, "displayName": u.display_name, "tenant": u.tenant,
                "availability": p.availability, "activity": p.activity, "sequenceNumber": p.sequence, "idle": p.idle,
            })
        })
        .collect();
    json!({ "users": list })
}

async fn users(State(emu): State<Arc<Emulator>>) -> Json<Value> {
    Json(users_json(&emu))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PresenceChange {
    /// A Teams status name…
    status: Option<String>,
    /// …or the raw pair.
    availability: Option<String>,
    activity: Option<String>,
}

async fn set_presence(
    State(emu): State<Arc<Emulator>>,
    Path(user): Path<String>,
    body: Result<Json<PresenceChange>, JsonRejection>,
) -> Response {
    let Ok(Json(change)) = body else {
        return error((
            StatusCode::BAD_REQUEST,
            "expected {\"status\": \"Busy\"} or {\"availability\": …, \"activity\": …}".into(),
        ));
    };
    let pair = match (change.status, change.availability, change.activity) {
        (Some(status), None, None) => actions::status_pair(&status),
        (None, Some(a), Some(b)) => Ok((a, b)),
        _ => Err((StatusCode::BAD_REQUEST, "give either status or availability and activity".into())),
    };
    match pair.and_then(|(a, b)| actions::set_presence(&emu, &user, a, b)) {
        Ok((id, p)) => Json(json!({
            "id": id, "availability": p.availability, "activity": p.activity, "sequenceNumber": p.sequence,
        }))
        .into_response(),
        Err(failure) => error(failure),
    }
}

async fn activity(State(emu): State<Arc<Emulator>>, Path(user): Path<String>) -> Response {
    answer(actions::activity(&emu, &user))
}

async fn revoke(State(emu): State<Arc<Emulator>>, Path(user): Path<String>) -> Response {
    answer(actions::revoke(&emu, &user))
}

async fn withdraw_consents(State(emu): State<Arc<Emulator>>, Path(user): Path<String>) -> Response {
    answer(actions::withdraw_consents(&emu, &user))
}

/// Subscriptions with their statistics.
pub fn subscriptions_json(emu: &Emulator) -> Value {
    let world = emu.world.lock();
    let now = now();
    let list: Vec<Value> = world
        .subscriptions
        .values()
        .map(|s| {
            json!({
                "id": s.id, "resource": s.resource, "users": s.users, "changeType": s.change_type,
                "notificationUrl": s.notification_url, "lifecycleNotificationUrl": s.lifecycle_notification_url,
                "expirationDateTime": format_time(s.expiration), "expired": s.expiration <= now,
                "authorizedUntil": format_time(s.authorized_until),
                "includeResourceData": s.include_resource_data, "encryptionCertificateId": s.encryption_certificate_id,
                "applicationId": s.application_id, "creatorId": s.creator_id, "tenantId": s.tenant_id,
                "hasClientState": s.client_state.is_some(),
                "renewals": s.renewals.len(), "reauthorizations": s.reauthorizations.len(),
                "delivered": s.delivered, "failedAttempts": s.failed_attempts, "withheld": s.withheld.len(),
                "lifecycleNotifications": s.lifecycle_notifications, "lifecycleDelivered": s.lifecycle_delivered,
            })
        })
        .collect();
    json!({ "subscriptions": list })
}

async fn subscriptions(State(emu): State<Arc<Emulator>>) -> Json<Value> {
    Json(subscriptions_json(&emu))
}

async fn admin_consent(State(emu): State<Arc<Emulator>>, Path(tenant): Path<String>) -> Response {
    answer(actions::admin_consent(&emu, &tenant))
}

async fn rotate_keys(State(emu): State<Arc<Emulator>>) -> Response {
    match actions::rotate_keys(&emu) {
        Ok(kid) => Json(json!({ "kid": kid })).into_response(),
        Err(failure) => error(failure),
    }
}

async fn add_fault(
    State(emu): State<Arc<Emulator>>,
    body: Result<Json<crate::faults::Fault>, JsonRejection>,
) -> Response {
    match body {
        Ok(Json(fault)) => answer(actions::add_fault(&emu, fault)),
        Err(e) => error((StatusCode::BAD_REQUEST, e.body_text())),
    }
}

async fn list_faults(State(emu): State<Arc<Emulator>>) -> Json<Value> {
    Json(json!({ "faults": emu.world.lock().faults }))
}

async fn clear_faults(State(emu): State<Arc<Emulator>>) -> StatusCode {
    emu.world.lock().faults.clear();
    StatusCode::NO_CONTENT
}

/// Requests served, by method and route pattern.
async fn requests(State(emu): State<Arc<Emulator>>) -> Json<Value> {
    Json(json!({ "requests": emu.world.lock().requests }))
}

async fn reset(State(emu): State<Arc<Emulator>>) -> Response {
    answer(actions::reset(&emu))
}
