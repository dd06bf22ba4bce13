//! Users and roles as the directory API serves them, with the rules their inputs must meet.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::Problems;
use crate::serde_util::present;

/// Row scope of a role's members.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
pub enum Dac {
    #[serde(rename = "own-data")]
    OwnData,
    #[serde(rename = "team-data")]
    TeamData,
    #[default]
    #[serde(rename = "all-data")]
    AllData,
}

impl Dac {
    pub fn as_str(self) -> &'static str {
        match self {
            Dac::OwnData => "own-data",
            Dac::TeamData => "team-data",
            Dac::AllData => "all-data",
        }
    }

    pub fn parse(text: &str) -> Option<Dac> {
        [Dac::OwnData, Dac::TeamData, Dac::AllData].into_iter().find(|d| d.as_str() == text)
    }
}

/// An RBAC role. System roles cannot be deleted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Role {
    pub id: i64,
    pub name: String,
    pub description: String,
    pub is_system_role: bool,
    pub dac: Dac,
    pub created_by_user_id: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// The role as embedded in a user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct RoleSummary {
    pub id: i64,
    pub name: String,
    pub description: String,
    pub is_system_role: bool,
}

/// A person whose requests Tollgate governs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct User {
    pub id: String,
    pub name: String,
    pub email: String,
    pub role_id: Option<i64>,
    pub role: Option<RoleSummary>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Body of user creation.
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct CreateUserRequest {
    /// Not blank, no control characters.
    #[schema(min_length = 1, max_length = 255, pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$")]
    pub name: String,
    /// One `@`, no spaces or control characters, and a dot inside the domain.
    #[schema(
        min_length = 3,
        max_length = 320,
        format = Email,
        pattern = r"^[^\s@\x00-\x1f\x7f-\x9f]+@[^\s@.\x00-\x1f\x7f-\x9f][^\s@\x00-\x1f\x7f-\x9f]*\.[^\s@\x00-\x1f\x7f-\x9f]*[^\s@.\x00-\x1f\x7f-\x9f]$"
    )]
    pub email: String,
    #[serde(default)]
    pub role_id: Option<i64>,
}

/// Body of `PUT …/users/{user_id}/role`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct AssignRoleRequest {
    pub role_id: i64,
}

/// Body of role creation.
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct CreateRoleRequest {
    /// Lowercase: `^[a-z][a-z0-9_.]*$`, at most 255 characters.
    #[schema(pattern = "^[a-z][a-z0-9_.]*$", min_length = 1, max_length = 255)]
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub dac: Option<Dac>,
}

/// Body of a partial role update; `description: ""` or `null` clears it.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
pub struct UpdateRoleRequest {
    #[serde(default)]
    #[schema(pattern = "^[a-z][a-z0-9_.]*$", min_length = 1, max_length = 255)]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, nullable)]
    pub description: Option<Option<String>>,
    #[serde(default)]
    pub dac: Option<Dac>,
}

pub(crate) fn checked_user_name(p: &mut Problems, name: &str) -> String {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 255 || name.chars().any(char::is_control) {
        p.add("name", "must be 1 to 255 characters without control characters");
    }
    name.to_owned()
}

/// A practical e-mail check: one `@`, no spaces, a dot in the domain with text on both sides.
pub(crate) fn checked_email(p: &mut Problems, email: &str) -> String {
    let email = email.trim();
    let valid = email.len() <= 320
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && !domain.contains('@')
                && domain.split_once('.').is_some_and(|(a, b)| !a.is_empty() && !b.is_empty() && !domain.ends_with('.'))
        });
    if !valid {
        p.add("email", "must be an e-mail address such as ann@example.com");
    }
    email.to_owned()
}

pub(crate) fn checked_role_name(p: &mut Problems, name: &str) -> String {
    let name = name.trim();
    let mut chars = name.chars();
    let valid = name.len() <= 255
        && chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '.');
    if !valid {
        p.add("name", "must match ^[a-z][a-z0-9_.]*$ and be at most 255 characters");
    }
    name.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The pattern the schema states for a member of `CreateUserRequest`.
    fn pattern(member: &str) -> regex::Regex {
        let schema = serde_json::to_value(<CreateUserRequest as utoipa::PartialSchema>::schema()).unwrap();
        regex::Regex::new(schema["properties"][member]["pattern"].as_str().unwrap()).unwrap()
    }

    fn accepts(check: fn(&mut Problems, &str) -> String, value: &str) -> bool {
        let mut p = Problems::default();
        check(&mut p, value);
        p.into_result(()).is_ok()
    }

    #[test]
    fn whatever_the_schema_patterns_allow_the_checks_accept() {
        let (name, email) = (pattern("name"), pattern("email"));
        let samples = [
            "",
            " ",
            "a",
            " a ",
            "Ann Lee",
            "a\u{85}b",
            "\u{a0}",
            "\u{3000}x",
            "tab\there",
            "del\u{7f}",
            "ann@example.com",
            "a@b.c",
            "a@b..c",
            "a@.b",
            "a@b.",
            "a b@c.d",
            "a@b@c.d",
            "@b.c",
            "a@bc",
            "0@A.com",
            "é@ü.ß",
            " a@b.c",
            "a@b.c\n",
        ];
        for sample in samples {
            if name.is_match(sample) {
                assert!(accepts(checked_user_name, sample), "name {sample:?} fits the schema but is refused");
            }
            if email.is_match(sample) {
                assert!(accepts(checked_email, sample), "e-mail {sample:?} fits the schema but is refused");
            }
        }
        assert!(name.is_match("Ann Lee") && !name.is_match(" ") && !name.is_match("a\u{85}b"));
        assert!(email.is_match("ann@example.com") && !email.is_match("a@bc") && !email.is_match("a@b."));
    }
}
