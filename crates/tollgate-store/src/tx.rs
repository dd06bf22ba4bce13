//! The pieces every multi-row write shares: the transaction type, running one statement in it,
//! and the guard that turns "no row matched" into `Stale`.

use sqlx::{Any, Transaction};
use tollgate_core::ports::StoreError;

use crate::map_err;

pub(crate) type Tx = Transaction<'static, Any>;

/// Fails the plan unless exactly the guarded row was touched.
pub(crate) fn guard(rows: u64) -> Result<(), StoreError> {
    if rows == 0 { Err(StoreError::Stale) } else { Ok(()) }
}

pub(crate) async fn exec<'q>(tx: &'q mut Tx, query: sqlx::query::Query<'q, Any, sqlx::any::AnyArguments<'q>>) -> Result<u64, StoreError> {
    Ok(query.execute(&mut **tx).await.map_err(map_err)?.rows_affected())
}
