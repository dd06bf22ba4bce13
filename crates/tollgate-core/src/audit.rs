//! Version snapshots and audit-log entries of access profiles: what was changed, by whom.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::ids::ProfileId;
use crate::paging::Paging;

/// Audited actions: the nine of the contract, then Tollgate's assignment, key, override and
/// budget-alert actions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AuditAction {
    Create,
    Update,
    Delete,
    Propagate,
    AttachRole,
    DetachRole,
    Clone,
    Activate,
    Deactivate,
    /// A user received a copy (through a role or directly).
    Assign,
    /// A user's copy was removed.
    Unassign,
    MintKey,
    DeleteKey,
    RevealKey,
    SetOverride,
    RemoveOverride,
    /// A managed key got a new value on its profile's schedule.
    RotateKey,
    CreateAlertRule,
    UpdateAlertRule,
    DeleteAlertRule,
    /// A budget alert's webhook accepted it.
    AlertSent,
    /// A budget alert was given up after its last attempt.
    AlertFailed,
}

impl AuditAction {
    pub const ALL: [AuditAction; 22] = [
        AuditAction::Create,
        AuditAction::Update,
        AuditAction::Delete,
        AuditAction::Propagate,
        AuditAction::AttachRole,
        AuditAction::DetachRole,
        AuditAction::Clone,
        AuditAction::Activate,
        AuditAction::Deactivate,
        AuditAction::Assign,
        AuditAction::Unassign,
        AuditAction::MintKey,
        AuditAction::DeleteKey,
        AuditAction::RevealKey,
        AuditAction::SetOverride,
        AuditAction::RemoveOverride,
        AuditAction::RotateKey,
        AuditAction::CreateAlertRule,
        AuditAction::UpdateAlertRule,
        AuditAction::DeleteAlertRule,
        AuditAction::AlertSent,
        AuditAction::AlertFailed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AuditAction::Create => "create",
            AuditAction::Update => "update",
            AuditAction::Delete => "delete",
            AuditAction::Propagate => "propagate",
            AuditAction::AttachRole => "attach_role",
            AuditAction::DetachRole => "detach_role",
            AuditAction::Clone => "clone",
            AuditAction::Activate => "activate",
            AuditAction::Deactivate => "deactivate",
            AuditAction::Assign => "assign",
            AuditAction::Unassign => "unassign",
            AuditAction::MintKey => "mint_key",
            AuditAction::DeleteKey => "delete_key",
            AuditAction::RevealKey => "reveal_key",
            AuditAction::SetOverride => "set_override",
            AuditAction::RemoveOverride => "remove_override",
            AuditAction::RotateKey => "rotate_key",
            AuditAction::CreateAlertRule => "create_alert_rule",
            AuditAction::UpdateAlertRule => "update_alert_rule",
            AuditAction::DeleteAlertRule => "delete_alert_rule",
            AuditAction::AlertSent => "alert_sent",
            AuditAction::AlertFailed => "alert_failed",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == text)
    }
}

/// An audit entry about to be written, in the same transaction as the change it records.
#[derive(Debug, Clone, PartialEq)]
pub struct NewAuditEntry {
    pub profile_id: Option<ProfileId>,
    pub user_id: Option<String>,
    pub actor: String,
    pub action: AuditAction,
    pub previous_values: Option<String>,
    pub new_values: Option<String>,
    pub metadata: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// A stored audit entry, as served. The three value members are JSON text.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct AuditLog {
    pub id: i64,
    pub access_profile_id: Option<i64>,
    pub user_id: Option<String>,
    pub actor: String,
    pub action: String,
    pub previous_values: Option<String>,
    pub new_values: Option<String>,
    pub metadata: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// Filters of the audit-log lists.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    pub profile_id: Option<ProfileId>,
    pub action: Option<AuditAction>,
    pub user_id: Option<String>,
    pub paging: Paging,
}

/// A version snapshot about to be written with the change that made it.
#[derive(Debug, Clone, PartialEq)]
pub struct NewVersion {
    pub profile_id: ProfileId,
    pub version: i64,
    pub name: String,
    pub description: Option<String>,
    pub snapshot: String,
    pub changed_by: String,
    pub created_at: DateTime<Utc>,
}

/// A stored version, as served; `snapshot` is the profile at that version as JSON text.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct ProfileVersion {
    pub id: i64,
    pub access_profile_id: i64,
    pub version: i64,
    pub name: String,
    pub description: Option<String>,
    pub snapshot: String,
    pub changed_by: String,
    pub created_at: DateTime<Utc>,
}
