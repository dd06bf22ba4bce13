//! Whether a user's copy or a key works and until when: the `is_active` and `expires_at` members
//! an operator may change, read strictly from a JSON body.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use crate::error::Problems;

/// Members of a lifecycle change; `None` leaves a member as it is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LifecycleChange {
    pub is_active: Option<bool>,
    /// `Some(None)` clears the expiry.
    pub expires_at: Option<Option<DateTime<Utc>>>,
}

/// The names `LifecycleChange::read` takes.
pub const MEMBERS: [&str; 2] = ["is_active", "expires_at"];

impl LifecycleChange {
    /// Reads `is_active` (a boolean; `null` leaves it as it is) and `expires_at` (an RFC 3339 time in the future; `null` or
    /// `""` clears it) from `body`; a bad value is added to `problems`.
    pub(crate) fn read(body: &Map<String, Value>, now: DateTime<Utc>, problems: &mut Problems) -> LifecycleChange {
        let is_active = match body.get("is_active") {
            None | Some(Value::Null) => None,
            Some(Value::Bool(b)) => Some(*b),
            Some(_) => {
                problems.add("is_active", "must be true or false");
                None
            }
        };
        let expires_at = match body.get("expires_at") {
            None => None,
            Some(Value::Null) => Some(None),
            Some(Value::String(text)) if text.trim().is_empty() => Some(None),
            Some(Value::String(text)) => match DateTime::parse_from_rfc3339(text.trim()) {
                Ok(at) if at.with_timezone(&Utc) > now => Some(Some(crate::clock::truncate(at.with_timezone(&Utc)))),
                Ok(_) => {
                    problems.add("expires_at", "must be in the future");
                    None
                }
                Err(_) => {
                    problems.add("expires_at", "must be an RFC 3339 date-time such as 2030-01-31T12:00:00Z, or \"\"/null to clear it");
                    None
                }
            },
            Some(_) => {
                problems.add("expires_at", "must be an RFC 3339 date-time string, or \"\"/null to clear it");
                None
            }
        };
        LifecycleChange { is_active, expires_at }
    }

    /// The state after the change, from `is_active` and `expires_at` before it.
    pub fn applied_to(self, is_active: bool, expires_at: Option<DateTime<Utc>>) -> (bool, Option<DateTime<Utc>>) {
        (self.is_active.unwrap_or(is_active), self.expires_at.unwrap_or(expires_at))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn read(body: &Value) -> (LifecycleChange, Result<(), crate::CoreError>) {
        let mut problems = Problems::default();
        let change = LifecycleChange::read(body.as_object().unwrap_or(&Map::new()), crate::clock::now(), &mut problems);
        (change, problems.into_result(()))
    }

    #[test]
    fn flags_and_future_times_are_read_and_empty_clears() {
        let (change, ok) = read(&json!({"is_active": false, "expires_at": "2999-01-01T00:00:00Z"}));
        assert!(ok.is_ok());
        assert_eq!(change.is_active, Some(false));
        assert!(change.expires_at.is_some_and(|at| at.is_some()));
        assert_eq!(read(&json!({"expires_at": ""})).0.expires_at, Some(None));
        assert_eq!(read(&json!({"expires_at": null})).0.expires_at, Some(None));
        assert_eq!(read(&json!({})).0, LifecycleChange::default());
        assert_eq!(read(&json!({"is_active": null})).0, LifecycleChange::default());
    }

    #[test]
    fn wrong_types_and_past_times_are_refused() {
        for body in [
            json!({"is_active": "no"}),
            json!({"is_active": 1}),
            json!({"expires_at": "2001-01-01T00:00:00Z"}),
            json!({"expires_at": "tomorrow"}),
            json!({"expires_at": 5}),
        ] {
            assert!(read(&body).1.is_err(), "{body} was accepted");
        }
    }
}
