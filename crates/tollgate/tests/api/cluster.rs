//! Counters on a Redis Cluster: three `redis-server --cluster-enabled yes` of the test's own on
//! loopback, joined by `redis-cli --cluster create`; two instances still enforce one limit as one.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::future::join_all;
use serde_json::json;
use tollgate_core::ports::StoreError;
use tollgate_core::usage::{CopySink, GovernanceData, OpenReservation, RequestLog, ToolCallLog, UsageRow, UsageStore};
use tollgate_governance::counters::{Claim, Counters, LineKind, RedisCounters, Scope};
use tollgate_testkit::mock::MockUpstream;
use tollgate_testkit::{Backend, TestApp};

use crate::key_holder;
use crate::replicas::config;

/// Three cluster nodes (no replicas, no persistence) in a temp dir, stopped on drop.
struct RedisCluster {
    nodes: Vec<std::process::Child>,
    ports: Vec<u16>,
    _dir: tempfile::TempDir,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map_or_else(|e| panic!("{e}"), |a| a.port())
}

impl RedisCluster {
    fn start() -> RedisCluster {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
        let nodes = ports
            .iter()
            .map(|port| {
                let p = port.to_string();
                std::process::Command::new("redis-server")
                    .args(["--port", &p, "--bind", "127.0.0.1", "--cluster-enabled", "yes"])
                    .args(["--cluster-config-file", &format!("nodes-{p}.conf"), "--save", "", "--appendonly", "no"])
                    .current_dir(dir.path())
                    .stdout(std::process::Stdio::null())
                    .spawn()
                    .unwrap_or_else(|e| panic!("redis-server starts: {e}"))
            })
            .collect();
        let cluster = RedisCluster { nodes, ports, _dir: dir };
        for port in &cluster.ports {
            let up = (0..100).any(|_| {
                std::thread::sleep(Duration::from_millis(30));
                std::net::TcpStream::connect(("127.0.0.1", *port)).is_ok()
            });
            assert!(up, "cluster node on {port} answers");
        }
        let addresses: Vec<String> = cluster.ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
        let created = std::process::Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(&addresses)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .output()
            .unwrap_or_else(|e| panic!("redis-cli runs: {e}"));
        assert!(created.status.success(), "cluster created: {}", String::from_utf8_lossy(&created.stdout));
        for port in &cluster.ports {
            let ok = (0..200).any(|_| {
                let info = std::process::Command::new("redis-cli").args(["-p", &port.to_string(), "cluster", "info"]).output();
                let ok = info.is_ok_and(|out| String::from_utf8_lossy(&out.stdout).contains("cluster_state:ok"));
                if !ok {
                    std::thread::sleep(Duration::from_millis(50));
                }
                ok
            });
            assert!(ok, "node {port} says the cluster is ok");
        }
        cluster
    }

    fn url(&self) -> String {
        let hosts: Vec<String> = self.ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
        format!("redis+cluster://{}", hosts.join(","))
    }

    /// The test config with counters on this cluster.
    fn config(&self, mock: &MockUpstream) -> String {
        let shared = std::env::var("TOLLGATE_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
        config(mock).replace(&format!("redis_url = \"{shared}\""), &format!("redis_url = \"{}\"", self.url()))
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            let _ = node.kill();
            let _ = node.wait();
        }
    }
}

fn chat(max_tokens: u64) -> serde_json::Value {
    json!({"model": "openai/mock", "max_tokens": max_tokens, "messages": [{"role": "user", "content": "hi"}]})
}

