//! The control operations, as methods of [`Emulator`]: the JSON API and the page call them, and
//! so can in-process tests (`emu.add_event(…)` on a [`crate::Running`]).

use std::time::Duration;

use axum::http::StatusCode;
use serde::Serialize;
use time::OffsetDateTime;

use crate::{
    Emulator,
    calendar::event::{Event, EventSpec},
    faults::Fault,
    identity::tokens,
    push,
    scopes::{self, Scopes},
    world::{CalendarRequest, Channel, PushRecord, random_from},
};

/// Why a control operation could not be done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControlError {
    pub status: StatusCode,
    pub message: String,
}

impl ControlError {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ControlError { status, message: message.into() }
    }

    fn no_user(email: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, format!("no user {email}"))
    }
}

impl std::fmt::Display for ControlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.message, self.status)
    }
}

impl std::error::Error for ControlError {}

/// What a user granted a client, for the control API (never the tokens themselves).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Grant {
    pub client_id: String,
    /// As consented (normalized).
    pub scopes: Vec<String>,
    /// Refresh tokens that still work.
    pub live_refresh_tokens: usize,
}

/// Google's event ids: lowercase base32hex.
fn event_id() -> String {
    random_from(b"0123456789abcdefghijklmnopqrstuv", 26)
}

impl Emulator {
    /// The canonical (lowercase) email of a known user.
    fn known(&self, email: &str) -> Result<String, ControlError> {
        self.world
            .lock()
            .directory
            .user(email)
            .map(|u| u.email.to_lowercase())
            .ok_or_else(|| ControlError::no_user(email))
    }

    /// Adds an event to `email`'s primary calendar; channels watching it get `exists`.
    pub fn add_event(&self, email: &str, spec: EventSpec) -> Result<Event, ControlError> {
        let email = self.known(email)?;
        let now = self.clock.now();
        let event = {
            let mut world = self.world.lock();
            let calendar = world.calendar(&email);
            calendar.changes += 1;
            let event = Event::new(event_id(), spec, now, calendar.changes);
            calendar.events.push(event.clone());
            event
        };
        push::changed(&self.arc(), &email, &[event.kind.event_type()]);
        Ok(event)
    }

    /// The events of `email`'s primary calendar, deleted ones (`cancelled`) included.
    pub fn events(&self, email: &str) -> Result<Vec<Event>, ControlError> {
        let email = self.known(email)?;
        Ok(self.world.lock().calendar(&email).events.clone())
    }

    /// Deletes an event (it stays as a `cancelled` tombstone for incremental sync).
    pub fn delete_event(&self, email: &str, id: &str) -> Result<(), ControlError> {
        let email = self.known(email)?;
        let kind = {
            let now = self.clock.now();
            let mut world = self.world.lock();
            let calendar = world.calendar(&email);
            let changes = calendar.changes + 1;
            let event = calendar
                .events
                .iter_mut()
                .find(|e| e.id == id && !e.cancelled())
                .ok_or_else(|| ControlError::new(StatusCode::NOT_FOUND, format!("no event {id} for {email}")))?;
            event.status = "cancelled";
            event.updated = now;
            event.changed_at = changes;
            let kind = event.kind;
            calendar.changes = changes;
            kind
        };
        push::changed(&self.arc(), &email, &[kind.event_type()]);
        Ok(())
    }

    /// Deletes every event of `email`'s calendar; returns how many.
    pub fn clear_calendar(&self, email: &str) -> Result<usize, ControlError> {
        let email = self.known(email)?;
        let types = {
            let now = self.clock.now();
            let mut world = self.world.lock();
            let calendar = world.calendar(&email);
            calendar.changes += 1;
            let changes = calendar.changes;
            let mut types = Vec::new();
            for e in calendar.events.iter_mut().filter(|e| !e.cancelled()) {
                e.status = "cancelled";
                e.updated = now;
                e.changed_at = changes;
                types.push(e.kind.event_type());
            }
            types
        };
        if !types.is_empty() {
            push::changed(&self.arc(), &email, &types);
        }
        Ok(types.len())
    }

    /// Moves the emulator's clock forward: codes, tokens, testing lapses and channels expire as
    /// if that much time had passed.
    pub fn advance(&self, by: Duration) {
        self.clock.advance(by);
    }

    /// The emulator's now.
    pub fn now(&self) -> OffsetDateTime {
        self.clock.now()
    }

    /// Revokes `email`'s grants to `client_id` (every client when `None`), as the user would on
    /// their Google Account page: refreshing then answers `invalid_grant`.
    pub fn revoke(&self, email: &str, client_id: Option<&str>) -> Result<(), ControlError> {
        let email = self.known(email)?;
        let mut world = self.world.lock();
        let clients: Vec<String> = match client_id {
            Some(c) => vec![c.to_owned()],
            None => world.directory.clients.iter().map(|c| c.client_id.clone()).collect(),
        };
        for client in clients {
            world.revoke_grant(&email, &client);
        }
        Ok(())
    }

