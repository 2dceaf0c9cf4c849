//! The `fields` partial-response parameter, a standard parameter of every Google API method:
//! `a,b(c,d),e/f` selects `a`, `c` and `d` inside `b`, and `f` inside `e`; `*` selects every
//! field at its level; selections inside arrays apply to each element
//! (<https://developers.google.com/workspace/calendar/api/guides/performance#partial-response>).
//! The selection is applied to the whole JSON answer.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

/// A parsed selection: each selected field, with what is selected inside it (`None`: all of it).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selection(BTreeMap<String, Option<Selection>>);

impl Selection {
    /// Parses a `fields` value; `Err` names the problem.
    pub fn parse(text: &str) -> Result<Selection, String> {
        let mut parser = Parser { chars: text.chars().collect(), at: 0 };
        let selection = parser.list()?;
        if parser.at != parser.chars.len() {
            return Err(format!("unexpected '{}' at position {}", parser.chars[parser.at], parser.at));
        }
        Ok(selection)
    }

    /// Adds `path` (with `inner` selected at its end) to the selection.
    fn add(&mut self, path: &[String], inner: Option<Selection>) {
        let Some((first, rest)) = path.split_first() else {
            return;
        };
        let sub = if rest.is_empty() {
            inner
        } else {
            let mut nested = Selection::default();
            nested.add(rest, inner);
            Some(nested)
        };
        match (self.0.get_mut(first), sub) {
            // Everything already selected there, or now: everything.
            (Some(None), _) => {}
            (Some(slot), None) => *slot = None,
            (Some(Some(existing)), Some(more)) => {
                for (k, v) in more.0 {
                    existing.merge(k, v);
                }
            }
            (None, sub) => {
                self.0.insert(first.clone(), sub);
            }
        }
    }

    fn merge(&mut self, key: String, sub: Option<Selection>) {
        self.add(&[key], sub);
    }

    /// `value` with only the selected fields.
    pub fn apply(&self, value: &Value) -> Value {
        match value {
            Value::Array(items) => Value::Array(items.iter().map(|v| self.apply(v)).collect()),
            Value::Object(object) => {
                let mut kept = Map::new();
                for (k, v) in object {
                    let chosen = self.0.get(k).or_else(|| self.0.get("*"));
                    match chosen {
                        Some(None) => {
                            kept.insert(k.clone(), v.clone());
                        }
                        Some(Some(inner)) => {
                            kept.insert(k.clone(), inner.apply(v));
                        }
                        None => {}
                    }
                }
                Value::Object(kept)
            }
            other => other.clone(),
        }
    }
}

struct Parser {
    chars: Vec<char>,
    at: usize,
}

impl Parser {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.at).copied()
    }

    /// `field (',' field)*`
    fn list(&mut self) -> Result<Selection, String> {
        let mut selection = Selection::default();
        loop {
            self.field(&mut selection)?;
            match self.peek() {
                Some(',') => self.at += 1,
                _ => return Ok(selection),
            }
        }
    }

    /// `name ('/' name)* ['(' list ')']`
    fn field(&mut self, into: &mut Selection) -> Result<(), String> {
        let mut path = vec![self.name()?];
        while self.peek() == Some('/') {
            self.at += 1;
            path.push(self.name()?);
        }
        let inner = if self.peek() == Some('(') {
            self.at += 1;
            let inner = self.list()?;
            if self.peek() != Some(')') {
                return Err(format!("missing ')' at position {}", self.at));
            }
            self.at += 1;
            Some(inner)
        } else {
            None
        };
        into.add(&path, inner);
        Ok(())
    }

    fn name(&mut self) -> Result<String, String> {
        let start = self.at;
        while self.peek().is_some_and(|c| c.is_ascii_alphanumeric() || "_-.@$*#".contains(c)) {
            self.at += 1;
        }
        if self.at == start {
            return Err(format!("a field name expected at position {start}"));
        }
        Ok(self.chars[start..self.at].iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn select(fields: &str, value: Value) -> Value {
        Selection::parse(fields).unwrap().apply(&value)
    }

    fn events() -> Value {
        json!({
            "kind": "calendar#events", "summary": "alice", "nextPageToken": "p2",
            "items": [
                { "id": "1", "summary": "Secret", "eventType": "default", "status": "confirmed",
                  "start": { "dateTime": "2026-11-26T10:00:00Z", "timeZone": "UTC" },
                  "attendees": [{ "email": "a@x", "self": true }] },
                { "id": "2", "summary": "Away", "eventType": "outOfOffice", "status": "confirmed",
                  "start": { "dateTime": "2026-11-27T10:00:00Z", "timeZone": "UTC" } },
            ]
        })
    }

    #[test]
    fn sub_selections_apply_to_each_array_element() {
        let got = select("nextPageToken,items(eventType,status,start)", events());
        assert_eq!(
            got,
            json!({ "nextPageToken": "p2", "items": [
                { "eventType": "default", "status": "confirmed", "start": { "dateTime": "2026-11-26T10:00:00Z", "timeZone": "UTC" } },
                { "eventType": "outOfOffice", "status": "confirmed", "start": { "dateTime": "2026-11-27T10:00:00Z", "timeZone": "UTC" } },
            ]})
        );
    }

    #[test]
    fn paths_nest_and_selections_merge() {
        let got = select("items/start/dateTime,items(id),kind", events());
        assert_eq!(
            got,
            json!({ "kind": "calendar#events", "items": [
                { "id": "1", "start": { "dateTime": "2026-11-26T10:00:00Z" } },
                { "id": "2", "start": { "dateTime": "2026-11-27T10:00:00Z" } },
            ]})
        );
        let got = select("items(attendees/email),items(id)", events());
        assert_eq!(got["items"][0], json!({ "id": "1", "attendees": [{ "email": "a@x" }] }));
        // A whole field selected once stays whole.
        assert_eq!(
            select("items(start),items/start/timeZone", events())["items"][1]["start"]["dateTime"],
            "2026-11-27T10:00:00Z"
        );
    }

    #[test]
    fn a_star_selects_every_field_at_its_level() {
        let got = select("items/*", events());
        assert_eq!(got["items"], events()["items"]);
        assert!(got.get("kind").is_none());
        let got = select(
            "items(*,start(timeZone))",
            json!({"items": [{"a": 1, "start": {"dateTime": "x", "timeZone": "UTC"}}]}),
        );
        assert_eq!(got, json!({"items": [{"a": 1, "start": {"timeZone": "UTC"}}]}));
    }

    #[test]
    fn malformed_selections_are_refused() {
        for bad in ["", "items(", "items(id", "a,,b", "a/", "items)id", "a b"] {
            assert!(Selection::parse(bad).is_err(), "{bad:?}");
        }
    }
}
