//! How a store fails, as far as the services need to tell the failures apart, and what each
//! becomes for a caller.

use crate::error::CoreError;

/// Storage failures, as far as the services need to tell them apart.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// A unique constraint refused the write (for example a taken name).
    #[error("duplicate")]
    Duplicate,
    /// An optimistic write found a newer version than the one it read.
    #[error("stale version")]
    Stale,
    /// The database is locked, overloaded or unreachable; retrying may succeed.
    #[error("database busy: {0}")]
    Busy(String),
    #[error("database error: {0}")]
    Backend(String),
}

impl From<StoreError> for CoreError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Busy(detail) => CoreError::Unavailable(detail),
            other => CoreError::Internal(other.to_string()),
        }
    }
}
