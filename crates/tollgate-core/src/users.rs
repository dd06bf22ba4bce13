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
    #[schema(min_length = 1, max_length = 255)]
    pub name: String,
    #[schema(min_length = 3, max_length = 320, format = Email)]
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
