//! Counters in Redis (one server or a cluster, `link`), shared by every Tollgate instance pointed
//! at it: each reservation and settlement is one Lua script over one user copy's hash and its
//! bucket's index (`keys`), so it is atomic across instances; reservations are indexed by age, kept fresh while their request
//! lives, and any instance charges those of an instance that died (`sweep`). Lines Redis lost are
//! rebuilt from stored usage (`rebuild`), never taken as empty.

mod checks;
mod keys;
mod link;
mod rebuild;
mod sweep;
#[cfg(test)]
mod tests;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration as StdDuration;

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use hashbrown::HashMap;
use redis::{Cmd, Script, Value};
use tokio::runtime::Handle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tollgate_core::usage::UsageStore;

use self::keys::{Keys, bucket};
use self::link::{Link, RESPONSE_TIMEOUT};
use self::rebuild::SeenLines;
use super::{Actual, Claim, Counters, LineKind, LineValue, Reading, Refusal, Reserved, Room, Settled};

static RESERVE: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("reserve.lua")));
static SETTLE: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("settle.lua")));
static ADOPT: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("adopt.lua")));

/// How long a settlement is retried while Redis is away, its waits doubling from
/// `SETTLE_BACKOFF` to `SETTLE_BACKOFF_MAX`. A reservation swept meanwhile was charged at its
/// estimate, and the settlement then charges only what its actual exceeds that by.
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
/// Every instance re-scores its live reservations each minute (`refresh`), so one left unrefreshed
/// this long belongs to an instance that died (or lost Redis for minutes), and is swept.
const DEAD_AFTER: Duration = Duration::minutes(5);
/// A reservation is refreshed while younger than this; no request lives a day, and one that does
/// is swept like a dead instance's (charged at its estimate; its settlement charges the rest).
const LIVE_LIMIT: Duration = Duration::days(1);
/// How long a sweep's marker (what it charged for a reservation) waits for a late settlement, and
/// how long past `LIVE_LIMIT` this instance keeps a reservation's claims for one.
const MARKER_LIFE: Duration = Duration::days(1);

/// A reservation of this instance: when it was made, and its claims.
type InFlight = (DateTime<Utc>, Vec<Claim>);

/// Counter lines, reservations and the reservation indexes under one key prefix.
#[derive(Clone)]
pub struct RedisCounters {
    connection: Link,
    keys: Keys,
    /// This instance's name in the reservation indexes (random at connect): a reservation is
    /// `<instance>:<number>`, so instances need no shared sequence.
    instance: Arc<str>,
    /// The number of this instance's last reservation (also the id `reserve` returns).
    last: Arc<AtomicU64>,
    /// This instance's reservations in flight: their claims, needed to settle them.
    held: Arc<Mutex<HashMap<u64, InFlight>>>,
    /// Where lines Redis lost are rebuilt from.
    store: Arc<dyn UsageStore>,
    /// The last value this instance saw of each line it charged (`rebuild::Seen`).
    seen: Arc<Mutex<SeenLines>>,
    /// Lines charged by sweeps since the usage writer last asked (`Counters::charged`).
    swept: Arc<Mutex<Vec<LineValue>>>,
    settling: TaskTracker,
    /// Cancelled when shutdown stops waiting for Redis.
    stopping: CancellationToken,
    runtime: Handle,
}

impl std::fmt::Debug for RedisCounters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisCounters").field("prefix", &self.keys.prefix()).field("instance", &self.instance).finish_non_exhaustive()
    }
}

/// Why a script over lines did not answer.
#[derive(Debug)]
enum Trouble {
    Redis(redis::RedisError),
    /// Lines Redis lost could not be rebuilt (the stored usage could not be read), or were lost
    /// again at once.
    Rebuild(String),
}

impl std::fmt::Display for Trouble {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Trouble::Redis(e) => write!(f, "redis: {e}"),
            Trouble::Rebuild(e) => write!(f, "rebuilding lost counter lines: {e}"),
        }
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

