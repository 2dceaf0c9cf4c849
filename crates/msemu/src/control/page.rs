//! `/_emu/`: the control page — one click per Teams status for each user, and the rest of the
//! control API as buttons. Plain forms, no script.

use std::{collections::HashMap, sync::Arc};

use askama::Template;
use axum::{
    Form,
    extract::{Query, State},
    http::StatusCode,
    response::{Html, IntoResponse, Redirect, Response},
    routing::{get, post},
};

use super::actions;
use crate::{Emulator, directory::ConsentPolicy, faults::Fault, graph::subscriptions::format_time};

pub fn router() -> axum::Router<Arc<Emulator>> {
    axum::Router::new().route("/_emu/", get(show)).route("/_emu", get(show)).route("/_emu/act", post(act))
}

struct UserRow {
    id: String,
    name: String,
    email: String,
    tenant: String,
    availability: String,
    activity: String,
    sequence: String,
    idle: bool,
}

struct TenantRow {
    id: String,
    name: String,
    consent: &'static str,
    needs_admin: bool,
}

struct SubscriptionRow {
    id: String,
    resource: String,
    expires: String,
    kind: &'static str,
    delivered: u64,
    failed: u64,
    withheld: usize,
    renewals: usize,
    reauthorizations: usize,
}

#[derive(Template)]
#[template(path = "control.html")]
struct ControlPage {
    message: Option<String>,
    users: Vec<UserRow>,
    statuses: Vec<&'static str>,
    tenants: Vec<TenantRow>,
    subscriptions: Vec<SubscriptionRow>,
    faults: usize,
    requests: Vec<(String, u64)>,
}

async fn show(State(emu): State<Arc<Emulator>>, Query(q): Query<HashMap<String, String>>) -> Response {
    let mut world = emu.world.lock();
    let users = world.directory.users.clone();
    let users = users
        .iter()
        .map(|u| {
            let p = world.presence(u.id);
            UserRow {
                id: u.id.to_string(),
                name: u.display_name.clone(),
                email: u.email.clone(),
                tenant: u.tenant.clone(),
                availability: p.availability,
                activity: p.activity,
                sequence: p.sequence,
                idle: p.idle,
            }
        })
        .collect();
    let tenants = world
        .directory
        .tenants
        .iter()
        .map(|t| TenantRow {
            id: t.id.to_string(),
            name: t.name.clone(),
            consent: match (t.consent, t.admin_consent_granted) {
                (ConsentPolicy::User, _) => "users consent themselves",
                (ConsentPolicy::Admin, true) => "admin consent granted",
                (ConsentPolicy::Admin, false) => "admin consent required (not granted)",
            },
            needs_admin: t.consent == ConsentPolicy::Admin && !t.admin_consent_granted,
        })
        .collect();
    let subscriptions = world
        .subscriptions
        .values()
        .map(|s| SubscriptionRow {
            id: s.id.to_string(),
            resource: s.resource.clone(),
            expires: format_time(s.expiration),
            kind: if s.include_resource_data { "rich" } else { "basic" },
            delivered: s.delivered,
            failed: s.failed_attempts,
            withheld: s.withheld.len(),
            renewals: s.renewals.len(),
            reauthorizations: s.reauthorizations.len(),
        })
        .collect();
    let mut requests: Vec<(String, u64)> = world.requests.iter().map(|(k, v)| (k.clone(), *v)).collect();
    requests.sort();
    let page = ControlPage {
        message: q.get("done").cloned(),
        users,
        statuses: actions::STATUSES.iter().map(|s| s.0).collect(),
        tenants,
        subscriptions,
        faults: world.faults.len(),
        requests,
    };
    drop(world);
    match page.render() {
        Ok(html) => Html(html).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

/// One button of the page; back to the page with what happened.
async fn act(State(emu): State<Arc<Emulator>>, Form(form): Form<HashMap<String, String>>) -> Response {
    let field = |k: &str| form.get(k).map(String::as_str).unwrap_or("");
    let result = match field("action") {
        "status" => actions::status_pair(field("status"))
            .and_then(|(a, b)| actions::set_presence(&emu, field("user"), a, b))
            .map(|(_, p)| format!("{} is now {} / {}", field("user"), p.availability, p.activity)),
        "activity" => actions::activity(&emu, field("user")).map(|()| "activity reported".to_owned()),
        "revoke" => actions::revoke(&emu, field("user")).map(|()| "tokens revoked".to_owned()),
        "admin-consent" => actions::admin_consent(&emu, field("tenant")).map(|()| "admin consent granted".to_owned()),
        "rotate-keys" => actions::rotate_keys(&emu).map(|kid| format!("signing with key {kid}")),
        "reset" => actions::reset(&emu).map(|()| "everything was reset".to_owned()),
        "fault" => {
            let fault: Result<Fault, _> = serde_json::from_value(serde_json::json!({
                "target": field("target"),
                "kind": field("kind"),
                "count": field("count").parse::<u32>().unwrap_or(1),
                "retry_after": field("retry_after").parse::<u64>().unwrap_or(1),
            }));
            match fault {
                Ok(f) => actions::add_fault(&emu, f).map(|()| "fault injected".to_owned()),
                Err(e) => Err((StatusCode::BAD_REQUEST, e.to_string())),
            }
        }
        other => Err((StatusCode::BAD_REQUEST, format!("unknown action {other}"))),
    };
    let message = result.unwrap_or_else(|(_, message)| format!("failed: {message}"));
    let mut url = url::Url::parse("http://x/_emu/").expect("constant URL");
    url.query_pairs_mut().append_pair("done", &message);
    Redirect::to(&format!("/_emu/?{}", url.query().unwrap_or(""))).into_response()
}