async fn two_instances_on_a_cluster_hold_one_budget_and_one_request_limit(backend: Backend) {
    let cluster = RedisCluster::start();
    let mock = MockUpstream::start().await;
    let app = TestApp::start_with_config(backend, &cluster.config(&mock)).await;
    let (user, key) = key_holder(
        &app,
        json!({
            "name": "Clustered",
            "budgets": [{"max_limit": 0.2, "reset_duration": "1d"}],
            "provider_configs": [{"provider_name": "openai", "allowed_models": ["mock"]}]
        }),
    )
    .await;
    let (_, limited) = key_holder(
        &app,
        json!({
            "name": "Limited",
            "provider_configs": [{"provider_name": "openai", "allowed_models": ["mock"],
                "rate_limit": {"request_max_limit": 7, "request_reset_duration": "1h"}}]
        }),
    )
    .await;
    let replica = app.start_replica(&cluster.config(&mock)).await;
    mock.script.prompt_tokens.store(0, Ordering::SeqCst);
    let admitted = |key: String, tries: usize| {
        let (a, b) = (app.with_key(&key), replica.with_key(&key));
        async move {
            let burst = (0..tries)
                .map(|i| if i % 2 == 0 { a.post("/v1/chat/completions", chat(20)) } else { b.post("/v1/chat/completions", chat(20)) });
            join_all(burst).await.into_iter().filter(|r| r.status.as_u16() == 200).count()
        }
    };
    assert_eq!(admitted(key, 60).await, 10, "exactly what the $0.2 budget holds, on either instance");
    assert_eq!(admitted(limited, 30).await, 7, "exactly what the request limit holds, on either instance");
    assert_eq!(mock.calls(), 17);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    for instance in [&app, &replica] {
        let copies = instance.admin().get(&format!("/api/governance/users/{user}/access-profiles")).await.expect(200).clone();
        assert_eq!(copies["access_profiles"][0]["budgets"][0]["current_usage"], 0.2, "both instances report the shared spend");
    }
    replica.stop().await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_on_a_redis_cluster_enforce_one_limit_as_one_sqlite() {
    two_instances_on_a_cluster_hold_one_budget_and_one_request_limit(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_on_a_redis_cluster_enforce_one_limit_as_one_postgres() {
    two_instances_on_a_cluster_hold_one_budget_and_one_request_limit(Backend::Postgres).await;
}

/// No stored usage: every line starts empty.
struct NoUsage;

#[async_trait]
impl UsageStore for NoUsage {
    async fn load_governance(&self, _: &mut CopySink<'_>) -> Result<GovernanceData, StoreError> {
        Ok(GovernanceData::default())
    }
    async fn load_usage(&self, _: Option<DateTime<Utc>>) -> Result<Vec<UsageRow>, StoreError> {
        Ok(Vec::new())
    }
    async fn write_usage(&self, _: &[UsageRow], _: &[RequestLog], _: &[ToolCallLog]) -> Result<(), StoreError> {
        Ok(())
    }
    async fn journal(&self, _: &[OpenReservation], _: &[String]) -> Result<(), StoreError> {
        Ok(())
    }
    async fn charge_journal(&self) -> Result<usize, StoreError> {
        Ok(0)
    }
    async fn prune_request_logs(&self, _: DateTime<Utc>) -> Result<u64, StoreError> {
        Ok(0)
    }
}

fn claim(copy: i64, line: &str, kind: LineKind, limit: u64, estimate: u64) -> Claim {
    Claim {
        line: line.into(),
        kind,
        limit,
        period: tollgate_core::windows::Period::Day,
        calendar_aligned: true,
        anchor: DateTime::<Utc>::UNIX_EPOCH,
        estimate,
        scope: Scope::Profile,
        copy,
    }
}

/// The reservations of an instance that died, spread over every node, are found bucket by bucket
/// and charged at their estimates by the other instance.
#[tokio::test]
async fn a_dead_instances_reservations_on_every_cluster_node_are_charged_by_another() {
    let cluster = RedisCluster::start();
    let (first, second) = (
        RedisCounters::connect(&cluster.url(), "tg:", Arc::new(NoUsage)).await.unwrap_or_else(|e| panic!("{e}")),
        RedisCounters::connect(&cluster.url(), "tg:", Arc::new(NoUsage)).await.unwrap_or_else(|e| panic!("{e}")),
    );
    let now = tollgate_core::clock::now();
    for copy in 1..=30 {
        let lines =
            [claim(copy, &format!("b{copy}"), LineKind::Budget, 100, 40), claim(copy, &format!("r{copy}:r"), LineKind::Requests, 5, 1)];
        assert!(first.reserve(&lines, now).await.is_ok(), "copy {copy}'s lines fit, in one slot");
    }
    assert_eq!(second.sweep(chrono::Duration::minutes(30), now + chrono::Duration::minutes(6)).await, 30, "every one, on every node");
    for copy in [1, 17, 30] {
        assert_eq!(second.peek(&format!("b{copy}"), copy).await, Some((40, 0)), "copy {copy}: the estimate is charged");
        assert_eq!(second.peek(&format!("r{copy}:r"), copy).await, Some((1, 0)));
    }
    assert_eq!(second.charged().len(), 60, "each charged line goes to the usage writer");
}
