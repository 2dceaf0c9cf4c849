//! The Calendar API v3, as much as kehai uses of it and no more: `freeBusy.query` (when the
//! person is busy), `events.list` of the status events only (out of office, focus time) with a
//! `fields` mask that never lets a title, a description or a guest come back, and push channels
//! (`events.watch`, `channels.stop`). Every call is retried when Google throttles (429, or 403
//! with a rate-limit reason) or fails for a moment (5xx), honouring `Retry-After`
//! ([`kehai_oauth::retry`]).

use std::{sync::Arc, time::Duration};

use kehai_oauth::retry;
use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use time::{OffsetDateTime, format_description::well_known::Rfc3339};

use crate::{GoogleConfig, GoogleError, Observer, Unobserved, error::is_rate_limit_reason};

/// The only event fields kehai ever asks for: what kind of status, whether it stands, whether
/// it makes the person busy, and when.
pub const STATUS_EVENT_FIELDS: &str = "items(eventType,status,transparency,start,end)";

/// A time the person is busy, `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BusyInterval {
    pub start: OffsetDateTime,
    pub end: OffsetDateTime,
}

/// A status event's kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusKind {
    OutOfOffice,
    FocusTime,
}

/// An out-of-office or focus-time event that stands (not cancelled, not shown as free).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatusEvent {
    pub kind: StatusKind,
    pub start: OffsetDateTime,
    pub end: OffsetDateTime,
}

/// A push channel to ask for. `Debug` does not show its token.
pub struct NewChannel {
    /// Unique within kehai's Google Cloud project, at most 64 characters.
    pub id: String,
    /// Echoed in every push (`X-Goog-Channel-Token`): proves a push is Google's for this channel.
    pub token: SecretString,
    /// Where Google posts: `{public URL}/webhooks/gcal`.
    pub address: String,
    /// How long the channel should live (Google's default and kehai's: 7 days).
    pub ttl: Duration,
}

impl std::fmt::Debug for NewChannel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewChannel").field("id", &self.id).field("ttl", &self.ttl).finish_non_exhaustive()
    }
}

/// A channel Google made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Channel {
    pub id: String,
    /// The watched resource (the person's primary calendar's events), in every push.
    pub resource_id: String,
    /// When Google stops pushing, if it said.
    pub expiration: Option<OffsetDateTime>,
}

/// One name for every call: where it goes, how it is counted, whether repeating it is safe.
struct Call<'a> {
    operation: &'static str,
    method: Method,
    path: &'a str,
    query: &'a [(&'a str, String)],
    body: Option<Value>,
    /// Whether an attempt whose answer was lost may be made again.
    idempotent: bool,
}

/// The Calendar API for kehai's OAuth client.
#[derive(Debug, Clone)]
pub struct Calendar {
    config: GoogleConfig,
    http: reqwest::Client,
    observer: Arc<dyn Observer>,
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_default()
}

fn unreadable(what: &str) -> GoogleError {
    GoogleError::Transport(format!("unreadable {what}"))
}

impl Calendar {
    pub fn new(config: GoogleConfig) -> Self {
        Calendar { config, http: kehai_oauth::client(), observer: Arc::new(Unobserved) }
    }

    /// Tells `observer` of every request.
    pub fn with_observer(self, observer: Arc<dyn Observer>) -> Self {
        Calendar { observer, ..self }
    }

