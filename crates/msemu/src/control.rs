//! msemu's control API (`/_emu/api/…`, JSON): what a test or a demo visitor does to the
//! emulated Microsoft — set a user's Teams status, look at subscriptions, revoke a user's
//! tokens, grant admin consent, rotate the signing keys.

use std::sync::Arc;

use axum::{
    Json,
    extract::{Path, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::{get, post, put},
};
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::{
    Emulator, notify,
    world::{Inner, now},
};

pub fn router() -> axum::Router<Arc<Emulator>> {
    axum::Router::new()
        .route("/_emu/api/users", get(users))
        .route("/_emu/api/users/{user}/presence", put(set_presence))
        .route("/_emu/api/users/{user}/revoke", post(revoke))
        .route("/_emu/api/subscriptions", get(subscriptions))
        .route(
            "/_emu/api/tenants/{tenant}/admin-consent",
            post(admin_consent),
        )
        .route("/_emu/api/keys/rotate", post(rotate_keys))
        .route("/_emu/api/users/{user}/activity", post(activity))
        .route(
            "/_emu/api/faults",
            post(add_fault).get(list_faults).delete(clear_faults),
        )
        .route("/_emu/api/requests", get(requests))
        .route("/_emu/api/reset", post(reset))
}

/// Teams statuses and the (availability, activity) Graph reports for them (§1.3).
pub const STATUSES: &[(&str, &str, &str)] = &[
    ("Available", "Available", "Available"),
    ("Busy", "Busy", "Busy"),
    ("DoNotDisturb", "DoNotDisturb", "DoNotDisturb"),
    ("BeRightBack", "BeRightBack", "BeRightBack"),
    ("AppearAway", "Away", "Away"),
    ("AppearOffline", "Offline", "OffWork"),
    ("InAMeeting", "Busy", "InAMeeting"),
    ("InACall", "Busy", "InACall"),
    ("Presenting", "DoNotDisturb", "Presenting"),
    ("OutOfOffice", "Away", "OutOfOffice"),
];

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
}

/// A user by object id or email.
fn user_id(world: &Inner, key: &str) -> Option<Uuid> {
    Uuid::parse_str(key)
        .ok()
        .filter(|id| world.directory.user(*id).is_some())
        .or_else(|| world.directory.user_by_email(key).map(|u| u.id))
}

