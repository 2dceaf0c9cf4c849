//! `GET /me`, `GET /me/presence`, `GET /users/{id}/presence`,
//! `GET /communications/presences/{id}` and `POST /communications/getPresencesByUserId`, as
//! Graph documents them (<https://learn.microsoft.com/graph/api/resources/presence>).

use std::sync::Arc;

use axum::{
    Extension, Json,
    extract::{Path, State},
};
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use super::{Caller, GraphError, throttle_presence};
use crate::{BaseUrl, Emulator, world::Presence};

/// Presence as Graph serialises it.
pub fn presence_json(user: Uuid, p: &Presence) -> Value {
    json!({
        "id": user.to_string(),
        "availability": p.availability,
        "activity": p.activity,
        "statusMessage": null,
        "outOfOfficeSettings": { "message": null, "isOutOfOffice": p.out_of_office },
        "sequenceNumber": p.sequence,
    })
}

/// Reading someone else's presence needs `Presence.Read.All`; one's own, `Presence.Read` too.
fn may_read(caller: &Caller, user: Uuid) -> bool {
    caller.has("Presence.Read.All") || (user == caller.user && caller.has("Presence.Read"))
}

/// Presence exists for work and school users of the caller's tenant only.
fn lookup(emu: &Emulator, caller: &Caller, user: Uuid) -> Result<Presence, GraphError> {
    let mut world = emu.world.lock();
    let known = world.directory.user(user).is_some_and(|u| world.directory.tenant_of(u).id == caller.tenant);
    if !known {
        return Err(GraphError::not_found("user"));
    }
    Ok(world.presence(user))
}

pub async fn my_presence(
    State(emu): State<Arc<Emulator>>,
    Extension(base): Extension<BaseUrl>,
    caller: Caller,
) -> Result<Json<Value>, GraphError> {
    read(&emu, &base, &caller, caller.user)
}

pub async fn user_presence(
    State(emu): State<Arc<Emulator>>,
    Extension(base): Extension<BaseUrl>,
    Path(id): Path<String>,
    caller: Caller,
) -> Result<Json<Value>, GraphError> {
    let user = Uuid::parse_str(&id).map_err(|_| {
        GraphError::bad_request(format!("Invalid user id '{id}': the id must be the user's object id."))
    })?;
    read(&emu, &base, &caller, user)
}

fn read(emu: &Emulator, base: &BaseUrl, caller: &Caller, user: Uuid) -> Result<Json<Value>, GraphError> {
    if !may_read(caller, user) {
        return Err(GraphError::forbidden());
    }
    throttle_presence(emu, caller)?;
    let presence = lookup(emu, caller, user)?;
    let mut body = presence_json(user, &presence);
    body["@odata.context"] = json!(base.join(&format!("/v1.0/$metadata#users('{user}')/presence/$entity")));
    Ok(Json(body))
}

#[derive(Debug, Deserialize)]
pub struct Ids {
    ids: Vec<String>,
}

/// Graph takes at most 650 ids per request.
const MAX_IDS: usize = 650;

pub async fn by_user_ids(
    State(emu): State<Arc<Emulator>>,
    Extension(base): Extension<BaseUrl>,
    caller: Caller,
    body: Result<Json<Ids>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<Value>, GraphError> {
    let Json(Ids { ids }) = body.map_err(|e| GraphError::bad_request(e.body_text()))?;
    if !caller.has("Presence.Read.All") {
        return Err(GraphError::forbidden());
    }
    if ids.is_empty() || ids.len() > MAX_IDS {
        return Err(GraphError::bad_request(format!("The number of ids must be between 1 and {MAX_IDS}.")));
    }
    throttle_presence(&emu, &caller)?;
    let mut value = Vec::new();
    for id in &ids {
        let user = Uuid::parse_str(id).map_err(|_| GraphError::bad_request(format!("Invalid user id '{id}'.")))?;
        if let Ok(p) = lookup(&emu, &caller, user) {
            value.push(presence_json(user, &p));
        }
    }
    Ok(Json(json!({
        "@odata.context": base.join("/v1.0/$metadata#Collection(microsoft.graph.presence)"),
        "value": value,
    })))
}

/// `GET /me`: the signed-in user's profile; needs `User.Read`.
pub async fn me(
    State(emu): State<Arc<Emulator>>,
    Extension(base): Extension<BaseUrl>,
    caller: Caller,
) -> Result<Json<Value>, GraphError> {
    if !caller.has("User.Read") {
        return Err(GraphError::forbidden());
    }
    let world = emu.world.lock();
    let user = world.directory.user(caller.user).ok_or_else(|| GraphError::not_found("user"))?;
    Ok(Json(json!({
        "@odata.context": base.join("/v1.0/$metadata#users/$entity"),
        "id": user.id.to_string(),
        "displayName": user.display_name,
        "mail": user.email,
        "userPrincipalName": user.email,
    })))
}
