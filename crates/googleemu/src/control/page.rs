//! `/_emu/`: the control page — each user's calendar with buttons to add the kinds of events
//! kehai reacts to, the clock, channels, recent Calendar requests and pushes, faults, keys.
//! Plain forms, no script.

use std::{collections::HashMap, sync::Arc, time::Duration};

use askama::Template;
use axum::{
    Form,
    extract::{Query, State},
    http::StatusCode,
    response::{Html, IntoResponse, Redirect, Response},
    routing::{get, post},
};

use super::api::NewEvent;
use crate::{
    Emulator,
    calendar::{event::EventKind, time::utc_millis, zone},
    clock::from_unix_ms,
    faults::Fault,
};

pub fn router() -> axum::Router<Arc<Emulator>> {
    axum::Router::new().route("/_emu/", get(show)).route("/_emu", get(show)).route("/_emu/act", post(act))
}

struct EventRow {
    id: String,
    kind: String,
    summary: String,
    start: String,
    end: String,
}

struct UserRow {
    email: String,
    name: String,
    hd: String,
    blocked: bool,
    events: Vec<EventRow>,
}

struct ChannelRow {
    id: String,
    user: String,
    address: String,
    expires: String,
    state: &'static str,
}

#[derive(Template)]
#[template(path = "control.html")]
struct ControlPage {
    message: Option<String>,
    now: String,
    offset_seconds: u64,
    users: Vec<UserRow>,
    kinds: Vec<&'static str>,
    channels: Vec<ChannelRow>,
    requests: Vec<(String, String, String, String, u16)>,
    pushes: Vec<(String, String, String, u64, String)>,
    faults: usize,
}

const KINDS: &[&str] = &["meeting", "outOfOffice", "focusTime", "declined", "needsAction", "free", "workingLocation"];

async fn show(State(emu): State<Arc<Emulator>>, Query(q): Query<HashMap<String, String>>) -> Response {
    let now = emu.clock.now_ms();
    let users: Vec<_> = emu.world.lock().directory.users.clone();
    let users = users
        .iter()
        .map(|u| {
            let (zone_name, offset) = zone(u);
            let events = emu
                .events(&u.email)
                .unwrap_or_default()
                .iter()
                .filter(|e| !e.cancelled())
                .map(|e| {
                    let json = e.full_json(&u.email, &zone_name, offset);
                    let when = |k: &str| {
                        json[k]["dateTime"].as_str().or_else(|| json[k]["date"].as_str()).unwrap_or("").to_owned()
                    };
                    EventRow {
                        id: e.id.clone(),
                        kind: format!("{:?}", e.kind),
                        summary: e.summary.clone(),
                        start: when("start"),
                        end: when("end"),
                    }
                })
                .collect();
            UserRow {
                email: u.email.clone(),
                name: u.name.clone(),
                hd: u.hd.clone().unwrap_or_else(|| "(consumer account)".into()),
                blocked: emu.world.lock().admin_policy_enforced(&u.email, ""),
                events,
            }
        })
        .collect();
    let channels = emu
        .channels()
        .iter()
        .map(|c| ChannelRow {
            id: c.id.clone(),
            user: c.user.clone(),
            address: c.address.clone(),
            expires: utc_millis(from_unix_ms(c.expiration)),
            state: if c.stopped {
                "stopped"
            } else if c.expiration <= now {
                "expired"
            } else {
                "live"
            },
        })
        .collect();
    let requests = emu
        .calendar_requests()
        .iter()
        .rev()
        .take(50)
        .map(|r| {
            (
                utc_millis(from_unix_ms(r.at)),
                r.user.clone().unwrap_or_default(),
                format!("{} {}", r.method, r.path),
                r.query.clone(),
                r.status,
            )
        })
        .collect();
    let pushes = emu
        .pushes()
        .iter()
        .rev()
        .take(50)
        .map(|p| {
            (
                utc_millis(from_unix_ms(p.at)),
                p.channel_id.clone(),
                p.state.clone(),
                p.message_number,
                p.status.map_or_else(|| "no answer".to_owned(), |s| s.to_string()),
            )
        })
        .collect();
    let page = ControlPage {
        message: q.get("done").cloned(),
        now: utc_millis(emu.now()),
        offset_seconds: emu.clock.offset().as_secs(),
        users,
        kinds: KINDS.to_vec(),
        channels,
        requests,
        pushes,
        faults: emu.faults().len(),
    };
    match page.render() {
        Ok(html) => Html(html).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

/// One button of the page; back to the page with what happened.
async fn act(State(emu): State<Arc<Emulator>>, Form(form): Form<HashMap<String, String>>) -> Response {
    let field = |k: &str| form.get(k).map(String::as_str).unwrap_or("");
    let number = |k: &str| field(k).trim().parse::<i64>().ok();
    let user = field("user");
    let result: Result<String, String> = match field("action") {
        "add-event" => {
            let kind: Result<EventKind, _> = serde_json::from_value(serde_json::json!(field("kind")));
            match kind {
                Ok(kind) => NewEvent {
                    kind,
                    start_in_minutes: number("start_in_minutes"),
                    start_in_seconds: None,
                    minutes: number("minutes"),
                    seconds: None,
                    summary: Some(field("summary")).filter(|s| !s.is_empty()).map(str::to_owned),
                    description: None,
                    all_day: false,
                    days: None,
                }
                .spec()
                .and_then(|spec| emu.add_event(user, spec))
                .map(|e| format!("added {} for {user}", e.id))
                .map_err(|e| e.message),
                Err(e) => Err(e.to_string()),
            }
        }
        "delete-event" => emu.delete_event(user, field("id")).map(|()| "event deleted".into()).map_err(|e| e.message),
        "clear" => emu.clear_calendar(user).map(|n| format!("{n} events deleted")).map_err(|e| e.message),
        "revoke" => emu.revoke(user, None).map(|()| format!("{user}'s grants revoked")).map_err(|e| e.message),
        "admin-policy" => {
            let enforced = field("enforced") == "true";
            emu.set_admin_policy(user, None, enforced)
                .map(|()| format!("admin policy for {user}: {}", if enforced { "enforced" } else { "lifted" }))
                .map_err(|e| e.message)
        }
        "advance" => {
            let seconds = number("seconds").unwrap_or(0).max(0).unsigned_abs();
            emu.advance(Duration::from_secs(seconds));
            Ok(format!("clock advanced {seconds} s"))
        }
        "rotate-keys" => emu.rotate_keys().map(|kid| format!("signing with key {kid}")).map_err(|e| e.message),
        "fault" => {
            let fault: Result<Fault, _> = serde_json::from_value(serde_json::json!({
                "target": field("target"),
                "kind": field("kind"),
                "count": number("count").unwrap_or(1),
            }));
            match fault {
                Ok(f) => emu.add_fault(f).map(|()| "fault injected".into()).map_err(|e| e.message),
                Err(e) => Err(e.to_string()),
            }
        }
        "clear-faults" => {
            emu.clear_faults();
            Ok("faults cleared".into())
        }
        "reset-counters" => {
            emu.reset_counters();
            Ok("request and push logs cleared".into())
        }
        "reset" => emu.reset().map(|()| "everything was reset".into()).map_err(|e| e.message),
        other => Err(format!("unknown action {other}")),
    };
    let message = result.unwrap_or_else(|e| format!("failed: {e}"));
    let query: String = url::form_urlencoded::Serializer::new(String::new()).append_pair("done", &message).finish();
    Redirect::to(&format!("/_emu/?{query}")).into_response()
}
