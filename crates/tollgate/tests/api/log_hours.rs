//! The stats of a log search read from the hourly sums agree exactly with the rows: rows written
//! by the usage writer over several hours, searched with part-hour bounds and every filter the
//! sums keep, after pruning, and after a bulk load summed again by `rebuild_log_hours`.

use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use serde_json::Value;
use tollgate_core::money::Money;
use tollgate_core::usage::{RequestLog, UsageStore};
use tollgate_store::SqlStore;
use tollgate_testkit::{Backend, TestApp};

/// Row `i` of the seeded log: one every 7 minutes back from `newest`, with providers, models,
/// routes, outcomes and denials that vary at different rates, and a user on some.
fn row(i: u32, newest: DateTime<Utc>) -> RequestLog {
    let refused = i.is_multiple_of(9);
    RequestLog {
        created_at: newest - TimeDelta::minutes(7 * i64::from(i)) - TimeDelta::seconds(i64::from(i % 50)),
        user_id: i.is_multiple_of(4).then(|| format!("user-{}", i % 3)),
        virtual_key_id: None,
        provider: if i.is_multiple_of(2) { "openai" } else { "anthropic" }.into(),
        model: match i % 3 {
            0 => "small",
            1 => "large",
            _ => "huge",
        }
        .into(),
        prompt_tokens: u64::from(10 + i % 17),
        completion_tokens: if refused { 0 } else { u64::from(i % 23) },
        cost: Money::from_micros(if refused { 0 } else { i64::from(100 + i * 13) }).unwrap_or(Money::ZERO),
        status: if refused {
            402
        } else if i.is_multiple_of(11) {
            502
        } else {
            200
        },
        latency_ms: u64::from(i * 31 % 900),
        streamed: false,
        route: if i.is_multiple_of(5) { "embeddings" } else { "chat_completions" },
        copy_id: Some(i64::from(i % 6)),
        profile_id: Some(1),
        role_id: None,
        denial: refused.then_some(if i.is_multiple_of(2) { "budget_exceeded" } else { "rate_limited" }),
        error: None,
        request_content: None,
        response_content: None,
    }
}

/// `(count, successes, latency sum, tokens, cost)` of the rows, as the search's stats give them.
fn expected(rows: &[RequestLog], keep: impl Fn(&RequestLog) -> bool) -> (u64, u64, u64, u64, i64) {
    let kept: Vec<&RequestLog> = rows.iter().filter(|r| keep(r)).collect();
    (
        u64::try_from(kept.len()).unwrap_or(0),
        u64::try_from(kept.iter().filter(|r| (200..300).contains(&r.status)).count()).unwrap_or(0),
        kept.iter().map(|r| r.latency_ms).sum(),
        kept.iter().map(|r| r.prompt_tokens + r.completion_tokens).sum(),
        kept.iter().map(|r| r.cost.micros()).sum(),
    )
}

fn stats(page: &Value) -> (u64, u64, u64, u64, i64) {
    let stats = &page["stats"];
    let n = stats["total_requests"].as_u64().unwrap_or(0);
    #[expect(clippy::cast_precision_loss, clippy::cast_possible_truncation, clippy::cast_sign_loss, reason = "small test sums")]
    let latency = (stats["average_latency"].as_f64().unwrap_or(0.0) * n as f64).round() as u64;
    #[expect(clippy::cast_precision_loss, clippy::cast_possible_truncation, clippy::cast_sign_loss, reason = "small test sums")]
    let ok = (stats["success_rate"].as_f64().unwrap_or(0.0) / 100.0 * n as f64).round() as u64;
    (n, ok, latency, stats["total_tokens"].as_u64().unwrap_or(0), stats["total_cost_micros"].as_i64().unwrap_or(-1))
}

