//! Counters in Redis, shared by every Tollgate instance pointed at it: each reservation and
//! settlement is one Lua script, so it is atomic across instances; reservations are indexed by
//! age so any instance can release those of an instance that died.

use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration as StdDuration;

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use hashbrown::HashMap;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Script, Value};
use tokio::runtime::Handle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::{Actual, Claim, Counters, LineKind, LineValue, Refusal, Settled};

static RESERVE: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("reserve.lua")));
static SETTLE: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("settle.lua")));
static SWEEP: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("sweep.lua")));
static ADOPT: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("adopt.lua")));

/// How long one Redis call may take before the request it serves is refused (fail closed).
const RESPONSE_TIMEOUT: StdDuration = StdDuration::from_secs(1);
/// How long a settlement is retried while Redis is away, its waits doubling from
/// `SETTLE_BACKOFF` to `SETTLE_BACKOFF_MAX`. Its reservation is swept after 30 minutes, and a
/// charge that arrives after that still counts.
const SETTLE_PATIENCE: StdDuration = StdDuration::from_mins(25);
const SETTLE_BACKOFF: StdDuration = StdDuration::from_millis(250);
const SETTLE_BACKOFF_MAX: StdDuration = StdDuration::from_secs(5);
/// At shutdown, settlements still waiting for Redis get this long; then each tries once more
/// and, failing, gives its charge up (logged with the amount).
const DRAIN_WAIT: StdDuration = StdDuration::from_secs(10);
/// A line key lives this long past the end of its window (longer than any reservation), so the
/// lines of deleted budgets and limits do not stay in Redis for ever.
const EXPIRY_GRACE: Duration = Duration::hours(2);
/// Expiry of a line taken up from the database, until a request sets its exact one (longer
/// than any window).
const ADOPTED_EXPIRY: Duration = Duration::days(400);

/// A reservation of this instance: when it was made, and its claims.
type Reserved = (DateTime<Utc>, Vec<Claim>);

/// Counter lines, reservations and the reservation index under one key prefix.
#[derive(Clone)]
pub struct RedisCounters {
    connection: ConnectionManager,
    prefix: Arc<str>,
    /// This instance's reservations in flight: their claims, needed to settle them.
    held: Arc<Mutex<HashMap<u64, Reserved>>>,
    settling: TaskTracker,
    /// Cancelled when shutdown stops waiting for Redis.
    stopping: CancellationToken,
    runtime: Handle,
}

impl std::fmt::Debug for RedisCounters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisCounters").field("prefix", &self.prefix).finish_non_exhaustive()
    }
}

fn micros(at: DateTime<Utc>) -> i64 {
    at.timestamp_micros()
}

fn from_micros(value: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(value).unwrap_or(DateTime::<Utc>::UNIX_EPOCH)
}

/// When a line key may expire (ms since the epoch): after its window at `now` ends; 0 for a
/// window that never resets.
fn expires_at(claim: &Claim, now: DateTime<Utc>) -> i64 {
    let end = claim.period.next_start(claim.calendar_aligned, claim.window_start(now));
    end.checked_add_signed(EXPIRY_GRACE).filter(|_| end < DateTime::<Utc>::MAX_UTC).map_or(0, |at| at.timestamp_millis())
}

fn integers(value: &Value) -> Vec<i64> {
    match value {
        Value::Array(items) => items.iter().map(|v| redis::from_redis_value_ref::<i64>(v).unwrap_or(0)).collect(),
        _ => Vec::new(),
    }
}

impl RedisCounters {
    /// Connects (the connection is re-established on its own after a failure). `prefix` keeps
    /// the keys of one deployment apart from anything else in the same Redis database.
    pub async fn connect(url: &str, prefix: &str) -> Result<RedisCounters, String> {
        let client = redis::Client::open(url).map_err(|e| format!("redis url: {e}"))?;
        let config = ConnectionManagerConfig::new()
            .set_response_timeout(Some(RESPONSE_TIMEOUT))
            .set_connection_timeout(Some(StdDuration::from_secs(2)))
            .set_number_of_retries(2);
        let connection = client.get_connection_manager_with_config(config).await.map_err(|e| format!("redis: {e}"))?;
        Ok(RedisCounters {
            connection,
            prefix: prefix.into(),
            held: Arc::default(),
            settling: TaskTracker::new(),
            stopping: CancellationToken::new(),
            runtime: Handle::current(),
        })
    }

    fn line_key(&self, line: &str) -> String {
        format!("{}line:{line}", self.prefix)
    }

    fn index_key(&self) -> String {
        format!("{}reservations", self.prefix)
    }

    fn held_prefix(&self) -> String {
        format!("{}reservation:", self.prefix)
    }