/// When a copy's hash may expire, given the lines a request claims: after the last of their
/// windows ends, or never (0) if one of them never resets. The script only ever moves it later.
fn hash_expiry(claims: &[Claim], now: DateTime<Utc>) -> i64 {
    claims.iter().map(|claim| expires_at(claim, now)).try_fold(0, |latest, at| (at != 0).then(|| latest.max(at))).unwrap_or(0)
}

/// A line's kind as the reservation record keeps it, for a sweep to report.
fn kind_letter(kind: LineKind) -> &'static str {
    match kind {
        LineKind::Budget => "b",
        LineKind::Tokens => "t",
        LineKind::Requests => "r",
    }
}

fn kind_of_letter(letter: &str) -> Option<LineKind> {
    match letter {
        "b" => Some(LineKind::Budget),
        "t" => Some(LineKind::Tokens),
        "r" => Some(LineKind::Requests),
        _ => None,
    }
}

/// A line as the scripts store it, `<window start µs>:<used>:<reserved>`.
fn stored(value: &str) -> Option<(DateTime<Utc>, u64, u64)> {
    let mut parts = value.rsplitn(3, ':');
    let reserved = parts.next()?.parse().ok()?;
    let used = parts.next()?.parse().ok()?;
    let window = parts.next()?.parse().ok()?;
    Some((from_micros(window), used, reserved))
}

fn integers(value: &Value) -> Vec<i64> {
    match value {
        Value::Array(items) => items.iter().map(|v| redis::from_redis_value_ref::<i64>(v).unwrap_or(0)).collect(),
        _ => Vec::new(),
    }
}

impl RedisCounters {
    /// Connects (the connection is re-established on its own after a failure) and warns if Redis
    /// may lose or evict counters. `prefix` keeps the keys of one deployment apart from anything
    /// else in the same Redis database; `store` is where lines Redis lost are rebuilt from.
    /// `url` names one server, or a cluster (`redis+cluster://host:port,host:port`).
    pub async fn connect(url: &str, prefix: &str, store: Arc<dyn UsageStore>) -> Result<RedisCounters, String> {
        let mut connection = Link::open(url).await?;
        checks::warn_about_durability(&mut connection).await;
        Ok(RedisCounters {
            connection,
            keys: Keys::new(prefix),
            instance: uuid::Uuid::new_v4().simple().to_string().into(),
            last: Arc::default(),
            held: Arc::default(),
            store,
            seen: Arc::default(),
            swept: Arc::default(),
            settling: TaskTracker::new(),
            stopping: CancellationToken::new(),
            runtime: Handle::current(),
        })
    }

    /// A reservation's name in its bucket's index: `<instance>:<number>:<copy>` (a sweep finds the
    /// copy's hash, which holds the reservation's record, from the last part).
    fn member(&self, reservation: u64, copy: i64) -> String {
        format!("{}:{reservation}:{copy}", self.instance)
    }

    /// Runs `call`, an `EVALSHA` of `script` over the lines of `claims`. If it answers that lines
    /// are missing (`{2, line index, …}`: Redis lost them, and the script changed nothing),
    /// rebuilds those from stored usage and runs it once more. Costs nothing while every line is
    /// there.
    async fn run_on_lines(&self, script: &Script, call: &Cmd, claims: &[Claim], now: DateTime<Utc>) -> Result<Vec<i64>, Trouble> {
        for attempt in 0..2 {
            let reply = self.connection.clone().evalsha(script, call).await.map_err(Trouble::Redis)?;
            let numbers = integers(&reply);
            let Some((2, missing)) = numbers.split_first() else { return Ok(numbers) };
            if attempt > 0 {
                break;
            }
            let lost: Vec<&Claim> = missing.iter().filter_map(|i| claims.get(usize::try_from(*i).ok()?.checked_sub(1)?)).collect();
            self.rebuild(&lost, now).await.map_err(Trouble::Rebuild)?;
        }
        Err(Trouble::Rebuild("the lines were missing again right after they were rebuilt".to_owned()))
    }

