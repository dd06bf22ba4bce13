//! The access-profile template as stored and as served: policy lines, rotation schedule, MCP grants.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::ids::{BudgetId, ProfileId, ProviderConfigId, RateLimitId};
use crate::money::Money;
use crate::window::{BudgetResetConfig, BudgetResetDuration, RateLimitResetDuration};

/// Scope of a profile-level (cross-provider) budget line.
pub const TOTAL_SCOPE: &str = "total";

/// An access-profile template.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AccessProfile {
    pub id: ProfileId,
    pub name: String,
    pub description: Option<String>,
    pub is_active: bool,
    /// Current version; every saved change adds one and records a snapshot.
    pub version: i64,
    pub tags: Vec<String>,
    #[serde(flatten)]
    pub policy: Policy,
    #[serde(flatten)]
    pub rotation: Rotation,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// What a profile grants and how much: the part that propagates to user copies.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, ToSchema)]
pub struct Policy {
    pub provider_configs: Vec<ProviderConfig>,
    /// Global (cross-provider) budget lines.
    pub budgets: Vec<Budget>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimit>,
    /// Aligns every window of this profile to calendar boundaries (UTC).
    pub calendar_aligned: bool,
    /// Tollgate's own: the request log keeps the prompt and the answer of the copies' requests
    /// (off unless an operator turns it on; decision 214).
    #[serde(default)]
    pub log_content: bool,
    pub mcp_tool_groups: Vec<McpToolGroupLink>,
    pub mcp_servers: Vec<McpServerLink>,
    pub mcp_tool_overrides: Vec<McpToolOverride>,
}

impl Policy {
    /// Whether `mcp_servers` grants the client whole.
    pub fn grants_server_whole(&self, client_id: &str) -> bool {
        self.mcp_servers.iter().any(|s| s.mcp_server_id == client_id)
    }

    /// An `exclude` override on a client `mcp_servers` grants whole (a contradiction the API
    /// refuses), named as `tool 't' of client 'c'`; `None` when there is none.
    pub fn excluded_from_whole_server(&self) -> Option<String> {
        self.mcp_tool_overrides
            .iter()
            .find(|o| o.action == OverrideAction::Exclude && self.grants_server_whole(&o.mcp_client_id))
            .map(|o| format!("tool '{}' of client '{}'", o.tool_name, o.mcp_client_id))
    }
}

/// Automatic rotation schedule of the managed virtual keys a profile issues.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
pub struct Rotation {
    /// Interval in nanoseconds; 0 means rotation is off.
    pub auto_rotation_interval: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_rotation_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_rotation_at: Option<DateTime<Utc>>,
}

/// Which models of one provider a profile grants, with provider-scoped limits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ProviderConfig {
    pub id: ProviderConfigId,
    pub provider_name: String,
    pub all_models_allowed: bool,
    /// Explicit allowlist; `["*"]` grants every model, and an empty list with
    /// `all_models_allowed: false` denies every model.
    pub allowed_models: Vec<String>,
    pub budgets: Vec<Budget>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimit>,
}

impl ProviderConfig {
    /// Whether every model of the provider is granted: `all_models_allowed`, or `"*"` among the
    /// allowed models (the contract's allow-list wildcard).
    pub fn allows_every_model(&self) -> bool {
        self.all_models_allowed || self.allowed_models.iter().any(|m| m == "*")
    }

    /// Whether `model` of the provider is granted.
    pub fn allows_model(&self, model: &str) -> bool {
        self.allows_every_model() || self.allowed_models.iter().any(|m| m == model)
    }
}

/// One budget line: a spending cap over a reset window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Budget {
    pub id: BudgetId,
    /// Cap in dollars.
    #[schema(value_type = f64, minimum = 0)]
    pub max_limit: Money,
    pub reset_duration: BudgetResetDuration,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reset_config: Option<BudgetResetConfig>,
    /// `total` for a profile-level line, `provider:<name>` for a provider config's line.
    pub scope: String,
    /// Spend in the current window, in dollars. Always 0 on a template.
    #[schema(value_type = f64, minimum = 0)]
    pub current_usage: Money,
    pub last_reset: DateTime<Utc>,
}

/// A token and/or request limit; each present limit carries its own window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RateLimit {
    pub id: RateLimitId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1)]
    pub token_max_limit: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_reset_duration: Option<RateLimitResetDuration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1)]
    pub request_max_limit: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_reset_duration: Option<RateLimitResetDuration>,
    /// Tokens used in the current window. Always 0 on a template.
    pub token_current_usage: u64,
    /// Requests made in the current window. Always 0 on a template.
    pub request_current_usage: u64,
}

/// A Virtual MCP (tool group) granted whole.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
pub struct McpToolGroupLink {
    #[schema(minimum = 1)]
    pub tool_group_id: u64,
}

/// An MCP client granted with all its tools.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
pub struct McpServerLink {
    pub mcp_server_id: String,
}

/// Include or exclude one tool of one MCP client.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
pub struct McpToolOverride {
    pub mcp_client_id: String,
    pub tool_name: String,
    pub action: OverrideAction,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum OverrideAction {
    Include,
    Exclude,
}

impl AccessProfile {
    /// The JSON text recorded as a version snapshot.
    pub fn snapshot(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| String::from("{}"))
    }

    /// True when `other` differs from `self` in anything a user can change.
    pub fn differs_in_content(&self, other: &AccessProfile) -> bool {
        self.name != other.name
            || self.description != other.description
            || self.is_active != other.is_active
            || self.tags != other.tags
            || self.policy != other.policy
            || self.rotation != other.rotation
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::ProviderConfigId;

    fn config(all: bool, models: &[&str]) -> ProviderConfig {
        ProviderConfig {
            id: ProviderConfigId(1),
            provider_name: "openai".to_owned(),
            all_models_allowed: all,
            allowed_models: models.iter().map(|m| (*m).to_owned()).collect(),
            budgets: Vec::new(),
            rate_limit: None,
        }
    }

    #[test]
    fn a_star_in_allowed_models_grants_every_model_like_all_models_allowed() {
        let star = config(false, &["*"]);
        assert!(star.allows_every_model() && star.allows_model("gpt-4o") && star.allows_model("anything"));
        assert!(config(true, &[]).allows_model("gpt-4o"));
        let listed = config(false, &["gpt-4o"]);
        assert!(!listed.allows_every_model());
        assert!(listed.allows_model("gpt-4o") && !listed.allows_model("gpt-4o-mini"));
        assert!(!config(false, &[]).allows_model("gpt-4o"), "an empty list denies every model");
        assert!(!config(false, &["gpt-*"]).allows_model("gpt-4o"), "only a whole `*` is a wildcard");
    }
}
