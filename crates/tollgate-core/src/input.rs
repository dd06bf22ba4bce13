//! Request bodies of the profile use cases, exactly as clients send them; `apply` validates them.

use chrono::{DateTime, Utc};
use serde::Deserialize;
use utoipa::ToSchema;

use crate::money::Money;
use crate::profile::{McpServerLink, McpToolGroupLink, McpToolOverride};
use crate::rotation::RotationInterval;
use crate::serde_util::present;
use crate::window::{BudgetResetConfig, BudgetResetDuration, RateLimitResetDuration};

/// Body of `POST …/access-profiles`.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
pub struct CreateProfileRequest {
    #[schema(max_length = 255, min_length = 1, pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$")]
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub tags: Option<Vec<String>>,
    #[serde(default)]
    pub provider_configs: Option<Vec<ProviderConfigInput>>,
    #[serde(default)]
    pub budgets: Option<Vec<BudgetInput>>,
    #[serde(default)]
    pub rate_limit: Option<RateLimitInput>,
    #[serde(default)]
    pub calendar_aligned: Option<bool>,
    /// Keep each request's prompt and answer in the request log (Tollgate's own; off by default).
    #[serde(default)]
    pub log_content: Option<bool>,
    /// `"30d"`, a duration such as `"12h"`, or integer nanoseconds; between 1h and 365d.
    /// Omitted, `""` or `0` leaves rotation off.
    #[serde(default)]
    pub auto_rotation_interval: Option<RotationInterval>,
    /// First rotation; must be in the future and needs an interval. An RFC 3339 time is at least
    /// 20 characters long (`2027-01-01T00:00:00Z`).
    #[serde(default)]
    #[schema(min_length = 20)]
    pub next_rotation_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub mcp_tool_groups: Option<Vec<McpToolGroupLink>>,
    #[serde(default)]
    pub mcp_servers: Option<Vec<McpServerLink>>,
    #[serde(default)]
    pub mcp_tool_overrides: Option<Vec<McpToolOverride>>,
}

/// Body of `PUT …/access-profiles/{id}`: absent keeps, `null` clears (where allowed), a value sets.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
pub struct UpdateProfileRequest {
    #[serde(default)]
    #[schema(max_length = 255, min_length = 1, pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$")]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, nullable)]
    pub description: Option<Option<String>>,
    #[serde(default)]
    #[schema(max_items = 50)]
    pub tags: Option<Vec<String>>,
    #[serde(default)]
    #[schema(max_items = 100)]
    pub provider_configs: Option<Vec<ProviderConfigInput>>,
    #[serde(default)]
    #[schema(max_items = 100)]
    pub budgets: Option<Vec<BudgetInput>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<RateLimitInput>, nullable)]
    pub rate_limit: Option<Option<RateLimitInput>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<bool>, nullable)]
    pub calendar_aligned: Option<Option<bool>>,
    /// Keep each request's prompt and answer in the request log; `null` or `false` turns it off.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<bool>, nullable)]
    pub log_content: Option<Option<bool>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<RotationInterval>, nullable)]
    pub auto_rotation_interval: Option<Option<RotationInterval>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<DateTime<Utc>>, nullable, min_length = 20)]
    pub next_rotation_at: Option<Option<DateTime<Utc>>>,
    #[serde(default)]
    pub mcp_tool_groups: Option<Vec<McpToolGroupLink>>,
    #[serde(default)]
    pub mcp_servers: Option<Vec<McpServerLink>>,
    #[serde(default)]
    pub mcp_tool_overrides: Option<Vec<McpToolOverride>>,
}

/// Body of `POST …/access-profiles/{id}/clone`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct CloneProfileRequest {
    #[schema(max_length = 255, min_length = 1, pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$")]
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
}

/// A provider config as sent; `id` (read-only) may be given to keep an existing config's id.
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct ProviderConfigInput {
    #[serde(default)]
    pub id: Option<i64>,
    #[schema(min_length = 1, max_length = 64, pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$")]
    pub provider_name: String,
    #[serde(default)]
    pub all_models_allowed: Option<bool>,
    #[serde(default)]
    pub allowed_models: Option<Vec<String>>,
    #[serde(default)]
    pub budgets: Option<Vec<BudgetInput>>,
    #[serde(default)]
    pub rate_limit: Option<RateLimitInput>,
}

/// A budget line as sent. Read-only members (`scope`, `current_usage`, `last_reset`) are ignored.
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct BudgetInput {
    #[serde(default)]
    pub id: Option<String>,
    /// Cap in dollars, 0 to 1e9.
    #[schema(value_type = f64, minimum = 0, maximum = 1_000_000_000)]
    pub max_limit: Money,
    pub reset_duration: BudgetResetDuration,
    #[serde(default)]
    pub reset_config: Option<BudgetResetConfig>,
}

/// A rate limit as sent; a maximum and its window go together.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
pub struct RateLimitInput {
    #[serde(default)]
    #[schema(minimum = 1)]
    pub token_max_limit: Option<u64>,
    #[serde(default)]
    pub token_reset_duration: Option<RateLimitResetDuration>,
    #[serde(default)]
    #[schema(minimum = 1)]
    pub request_max_limit: Option<u64>,
    #[serde(default)]
    pub request_reset_duration: Option<RateLimitResetDuration>,
}