    async fn settle_in_redis(
        &self,
        reservation: u64,
        claims: &[Claim],
        actual: Actual,
        now: DateTime<Utc>,
    ) -> Result<Vec<LineValue>, Trouble> {
        let copy = claims.first().map_or(0, |c| c.copy);
        let member = self.member(reservation, copy);
        // The command is built in place: keys, then arguments (see settle.lua).
        let mut call = redis::cmd("EVALSHA");
        call.arg(SETTLE.get_hash()).arg(3);
        call.arg(self.keys.index(bucket(copy))).arg(self.keys.copy(copy)).arg(self.keys.marker(bucket(copy), &member));
        call.arg(&member);
        for claim in claims {
            call.arg(&*claim.line).arg(claim.estimate).arg(actual.of(claim.kind)).arg(micros(claim.window_start(now)));
        }
        let numbers = self.run_on_lines(&SETTLE, &call, claims, now).await?;
        let values: Vec<LineValue> = claims
            .iter()
            .zip(numbers.get(1..).unwrap_or_default().chunks(2))
            .filter(|(claim, _)| actual.of(claim.kind) > 0)
            .map(|(claim, pair)| LineValue {
                line: claim.line.clone(),
                kind: claim.kind,
                used: u64::try_from(pair[0]).unwrap_or(0),
                window_start: from_micros(pair.get(1).copied().unwrap_or(0)),
            })
            .collect();
        rebuild::note(&self.seen, &values, now);
        Ok(values)
    }

    /// Sets a line of `copy` from stored usage (see `adopt.lua`); `expires` in ms since the epoch,
    /// 0: never.
    async fn adopt_line(&self, copy: i64, line: &str, used: u64, window_start: DateTime<Utc>, expires: i64) -> Result<(), String> {
        let mut call = ADOPT.key(self.keys.copy(copy));
        call.arg(line).arg(used).arg(micros(window_start)).arg(expires);
        call.invoke_async::<i64>(&mut self.connection.clone()).await.map(drop).map_err(|e| format!("redis: {e}"))
    }
}