    async fn settle_in_redis(
        &self,
        reservation: u64,
        claims: &[Claim],
        actual: Actual,
        now: DateTime<Utc>,
    ) -> redis::RedisResult<Vec<LineValue>> {
        let mut call = SETTLE.prepare_invoke();
        call.key(self.index_key()).key(format!("{}{reservation}", self.held_prefix())).arg(reservation);
        for claim in claims {
            call.key(self.line_key(&claim.line))
                .arg(claim.estimate)
                .arg(actual.of(claim.kind))
                .arg(micros(claim.window_start(now)))
                .arg(expires_at(claim, now));
        }
        let reply: Value = call.invoke_async(&mut self.connection.clone()).await?;
        let numbers = integers(&reply);
        Ok(claims
            .iter()
            .zip(numbers.chunks(2))
            .filter(|(claim, _)| actual.of(claim.kind) > 0)
            .map(|(claim, pair)| LineValue {
                line: claim.line.clone(),
                kind: claim.kind,
                used: u64::try_from(pair[0]).unwrap_or(0),
                window_start: from_micros(pair.get(1).copied().unwrap_or(0)),
            })
            .collect())
    }
}

#[async_trait]
impl Counters for RedisCounters {
    async fn reserve(&self, claims: &[Claim], now: DateTime<Utc>) -> Result<u64, Refusal> {
        let mut call = RESERVE.prepare_invoke();
        call.key(self.index_key()).key(format!("{}sequence", self.prefix)).arg(now.timestamp_millis()).arg(self.held_prefix());
        for claim in claims {
            call.key(self.line_key(&claim.line))
                .arg(claim.limit)
                .arg(claim.estimate)
                .arg(micros(claim.window_start(now)))
                .arg(expires_at(claim, now));
        }
        let reply: Value = call.invoke_async(&mut self.connection.clone()).await.map_err(|e| {
            tracing::error!(error = %e, "redis counters unreachable; refusing the request");
            Refusal::Unavailable
        })?;
        let numbers = integers(&reply);
        match numbers.split_first() {
            Some((1, [id])) => {
                let id = u64::try_from(*id).map_err(|_| Refusal::Unavailable)?;
                self.held.lock().map_err(|_| Refusal::Unavailable)?.insert(id, (now, claims.to_vec()));
                Ok(id)
            }
            Some((0, denied)) => Err(Refusal::Denied(
                denied
                    .chunks(3)
                    .filter_map(|d| {
                        let claim = claims.get(usize::try_from(d[0]).ok()?.checked_sub(1)?)?;
                        Some(claim.denial(u64::try_from(*d.get(1)?).unwrap_or(0), from_micros(*d.get(2)?)))
                    })
                    .collect(),
            )),
            _ => {
                tracing::error!(?reply, "unexpected reply from the reserve script");
                Err(Refusal::Unavailable)
            }
        }
    }

    fn settle(&self, reservation: u64, actual: Actual, now: DateTime<Utc>, done: Settled) {
        let claims = self.held.lock().ok().and_then(|mut held| held.remove(&reservation));
        let Some((_, claims)) = claims else {
            done(Vec::new());
            return;
        };
        let me = self.clone();
        self.settling.spawn_on(
            async move {
                let started = std::time::Instant::now();
                let mut wait = SETTLE_BACKOFF;
                for attempt in 1u32.. {
                    match me.settle_in_redis(reservation, &claims, actual, now).await {
                        Ok(values) => return done(values),
                        Err(e) if started.elapsed() < SETTLE_PATIENCE && !me.stopping.is_cancelled() => {
                            if attempt == 1 || attempt % 20 == 0 {
                                tracing::warn!(error = %e, attempt, reservation, "settling in redis failed; retrying until it is back");
                            }
                            tokio::select! {
                                () = tokio::time::sleep(wait) => {}
                                () = me.stopping.cancelled() => {}
                            }
                            wait = (wait * 2).min(SETTLE_BACKOFF_MAX);
                        }
                        Err(e) => {
                            tracing::error!(error = %e, reservation, ?actual, "settling in redis failed; this charge is lost");
                            break;
                        }
                    }
                }
                done(Vec::new());
            },
            &self.runtime,
        );
    }

    async fn adopt(&self, line: &str, _kind: LineKind, used: u64, window_start: DateTime<Utc>) -> Result<(), String> {
        let mut call = ADOPT.key(self.line_key(line));
        call.arg(used).arg(micros(window_start)).arg((tollgate_core::clock::now() + ADOPTED_EXPIRY).timestamp_millis());
        call.invoke_async::<i64>(&mut self.connection.clone()).await.map(drop).map_err(|e| format!("redis: {e}"))
    }

    async fn sweep(&self, max_age: Duration, now: DateTime<Utc>) -> usize {
        if let Ok(mut held) = self.held.lock() {
            held.retain(|_, (at, _)| now - *at <= max_age);
        }
        let mut call = SWEEP.key(self.index_key());
        call.arg((now - max_age).timestamp_millis()).arg(self.held_prefix());
        match call.invoke_async::<i64>(&mut self.connection.clone()).await {
            Ok(n) => usize::try_from(n).unwrap_or(0),
            Err(e) => {
                tracing::warn!(error = %e, "sweeping reservations in redis failed");
                0
            }
        }
    }

    async fn peek(&self, line: &str) -> Option<(u64, u64)> {
        let (used, reserved): (Option<u64>, Option<u64>) = redis::cmd("HMGET")
            .arg(self.line_key(line))
            .arg("used")
            .arg("reserved")
            .query_async(&mut self.connection.clone())
            .await
            .ok()?;
        used.or(reserved).map(|_| (used.unwrap_or(0), reserved.unwrap_or(0)))
    }

