//! Reset windows of budgets and rate limits: the two published enums and the quarter setting.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// How often a budget resets. Quarters exist only for budgets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
pub enum BudgetResetDuration {
    #[serde(rename = "1h")]
    Hour,
    #[serde(rename = "1d")]
    Day,
    #[serde(rename = "1w")]
    Week,
    #[serde(rename = "1M")]
    Month,
    #[serde(rename = "1Q")]
    Quarter,
    #[serde(rename = "1Y")]
    Year,
}

/// How often a token or request limit resets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
pub enum RateLimitResetDuration {
    #[serde(rename = "1h")]
    Hour,
    #[serde(rename = "1d")]
    Day,
    #[serde(rename = "1w")]
    Week,
    #[serde(rename = "1M")]
    Month,
    #[serde(rename = "1Y")]
    Year,
}

/// Window settings that the reset duration alone cannot express (quarterly budgets only).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BudgetResetConfig {
    /// First month of Q1, 1–12. Omitted means January.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 12)]
    pub quarter_start_month: Option<u8>,
}

impl BudgetResetConfig {
    pub fn is_valid(self) -> bool {
        self.quarter_start_month.is_none_or(|m| (1..=12).contains(&m))
    }
}
