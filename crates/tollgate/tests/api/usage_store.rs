//! The usage writer's store writes: a flush of many lines and log rows in a few multi-row
//! statements, keeping the latest value of every line, on both backends.

use chrono::{DurationRound, TimeDelta, Utc};
use tollgate_core::money::Money;
use tollgate_core::usage::{RequestLog, UsageRow, UsageStore};
use tollgate_store::SqlStore;
use tollgate_testkit::{Backend, TestApp};

fn log(i: u64) -> RequestLog {
    RequestLog {
        created_at: Utc::now(),
        user_id: Some(format!("user-{i}")),
        virtual_key_id: None,
        provider: "openai".into(),
        model: "gpt-4o-mini".into(),
        prompt_tokens: i,
        completion_tokens: 1,
        cost: Money::from_micros(7).unwrap_or(Money::ZERO),
        status: 200,
        latency_ms: 3,
        streamed: false,
        route: "chat_completions",
        copy_id: Some(1),
        profile_id: Some(1),
        role_id: None,
        denial: None,
        error: None,
        request_content: None,
        response_content: None,
    }
}

fn dollars(n: i64) -> Money {
    Money::from_micros(n * 1_000_000).unwrap_or(Money::ZERO)
}

on_both_backends! {
    async fn a_flush_writes_every_line_once_keeping_its_latest_value(app: &TestApp) {
        let store = SqlStore::connect(app.database_url().unwrap_or_default()).await.unwrap_or_else(|e| panic!("store connects: {e}"));
        let now = Utc::now().duration_trunc(TimeDelta::seconds(1)).unwrap_or_default();
        let earlier = now - TimeDelta::days(1);
        let seeded = [
            UsageRow::Budget { id: "b-kept".into(), used: dollars(5), window_start: now },
            UsageRow::Tokens { id: "rl-1".into(), used: 100, window_start: now },
        ];
        store.write_usage(&seeded, &[], &[]).await.unwrap_or_else(|e| panic!("seed written: {e}"));
        // 300 more budget lines make the budget upsert span several statements.
        let mut batch: Vec<UsageRow> =
            (0..300).map(|i| UsageRow::Budget { id: format!("b-{i}"), used: dollars(i), window_start: now }).collect();
        batch.extend([
            // Smaller than stored, same window: ignored.
            UsageRow::Budget { id: "b-kept".into(), used: dollars(3), window_start: now },
            // The same line twice in one batch: the later window, then the larger value, wins.
            UsageRow::Budget { id: "b-twice".into(), used: dollars(9), window_start: earlier },
            UsageRow::Budget { id: "b-twice".into(), used: dollars(1), window_start: now },
            UsageRow::Budget { id: "b-twice".into(), used: dollars(2), window_start: now },
            // Tokens and requests of one rate limit share a row; each keeps its own value.
            UsageRow::Tokens { id: "rl-1".into(), used: 150, window_start: now },
            UsageRow::Requests { id: "rl-1".into(), used: 7, window_start: now },
            UsageRow::Requests { id: "rl-2".into(), used: 4, window_start: earlier },
        ]);
        let logs: Vec<RequestLog> = (0..300).map(log).collect();
        store.write_usage(&batch, &logs, &[]).await.unwrap_or_else(|e| panic!("the flush is written: {e}"));

        let stored = store.load_usage(None).await.unwrap_or_else(|e| panic!("usage loads: {e}"));
        let budget = |id: &str| {
            stored.iter().find_map(|r| match r {
                UsageRow::Budget { id: i, used, window_start } if i == id => Some((used.micros(), *window_start)),
                _ => None,
            })
        };
        let limit = |id: &str| {
            let tokens = stored.iter().find_map(|r| match r {
                UsageRow::Tokens { id: i, used, .. } if i == id => Some(*used),
                _ => None,
            });
            let requests = stored.iter().find_map(|r| match r {
                UsageRow::Requests { id: i, used, window_start } if i == id => Some((*used, *window_start)),
                _ => None,
            });
            (tokens, requests)
        };
        assert_eq!(budget("b-kept"), Some((5_000_000, now)), "a smaller value of the same window never lowers a line");
        assert_eq!(budget("b-twice"), Some((2_000_000, now)), "of one line's values in a batch, the latest counts");
        assert_eq!(budget("b-299"), Some((299_000_000, now)));
        assert_eq!(stored.iter().filter(|r| matches!(r, UsageRow::Budget { .. })).count(), 302);
        assert_eq!(limit("rl-1"), (Some(150), Some((7, now))), "tokens and requests of a limit both land");
        assert_eq!(limit("rl-2").1, Some((4, earlier)));
        assert_eq!(app.count("SELECT COUNT(*) AS n FROM request_logs WHERE provider = 'openai' AND model = 'gpt-4o-mini'").await, 300);
        assert_eq!(app.count("SELECT CAST(SUM(prompt_tokens) AS BIGINT) AS n FROM request_logs WHERE model = 'gpt-4o-mini'").await, (0..300).sum::<i64>());
        let row_7 = "SELECT COUNT(*) AS n FROM request_logs WHERE user_id = 'user-7' AND virtual_key_id IS NULL AND prompt_tokens = 7 \
                     AND completion_tokens = 1 AND cost = 7 AND status = 200 AND latency_ms = 3 AND streamed = 0";
        assert_eq!(app.count(row_7).await, 1, "every value of a log line lands in its own column");
        store.close().await;
    }
}