    /// When the person is busy between `from` and `to`, on their primary calendar: Google's
    /// intervals, merged and in order.
    pub async fn free_busy(
        &self,
        access: &SecretString,
        from: OffsetDateTime,
        to: OffsetDateTime,
    ) -> Result<Vec<BusyInterval>, GoogleError> {
        let body = json!({ "timeMin": rfc3339(from), "timeMax": rfc3339(to), "items": [{ "id": "primary" }] });
        let call = Call {
            operation: "free_busy",
            method: Method::POST,
            path: "/freeBusy",
            query: &[],
            body: Some(body),
            idempotent: true,
        };
        let answer = self.call(access, call).await?.ok_or_else(|| unreadable("free/busy answer"))?;
        let primary = &answer["calendars"]["primary"];
        // A calendar's own failure comes inside a 200.
        if let Some(error) = primary["errors"].as_array().and_then(|e| e.first()) {
            return Err(GoogleError::Api {
                status: 200,
                reason: error["reason"].as_str().unwrap_or("unknown").to_owned(),
                message: "the primary calendar's free/busy could not be read".into(),
                retry_after: None,
            });
        }
        let time = |v: &Value| v.as_str().and_then(|t| OffsetDateTime::parse(t, &Rfc3339).ok());
        let busy = primary["busy"].as_array().map(Vec::as_slice).unwrap_or_default();
        let busy: Option<Vec<BusyInterval>> =
            busy.iter().map(|b| Some(BusyInterval { start: time(&b["start"])?, end: time(&b["end"])? })).collect();
        Ok(merge(busy.ok_or_else(|| unreadable("busy times"))?))
    }

    /// The out-of-office and focus-time events between `from` and `to` on the primary calendar
    /// that stand. Asks for [`STATUS_EVENT_FIELDS`] only. Google may refuse this at kehai's
    /// scope (403): the caller then goes by free/busy alone.
    pub async fn status_events(
        &self,
        access: &SecretString,
        from: OffsetDateTime,
        to: OffsetDateTime,
    ) -> Result<Vec<StatusEvent>, GoogleError> {
        let query = [
            ("eventTypes", "outOfOffice".to_owned()),
            ("eventTypes", "focusTime".to_owned()),
            ("singleEvents", "true".to_owned()),
            ("timeMin", rfc3339(from)),
            ("timeMax", rfc3339(to)),
            ("maxResults", "250".to_owned()),
            ("fields", STATUS_EVENT_FIELDS.to_owned()),
        ];
        let call = Call {
            operation: "status_events",
            method: Method::GET,
            path: "/calendars/primary/events",
            query: &query,
            body: None,
            idempotent: true,
        };
        let answer = self.call(access, call).await?.ok_or_else(|| unreadable("event list"))?;
        let items = answer["items"].as_array().map(Vec::as_slice).unwrap_or_default();
        Ok(items.iter().filter_map(status_event).collect())
    }

    /// Asks Google to push a notice of every change to the person's primary calendar to
    /// `channel.address` (Google's `sync` notice may arrive before this answers).
    pub async fn watch(&self, access: &SecretString, channel: &NewChannel) -> Result<Channel, GoogleError> {
        let body = json!({
            "id": channel.id,
            "type": "web_hook",
            "address": channel.address,
            "token": channel.token.expose_secret(),
            "params": { "ttl": channel.ttl.as_secs().to_string() },
        });
        let call = Call {
            operation: "watch",
            method: Method::POST,
            path: "/calendars/primary/events/watch",
            query: &[],
            body: Some(body),
            // A lost answer may have made the channel: another attempt with its id would be
            // refused as a duplicate. The caller makes a new channel later.
            idempotent: false,
        };
        let answer = self.call(access, call).await?.ok_or_else(|| unreadable("channel"))?;
        let resource_id = answer["resourceId"].as_str().ok_or_else(|| unreadable("channel"))?.to_owned();
        // Milliseconds since the epoch, as a string (int64) or a number.
        let expiration = match &answer["expiration"] {
            Value::String(s) => s.parse::<i128>().ok(),
            Value::Number(n) => n.as_i64().map(i128::from),
            _ => None,
        }
        .and_then(|ms| OffsetDateTime::from_unix_timestamp_nanos(ms * 1_000_000).ok());
        Ok(Channel { id: channel.id.clone(), resource_id, expiration })
    }

