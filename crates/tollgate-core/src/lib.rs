//! Tollgate's domain: identifiers, money, policy objects and their validation, the ports that
//! storage implements, and the services that run the management use cases. No I/O lives here.

pub mod alerts;
pub mod api_key;
pub mod audit;
pub mod auth;
pub mod clock;
pub mod copies;
pub mod directory;
pub mod egress;
pub mod env_refs;
pub mod error;
pub mod explain;
pub mod ids;
pub mod input;
pub mod lifecycle;
pub mod logs;
pub mod mcp;
pub mod mcp_clients;
pub mod money;
pub mod overrides;
pub mod paging;
pub mod permissions;
pub mod ports;
pub mod profile;
pub mod provider_headers;
pub mod providers;
pub mod rotation;
pub mod services;
pub mod store_error;
pub mod usage;
pub mod users;
pub mod vkeys;
pub mod window;
pub mod windows;

mod apply;
mod serde_util;

pub use error::{CoreError, FieldError};