    async fn ping(&self) -> Result<(), String> {
        let (ping, mut connection) = (redis::cmd("PING"), self.connection.clone());
        match tokio::time::timeout(RESPONSE_TIMEOUT, ping.query_async::<String>(&mut connection)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!("no answer within {} ms", RESPONSE_TIMEOUT.as_millis())),
        }
    }

    async fn drain(&self) {
        self.settling.close();
        if tokio::time::timeout(DRAIN_WAIT, self.settling.wait()).await.is_err() {
            self.stopping.cancel();
            self.settling.wait().await;
        }
    }
}

#[cfg(test)]
mod tests {
    //! Against the Redis at `TOLLGATE_TEST_REDIS_URL` (default `redis://127.0.0.1:6379`), which
    //! CI starts; each test uses its own key prefix.
    use super::*;
    use crate::counters::tests as contract;

    async fn counters() -> RedisCounters {
        let url = std::env::var("TOLLGATE_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
        let prefix = format!("tollgate-test:{}:", uuid::Uuid::new_v4());
        RedisCounters::connect(&url, &prefix).await.unwrap_or_else(|e| panic!("{e}"))
    }

    #[tokio::test]
    async fn redis_a_request_is_admitted_only_if_its_estimate_fits() {
        contract::a_request_is_admitted_only_if_its_estimate_fits(&counters().await, "b1").await;
    }

    #[tokio::test]
    async fn redis_all_lines_or_none_are_reserved() {
        contract::all_lines_or_none_are_reserved(&counters().await, "b1").await;
    }

    #[tokio::test]
    async fn redis_stale_reservations_are_swept() {
        contract::stale_reservations_are_swept(&counters().await, "b1").await;
    }

    #[tokio::test]
    async fn redis_usage_of_a_past_window_does_not_count() {
        contract::usage_of_a_past_window_does_not_count(&counters().await, "b1").await;
    }

    #[tokio::test]
    async fn redis_a_newer_persisted_window_replaces_the_counter() {
        contract::a_newer_persisted_window_replaces_the_counter(&counters().await, "b1").await;
    }

    #[tokio::test]
    async fn redis_a_reservation_of_a_dead_instance_is_released_by_another() {
        let first = counters().await;
        let now = tollgate_core::clock::now();
        assert!(first.reserve(&[contract::budget("b1", 100, 90)], now).await.is_ok());
        let second = RedisCounters { held: Arc::default(), settling: TaskTracker::new(), ..first.clone() };
        drop(first);
        assert_eq!(second.sweep(Duration::minutes(10), now + Duration::minutes(11)).await, 1);
        assert_eq!(second.peek("b1").await, Some((0, 0)), "the room held by the dead instance is free again");
    }

    async fn ttl_ms(c: &RedisCounters, line: &str) -> i64 {
        redis::cmd("PTTL").arg(c.line_key(line)).query_async(&mut c.connection.clone()).await.unwrap_or(-3)
    }

    #[tokio::test]
    async fn redis_line_keys_expire_once_their_window_is_over() {
        let c = counters().await;
        let now = tollgate_core::clock::now();
        let claim = contract::budget("b1", 100, 10);
        let id = c.reserve(std::slice::from_ref(&claim), now).await.expect("room");
        let until_window_end = (claim.period.next_start(true, claim.window_start(now)) - now).num_milliseconds();
        let ttl = ttl_ms(&c, "b1").await;
        let slack = 5_000;
        assert!(
            ttl > until_window_end && ttl <= until_window_end + EXPIRY_GRACE.num_milliseconds() + slack,
            "a reserved line outlives its window by the grace only: {ttl} ms, window ends in {until_window_end} ms"
        );
        contract::settle(&c, id, Actual { cost_micros: 5, ..Actual::default() }, now).await;
        assert!(ttl_ms(&c, "b1").await > until_window_end, "settling keeps the expiry");
        c.adopt("b2", LineKind::Budget, 7, now).await.expect("adopted");
        let adopted = ttl_ms(&c, "b2").await;
        assert!(adopted > Duration::days(399).num_milliseconds(), "a line taken from the database expires too: {adopted} ms");
    }

    #[tokio::test]
    async fn redis_two_instances_never_take_the_same_room() {
        let first = counters().await;
        let second = RedisCounters { held: Arc::default(), settling: TaskTracker::new(), ..first.clone() };
        let now = tollgate_core::clock::now();
        let claim = [contract::budget("b1", 100, 10)];
        let tries = (0..40).map(|i| {
            let c = if i % 2 == 0 { first.clone() } else { second.clone() };
            let claim = claim.clone();
            tokio::spawn(async move { c.reserve(&claim, now).await.is_ok() })
        });
        let admitted = futures::future::join_all(tries).await.into_iter().filter(|r| matches!(r, Ok(true))).count();
        assert_eq!(admitted, 10, "40 concurrent reservations from two instances on a line with room for 10");
    }
}
