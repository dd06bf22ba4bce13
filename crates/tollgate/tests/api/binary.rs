//! The real `tollgate` binary as a child process: started on a free loopback port over a SQLite
//! file in a test's directory, ready when `/ready` answers, driven with the admin credential.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

pub const PASSWORD: &str = "binary-test-admin-password";

/// A port of 127.0.0.1 that nothing listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map_or_else(|e| panic!("{e}"), |a| a.port())
}

/// Starts the binary on `dir` (database `tollgate.db`, key and `tollgate.toml` there, its log
/// written to `tollgate.log`) with the extra environment `env`, and waits until it is ready.
pub async fn start(dir: &Path, port: u16, env: &[(&str, String)]) -> Child {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .current_dir(dir)
        .env("TOLLGATE_LISTEN", format!("127.0.0.1:{port}"))
        .env("TOLLGATE_DATABASE_URL", format!("sqlite://{}", dir.join("tollgate.db").display()))
        .env("TOLLGATE_CONFIG", dir.join("tollgate.toml"))
        .env("TOLLGATE_ADMIN_PASSWORD", PASSWORD)
        .env_remove("TOLLGATE_REDIS_URL")
        .envs(env.iter().map(|(name, value)| (name, value)))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("tollgate.log")).map_or_else(|_| Stdio::null(), Stdio::from))
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start the binary: {e}"));
    let http = reqwest::Client::new();
    for _ in 0..300 {
        if http.get(format!("http://127.0.0.1:{port}/ready")).send().await.is_ok_and(|r| r.status().is_success()) {
            return child;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    let log = std::fs::read_to_string(dir.join("tollgate.log")).unwrap_or_default();
    panic!("the binary did not become ready; its log:\n{log}");
}

/// An admin call that must succeed; its JSON answer.
pub async fn admin(http: &reqwest::Client, port: u16, method: reqwest::Method, path: &str) -> Value {
    let mut request = http.request(method.clone(), format!("http://127.0.0.1:{port}{path}")).basic_auth("admin", Some(PASSWORD));
    if method == reqwest::Method::POST {
        request = request.json(&json!({}));
    }
    let reply = request.send().await.unwrap_or_else(|e| panic!("{path}: {e}"));
    assert!(reply.status().is_success(), "{path}: {}", reply.status());
    reply.json().await.unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The id and first copy of the user whose email is `email`.
pub async fn copy_of(http: &reqwest::Client, port: u16, email: &str) -> (String, Value) {
    let users = admin(http, port, reqwest::Method::GET, &format!("/api/governance/users?search={email}")).await;
    let user = users["users"][0]["id"].as_str().unwrap_or_else(|| panic!("no user in {users}")).to_owned();
    let copies = admin(http, port, reqwest::Method::GET, &format!("/api/governance/users/{user}/access-profiles")).await;
    (user, copies["access_profiles"][0].clone())
}

/// The value of the first key of the user whose email is `email`, revealed (audited).
pub async fn key_of(http: &reqwest::Client, port: u16, email: &str) -> String {
    let (user, copy) = copy_of(http, port, email).await;
    let kid = copy["virtual_key_ids"][0].as_str().unwrap_or_default().to_owned();
    let revealed = admin(http, port, reqwest::Method::POST, &format!("/api/governance/users/{user}/virtual-keys/{kid}/reveal")).await;
    revealed["virtual_key"]["value"].as_str().unwrap_or_default().to_owned()
}