#[async_trait]
impl Counters for RedisCounters {
    async fn reserve(&self, claims: &[Claim], now: DateTime<Utc>) -> Result<Reserved, Refusal> {
        let id = self.last.fetch_add(1, Ordering::Relaxed) + 1;
        let Some(first) = claims.first() else {
            // Nothing to hold: no Redis call, and settling it is a no-op.
            return Ok(Reserved { id, room: Room::default() });
        };
        let member = self.member(id, first.copy);
        // The command is built in place: keys, then arguments (see reserve.lua).
        let mut call = redis::cmd("EVALSHA");
        call.arg(RESERVE.get_hash()).arg(2).arg(self.keys.index(bucket(first.copy))).arg(self.keys.copy(first.copy));
        call.arg(now.timestamp_millis()).arg(&member).arg(hash_expiry(claims, now));
        for claim in claims {
            call.arg(&*claim.line).arg(claim.limit).arg(claim.estimate).arg(micros(claim.window_start(now))).arg(kind_letter(claim.kind));
        }
        let numbers = self.run_on_lines(&RESERVE, &call, claims, now).await.map_err(|e| {
            tracing::error!(error = %e, "redis counters cannot be used; refusing the request");
            Refusal::Unavailable
        })?;
        match numbers.split_first() {
            Some((1, rooms)) => {
                self.held.lock().map_err(|_| Refusal::Unavailable)?.insert(id, (now, claims.to_vec()));
                let mut room = Room::default();
                for line in rooms.chunks_exact(3) {
                    if let Some(claim) = usize::try_from(line[0]).ok().and_then(|i| claims.get(i.checked_sub(1)?)) {
                        room.offer(claim, u64::try_from(line[1]).unwrap_or(0), from_micros(line[2]));
                    }
                }
                Ok(Reserved { id, room })
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
                tracing::error!(?numbers, "unexpected reply from the reserve script");
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

    /// Lines charged by sweeps (the estimates of reservations whose instance died), for the
    /// usage writer; settlements report theirs with the settlement.
    fn charged(&self) -> Vec<LineValue> {
        self.swept.lock().map(|mut swept| std::mem::take(&mut *swept)).unwrap_or_default()
    }

    /// Takes a stored line value, or the later value this instance saw of the line: stored usage
    /// lags, and a line Redis lost may be re-created here (by a reload) before a request would
    /// rebuild it.
    async fn adopt(&self, line: &str, copy: Option<i64>, _kind: LineKind, used: u64, window_start: DateTime<Utc>) -> Result<(), String> {
        let Some(copy) = copy else { return Ok(()) };
        let (window_start, used) = rebuild::with_seen(&self.seen, line, (window_start, used));
        let expires = (tollgate_core::clock::now() + ADOPTED_EXPIRY).timestamp_millis();
        self.adopt_line(copy, line, used, window_start, expires).await
    }

    /// Re-scores this instance's live reservations in their indexes, so no sweep takes them for
    /// a dead instance's however long their request runs.
    async fn refresh(&self, now: DateTime<Utc>) {
        rebuild::forget_old(&self.seen, now);
        self.refresh_live(now).await;
    }

    /// Charges the estimates of reservations nobody refreshed for `DEAD_AFTER` (or `max_age`,
    /// if shorter): their instance died, and the upstream may have served them.
    async fn sweep(&self, max_age: Duration, now: DateTime<Utc>) -> usize {
        if let Ok(mut held) = self.held.lock() {
            held.retain(|_, (at, _)| now - *at <= LIVE_LIMIT + MARKER_LIFE);
        }
        self.sweep_dead(now - max_age.min(DEAD_AFTER), now).await
    }

    /// One `HMGET` over the copy's hash; lines Redis lost are rebuilt from stored usage first, as
    /// a reservation would (so the read and the next reservation agree).
    async fn read(&self, claims: &[Claim], now: DateTime<Utc>) -> Result<Vec<Reading>, Refusal> {
        let Some(first) = claims.first() else { return Ok(Vec::new()) };
        let mut rebuilt = false;
        loop {
            let mut call = redis::cmd("HMGET");
            call.arg(self.keys.copy(first.copy));
            for claim in claims {
                call.arg(&*claim.line);
            }
            let values: Vec<Option<String>> = call.query_async(&mut self.connection.clone()).await.map_err(|e| {
                tracing::error!(error = %e, "redis counters cannot be read");
                Refusal::Unavailable
            })?;
            let lost: Vec<&Claim> = claims.iter().zip(&values).filter(|(_, v)| v.is_none()).map(|(c, _)| c).collect();
            if !lost.is_empty() && !rebuilt {
                self.rebuild(&lost, now).await.map_err(|e| {
                    tracing::error!(error = %e, "lost counter lines cannot be rebuilt for a read");
                    Refusal::Unavailable
                })?;
                rebuilt = true;
                continue;
            }
            return Ok(claims
                .iter()
                .zip(values)
                .map(|(claim, value)| Reading::of(value.as_deref().and_then(stored), claim, now))
                .collect());
        }
    }

    async fn peek(&self, line: &str, copy: i64) -> Option<(u64, u64)> {
        let value: Option<String> =
            redis::cmd("HGET").arg(self.keys.copy(copy)).arg(line).query_async(&mut self.connection.clone()).await.ok()?;
        let mut parts = value?.rsplitn(3, ':').map(|part| part.parse::<u64>().unwrap_or(0)).collect::<Vec<_>>().into_iter();
        let (reserved, used) = (parts.next()?, parts.next()?);
        Some((used, reserved))
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
