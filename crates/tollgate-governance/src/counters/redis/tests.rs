//! The Redis counters against the Redis at `TOLLGATE_TEST_REDIS_URL` (default
//! `redis://127.0.0.1:6379`), which CI starts; each test uses its own key prefix, and plays Redis
//! losing its data by deleting that prefix's keys. A test that needs a Redis of its own settings
//! starts a private `redis-server`.

use tollgate_core::money::Money;
use tollgate_core::ports::StoreError;
use tollgate_core::usage::{CopySink, GovernanceData, RequestLog, UsageRow};
use tollgate_core::windows::Period;

use super::*;
use crate::counters::tests as contract;

/// Stored usage in memory: what the usage writer would have persisted.
#[derive(Default)]
struct Stored(Mutex<Vec<UsageRow>>);

#[async_trait]
impl UsageStore for Stored {
    async fn load_governance(&self, _: &mut CopySink<'_>) -> Result<GovernanceData, StoreError> {
        Ok(GovernanceData::default())
    }
    async fn load_usage(&self, _: Option<DateTime<Utc>>) -> Result<Vec<UsageRow>, StoreError> {
        Ok(self.0.lock().map(|rows| rows.clone()).unwrap_or_default())
    }
    async fn write_usage(&self, rows: &[UsageRow], _: &[RequestLog], _: &[tollgate_core::usage::ToolCallLog]) -> Result<(), StoreError> {
        if let Ok(mut kept) = self.0.lock() {
            kept.extend(rows.iter().cloned());
        }
        Ok(())
    }
    async fn journal(&self, _: &[tollgate_core::usage::OpenReservation], _: &[String]) -> Result<(), StoreError> {
        Ok(())
    }
    async fn charge_journal(&self) -> Result<usize, StoreError> {
        Ok(0)
    }
    async fn prune_request_logs(&self, _: DateTime<Utc>) -> Result<u64, StoreError> {
        Ok(0)
    }
}