fn rfc(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Which seeded rows a search should match.
type Keep = Box<dyn Fn(&RequestLog) -> bool>;

/// Every search the sums answer, each against the rows' own sums.
async fn check_searches(app: &TestApp, rows: &[RequestLog], newest: DateTime<Utc>) {
    let (from, to) = (newest - TimeDelta::minutes(7 * 90 + 13), newest - TimeDelta::minutes(7 * 12 + 5));
    let in_range = move |r: &RequestLog| r.created_at >= from && r.created_at < to;
    let range = format!("start_time={}&end_time={}", rfc(from), rfc(to));
    let searches: Vec<(String, Keep)> = vec![
        (String::new(), Box::new(|_| true)),
        (range.clone(), Box::new(in_range)),
        (
            format!("{range}&providers=openai&models=large,huge"),
            Box::new(move |r| in_range(r) && r.provider == "openai" && r.model != "small"),
        ),
        (format!("start_time={}&status=error", rfc(from)), Box::new(move |r| r.created_at >= from && r.status != 200)),
        (format!("end_time={}&denial_types=any", rfc(to)), Box::new(move |r| r.created_at < to && r.denial.is_some())),
        (
            "denial_types=rate_limited&objects=embeddings".to_owned(),
            Box::new(|r| r.denial == Some("rate_limited") && r.route == "embeddings"),
        ),
        (
            format!("{range}&status=success&objects=chat_completions"),
            Box::new(move |r| in_range(r) && r.status == 200 && r.route == "chat_completions"),
        ),
        // Narrowed by a column the sums do not keep: read from the rows, same answer.
        (format!("{range}&user_ids=user-1"), Box::new(move |r| in_range(r) && r.user_id.as_deref() == Some("user-1"))),
        (format!("{range}&min_latency=0"), Box::new(in_range)),
    ];
    for (query, keep) in searches {
        let page = app.admin().get(&format!("/api/logs?{query}")).await.expect(200).clone();
        assert_eq!(stats(&page), expected(rows, keep), "/api/logs?{query}: {}", page["stats"]);
    }
}

on_both_backends! {
    async fn the_hourly_sums_give_the_same_stats_as_the_rows_for_every_search_after_pruning_and_a_rebuild(app: &TestApp) {
        let store = SqlStore::connect(app.database_url().unwrap_or_default()).await.unwrap_or_else(|e| panic!("store connects: {e}"));
        let newest = Utc::now().duration_trunc(TimeDelta::seconds(1)).unwrap_or_default();
        let mut rows: Vec<RequestLog> = (0..150).map(|i| row(i, newest)).collect();
        // Two flushes, the second adding to hours the first began.
        store.write_usage(&[], &rows[..70], &[]).await.unwrap_or_else(|e| panic!("{e}"));
        store.write_usage(&[], &rows[70..], &[]).await.unwrap_or_else(|e| panic!("{e}"));
        check_searches(app, &rows, newest).await;

        // Pruning cuts whole hours: the sums and the rows still agree.
        // 40 minutes into an hour some 14 hours back: rows (one every 7 minutes) lie between the
        // hour's start and the retention whatever the time of day the test runs.
        let before = (newest - TimeDelta::hours(14)).duration_trunc(TimeDelta::hours(1)).unwrap_or_default() + TimeDelta::minutes(40);
        store.prune_request_logs(before).await.unwrap_or_else(|e| panic!("{e}"));
        let cut = before.duration_trunc(TimeDelta::hours(1)).unwrap_or_default();
        rows.retain(|r| r.created_at >= cut);
        assert!(rows.iter().any(|r| r.created_at < before), "the hour the retention falls in is kept whole");
        check_searches(app, &rows, newest).await;

        // Rows loaded behind the writer's back count once their hours are summed again.
        app.sql("INSERT INTO request_logs (created_at, provider, model, prompt_tokens, completion_tokens, cost, status, latency_ms, \
                 streamed, route) SELECT created_at, provider, model, prompt_tokens, completion_tokens, cost, status, latency_ms, streamed, \
                 route FROM request_logs WHERE denial IS NULL").await;
        store.rebuild_log_hours().await.unwrap_or_else(|e| panic!("{e}"));
        let copies: Vec<RequestLog> = rows
            .iter()
            .filter(|r| r.denial.is_none())
            .map(|r| RequestLog { user_id: None, copy_id: None, profile_id: None, ..r.clone() })
            .collect();
        rows.extend(copies);
        check_searches(app, &rows, newest).await;
        store.close().await;
    }
}
