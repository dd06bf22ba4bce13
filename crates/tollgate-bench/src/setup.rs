//! Tollgate under test: its config and temp database, then governance through the management API (profile, role, user, key).

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::{Value, json};

use crate::spawn::{self, Child};

const ADMIN_PASSWORD: &str = "bench-admin-password";
/// Limits high enough never to refuse a benchmark request, so every check runs and nothing trips.
const BUDGET_DOLLARS: u64 = 1_000_000;
const REQUEST_LIMIT: u64 = 100_000_000;
const TOKEN_LIMIT: u64 = 100_000_000_000;

/// The model as Tollgate's callers name it, and as the upstream knows it.
pub const GOVERNED_MODEL: &str = "openai/bench-model";
pub const UPSTREAM_MODEL: &str = "bench-model";

/// Starts Tollgate in `dir` (database, sealing key, config, log) with `mock` as its `openai`
/// provider, and its counters in the Redis at `redis` if given (under a prefix of this run's own).
pub fn start_tollgate(binary: &Path, dir: &Path, mock: SocketAddr, redis: Option<&str>) -> Result<Child, String> {
    let mut config = format!(
        r#"[[providers]]
name = "openai"
base_url = "http://{mock}/v1"
api_key = "bench"
models = ["{UPSTREAM_MODEL}"]

[pricing.models."{GOVERNED_MODEL}"]
input = 0.1
output = 0.4
"#
    );
    if redis.is_some() {
        let run = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_micros());
        let pid = std::process::id();
        config = format!("{config}\n[gateway]\nredis_key_prefix = \"tollgate-bench:{pid}-{run}:\"\n");
    }
    let config_path = dir.join("tollgate.toml");
    std::fs::write(&config_path, config).map_err(|e| format!("writing {}: {e}", config_path.display()))?;
    let mut command = tollgate_command(binary, dir, &format!("sqlite://{}", dir.join("tollgate.db").display()), &config_path);
    if let Some(url) = redis {
        command.arg("--redis-url").arg(url);
    }
    spawn::start("tollgate", command, Some(&dir.join("tollgate.log")))
}

/// Tollgate over the database at `url`, with no provider: for reads of what the database holds.
pub fn start_tollgate_on(binary: &Path, dir: &Path, url: &str) -> Result<Child, String> {
    let config_path = dir.join("tollgate.toml");
    std::fs::write(&config_path, "").map_err(|e| format!("writing {}: {e}", config_path.display()))?;
    let command = tollgate_command(binary, dir, url, &config_path);
    spawn::start("tollgate", command, Some(&dir.join("tollgate.log")))
}

/// Tollgate on a free port over the database at `url`, with the config file and sealing key in
/// `dir` and none of the caller's own Tollgate settings.
fn tollgate_command(binary: &Path, dir: &Path, url: &str, config_path: &Path) -> Command {
    let mut command = Command::new(binary);
    command
        .args(["--listen", "127.0.0.1:0", "--database-url", url, "--config"])
        .arg(config_path)
        .arg("--encryption-key-file")
        .arg(dir.join("tollgate.key"))
        .env("TOLLGATE_ADMIN_PASSWORD", ADMIN_PASSWORD)
        .stdin(Stdio::null());
    for inherited in
        ["TOLLGATE_ADMIN_USERNAME", "TOLLGATE_ENCRYPTION_KEY", "TOLLGATE_LISTEN", "TOLLGATE_DATABASE_URL", "RUST_LOG", "TOLLGATE_REDIS_URL"]
    {
        command.env_remove(inherited);
    }
    command
}

/// What governance setup produced.
#[derive(Debug, Clone)]
pub struct Governed {
    /// The user's virtual key (`sk-bf-…`).
    pub key: String,
    pub user: String,
}

/// The management API as admin.
#[derive(Debug, Clone)]
pub struct Admin {
    http: reqwest::Client,
    base: String,
}

impl Admin {
    pub fn new(addr: SocketAddr) -> Result<Admin, String> {
        let http = reqwest::Client::builder().no_proxy().build().map_err(|e| e.to_string())?;
        Ok(Admin { http, base: format!("http://{addr}") })
    }

