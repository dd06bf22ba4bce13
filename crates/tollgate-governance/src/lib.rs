//! Tollgate's governance, asked by every surface (inference, MCP, management reads) and free of
//! HTTP: an immutable snapshot of keys and copies (`snapshot`), the identity and access decision
//! (`authorize`), the admission that prices a request and reserves its estimate on every line
//! that applies (`admit`, on `counters` in memory or in Redis), the `Held` guard that settles it
//! exactly once, pricing, and the usage writer that persists counters and the request log.
//!
//! A surface asks in two steps on one snapshot: `Governor::authorize` (who, under which copy) and
//! `Governor::admit` (priced and reserved, or a `Denial` naming the rule), then settles the
//! `Held` it got with what the call consumed.

pub mod admit;
pub mod alerts;
pub mod authorize;
pub mod counters;
pub mod denial;
pub mod explain;
mod freshness;
pub mod governor;
pub mod held;
mod journal;
pub mod meters;
mod per_second;
pub mod pricing;
pub mod quota;
mod refusals;
pub mod snapshot;
mod spans;
pub mod tools;
pub mod usage;
mod writer;

pub use admit::{Ask, PromptSize};
pub use authorize::{Access, Estimate};
pub use counters::{LineRoom, Room};
pub use denial::{CopyRef, Denial, DenialKind};
pub use explain::Explain;
pub use governor::{Governor, GovernorSettings, GovernorTasks, OnReload};
pub use held::Held;
pub use tools::{KeyAccess, ToolAsk, authorize_key};
pub use writer::{FlushTap, OpenUsageStore};
