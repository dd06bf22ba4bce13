//! The Tollgate server as a library: settings, start-up/shutdown and the operator CLI commands,
//! so tests can start the real server in-process on port 0.

pub mod alerts;
pub mod alerts_config;
pub mod cli;
pub mod config;
pub mod declared;
pub mod gateway_config;
pub mod keys_config;
pub mod mcp_config;
pub mod metrics_config;
pub mod rotation;
pub mod secrets;
pub mod serve;
pub mod server;
pub mod server_config;
pub mod telemetry;
pub mod traces;
pub mod traces_config;

pub use config::{Overrides, Settings};
pub use server::{Server, StartError, shutdown_signal};
