//! The full governance read in chunks: the database joins about a hundred copies (or keys) into
//! one JSON text per row, so a load of 100k copies crosses from the driver's worker to the caller
//! about a thousand times instead of 100k times (each crossing is a thread wake-up on SQLite).
//! A chunk stays near 100 KB, under the C allocator's threshold for a mapping of its own, so the
//! database's buffers for it are reused rather than left resident.

use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use serde::Deserialize;
use sqlx::{AnyConnection, Row};
use tollgate_core::copies::UserCopy;
use tollgate_core::ids::ProfileId;
use tollgate_core::ports::StoreError;
use tollgate_core::profile::Policy;
use tollgate_core::usage::{CopySink, KeyRecord};

use crate::{Backend, json_err, map_err, parse_opt_ts, parse_ts};

/// One copy row as the chunk query lists it, in `COPY_FIELDS` order.
#[derive(Deserialize)]
struct CopyRow(i64, String, Option<i64>, String, i64, Option<String>, Policy, Option<i64>, i64, String, String);

/// The copy columns; `policy` is stored JSON and goes into the chunk as it is.
const COPY_FIELDS: [&str; 11] = [
    "id",
    "user_id",
    "parent_profile_id",
    "name",
    "is_active",
    "expires_at",
    "policy",
    "source_role_id",
    "version",
    "created_at",
    "updated_at",
];

/// One key row, in `KEY_FIELDS` order.
#[derive(Deserialize)]
pub(crate) struct KeyRow(
    pub String,
    pub String,
    pub String,
    pub String,
    pub i64,
    pub Option<String>,
    pub Option<String>,
    pub Option<String>,
);

impl KeyRow {
    /// The key's records: its current value, and a rotated key's previous value while its grace
    /// period (judged at `now`) lasts.
    pub(crate) fn records(self, now: DateTime<Utc>, into: &mut Vec<KeyRecord>) -> Result<(), StoreError> {
        let current = KeyRecord {
            id: self.0,
            value_hash: self.1,
            name: self.2,
            user_id: self.3,
            is_active: self.4 != 0,
            expires_at: parse_opt_ts(self.5)?,
            value_expires_at: None,
        };
        if let (Some(hash), Some(end)) = (self.6, parse_opt_ts(self.7)?)
            && end > now
        {
            into.push(KeyRecord { value_hash: hash, value_expires_at: Some(end), ..current.clone() });
        }
        into.push(current);
        Ok(())
    }
}

pub(crate) const KEY_FIELDS: [&str; 8] =
    ["id", "value_hash", "name", "user_id", "is_active", "expires_at", "previous_value_hash", "previous_value_expires_at"];

/// A query giving the columns of `table` as one JSON array of arrays per group of `group`: each
/// column a JSON value (`raw_json` is stored JSON, put in as it is), a text put together by the
/// database without parsing anything.
fn chunks(backend: Backend, table: &str, fields: &[&str], raw_json: Option<&str>, group: &str) -> String {
    let value = |f: &&str| match backend {
        _ if Some(*f) == raw_json => (*f).to_owned(),
        // `json_quote` gives numbers as they are, text quoted and escaped, NULL as null.
        Backend::Sqlite => format!("json_quote({f})"),
        Backend::Postgres => format!("coalesce(to_json({f})::text, 'null')"),
    };
    // One `format` per row builds its text in one go (each `||` would copy it again).
    let row = format!("format('[{}]', {})", vec!["%s"; fields.len()].join(","), fields.iter().map(value).collect::<Vec<_>>().join(", "));
    let joined = match backend {
        Backend::Sqlite => format!("group_concat({row}, ',')"),
        Backend::Postgres => format!("string_agg({row}, ',')"),
    };
    format!("SELECT '[' || {joined} || ']' AS chunk FROM {table} GROUP BY {group}")
}

/// Every copy, each handed to `sink` as its chunk is parsed (in no particular order).
pub(crate) async fn each_copy(conn: &mut AnyConnection, backend: Backend, sink: &mut CopySink<'_>) -> Result<(), StoreError> {
    let query = chunks(backend, "user_access_profiles", &COPY_FIELDS, Some("policy"), "id / 128");
    let mut rows = sqlx::query(&query).fetch(conn);
    while let Some(row) = rows.try_next().await.map_err(map_err)? {
        let text: String = row.try_get("chunk").map_err(map_err)?;
        for r in serde_json::from_str::<Vec<CopyRow>>(&text).map_err(|e| json_err(&e))? {
            sink(UserCopy {
                id: r.0,
                user_id: r.1,
                parent_profile_id: r.2.map(ProfileId),
                name: r.3,
                is_active: r.4 != 0,
                expires_at: parse_opt_ts(r.5)?,
                policy: r.6,
                source_role_id: r.7,
                version: r.8,
                created_at: parse_ts(&r.9)?,
                updated_at: parse_ts(&r.10)?,
            });
        }
    }
    Ok(())
}

/// Every key's records (see `KeyRow::records`).
pub(crate) async fn all_keys(conn: &mut AnyConnection, backend: Backend, now: DateTime<Utc>) -> Result<Vec<KeyRecord>, StoreError> {
    let group = match backend {
        Backend::Sqlite => "rowid / 128",
        Backend::Postgres => "abs(hashtext(id)) % 256",
    };
    let query = chunks(backend, "virtual_keys", &KEY_FIELDS, None, group);
    let mut rows = sqlx::query(&query).fetch(conn);
    let mut keys = Vec::new();
    while let Some(row) = rows.try_next().await.map_err(map_err)? {
        let text: String = row.try_get("chunk").map_err(map_err)?;
        for r in serde_json::from_str::<Vec<KeyRow>>(&text).map_err(|e| json_err(&e))? {
            r.records(now, &mut keys)?;
        }
    }
    Ok(keys)
}