fn redis_url() -> String {
    std::env::var("TOLLGATE_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

async fn with_store(store: Arc<dyn UsageStore>) -> RedisCounters {
    let prefix = format!("tollgate-test:{}:", uuid::Uuid::new_v4());
    RedisCounters::connect(&redis_url(), &prefix, store).await.unwrap_or_else(|e| panic!("{e}"))
}

async fn counters() -> RedisCounters {
    with_store(Arc::new(Stored::default())).await
}

/// Another instance on the same Redis and key prefix: it shares nothing in memory.
fn other_instance(c: &RedisCounters) -> RedisCounters {
    RedisCounters {
        instance: uuid::Uuid::new_v4().simple().to_string().into(),
        last: Arc::default(),
        held: Arc::default(),
        seen: Arc::default(),
        swept: Arc::default(),
        settling: TaskTracker::new(),
        ..c.clone()
    }
}

/// Deletes every key of this test's prefix, as a Redis restarted without persistence would.
async fn lose_everything(c: &RedisCounters) {
    let mut connection = c.connection.clone();
    let keys: Vec<String> = redis::cmd("KEYS").arg(format!("{}*", c.keys.prefix())).query_async(&mut connection).await.unwrap_or_default();
    assert!(!keys.is_empty(), "there was something to lose");
    let _: i64 = redis::cmd("DEL").arg(&keys).query_async(&mut connection).await.unwrap_or_else(|e| panic!("{e}"));
}

fn dollars_row(id: &str, micros: i64, window_start: DateTime<Utc>) -> UsageRow {
    UsageRow::Budget { id: id.to_owned(), used: Money::from_micros(micros).unwrap_or(Money::ZERO), window_start }
}

fn spend(cost: u64) -> Actual {
    Actual { cost_micros: cost, ..Actual::default() }
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
async fn redis_a_read_counts_only_the_current_window_and_changes_nothing() {
    contract::a_read_counts_only_the_current_window_and_changes_nothing(&counters().await, "b1").await;
}

#[tokio::test]
async fn redis_a_reservation_reports_the_tightest_rate_line_of_each_kind() {
    contract::a_reservation_reports_the_tightest_rate_line_of_each_kind(&counters().await, "rl").await;
}

/// A read of lines Redis lost rebuilds them from stored usage, as a reservation would, rather
/// than showing them empty.
#[tokio::test]
async fn redis_a_read_of_lost_lines_shows_their_stored_usage() {
    let store = Arc::new(Stored::default());
    let c = with_store(store.clone()).await;
    let now = tollgate_core::clock::now();
    let claim = contract::budget("b1", 100, 0);
    let today = claim.window_start(now);
    store.0.lock().unwrap_or_else(|e| panic!("{e}")).push(dollars_row("b1", 70, today));
    let read = c.read(std::slice::from_ref(&claim), now).await;
    assert_eq!(read, Ok(vec![Reading { used: 70, reserved: 0, window_start: today }]));
}

#[tokio::test]
async fn redis_usage_of_a_past_window_does_not_count() {
    contract::usage_of_a_past_window_does_not_count(&counters().await, "b1").await;
}

#[tokio::test]
async fn redis_a_newer_persisted_window_replaces_the_counter() {
    contract::a_newer_persisted_window_replaces_the_counter(&counters().await, "b1").await;
}

/// Regression: a Redis that lost its data (a restart without persistence, `FLUSHALL`) served a
/// spent budget again from zero. Missing lines are now rebuilt from stored usage first — or from
/// what this instance last saw, when that is later than what was stored yet.
#[tokio::test]
async fn redis_a_flushed_redis_rebuilds_lines_from_stored_usage_and_refuses_nothing_wrongly() {
    let store = Arc::new(Stored::default());
    let c = with_store(store.clone()).await;
    let now = tollgate_core::clock::now();
    let today = contract::budget("b1", 100, 0).window_start(now);
    store.0.lock().unwrap_or_else(|e| panic!("{e}")).extend([
        dollars_row("b1", 80, today),
        dollars_row("b-old", 100, today - Duration::days(1)),
        UsageRow::Tokens { id: "rl".into(), used: 900, window_start: today },
        UsageRow::Requests { id: "rl".into(), used: 3, window_start: today },
    ]);
    let tokens = Claim { kind: LineKind::Tokens, ..contract::budget("rl:t", 1_000, 100) };
    let requests = Claim { kind: LineKind::Requests, ..contract::budget("rl:r", 10, 1) };
    let refused = c.reserve(&[contract::budget("b1", 100, 30)], now).await;
    let Err(Refusal::Denied(denied)) = refused else { panic!("the stored 80 counts: {refused:?}") };
    assert_eq!(denied[0].used, 80);
    assert!(c.reserve(&[tokens.clone(), requests], now).await.is_ok(), "900 + 100 tokens fit in 1000");
    assert_eq!((c.peek("rl:t", contract::COPY).await, c.peek("rl:r", contract::COPY).await), (Some((900, 100)), Some((3, 1))));
    assert!(c.reserve(std::slice::from_ref(&tokens), now).await.is_err(), "the rebuilt token line is full");
    let id = c.reserve(&[contract::budget("b1", 100, 20), contract::budget("b-old", 100, 100)], now).await.expect("20 fits").id;
    assert_eq!(c.peek("b-old", contract::COPY).await.map(|(_, reserved)| reserved), Some(100), "yesterday's stored spend is gone today");
    assert!(c.reserve(&[contract::budget("b-new", 100, 100)], now).await.is_ok(), "a line with no stored row starts empty");
    contract::settle(&c, id, spend(15), now).await; // b1: 95, of which the store has only 80

    lose_everything(&c).await;
    let refused = c.reserve(&[contract::budget("b1", 100, 10)], now).await;
    let Err(Refusal::Denied(denied)) = refused else { panic!("still spent after the loss: {refused:?}") };
    assert_eq!(denied[0].used, 95, "the 15 settled since the last write were seen by this instance");
    assert!(other_instance(&c).reserve(&[contract::budget("b1", 100, 10)], now).await.is_err(), "and it stays known to all");
    assert!(c.reserve(&[contract::budget("b1", 100, 5)], now).await.is_ok(), "what is left is still served");
}

/// A reload re-creating a lost line from stored usage that lags (the last write is still on its
/// way) keeps the later value this instance saw; found by the end-to-end test, where a restarted
/// Redis got a line back from the reload at the stored value and let one request too many through.
#[tokio::test]
async fn redis_a_line_taken_from_lagging_stored_usage_after_a_loss_keeps_what_this_instance_saw() {
    let c = counters().await;
    let now = tollgate_core::clock::now();
    let today = contract::budget("b1", 100, 0).window_start(now);
    let id = c.reserve(&[contract::budget("b1", 100, 90)], now).await.expect("room").id;
    contract::settle(&c, id, spend(90), now).await;
    lose_everything(&c).await;
    c.adopt("b1", Some(contract::COPY), LineKind::Budget, 60, today).await.expect("adopted");
    assert_eq!(c.peek("b1", contract::COPY).await, Some((90, 0)), "not the stored 60");
    c.adopt("b1", Some(contract::COPY), LineKind::Budget, 0, now).await.expect("adopted");
    assert_eq!(c.peek("b1", contract::COPY).await, Some((0, 0)), "a reset (a newer window) still zeroes the line");
}

/// Regression: a settlement after Redis lost its data charged an empty line, so the database
/// kept the larger of the old and the new value instead of their sum.
#[tokio::test]
async fn redis_a_settlement_after_a_flush_lands_on_stored_usage_plus_its_charge() {
    let store = Arc::new(Stored::default());
    let c = with_store(store.clone()).await;
    let now = tollgate_core::clock::now();
    let today = contract::budget("b1", 1_000, 0).window_start(now);
    store.0.lock().unwrap_or_else(|e| panic!("{e}")).push(dollars_row("b1", 500, today));
    let id = c.reserve(&[contract::budget("b1", 1_000, 100)], now).await.expect("room").id;
    lose_everything(&c).await;
    let values = contract::settle(&c, id, spend(70), now).await;
    assert_eq!(values.iter().map(|v| v.used).collect::<Vec<_>>(), vec![570], "stored 500 plus the charge of 70");
    assert_eq!(c.peek("b1", contract::COPY).await, Some((570, 0)), "the lost reservation is not released twice");
}

/// Regression: a reservation older than 30 minutes was released while its request still ran,
/// and this instance forgot its claims, so the settlement charged nothing.
#[tokio::test]
async fn redis_refreshing_keeps_a_live_reservation_from_being_swept_and_its_settlement_charges() {
    let c = counters().await;
    let now = tollgate_core::clock::now();
    let id = c.reserve(&[contract::budget("b1", 100, 90)], now).await.expect("room").id;
    let later = now + Duration::minutes(40);
    c.refresh(later - Duration::minutes(1)).await;
    for sweeper in [&c, &other_instance(&c)] {
        assert_eq!(sweeper.sweep(Duration::minutes(30), later).await, 0, "a live reservation is not swept");
    }
    assert_eq!(c.peek("b1", contract::COPY).await, Some((0, 90)), "its room stays held");
    let values = contract::settle(&c, id, spend(60), later).await;
    assert_eq!(values.iter().map(|v| v.used).collect::<Vec<_>>(), vec![60], "a long request is charged");
    assert_eq!(c.peek("b1", contract::COPY).await, Some((60, 0)));
}

/// Regression: a dead instance's reservations were released, so requests the upstream served
/// were never charged. They are now charged at their estimate, reported to the usage writer, and
/// a settlement arriving after all charges only the rest (never the estimate twice).
#[tokio::test]
async fn redis_a_dead_instances_reservation_is_charged_at_its_estimate_and_a_late_settlement_only_adds_the_rest() {
    let first = counters().await;
    let now = tollgate_core::clock::now();
    let over = first.reserve(&[contract::budget("b1", 100, 50)], now).await.expect("room").id;
    let under = first.reserve(&[contract::budget("b2", 100, 40)], now).await.expect("room").id;
    let second = other_instance(&first);
    assert_eq!(second.sweep(Duration::minutes(30), now + Duration::minutes(6)).await, 2, "unrefreshed for 5 minutes: dead");
    assert_eq!(
        (second.peek("b1", contract::COPY).await, second.peek("b2", contract::COPY).await),
        (Some((50, 0)), Some((40, 0))),
        "estimates charged"
    );
    let mut reported: Vec<(String, u64)> = second.charged().into_iter().map(|v| (v.line.to_string(), v.used)).collect();
    reported.sort();
    assert_eq!(reported, vec![("b1".to_owned(), 50), ("b2".to_owned(), 40)], "for the usage writer");
    assert!(second.charged().is_empty(), "reported once");
    assert_eq!(second.sweep(Duration::minutes(30), now + Duration::minutes(7)).await, 0, "swept once");

    let values = contract::settle(&first, over, spend(65), now + Duration::minutes(8)).await;
    assert_eq!(values.iter().map(|v| v.used).collect::<Vec<_>>(), vec![65], "the actual beyond the estimate is added");
    contract::settle(&first, under, spend(10), now + Duration::minutes(8)).await;
    assert_eq!(first.peek("b2", contract::COPY).await, Some((40, 0)), "a smaller actual adds nothing to the swept estimate");
}

/// A copy's counters live in one hash, which expires once the last window of its lines is over
/// (plus the grace), never earlier because a request touched only its shorter lines; an expiry
/// the database set when it took a line up is replaced by the first request's exact one.
#[tokio::test]
async fn redis_a_copys_counters_expire_once_the_last_of_its_windows_is_over() {
    let c = counters().await;
    let now = tollgate_core::clock::now();
    let day = contract::budget("b1", 100, 10);
    let id = c.reserve(std::slice::from_ref(&day), now).await.expect("room").id;
    let until = |claim: &Claim| (claim.period.next_start(true, claim.window_start(now)) - now).num_milliseconds();
    let (grace, slack) = (EXPIRY_GRACE.num_milliseconds(), 5_000);
    let ttl = ttl_ms(&c, contract::COPY).await;
    assert!(ttl > until(&day) && ttl <= until(&day) + grace + slack, "a day's line: {ttl} ms, its window ends in {} ms", until(&day));
    contract::settle(&c, id, spend(5), now).await;
    assert!(ttl_ms(&c, contract::COPY).await > until(&day), "settling keeps the expiry");

    let year = Claim { period: Period::Year, ..contract::budget("b-year", 100, 10) };
    c.reserve(std::slice::from_ref(&year), now).await.expect("room");
    let longer = ttl_ms(&c, contract::COPY).await;
    assert!(longer > until(&year) && longer <= until(&year) + grace + slack, "the year's line moves it later: {longer} ms");
    c.reserve(std::slice::from_ref(&day), now).await.expect("room");
    assert!(ttl_ms(&c, contract::COPY).await > until(&year), "the day's line does not bring it back");

    let other = contract::COPY + 1;
    c.adopt("b2", Some(other), LineKind::Budget, 7, now).await.expect("adopted");
    let adopted = ttl_ms(&c, other).await;
    assert!(adopted > Duration::days(399).num_milliseconds(), "a copy taken up from the database expires too: {adopted} ms");
    c.reserve(&[Claim { copy: other, ..contract::budget("b2", 100, 10) }], now).await.expect("room");
    let exact = ttl_ms(&c, other).await;
    assert!(exact <= until(&day) + grace + slack, "the first request sets the exact expiry: {exact} ms");
    assert_eq!(c.peek("b2", other).await, Some((7, 10)), "the adopted value is kept");
}

async fn ttl_ms(c: &RedisCounters, copy: i64) -> i64 {
    redis::cmd("PTTL").arg(c.keys.copy(copy)).query_async(&mut c.connection.clone()).await.unwrap_or(-3)
}

#[tokio::test]
async fn redis_two_instances_never_take_the_same_room() {
    let first = counters().await;
    let second = other_instance(&first);
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

/// A `redis-server` of this test's own on a free loopback port, stopped on drop.
struct PrivateRedis(std::process::Child, u16);

impl PrivateRedis {
    fn start(settings: &[&str]) -> PrivateRedis {
        let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port");
        let child = std::process::Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(settings)
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server starts");
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        PrivateRedis(child, port)
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn redis_start_up_reads_the_settings_that_can_lose_counters() {
    let redis = PrivateRedis::start(&["--save", "", "--appendonly", "no", "--maxmemory-policy", "allkeys-lru"]);
    let client = redis::Client::open(format!("redis://127.0.0.1:{}", redis.1)).expect("url");
    let mut connection = client.get_connection_manager().await.expect("connects");
    let settings = checks::durability(&mut connection).await.expect("CONFIG GET answers");
    assert_eq!(settings, ("no".to_owned(), String::new(), "allkeys-lru".to_owned()));
    let risks = checks::risks(&settings.0, &settings.1, &settings.2);
    assert!(risks[0].contains("persistence is off") && risks[1].contains("allkeys-lru"), "{risks:?}");
}
