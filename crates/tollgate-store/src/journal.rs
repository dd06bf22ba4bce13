//! The open-reservation journal on SQL: reservations open across a usage flush are recorded, and
//! those a crash left unsettled are charged whole at the next start.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::Row;
use tollgate_core::money::Money;
use tollgate_core::ports::StoreError;
use tollgate_core::usage::{OpenReservation, UsageRow, UsageStore};

use crate::{SqlStore, map_err};

/// A line of a recorded reservation as stored (JSON): kind (`b`udget, `t`okens, `r`equests),
/// the usage row's id, the amount reserved and the window it was reserved in.
#[derive(Debug, Serialize, Deserialize)]
struct Stored(char, String, i64, DateTime<Utc>);

fn stored(row: &UsageRow) -> Stored {
    match row {
        UsageRow::Budget { id, used, window_start } => Stored('b', id.clone(), used.micros(), *window_start),
        UsageRow::Tokens { id, used, window_start } => Stored('t', id.clone(), i64::try_from(*used).unwrap_or(i64::MAX), *window_start),
        UsageRow::Requests { id, used, window_start } => Stored('r', id.clone(), i64::try_from(*used).unwrap_or(i64::MAX), *window_start),
    }
}

fn usage_row(Stored(kind, id, used, window_start): Stored) -> UsageRow {
    let count = u64::try_from(used).unwrap_or(0);
    match kind {
        'b' => UsageRow::Budget { id, used: Money::from_micros(used).unwrap_or(Money::ZERO), window_start },
        't' => UsageRow::Tokens { id, used: count, window_start },
        _ => UsageRow::Requests { id, used: count, window_start },
    }
}

/// A line's usage as stored, and whether a recorded reservation was added to it.
struct Tally {
    row: UsageRow,
    touched: bool,
}

/// A row's line (kind and id), its amount and window.
fn parts(row: &UsageRow) -> ((u8, String), i64, DateTime<Utc>) {
    match row {
        UsageRow::Budget { id, used, window_start } => ((0, id.clone()), used.micros(), *window_start),
        UsageRow::Tokens { id, used, window_start } => ((1, id.clone()), i64::try_from(*used).unwrap_or(i64::MAX), *window_start),
        UsageRow::Requests { id, used, window_start } => ((2, id.clone()), i64::try_from(*used).unwrap_or(i64::MAX), *window_start),
    }
}

fn with_used(row: &UsageRow, used: i64, window_start: DateTime<Utc>) -> UsageRow {
    let count = u64::try_from(used).unwrap_or(0);
    match row {
        UsageRow::Budget { id, .. } => {
            UsageRow::Budget { id: id.clone(), used: Money::from_micros(used).unwrap_or(Money::ZERO), window_start }
        }
        UsageRow::Tokens { id, .. } => UsageRow::Tokens { id: id.clone(), used: count, window_start },
        UsageRow::Requests { id, .. } => UsageRow::Requests { id: id.clone(), used: count, window_start },
    }
}

pub(crate) async fn record(store: &SqlStore, opened: &[OpenReservation], closed: &[String]) -> Result<(), StoreError> {
    if opened.is_empty() && closed.is_empty() {
        return Ok(());
    }
    let mut tx = store.pool.begin().await.map_err(map_err)?;
    for reservation in opened {
        let lines: Vec<Stored> = reservation.lines.iter().map(stored).collect();
        let lines = serde_json::to_string(&lines).map_err(|e| StoreError::Backend(e.to_string()))?;
        sqlx::query("INSERT INTO open_reservations (id, lines) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING")
            .bind(reservation.id.as_str())
            .bind(lines)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
    }
    for id in closed {
        sqlx::query("DELETE FROM open_reservations WHERE id = $1").bind(id.as_str()).execute(&mut *tx).await.map_err(map_err)?;
    }
    tx.commit().await.map_err(map_err)
}

/// Adds every recorded reservation to its lines' stored usage: in the same window as stored, on
/// top of it; in a newer one, as that window's usage; in an older one (the line has moved on),
/// not at all. The new values and the emptied journal are written in one transaction.
pub(crate) async fn charge(store: &SqlStore) -> Result<usize, StoreError> {
    let recorded = sqlx::query("SELECT lines FROM open_reservations").fetch_all(&store.pool).await.map_err(map_err)?;
    if recorded.is_empty() {
        return Ok(0);
    }
    let mut lines: HashMap<(u8, String), Tally> = HashMap::new();
    for row in store.load_usage(None).await? {
        lines.insert(parts(&row).0, Tally { row, touched: false });
    }
    for row in &recorded {
        let text: String = row.try_get("lines").map_err(map_err)?;
        let Ok(stored) = serde_json::from_str::<Vec<Stored>>(&text) else {
            tracing::error!("an open reservation in the journal cannot be read; it is dropped uncharged");
            continue;
        };
        for charge in stored.into_iter().map(usage_row) {
            let (line, amount, window) = parts(&charge);
            let tally = lines.entry(line).or_insert_with(|| Tally { row: with_used(&charge, 0, window), touched: false });
            let (_, used, kept) = parts(&tally.row);
            tally.row = match kept.cmp(&window) {
                std::cmp::Ordering::Equal => with_used(&charge, used.saturating_add(amount), window),
                std::cmp::Ordering::Less => with_used(&charge, amount, window),
                std::cmp::Ordering::Greater => continue,
            };
            tally.touched = true;
        }
    }
    let rows: Vec<UsageRow> = lines.into_values().filter(|t| t.touched).map(|t| t.row).collect();
    let mut tx = store.pool.begin().await.map_err(map_err)?;
    store.upsert_usage(&mut tx, &rows).await?;
    sqlx::query("DELETE FROM open_reservations").execute(&mut *tx).await.map_err(map_err)?;
    tx.commit().await.map_err(map_err)?;
    Ok(recorded.len())
}
