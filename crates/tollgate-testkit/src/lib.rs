//! Test-only harness: starts the real Tollgate server on port 0 over a temporary SQLite file or a
//! throw-away Postgres database, and offers role-typed clients (`admin`, `with_key`, `anonymous`).
#![expect(clippy::expect_used, clippy::panic, reason = "a test harness whose setup fails must stop the test loudly")]

pub mod mcp_fixture;
pub mod mock;

use std::net::SocketAddr;

use reqwest::{Method, StatusCode};
use serde_json::Value;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tollgate::{Overrides, Server, Settings, StartError};
use tollgate_core::services::auth::AdminBootstrap;

/// Admin credential every test server is configured with.
pub const ADMIN_USER: &str = "admin";
pub const ADMIN_PASSWORD: &str = "test-admin-password";

/// Postgres server used when `TOLLGATE_TEST_POSTGRES_URL` is not set.
pub const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A running server owned by one test.
#[derive(Debug)]
pub struct TestApp {
    pub addr: SocketAddr,
    pub backend: Backend,
    /// The admin credential the server generated at start-up, when none was configured.
    pub generated_admin: Option<(String, String)>,
    http: reqwest::Client,
    pool: sqlx::AnyPool,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
    /// Always `Some` while the app lives; a restart hands it to the next server.
    database: Option<Database>,
}

/// Where a test server keeps its state: the temp dir (SQLite file, sealing key, config file) and,
/// on Postgres, the throw-away database, which is dropped with this value.
#[derive(Debug)]
struct Database {
    url: String,
    postgres_db: Option<(String, String)>,
    dir: tempfile::TempDir,
}

/// How a client authenticates.
#[derive(Debug, Clone)]
enum Auth {
    None,
    Basic(String, String),
    Bearer(String),
    Header(&'static str, String),
}

/// A client acting as one role.
#[derive(Debug, Clone)]
pub struct Client<'a> {
    app: &'a TestApp,
    auth: Auth,
}

/// A response: status and JSON body (`Value::Null` when the body is not JSON).
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: StatusCode,
    pub body: Value,
    pub headers: reqwest::header::HeaderMap,
}

impl TestApp {
    /// Starts a server with the standard admin credential.
    pub async fn start(backend: Backend) -> TestApp {
        Self::start_with(backend, Some((ADMIN_USER, ADMIN_PASSWORD))).await
    }

    /// Starts a server; `admin: None` lets it generate and store an admin credential.
    pub async fn start_with(backend: Backend, admin: Option<(&str, &str)>) -> TestApp {
        let database = Database::new(backend).await;
        Self::boot(backend, database, admin, None).await.expect("server starts")
    }

    /// Starts a server with the standard admin credential and `toml_text` as its config file.
    pub async fn start_with_config(backend: Backend, toml_text: &str) -> TestApp {
        Self::try_start_with_config(backend, toml_text).await.expect("server starts")
    }

    /// As [`TestApp::start_with_config`], but a failed start is returned (the database goes with it).
    pub async fn try_start_with_config(backend: Backend, toml_text: &str) -> Result<TestApp, StartError> {
        let database = Database::new(backend).await;
        Self::boot(backend, database, Some((ADMIN_USER, ADMIN_PASSWORD)), Some(toml_text)).await
    }

    /// Stops this server and starts a new one on the same database and key, with `toml_text` as
    /// its config file.
    pub async fn restart(self, toml_text: &str) -> TestApp {
        self.try_restart(toml_text).await.expect("server restarts")
    }

    /// As [`TestApp::restart`], but a failed start is returned (the database goes with it).
    pub async fn try_restart(mut self, toml_text: &str) -> Result<TestApp, StartError> {
        let database = self.database.take().expect("a running app owns its database");
        let backend = self.backend;
        self.stop().await;
        Self::boot(backend, database, Some((ADMIN_USER, ADMIN_PASSWORD)), Some(toml_text)).await
    }

    /// Starts a second instance beside this one: the same database and sealing key, `toml_text`
    /// as its config file, its own port. It does not own the database (this app does).
    pub async fn start_replica(&self, toml_text: &str) -> TestApp {
        let database = self.database.as_ref().expect("a running app owns its database");
        let server =
            Self::build_over(database, Some((ADMIN_USER, ADMIN_PASSWORD)), Some(toml_text), "replica.toml").await.expect("replica starts");
        Self::launch(server, self.backend, None)
    }

    /// Builds a server over `database`; with `config`, the text is written to the temp dir first.
    async fn boot(backend: Backend, database: Database, admin: Option<(&str, &str)>, config: Option<&str>) -> Result<TestApp, StartError> {
        let server = Self::build_over(&database, admin, config, "tollgate.toml").await?;
        Ok(Self::launch(server, backend, Some(database)))
    }