    pub async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>, expect: u16) -> Result<Value, String> {
        let mut request = self.http.request(method.clone(), format!("{}{path}", self.base)).basic_auth("admin", Some(ADMIN_PASSWORD));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.map_err(|e| format!("{method} {path}: {e}"))?;
        let status = response.status().as_u16();
        let text = response.text().await.map_err(|e| format!("{method} {path}: {e}"))?;
        if status != expect {
            return Err(format!("{method} {path}: expected {expect}, got {status}: {text}"));
        }
        serde_json::from_str(&text).map_err(|e| format!("{method} {path}: {e}: {text}"))
    }

    /// A profile with a budget and a request and token limit on the profile and on its provider
    /// config, attached as the default of a role, a user in that role, and the user's key revealed.
    pub async fn govern(&self) -> Result<Governed, String> {
        self.govern_with(json!({})).await
    }

    /// As [`Self::govern`], with `extra` members added to the profile (MCP grants, say).
    pub async fn govern_with(&self, extra: Value) -> Result<Governed, String> {
        use reqwest::Method;
        let budgets = json!([{"max_limit": BUDGET_DOLLARS, "reset_duration": "1d"}]);
        let rate_limit = json!({
            "request_max_limit": REQUEST_LIMIT, "request_reset_duration": "1d",
            "token_max_limit": TOKEN_LIMIT, "token_reset_duration": "1d",
        });
        let mut profile = json!({
            "name": "Bench", "description": "tollgate-bench: every limit on, none reachable",
            "provider_configs": [{"provider_name": "openai", "allowed_models": [UPSTREAM_MODEL], "budgets": budgets, "rate_limit": rate_limit}],
            "budgets": budgets, "rate_limit": rate_limit,
        });
        if let (Some(target), Value::Object(more)) = (profile.as_object_mut(), extra) {
            target.extend(more);
        }
        let created = self.call(Method::POST, "/api/governance/access-profiles", Some(profile), 201).await?;
        let profile = created["access_profile"]["id"].as_i64().ok_or_else(|| format!("no profile id in {created}"))?;
        self.call(Method::PUT, &format!("/api/governance/access-profiles/{profile}/activate"), None, 200).await?;
        let role = self.call(Method::POST, "/api/governance/rbac/roles", Some(json!({"name": "bench"})), 200).await?;
        let role = role["role"]["id"].as_i64().ok_or_else(|| format!("no role id in {role}"))?;
        let user = json!({"name": "bench", "email": "bench@example.com", "role_id": role});
        let user = self.call(Method::POST, "/api/governance/users", Some(user), 200).await?;
        let user = user["user"]["id"].as_str().ok_or_else(|| format!("no user id in {user}"))?.to_owned();
        let attach = json!({"role_ids": [role], "is_default": true, "apply_to_existing": true});
        self.call(Method::POST, &format!("/api/governance/access-profiles/{profile}/roles"), Some(attach), 200).await?;
        let copies = self.copy(&user).await?;
        let kid = copies["virtual_key_ids"][0].as_str().ok_or_else(|| format!("no virtual key in {copies}"))?;
        let revealed =
            self.call(Method::POST, &format!("/api/governance/users/{user}/virtual-keys/{kid}/reveal"), Some(json!({})), 200).await?;
        let key = revealed["virtual_key"]["value"].as_str().ok_or_else(|| format!("no key value in {revealed}"))?.to_owned();
        Ok(Governed { key, user })
    }

    /// The user's copy of the profile.
    async fn copy(&self, user: &str) -> Result<Value, String> {
        let copies = self.call(reqwest::Method::GET, &format!("/api/governance/users/{user}/access-profiles"), None, 200).await?;
        Ok(copies["access_profiles"][0].clone())
    }

    /// Dollars charged to the copy's profile-level and provider-level budgets (persisted within a second).
    pub async fn spent(&self, user: &str) -> Result<(f64, f64), String> {
        let copy = self.copy(user).await?;
        let profile = copy["budgets"][0]["current_usage"].as_f64().ok_or_else(|| format!("no budget usage in {copy}"))?;
        let provider = copy["provider_configs"][0]["budgets"][0]["current_usage"].as_f64().unwrap_or(f64::NAN);
        Ok((profile, provider))
    }
}