async fn users(State(emu): State<Arc<Emulator>>) -> Json<Value> {
    let mut world = emu.world.lock();
    let users: Vec<_> = world.directory.users.clone();
    let list: Vec<Value> = users
        .iter()
        .map(|u| {
            let p = world.presence(u.id);
            json!({
                "id": u.id, "email": u.email, "displayName": u.display_name, "tenant": u.tenant,
                "availability": p.availability, "activity": p.activity, "sequenceNumber": p.sequence,
            })
        })
        .collect();
    Json(json!({ "users": list }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PresenceChange {
    /// One of [`STATUSES`]' names…
    status: Option<String>,
    /// …or the raw pair.
    availability: Option<String>,
    activity: Option<String>,
}

async fn set_presence(
    State(emu): State<Arc<Emulator>>,
    Path(user): Path<String>,
    body: Result<Json<PresenceChange>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let Ok(Json(change)) = body else {
        return error(
            StatusCode::BAD_REQUEST,
            "expected {\"status\": \"Busy\"} or {\"availability\": …, \"activity\": …}",
        );
    };
    let (availability, activity) = match (&change.status, &change.availability, &change.activity) {
        (Some(status), None, None) => match STATUSES
            .iter()
            .find(|(name, _, _)| name.eq_ignore_ascii_case(status))
        {
            Some((_, a, b)) => ((*a).to_owned(), (*b).to_owned()),
            None => {
                let known: Vec<_> = STATUSES.iter().map(|s| s.0).collect();
                return error(
                    StatusCode::BAD_REQUEST,
                    format!("unknown status {status}; one of {}", known.join(", ")),
                );
            }
        },
        (None, Some(a), Some(b)) => (a.clone(), b.clone()),
        _ => {
            return error(
                StatusCode::BAD_REQUEST,
                "give either status or availability and activity",
            );
        }
    };
    let presence = {
        let mut world = emu.world.lock();
        let Some(id) = user_id(&world, &user) else {
            return error(StatusCode::NOT_FOUND, format!("no user {user}"));
        };
        let mut p = world.presence(id);
        p.out_of_office = activity == "OutOfOffice";
        p.idle = false;
        p.availability = availability;
        p.activity = activity;
        p.sequence = world.next_sequence();
        p.last_activity = now();
        world.presences.insert(id, p.clone());
        (id, p)
    };
    notify::presence_changed(&emu, presence.0);
    Json(json!({ "id": presence.0, "availability": presence.1.availability, "activity": presence.1.activity, "sequenceNumber": presence.1.sequence }))
        .into_response()
}

async fn revoke(State(emu): State<Arc<Emulator>>, Path(user): Path<String>) -> Response {
    let mut world = emu.world.lock();
    let Some(id) = user_id(&world, &user) else {
        return error(StatusCode::NOT_FOUND, format!("no user {user}"));
    };
    // Everything issued up to and including this second is revoked.
    world.revoked_before.insert(id, now() + 1);
    StatusCode::NO_CONTENT.into_response()
}

async fn subscriptions(State(emu): State<Arc<Emulator>>) -> Json<Value> {
    let world = emu.world.lock();
    let now = now();
    let list: Vec<Value> = world
        .subscriptions
        .values()
        .map(|s| {
            json!({
                "id": s.id, "resource": s.resource, "users": s.users, "changeType": s.change_type,
                "notificationUrl": s.notification_url, "lifecycleNotificationUrl": s.lifecycle_notification_url,
                "expirationDateTime": crate::graph::subscriptions::format_time(s.expiration),
                "expired": s.expiration <= now, "includeResourceData": s.include_resource_data,
                "encryptionCertificateId": s.encryption_certificate_id,
                "applicationId": s.application_id, "creatorId": s.creator_id, "tenantId": s.tenant_id,
                "hasClientState": s.client_state.is_some(),
                "renewals": s.renewals.len(), "reauthorizations": s.reauthorizations.len(),
                "delivered": s.delivered, "failedAttempts": s.failed_attempts,
            })
        })
        .collect();
    Json(json!({ "subscriptions": list }))
}

async fn admin_consent(State(emu): State<Arc<Emulator>>, Path(tenant): Path<String>) -> Response {
    let mut world = emu.world.lock();
    match world.directory.tenant_mut(&tenant) {
        Some(t) => {
            t.admin_consent_granted = true;
            StatusCode::NO_CONTENT.into_response()
        }
        None => error(StatusCode::NOT_FOUND, format!("no tenant {tenant}")),
    }
}

async fn rotate_keys(State(emu): State<Arc<Emulator>>) -> Response {
    match emu.world.keys_mut().rotate() {
        Ok(()) => Json(json!({ "kid": emu.world.keys().current_kid() })).into_response(),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

/// The user did something (moved the mouse, typed): idle time starts again, and a user who went
/// Away by being idle is Available again.
async fn activity(State(emu): State<Arc<Emulator>>, Path(user): Path<String>) -> Response {
    let back = {
        let mut world = emu.world.lock();
        let Some(id) = user_id(&world, &user) else {
            return error(StatusCode::NOT_FOUND, format!("no user {user}"));
        };
        let mut p = world.presence(id);
        p.last_activity = now();
        let back = p.idle;
        if back {
            p.availability = "Available".into();
            p.activity = "Available".into();
            p.idle = false;
            p.sequence = world.next_sequence();
        }
        world.presences.insert(id, p);
        back.then_some(id)
    };
    if let Some(id) = back {
        notify::presence_changed(&emu, id);
    }
    StatusCode::NO_CONTENT.into_response()
}

async fn add_fault(
    State(emu): State<Arc<Emulator>>,
    body: Result<Json<crate::faults::Fault>, axum::extract::rejection::JsonRejection>,
) -> Response {
    match body {
        Ok(Json(fault)) if fault.is_valid() && fault.count > 0 => {
            emu.world.lock().faults.push(fault);
            StatusCode::NO_CONTENT.into_response()
        }
        Ok(_) => error(
            StatusCode::BAD_REQUEST,
            "graph and token take throttle, unavailable or hang; notifications take drop, delay, duplicate or reorder; count ≥ 1",
        ),
        Err(e) => error(StatusCode::BAD_REQUEST, e.body_text()),
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

/// Back to the configured directory: no sessions, consents, tokens, subscriptions, presence
/// or faults; new signing keys.
async fn reset(State(emu): State<Arc<Emulator>>) -> Response {
    match emu.world.reset(emu.config.directory.clone()) {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}