    /// Stops a channel (only the person and client that made it may).
    pub async fn stop(&self, access: &SecretString, id: &str, resource_id: &str) -> Result<(), GoogleError> {
        let call = Call {
            operation: "stop",
            method: Method::POST,
            path: "/channels/stop",
            query: &[],
            body: Some(json!({ "id": id, "resourceId": resource_id })),
            idempotent: true,
        };
        self.call(access, call).await.map(|_| ())
    }

    /// Makes a call, again while Google throttles or fails for a moment.
    async fn call(&self, access: &SecretString, call: Call<'_>) -> Result<Option<Value>, GoogleError> {
        let mut attempt = 0u32;
        loop {
            let result = self.attempt(access, &call).await;
            let retry_after = match &result {
                Err(e @ GoogleError::Api { status, .. }) if e.is_rate_limited() || *status >= 500 => e.retry_after(),
                Err(GoogleError::Transport(_)) if call.idempotent => None,
                _ => return result,
            };
            let Some(wait) = retry::wait(attempt, retry_after) else { return result };
            tokio::time::sleep(wait).await;
            attempt += 1;
        }
    }

    /// One request, told to the observer with its status.
    async fn attempt(&self, access: &SecretString, call: &Call<'_>) -> Result<Option<Value>, GoogleError> {
        let mut request = self
            .http
            .request(call.method.clone(), self.config.calendar(call.path))
            .query(call.query)
            .bearer_auth(access.expose_secret());
        if let Some(body) = &call.body {
            request = request.json(body);
        }
        let transport = |e: reqwest::Error| GoogleError::Transport(e.without_url().to_string());
        let response = request.send().await.map_err(|e| {
            self.observer.calendar_call(call.operation, None);
            transport(e)
        })?;
        let status = response.status();
        self.observer.calendar_call(call.operation, Some(status.as_u16()));
        let retry_after = retry::retry_after(response.headers());
        let text = response.text().await.map_err(transport)?;
        if status.is_success() {
            if text.is_empty() || status == StatusCode::NO_CONTENT {
                return Ok(None);
            }
            return serde_json::from_str(&text).map(Some).map_err(|_| unreadable("answer"));
        }
        Err(api_error(status.as_u16(), &text, retry_after))
    }
}

/// Google's error, in either of its envelopes (`errors[]` with a `reason`, or only a `status`).
fn api_error(status: u16, text: &str, retry_after: Option<Duration>) -> GoogleError {
    let body: Value = serde_json::from_str(text).unwrap_or_default();
    let error = &body["error"];
    let reason = error["errors"][0]["reason"].as_str().or_else(|| error["status"].as_str()).unwrap_or("unknown");
    // A 403 that only says "slow down" is worth a retry like a 429 (google-protocol §3.8).
    debug_assert!(!is_rate_limit_reason(reason) || matches!(status, 403 | 429));
    GoogleError::Api {
        status,
        reason: reason.to_owned(),
        message: error["message"].as_str().unwrap_or("").chars().take(200).collect(),
        retry_after,
    }
}

/// A listed event as a status, when it is one that stands.
fn status_event(item: &Value) -> Option<StatusEvent> {
    let kind = match item["eventType"].as_str()? {
        "outOfOffice" => StatusKind::OutOfOffice,
        "focusTime" => StatusKind::FocusTime,
        _ => return None,
    };
    if item["status"].as_str() == Some("cancelled") || item["transparency"].as_str() == Some("transparent") {
        return None;
    }
    Some(StatusEvent { kind, start: when(&item["start"])?, end: when(&item["end"])? })
}

/// An event's start or end: a `dateTime`, or an all-day `date` (taken at midnight UTC: the
/// calendar's own time zone is not asked for).
fn when(value: &Value) -> Option<OffsetDateTime> {
    if let Some(t) = value["dateTime"].as_str() {
        return OffsetDateTime::parse(t, &Rfc3339).ok();
    }
    let date = value["date"].as_str()?;
    let format = time::macros::format_description!("[year]-[month]-[day]");
    Some(time::Date::parse(date, &format).ok()?.midnight().assume_utc())
}

