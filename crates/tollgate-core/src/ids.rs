//! Identifier newtypes: integers for profiles, provider configs and API keys; strings for
//! budgets and rate limits, as the wire contract has them.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

macro_rules! int_id {
    ($(#[$m:meta])* $name:ident) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema)]
        #[serde(transparent)]
        pub struct $name(pub i64);

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

int_id!(
    /// Server-assigned id of an access profile template.
    ProfileId
);
int_id!(
    /// Server-assigned id of a provider config inside a profile.
    ProviderConfigId
);
int_id!(
    /// Server-assigned id of a management API key.
    ApiKeyId
);

macro_rules! string_id {
    ($(#[$m:meta])* $name:ident) => {
        $(#[$m])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
        #[serde(transparent)]
        pub struct $name(pub String);

        impl $name {
            pub fn generate() -> Self {
                Self(uuid::Uuid::new_v4().to_string())
            }
        }
    };
}

string_id!(
    /// Id of a budget line (a UUID string).
    BudgetId
);
string_id!(
    /// Id of a rate limit (a UUID string).
    RateLimitId
);

/// The id sequences the store hands out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sequence {
    Profile,
    ProviderConfig,
    ApiKey,
    Role,
    UserCopy,
    VirtualMcp,
    BudgetAlert,
}

impl Sequence {
    pub fn name(self) -> &'static str {
        match self {
            Sequence::Profile => "access_profile",
            Sequence::ProviderConfig => "provider_config",
            Sequence::ApiKey => "api_key",
            Sequence::Role => "role",
            Sequence::UserCopy => "user_copy",
            Sequence::VirtualMcp => "virtual_mcp",
            Sequence::BudgetAlert => "budget_alert",
        }
    }
}