on_both_backends! {
    async fn the_usage_writers_own_pool_writes_to_the_same_database_and_closing_it_leaves_the_main_pool_open(app: &TestApp) {
        let url = app.database_url().unwrap_or_default();
        let main = SqlStore::connect(url).await.unwrap_or_else(|e| panic!("store connects: {e}"));
        let writer = SqlStore::for_usage_writer(url).unwrap_or_else(|e| panic!("writer's store: {e}"));
        let now = Utc::now().duration_trunc(TimeDelta::seconds(1)).unwrap_or_default();
        let row = UsageRow::Budget { id: "b-own-pool".into(), used: dollars(4), window_start: now };
        writer.write_usage(std::slice::from_ref(&row), &[log(41)], &[]).await.unwrap_or_else(|e| panic!("written: {e}"));
        UsageStore::close(&writer).await;
        let stored = main.load_usage(None).await.unwrap_or_else(|e| panic!("the main pool still reads: {e}"));
        assert!(stored.contains(&row), "the main pool sees the writer's row");
        assert_eq!(app.count("SELECT COUNT(*) AS n FROM request_logs WHERE prompt_tokens = 41").await, 1);
        main.close().await;
    }
}

on_both_backends! {
    async fn the_stored_rows_of_given_lines_load_without_the_others(app: &TestApp) {
        let store = SqlStore::connect(app.database_url().unwrap_or_default()).await.unwrap_or_else(|e| panic!("store connects: {e}"));
        let now = Utc::now().duration_trunc(TimeDelta::seconds(1)).unwrap_or_default();
        let mut rows: Vec<UsageRow> =
            (0..200).map(|i| UsageRow::Budget { id: format!("b-{i}"), used: dollars(i), window_start: now }).collect();
        rows.extend([
            UsageRow::Tokens { id: "rl-1".into(), used: 150, window_start: now },
            UsageRow::Requests { id: "rl-1".into(), used: 7, window_start: now },
            UsageRow::Tokens { id: "rl-2".into(), used: 9, window_start: now },
            UsageRow::Requests { id: "rl-2".into(), used: 1, window_start: now },
        ]);
        store.write_usage(&rows, &[], &[]).await.unwrap_or_else(|e| panic!("seed written: {e}"));
        // More ids than one statement takes, some without a row.
        let budgets: Vec<String> = (150..300).map(|i| format!("b-{i}")).collect();
        let mut loaded = store.load_lines(&budgets, &["rl-1".to_owned(), "rl-9".to_owned()]).await.unwrap_or_else(|e| panic!("{e}"));
        let mut expected: Vec<UsageRow> =
            (150..200).map(|i| UsageRow::Budget { id: format!("b-{i}"), used: dollars(i), window_start: now }).collect();
        expected.extend(rows[200..202].iter().cloned());
        let key = |r: &UsageRow| format!("{r:?}");
        loaded.sort_by_key(key);
        expected.sort_by_key(key);
        assert_eq!(loaded, expected, "only the asked lines that have a row, with both counters of a rate limit");
        assert!(store.load_lines(&[], &[]).await.is_ok_and(|rows| rows.is_empty()));
        store.close().await;
    }
}

/// Regression: `sqlite::memory:` used to start, with each pooled connection on a database of its
/// own (the migrations ran on one; the others had no tables); it is refused, saying why.
#[tokio::test]
async fn an_in_memory_sqlite_database_is_refused_with_the_reason() {
    for url in ["sqlite::memory:", "sqlite://file.db?mode=memory"] {
        let refused = SqlStore::connect(url).await.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(refused.contains("in-memory SQLite database is not supported"), "{url}: {refused}");
        let refused = SqlStore::for_usage_writer(url).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(refused.contains("in-memory SQLite database is not supported"), "{url}: {refused}");
    }
}