/// Intervals in order, overlapping and touching ones merged, empty ones dropped.
fn merge(mut intervals: Vec<BusyInterval>) -> Vec<BusyInterval> {
    intervals.retain(|i| i.start < i.end);
    intervals.sort_by_key(|i| i.start);
    let mut merged: Vec<BusyInterval> = Vec::with_capacity(intervals.len());
    for i in intervals {
        match merged.last_mut() {
            Some(last) if i.start <= last.end => last.end = last.end.max(i.end),
            _ => merged.push(i),
        }
    }
    merged
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    #[test]
    fn busy_intervals_are_merged_in_order() {
        let i = |s: OffsetDateTime, e: OffsetDateTime| BusyInterval { start: s, end: e };
        let merged = merge(vec![
            i(datetime!(2026-12-07 11:00 UTC), datetime!(2026-12-07 12:00 UTC)),
            i(datetime!(2026-12-07 09:00 UTC), datetime!(2026-12-07 10:00 UTC)),
            i(datetime!(2026-12-07 10:00 UTC), datetime!(2026-12-07 10:30 UTC)),
            i(datetime!(2026-12-07 11:30 UTC), datetime!(2026-12-07 11:45 UTC)),
            i(datetime!(2026-12-07 13:00 UTC), datetime!(2026-12-07 13:00 UTC)),
        ]);
        assert_eq!(
            merged,
            [
                i(datetime!(2026-12-07 09:00 UTC), datetime!(2026-12-07 10:30 UTC)),
                i(datetime!(2026-12-07 11:00 UTC), datetime!(2026-12-07 12:00 UTC)),
            ]
        );
    }

    #[test]
    fn only_standing_status_events_count() {
        let event = |kind: &str, extra: Value| {
            let mut e = json!({
                "eventType": kind, "status": "confirmed",
                "start": {"dateTime": "2026-12-07T13:00:00+09:00"}, "end": {"dateTime": "2026-12-07T15:00:00+09:00"},
            });
            e.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
            status_event(&e)
        };
        let focus = event("focusTime", json!({})).unwrap();
        assert_eq!((focus.kind, focus.start), (StatusKind::FocusTime, datetime!(2026-12-07 04:00 UTC)));
        assert_eq!(event("outOfOffice", json!({})).map(|e| e.kind), Some(StatusKind::OutOfOffice));
        assert_eq!(event("focusTime", json!({"status": "cancelled"})), None);
        assert_eq!(event("outOfOffice", json!({"transparency": "transparent"})), None);
        assert_eq!(event("default", json!({})), None);
        assert_eq!(event("workingLocation", json!({})), None);
        let all_day = event("outOfOffice", json!({"start": {"date": "2026-12-24"}, "end": {"date": "2026-12-26"}}));
        assert_eq!(
            all_day.map(|e| (e.start, e.end)),
            Some((datetime!(2026-12-24 0:00 UTC), datetime!(2026-12-26 0:00 UTC)))
        );
    }

    #[test]
    fn both_error_envelopes_are_read() {
        let backend = r#"{"error":{"errors":[{"domain":"usageLimits","reason":"rateLimitExceeded","message":"Rate Limit Exceeded"}],"code":403,"message":"Rate Limit Exceeded"}}"#;
        let e = api_error(403, backend, Some(Duration::from_secs(2)));
        assert!(e.is_rate_limited());
        assert_eq!(e.retry_after(), Some(Duration::from_secs(2)));
        let front_end = r#"{"error":{"code":401,"message":"Request had invalid authentication credentials.","status":"UNAUTHENTICATED"}}"#;
        assert!(
            matches!(api_error(401, front_end, None), GoogleError::Api { status: 401, reason, .. } if reason == "UNAUTHENTICATED")
        );
        assert!(
            matches!(api_error(502, "<html>", None), GoogleError::Api { status: 502, reason, .. } if reason == "unknown")
        );
    }
}
