//! Keeping this instance's reservations alive in their buckets' indexes (`refresh_live`), and
//! charging those of instances that died (`sweep_dead`): each bucket is visited on its own, and
//! each stale reservation is swept by one script over its own keys, so no call spans two slots.

use std::sync::{Arc, LazyLock};

use chrono::{DateTime, Utc};
use futures::future::join_all;
use hashbrown::HashMap;
use redis::{Script, Value};

use super::keys::{BUCKETS, bucket};
use super::{LIVE_LIMIT, MARKER_LIFE, RedisCounters, from_micros, kind_of_letter, rebuild};
use crate::counters::LineValue;

static SWEEP: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("../sweep.lua")));

/// Stale reservations read from one bucket's index per sweep call.
const SWEEP_BATCH: isize = 1000;
/// Buckets asked at once (their calls share the connection, pipelined).
const BUCKETS_AT_ONCE: usize = 64;

impl RedisCounters {
    /// Re-scores this instance's reservations younger than `LIVE_LIMIT` at `now`, bucket by bucket.
    pub(super) async fn refresh_live(&self, now: DateTime<Utc>) {
        let mut live: HashMap<i64, Vec<String>> = HashMap::new();
        match self.held.lock() {
            Ok(held) => {
                for (id, (at, claims)) in held.iter() {
                    if let Some(first) = claims.first()
                        && now - *at < LIVE_LIMIT
                    {
                        live.entry(bucket(first.copy)).or_default().push(self.member(*id, first.copy));
                    }
                }
            }
            Err(_) => return,
        }
        for (at, members) in live {
            for members in members.chunks(1000) {
                let mut zadd = redis::cmd("ZADD");
                zadd.arg(self.keys.index(at)).arg("XX");
                for member in members {
                    zadd.arg(now.timestamp_millis()).arg(member);
                }
                if let Err(e) = zadd.query_async::<i64>(&mut self.connection.clone()).await {
                    tracing::warn!(error = %e, "refreshing live reservations in redis failed");
                    return;
                }
            }
        }
    }

    /// Charges every reservation scored at or before `cutoff` in any bucket; returns how many.
    pub(super) async fn sweep_dead(&self, cutoff: DateTime<Utc>, now: DateTime<Utc>) -> usize {
        let buckets: Vec<i64> = (0..BUCKETS).collect();
        let mut swept = 0;
        for group in buckets.chunks(BUCKETS_AT_ONCE) {
            swept += join_all(group.iter().map(|at| self.sweep_bucket(*at, cutoff, now))).await.into_iter().sum::<usize>();
        }
        swept
    }

    async fn sweep_bucket(&self, at: i64, cutoff: DateTime<Utc>, now: DateTime<Utc>) -> usize {
        let index = self.keys.index(at);
        let stale: Vec<String> = match redis::cmd("ZRANGEBYSCORE")
            .arg(&index)
            .arg("-inf")
            .arg(cutoff.timestamp_millis())
            .arg("LIMIT")
            .arg(0)
            .arg(SWEEP_BATCH)
            .query_async(&mut self.connection.clone())
            .await
        {
            Ok(stale) => stale,
            Err(e) => {
                tracing::warn!(error = %e, "sweeping reservations in redis failed");
                return 0;
            }
        };
        let mut swept = 0;
        for member in stale {
            match self.sweep_one(at, &member, cutoff, now).await {
                Ok(true) => swept += 1,
                Ok(false) => {}
                Err(e) => tracing::warn!(error = %e, "sweeping a reservation in redis failed"),
            }
        }
        swept
    }

    /// Charges a stale reservation in one script over its copy's hash (which holds its record,
    /// the lines it reserved on); false if it was settled or refreshed meanwhile. A member whose
    /// copy cannot be read is only taken out of the index.
    async fn sweep_one(&self, at: i64, member: &str, cutoff: DateTime<Utc>, now: DateTime<Utc>) -> Result<bool, redis::RedisError> {
        let Some(copy) = member.rsplit(':').next().and_then(|copy| copy.parse::<i64>().ok()).filter(|copy| bucket(*copy) == at) else {
            tracing::warn!(member, "a reservation in redis names no copy of its bucket; dropping it");
            redis::cmd("ZREM").arg(self.keys.index(at)).arg(member).query_async::<i64>(&mut self.connection.clone()).await?;
            return Ok(false);
        };
        let mut call = SWEEP.key(self.keys.index(at));
        call.key(self.keys.copy(copy)).key(self.keys.marker(at, member));
        call.arg(member).arg(cutoff.timestamp_millis()).arg(MARKER_LIFE.num_milliseconds());
        let Value::Array(reply) = call.invoke_async::<Value>(&mut self.connection.clone()).await? else { return Ok(false) };
        let done = reply.first().and_then(|n| redis::from_redis_value_ref::<i64>(n).ok()) == Some(1);
        let values = swept_values(reply.get(1..).unwrap_or_default());
        rebuild::note(&self.seen, &values, now);
        if let Ok(mut swept) = self.swept.lock() {
            swept.extend(values);
        }
        Ok(done)
    }
}

/// The lines a sweep charged, from its reply `{line, kind, used, window, …}`.
fn swept_values(reply: &[Value]) -> Vec<LineValue> {
    reply
        .chunks(4)
        .filter_map(|item| {
            let line: String = redis::from_redis_value_ref(item.first()?).ok()?;
            let kind: String = redis::from_redis_value_ref(item.get(1)?).ok()?;
            let used: i64 = redis::from_redis_value_ref(item.get(2)?).ok()?;
            let window: i64 = redis::from_redis_value_ref(item.get(3)?).ok()?;
            Some(LineValue {
                line: Arc::from(line),
                kind: kind_of_letter(&kind)?,
                used: u64::try_from(used).ok()?,
                window_start: from_micros(window),
            })
        })
        .collect()
}