on_both_backends! {
    async fn recorded_reservations_a_crash_left_are_charged_once_in_their_window(app: &TestApp) {
        use tollgate_core::usage::OpenReservation;
        let store = SqlStore::connect(app.database_url().unwrap_or_default()).await.unwrap_or_else(|e| panic!("store connects: {e}"));
        let now = Utc::now().duration_trunc(TimeDelta::seconds(1)).unwrap_or_default();
        let earlier = now - TimeDelta::days(1);
        store
            .write_usage(&[UsageRow::Budget { id: "b-1".into(), used: dollars(2), window_start: now }], &[], &[])
            .await
            .unwrap_or_else(|e| panic!("seed written: {e}"));
        let open = |id: &str, budget: i64, requests: u64, window| OpenReservation {
            id: id.into(),
            lines: vec![
                UsageRow::Budget { id: "b-1".into(), used: dollars(budget), window_start: window },
                UsageRow::Requests { id: "rl-1".into(), used: requests, window_start: window },
            ],
        };
        let recorded = [open("a", 1, 1, now), open("b", 3, 1, now), open("settled", 5, 1, now), open("old", 7, 1, earlier)];
        store.journal(&recorded, &[]).await.unwrap_or_else(|e| panic!("journal written: {e}"));
        store.journal(&[], &["settled".to_owned()]).await.unwrap_or_else(|e| panic!("journal entry forgotten: {e}"));
        assert_eq!(store.charge_journal().await.unwrap_or_else(|e| panic!("journal charged: {e}")), 3);
        let stored = store.load_usage(None).await.unwrap_or_else(|e| panic!("usage loads: {e}"));
        assert!(stored.contains(&UsageRow::Budget { id: "b-1".into(), used: dollars(6), window_start: now }), "2 + 1 + 3: {stored:?}");
        assert!(stored.contains(&UsageRow::Requests { id: "rl-1".into(), used: 2, window_start: now }), "{stored:?}");
        assert_eq!(store.charge_journal().await.unwrap_or_else(|e| panic!("journal charged: {e}")), 0, "charged once only");
    }
}

fn tool_call(created_at: chrono::DateTime<Utc>) -> tollgate_core::usage::ToolCallLog {
    tollgate_core::usage::ToolCallLog {
        created_at,
        user_id: Some("user-1".into()),
        virtual_key_id: Some("vk-1".into()),
        copy_id: Some(1),
        profile_id: Some(1),
        role_id: Some(2),
        client_id: "docs".into(),
        tool: "search".into(),
        outcome: "ok".into(),
        latency_ms: 4,
        argument_bytes: 10,
        result_bytes: 20,
        cost: dollars(1),
    }
}

on_both_backends! {
    async fn tool_call_rows_are_kept_under_the_request_log_retention(app: &TestApp) {
        let store = SqlStore::connect(app.database_url().unwrap_or_default()).await.unwrap_or_else(|e| panic!("store connects: {e}"));
        let now = Utc::now();
        let old = now - TimeDelta::days(40);
        let calls = [tool_call(old), tool_call(now)];
        let logs = [RequestLog { created_at: old, ..log(1) }, log(2)];
        store.write_usage(&[], &logs, &calls).await.unwrap_or_else(|e| panic!("written: {e}"));
        assert_eq!(app.count("SELECT COUNT(*) FROM mcp_tool_calls").await, 2);
        let pruned = store.prune_request_logs(now - TimeDelta::days(30)).await.unwrap_or_else(|e| panic!("pruned: {e}"));
        assert_eq!(pruned, 2, "one request log row and one tool call row");
        assert_eq!(app.count("SELECT COUNT(*) FROM mcp_tool_calls").await, 1);
        assert_eq!(app.count("SELECT COUNT(*) FROM request_logs").await, 1);
        assert_eq!(app.text("SELECT client_id || '/' || tool || '/' || outcome FROM mcp_tool_calls").await, "docs/search/ok");
        store.close().await;
    }
}

/// Regression for decision 211's gap: SQLite kept no planner statistics unless someone ran
/// `ANALYZE`. The store's upkeep gathers them for the request log and its indexes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upkeep_gathers_sqlite_planner_statistics_for_the_request_log() {
    let app = TestApp::start(Backend::Sqlite).await;
    let store = SqlStore::connect(app.database_url().unwrap_or_default()).await.unwrap_or_else(|e| panic!("store connects: {e}"));
    let logs: Vec<RequestLog> = (0..200).map(log).collect();
    store.write_usage(&[], &logs, &[]).await.unwrap_or_else(|e| panic!("written: {e}"));
    store.maintain().await.unwrap_or_else(|e| panic!("upkeep: {e}"));
    let indexes = app.count("SELECT COUNT(*) FROM sqlite_stat1 WHERE tbl = 'request_logs'").await;
    assert!(indexes >= 7, "every index of the request log has statistics: {indexes}");
    store.close().await;
    app.stop().await;
}
