//! The route table: which handler answers which path, on both path families.

mod api_keys;
mod budget_alerts;
mod explain;
mod logs;
mod mcp;
pub(crate) mod metrics;
mod models;
mod profile_roles;
mod profiles;
mod providers;
mod rbac;
mod roles;
mod spend;
mod system;
mod user_profiles;
mod users;
mod virtual_keys;

use axum::Router;

use crate::AdminState;

pub(crate) use api_keys::ApiKeyDoc;
pub(crate) use budget_alerts::BudgetAlertDoc;
pub(crate) use explain::ExplainDoc;
pub(crate) use logs::LogDoc;
pub(crate) use mcp::McpDoc;
pub(crate) use models::ModelDoc;
pub(crate) use profile_roles::ProfileRoleDoc;
pub(crate) use profiles::ProfileDoc;
pub(crate) use providers::ProviderDoc;
pub(crate) use rbac::RbacDoc;
pub(crate) use roles::RoleDoc;
pub(crate) use spend::SpendDoc;
pub(crate) use system::SystemDoc;
pub(crate) use user_profiles::UserProfileDoc;
pub(crate) use users::UserDoc;
pub(crate) use virtual_keys::VirtualKeyDoc;

/// Canonical prefix of the access-profile routes.
pub const PROFILES_CANONICAL: &str = "/api/governance/access-profiles";
/// Deprecated alias of the same routes, served identically.
pub const PROFILES_ALIAS: &str = "/api/access-profiles";

/// Routes that need no credential.
pub(crate) fn public_routes() -> Router<AdminState> {
    system::routes()
}

/// Routes under `/api`, relative to it; the caller wraps them in authentication.
pub(crate) fn api_routes() -> Router<AdminState> {
    let profiles = profiles::routes().merge(profile_roles::routes());
    Router::new()
        .nest(PROFILES_CANONICAL.trim_start_matches("/api"), profiles.clone())
        .nest(PROFILES_ALIAS.trim_start_matches("/api"), profiles)
        .merge(api_keys::routes())
        .merge(explain::routes())
        .merge(rbac::routes())
        .merge(roles::routes())
        .merge(providers::routes())
        .merge(mcp::routes())
        .merge(models::routes())
        .merge(users::routes())
        .merge(user_profiles::routes())
        .merge(virtual_keys::routes())
        .merge(logs::routes())
        .merge(spend::routes())
        .merge(budget_alerts::routes())
}