    async fn build_over(database: &Database, admin: Option<(&str, &str)>, config: Option<&str>, file: &str) -> Result<Server, StartError> {
        let config = config.map(|text| {
            let path = database.dir.path().join(file);
            std::fs::write(&path, text).expect("config file written");
            path
        });
        let settings = Settings::resolve(Overrides {
            listen: Some("127.0.0.1:0".into()),
            database_url: Some(database.url.clone()),
            config,
            admin_username: admin.map(|(u, _)| u.to_owned()),
            admin_password: admin.map(|(_, p)| p.to_owned()),
            encryption_key: None,
            encryption_key_file: Some(database.dir.path().join("tollgate.key")),
            redis_url: None,
            traces_env: tollgate::traces_config::TracesEnv::default(),
        })
        .unwrap_or_else(|e| panic!("test settings: {e}"));
        Server::build(&settings).await
    }

    fn launch(server: Server, backend: Backend, database: Option<Database>) -> TestApp {
        let addr = server.local_addr();
        let generated_admin = match server.admin_bootstrap() {
            AdminBootstrap::Generated { username, password } => Some((username.clone(), password.expose().to_owned())),
            _ => None,
        };
        let pool = server.store().pool().clone();
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let _ = server
                .run(async {
                    let _ = rx.await;
                })
                .await;
        });
        TestApp { addr, backend, generated_admin, http: reqwest::Client::new(), pool, shutdown: Some(tx), task: Some(task), database }
    }

    /// The URL of the database this app owns (`None` for a replica).
    pub fn database_url(&self) -> Option<&str> {
        self.database.as_ref().map(|d| d.url.as_str())
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn admin(&self) -> Client<'_> {
        Client { app: self, auth: Auth::Basic(ADMIN_USER.into(), ADMIN_PASSWORD.into()) }
    }

    pub fn basic(&self, user: &str, password: &str) -> Client<'_> {
        Client { app: self, auth: Auth::Basic(user.into(), password.into()) }
    }

    pub fn with_key(&self, key: &str) -> Client<'_> {
        Client { app: self, auth: Auth::Bearer(key.into()) }
    }

    pub fn with_header(&self, name: &'static str, value: &str) -> Client<'_> {
        Client { app: self, auth: Auth::Header(name, value.into()) }
    }

    pub fn anonymous(&self) -> Client<'_> {
        Client { app: self, auth: Auth::None }
    }

    /// Runs one SQL statement against the server's database (to set up rows no API writes yet).
    pub async fn sql(&self, statement: &str) {
        sqlx::query(statement).execute(&self.pool).await.expect("test SQL runs");
    }

    /// POSTs a streamed chat request with a virtual key and reads the SSE answer as text, hanging
    /// up after `max_events` events (to play a client that abandons the stream).
    pub async fn raw_stream(&self, key: &str, body: &Value, max_events: usize) -> String {
        self.read_stream("/v1/chat/completions", ("authorization", &format!("Bearer {key}")), body, max_events).await
    }

    /// POSTs a streamed request to `path` with one credential header and reads the SSE answer
    /// (status 200 expected) as text, hanging up after `max_events` events.
    pub async fn read_stream(&self, path: &str, header: (&str, &str), body: &Value, max_events: usize) -> String {
        use futures::StreamExt;
        let response = self.http.post(self.url(path)).header(header.0, header.1).json(body).send().await.expect("stream request sent");
        assert_eq!(response.status().as_u16(), 200, "stream status");
        let mut text = String::new();
        let mut chunks = response.bytes_stream();
        while let Some(Ok(chunk)) = chunks.next().await {
            text.push_str(&String::from_utf8_lossy(&chunk));
            if text.matches("data:").count() >= max_events {
                break;
            }
        }
        text
    }

    /// The first column of the first row of a query, as text.
    pub async fn text(&self, query: &str) -> String {
        use sqlx::Row;
        let row = sqlx::query(query).fetch_one(&self.pool).await.expect("test query runs");
        row.try_get::<String, _>(0).expect("the column is text")
    }

    /// Counts rows of a query such as `SELECT COUNT(*) AS n FROM …`.
    pub async fn count(&self, query: &str) -> i64 {
        use sqlx::Row;
        let row = sqlx::query(query).fetch_one(&self.pool).await.expect("test count runs");
        row.try_get::<i64, _>(0).expect("count is an integer")
    }

    /// Counts like [`TestApp::count`], polling until the count reaches `want` or ten seconds
    /// pass, for rows the background usage writer persists a moment after the answer.
    /// Returns the last count, so the caller's assertion shows what was there.
    pub async fn count_reaching(&self, query: &str, want: i64) -> i64 {
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let seen = self.count(query).await;
            if seen >= want || tokio::time::Instant::now() >= deadline {
                return seen;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    /// Stops the server gracefully and waits for it.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

impl Database {
    /// A new temp dir and, on Postgres, a new empty database.
    async fn new(backend: Backend) -> Database {
        let dir = tempfile::tempdir().expect("temp dir");
        let (url, postgres_db) = match backend {
            Backend::Sqlite => (format!("sqlite://{}", dir.path().join("tollgate.db").display()), None),
            Backend::Postgres => {
                let (url, admin_url, name) = fresh_postgres_database().await;
                (url, Some((admin_url, name)))
            }
        };
        Database { url, postgres_db, dir }
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        if let Some((admin_url, name)) = self.postgres_db.take() {
            // Dropping the database needs async I/O; do it on a private runtime off this thread.
            let _ = std::thread::spawn(move || {
                if let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() {
                    rt.block_on(async {
                        sqlx::any::install_default_drivers();
                        if let Ok(pool) = sqlx::AnyPool::connect(&admin_url).await {
                            let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).execute(&pool).await;
                            pool.close().await;
                        }
                    });
                }
            })
            .join();
        }
    }
}

/// Creates an empty database for one test; returns (its URL, the admin URL, its name).
async fn fresh_postgres_database() -> (String, String, String) {
    sqlx::any::install_default_drivers();
    let admin_url = std::env::var("TOLLGATE_TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_POSTGRES_URL.to_owned());
    let name = format!("tollgate_t_{}", uuid::Uuid::new_v4().simple());
    let pool = sqlx::AnyPool::connect(&admin_url).await.unwrap_or_else(|e| {
        panic!("Postgres is required for the Postgres half of the suite ({admin_url}): {e}. Start it with scripts/services.sh")
    });
    sqlx::query(&format!("CREATE DATABASE {name}")).execute(&pool).await.expect("create test database");
    pool.close().await;
    let (base, query) = admin_url.split_once('?').map_or((admin_url.as_str(), ""), |(b, q)| (b, q));
    let cut = base.rfind('/').filter(|i| *i > "postgres://".len()).unwrap_or(base.len());
    let mut url = format!("{}/{name}", &base[..cut]);
    if !query.is_empty() {
        url = format!("{url}?{query}");
    }
    (url, admin_url, name)
}

impl Client<'_> {
    pub async fn get(&self, path: &str) -> Reply {
        self.send(Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Reply {
        self.send(Method::POST, path, Some(body)).await
    }

    pub async fn put(&self, path: &str, body: Value) -> Reply {
        self.send(Method::PUT, path, Some(body)).await
    }

    /// PUT without a body (activate, deactivate).
    pub async fn put_empty(&self, path: &str) -> Reply {
        self.send(Method::PUT, path, None).await
    }

    pub async fn delete(&self, path: &str) -> Reply {
        self.send(Method::DELETE, path, None).await
    }

    /// Sends raw bytes with a content type, for malformed-body tests.
    pub async fn raw(&self, method: Method, path: &str, content_type: &str, body: Vec<u8>) -> Reply {
        let request = self.request(method, path).header("content-type", content_type).body(body);
        reply(request.send().await.expect("request sent")).await
    }

    fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        let request = self.app.http.request(method, self.app.url(path));
        match &self.auth {
            Auth::None => request,
            Auth::Basic(u, p) => request.basic_auth(u, Some(p)),
            Auth::Bearer(t) => request.bearer_auth(t),
            Auth::Header(name, value) => request.header(*name, value),
        }
    }

    async fn send(&self, method: Method, path: &str, body: Option<Value>) -> Reply {
        let mut request = self.request(method, path);
        if let Some(body) = body {
            request = request.json(&body);
        }
        reply(request.send().await.expect("request sent")).await
    }
}

async fn reply(response: reqwest::Response) -> Reply {
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.bytes().await.expect("body read");
    Reply { status, body: serde_json::from_slice(&bytes).unwrap_or(Value::Null), headers }
}

impl Reply {
    /// Asserts the status, showing the body when it differs; returns the body.
    #[track_caller]
    pub fn expect(&self, status: u16) -> &Value {
        assert_eq!(self.status.as_u16(), status, "unexpected status; body: {}", self.body);
        &self.body
    }

    /// Asserts an error answer in the envelope with the given status.
    #[track_caller]
    pub fn expect_error(&self, status: u16) -> &str {
        let body = self.expect(status);
        assert_eq!(body["status_code"], status, "envelope status_code: {body}");
        assert_eq!(body["is_bifrost_error"], false, "envelope flag: {body}");
        assert!(body["extra_fields"].is_object(), "envelope extra_fields: {body}");
        body["error"]["message"].as_str().unwrap_or_else(|| panic!("envelope without error.message: {body}"))
    }
}