    /// The organization's administrator restricts (or allows again) `client_id` — every client
    /// when `None` — for `email`: sign-in ends on the `admin_policy_enforced` screen, and the
    /// user's refresh tokens for it stop working.
    pub fn set_admin_policy(&self, email: &str, client_id: Option<&str>, enforced: bool) -> Result<(), ControlError> {
        let email = self.known(email)?;
        let mut world = self.world.lock();
        let key = (email.clone(), client_id.map(str::to_owned));
        if enforced {
            world.admin_blocked.insert(key);
            let clients: Vec<String> = match client_id {
                Some(c) => vec![c.to_owned()],
                None => world.directory.clients.iter().map(|c| c.client_id.clone()).collect(),
            };
            for client in clients {
                world.revoke_grant(&email, &client);
            }
        } else {
            world.admin_blocked.remove(&key);
        }
        Ok(())
    }

    /// What `email` granted each client.
    pub fn grants(&self, email: &str) -> Result<Vec<Grant>, ControlError> {
        let email = self.known(email)?;
        let now = self.clock.now_ms();
        let world = self.world.lock();
        let mut grants: Vec<Grant> = world
            .directory
            .clients
            .iter()
            .filter_map(|c| {
                let consented: Option<&Scopes> = world.consents.get(&(email.clone(), c.client_id.clone()));
                let live = world
                    .refresh_tokens
                    .values()
                    .filter(|r| r.user == email && r.client_id == c.client_id)
                    .filter(|r| tokens::refresh_problem(&world, now, r).is_none())
                    .count();
                (consented.is_some() || live > 0).then(|| Grant {
                    client_id: c.client_id.clone(),
                    scopes: consented.map(|s| s.iter().cloned().collect()).unwrap_or_default(),
                    live_refresh_tokens: live,
                })
            })
            .collect();
        grants.sort_by(|a, b| a.client_id.cmp(&b.client_id));
        Ok(grants)
    }

    /// Signs with a new key (the old one stays published); returns the new `kid`.
    pub fn rotate_keys(&self) -> Result<String, ControlError> {
        self.world
            .keys_mut()
            .rotate()
            .map_err(|e| ControlError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
        Ok(self.world.keys().current_kid().to_owned())
    }

    pub fn add_fault(&self, fault: Fault) -> Result<(), ControlError> {
        if let Some(problem) = fault.problem() {
            return Err(ControlError::new(StatusCode::BAD_REQUEST, problem));
        }
        if let Some(op) = &fault.operation
            && ![
                scopes::Method::FreebusyQuery,
                scopes::Method::EventsList,
                scopes::Method::EventsGet,
                scopes::Method::EventsWatch,
                scopes::Method::ChannelsStop,
            ]
            .iter()
            .any(|m| m.id() == op)
        {
            return Err(ControlError::new(StatusCode::BAD_REQUEST, format!("unknown operation {op}")));
        }
        self.world.lock().faults.push(fault);
        Ok(())
    }

    pub fn faults(&self) -> Vec<Fault> {
        self.world.lock().faults.clone()
    }

    pub fn clear_faults(&self) {
        self.world.lock().faults.clear();
    }

    /// Every Calendar request since the start or the last [`Emulator::reset_counters`].
    pub fn calendar_requests(&self) -> Vec<CalendarRequest> {
        self.world.lock().requests.clone()
    }

    /// How many Calendar requests `email` made in `[from, to)` (emulator time).
    pub fn calendar_requests_by(&self, email: &str, from: OffsetDateTime, to: OffsetDateTime) -> usize {
        let (from, to) = (crate::clock::unix_ms(from), crate::clock::unix_ms(to));
        self.world
            .lock()
            .requests
            .iter()
            .filter(|r| r.user.as_deref().is_some_and(|u| u.eq_ignore_ascii_case(email)) && r.at >= from && r.at < to)
            .count()
    }

    /// Every push delivery attempt since the start or the last [`Emulator::reset_counters`].
    pub fn pushes(&self) -> Vec<PushRecord> {
        self.world.lock().pushes.clone()
    }

    /// Every channel made, stopped and expired ones included.
    pub fn channels(&self) -> Vec<Channel> {
        self.world.lock().channels.clone()
    }

    /// Forgets the request and push logs.
    pub fn reset_counters(&self) {
        let mut world = self.world.lock();
        world.requests.clear();
        world.pushes.clear();
    }

    /// Forgets everything (sessions, consents, tokens, calendars, channels, faults, logs), makes
    /// new signing keys and puts the clock back to real time.
    pub fn reset(&self) -> Result<(), ControlError> {
        self.clock.reset();
        self.world
            .reset(self.config.directory.clone())
            .map_err(|e| ControlError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
    }
}
