//! Start-up and shutdown: migrations are idempotent and data survives a restart.

use serde_json::json;
use tollgate::{Overrides, Server, Settings};

fn settings(db: &std::path::Path) -> Settings {
    Settings::resolve(Overrides {
        listen: Some("127.0.0.1:0".into()),
        database_url: Some(format!("sqlite://{}", db.display())),
        encryption_key_file: db.parent().map(|d| d.join("tollgate.key")),
        ..Overrides::default()
    })
    .unwrap_or_else(|e| panic!("{e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_keeps_data_and_the_stored_admin_credential() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let db = dir.path().join("restart.db");
    let first = Server::build(&settings(&db)).await.unwrap_or_else(|e| panic!("{e}"));
    let tollgate_core::services::auth::AdminBootstrap::Generated { username, password } = first.admin_bootstrap().clone() else {
        panic!("a new database must generate an admin credential");
    };
    let addr = first.local_addr();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(first.run(async {
        let _ = rx.await;
    }));
    let http = reqwest::Client::new();
    let created = http
        .post(format!("http://{addr}/api/governance/access-profiles"))
        .basic_auth(&username, Some(password.expose()))
        .json(&json!({"name": "Survivor"}))
        .send()
        .await
        .map(|r| r.status().as_u16());
    assert_eq!(created.ok(), Some(201));
    let _ = tx.send(());
    assert!(task.await.is_ok_and(|r| r.is_ok()), "graceful shutdown");

    let second = Server::build(&settings(&db)).await.unwrap_or_else(|e| panic!("{e}"));
    assert!(
        matches!(second.admin_bootstrap(), tollgate_core::services::auth::AdminBootstrap::Stored),
        "the second start reuses the stored credential and prints nothing"
    );
    let addr = second.local_addr();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(second.run(async {
        let _ = rx.await;
    }));
    let listed: serde_json::Value = http
        .get(format!("http://{addr}/api/access-profiles"))
        .basic_auth(&username, Some(password.expose()))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .json()
        .await
        .unwrap_or_default();
    assert_eq!(listed["access_profiles"][0]["name"], "Survivor");
    let _ = tx.send(());
    let _ = task.await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_database_stops_start_up_with_a_clear_error() {
    let settings = Settings::resolve(Overrides {
        listen: Some("127.0.0.1:0".into()),
        database_url: Some("postgres://nobody@127.0.0.1:1/none".into()),
        encryption_key: Some("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=".into()),
        ..Overrides::default()
    })
    .unwrap_or_else(|e| panic!("{e}"));
    let err = Server::build(&settings).await.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(err.starts_with("database:"), "{err}");
}

/// The real binary: serves with nothing but a SQLite path, answers `/ready`, and exits cleanly
/// on SIGTERM. The database files it creates are its owner's alone (0600, as the key file), and
/// its log, written to a file, carries no colour codes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_starts_on_sqlite_and_stops_gracefully_on_sigterm() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map_or_else(|e| panic!("{e}"), |a| a.port());
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .current_dir(dir.path())
        .env("TOLLGATE_LISTEN", format!("127.0.0.1:{port}"))
        .env_remove("TOLLGATE_DATABASE_URL")
        .env_remove("TOLLGATE_CONFIG")
        .stdout(std::process::Stdio::piped())
        .env_remove("NO_COLOR")
        .stderr(std::fs::File::create(dir.path().join("stderr.log")).map_or_else(|e| panic!("{e}"), std::process::Stdio::from))
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start the binary: {e}"));
    let http = reqwest::Client::new();
    let mut ready = false;
    for _ in 0..100 {
        if http.get(format!("http://127.0.0.1:{port}/ready")).send().await.is_ok_and(|r| r.status().is_success()) {
            ready = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(ready, "the binary did not become ready");
    assert!(dir.path().join("tollgate.db").exists(), "SQLite file created in the working directory");
    #[cfg(unix)]
    for file in ["tollgate.db", "tollgate.db-wal", "tollgate.db-shm", "tollgate.key"] {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join(file)).map(|m| m.permissions().mode() & 0o777);
        assert_eq!(mode.ok(), Some(0o600), "{file} is readable by its owner only");
    }
    let killed = std::process::Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
    assert!(killed.is_ok_and(|s| s.success()));
    let mut exited = None;
    for _ in 0..100 {
        if let Ok(Some(status)) = child.try_wait() {
            exited = Some(status);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(exited.is_some_and(|s| s.success()), "graceful exit with status 0: {exited:?}");
    let mut printed = String::new();
    if let Some(mut out) = child.stdout.take() {
        let _ = std::io::Read::read_to_string(&mut out, &mut printed);
    }
    assert!(
        printed.contains("password:") && printed.contains("shown only this once"),
        "the generated admin password is printed once: {printed}"
    );
    let logged = std::fs::read_to_string(dir.path().join("stderr.log")).unwrap_or_default();
    assert!(logged.contains("tollgate listening"), "the log went to the file: {logged}");
    assert!(!logged.contains('\u{1b}'), "no colour codes in a log file: {logged:?}");
}
