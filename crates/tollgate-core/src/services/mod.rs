//! Use cases of the management plane: each validates, then writes through a port in one transaction.

pub mod alerts;
pub mod api_keys;
pub mod assignments;
pub mod auth;
pub mod directory;
pub mod keys;
pub mod lifecycle;
mod log_params;
pub mod logs;
pub mod mcp;
pub mod models;
pub mod profiles;
pub mod providers;
mod provision;
pub use provision::plan_copy_as;
pub mod rotation;
pub mod throttle;

/// How often an optimistic write is retried when another writer got there first.
pub(crate) const MAX_WRITE_ATTEMPTS: usize = 32;
