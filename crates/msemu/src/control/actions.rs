//! The control operations, shared by the JSON API and the page.

use std::sync::Arc;

use axum::http::StatusCode;
use uuid::Uuid;

use crate::{
    Emulator, notify,
    world::{Inner, Presence, now},
};

/// Teams statuses and the (availability, activity) Graph reports for them, as Microsoft lists
/// them (<https://learn.microsoft.com/graph/cloud-communications-manage-presence-state>).
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
    ("OutOfOffice", "Offline", "OutOfOffice"),
];

/// Why an operation could not be done: an HTTP status and words.
pub type Failure = (StatusCode, String);

fn no_user(user: &str) -> Failure {
    (StatusCode::NOT_FOUND, format!("no user {user}"))
}

/// A user by object id or email.
pub fn user_id(world: &Inner, key: &str) -> Option<Uuid> {
    Uuid::parse_str(key)
        .ok()
        .filter(|id| world.directory.user(*id).is_some())
        .or_else(|| world.directory.user_by_email(key).map(|u| u.id))
}

/// The (availability, activity) of a Teams status name.
pub fn status_pair(status: &str) -> Result<(String, String), Failure> {
    STATUSES
        .iter()
        .find(|(name, _, _)| name.eq_ignore_ascii_case(status))
        .map(|(_, a, b)| ((*a).to_owned(), (*b).to_owned()))
        .ok_or_else(|| {
            let known: Vec<_> = STATUSES.iter().map(|s| s.0).collect();
            (StatusCode::BAD_REQUEST, format!("unknown status {status}; one of {}", known.join(", ")))
        })
}

/// Sets a user's presence (as if they chose it in Teams) and notifies subscribers.
pub fn set_presence(
    emu: &Arc<Emulator>,
    user: &str,
    availability: String,
    activity: String,
) -> Result<(Uuid, Presence), Failure> {
    let (id, presence) = {
        let mut world = emu.world.lock();
        let id = user_id(&world, user).ok_or_else(|| no_user(user))?;
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
    notify::presence_changed(emu, id);
    Ok((id, presence))
}

/// The user did something: idle time restarts; an idle user is Available again.
pub fn activity(emu: &Arc<Emulator>, user: &str) -> Result<(), Failure> {
    let back = {
        let mut world = emu.world.lock();
        let id = user_id(&world, user).ok_or_else(|| no_user(user))?;
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
        notify::presence_changed(emu, id);
    }
    Ok(())
}

/// Revokes everything the user was issued (refresh and access tokens, browser sessions), as
/// "revoke sessions" or a password reset does. Their subscriptions lose their authorization:
/// `reauthorizationRequired` follows, and notifications are withheld until reauthorized.
pub fn revoke(emu: &Emulator, user: &str) -> Result<(), Failure> {
    let mut world = emu.world.lock();
    let id = user_id(&world, user).ok_or_else(|| no_user(user))?;
    world.revoke_user(id);
    let now = now();
    for s in world.subscriptions.values_mut().filter(|s| s.creator_id == id) {
        s.authorized_until = s.authorized_until.min(now);
        s.lifecycle_sent = false;
    }
    Ok(())
}

/// Withdraws the user's consents to every app (refreshing then fails with AADSTS65001).
pub fn withdraw_consents(emu: &Emulator, user: &str) -> Result<(), Failure> {
    let mut world = emu.world.lock();
    let id = user_id(&world, user).ok_or_else(|| no_user(user))?;
    world.consents.retain(|(u, _), _| *u != id);
    Ok(())
}

/// An administrator consents for the whole tenant, to every app and permission.
pub fn admin_consent(emu: &Emulator, tenant: &str) -> Result<(), Failure> {
    let mut world = emu.world.lock();
    let t = world.directory.tenant_mut(tenant).ok_or_else(|| (StatusCode::NOT_FOUND, format!("no tenant {tenant}")))?;
    t.admin_consent_granted = true;
    Ok(())
}

pub fn rotate_keys(emu: &Emulator) -> Result<String, Failure> {
    emu.world.keys_mut().rotate().map_err(|e| (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    Ok(emu.world.keys().current_kid().to_owned())
}

pub fn add_fault(emu: &Emulator, fault: crate::faults::Fault) -> Result<(), Failure> {
    if !fault.is_valid() || fault.count == 0 {
        return Err((
            StatusCode::BAD_REQUEST,
            "graph and token take throttle, unavailable or hang; notifications take drop, delay, duplicate or reorder; count ≥ 1".into(),
        ));
    }
    emu.world.lock().faults.push(fault);
    Ok(())
}

/// Back to the configured directory with new keys.
pub fn reset(emu: &Emulator) -> Result<(), Failure> {
    emu.world.reset(emu.config.directory.clone()).map_err(|e| (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
}
