//! Outbound TLS, through the real binary: a provider, an MCP server and Redis reached over HTTPS
//! and `rediss://`, trusted by the system store as `SSL_CERT_FILE` names it; a provider whose
//! certificate no trusted authority signed is refused before anything is sent to it.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, PrivatePkcs8KeyDer};
use serde_json::{Value, json};
use tollgate_testkit::mcp_fixture::{Fixture, serve_http};
use tollgate_testkit::mock::MockUpstream;

use crate::binary;

const EMAIL: &str = "tls@example.com";

/// A certificate authority made for one test, and a server certificate it signed for
/// `localhost` and 127.0.0.1.
struct Authority {
    ca_pem: String,
    cert_pem: String,
    key_pem: String,
    server: Arc<rustls::ServerConfig>,
}

fn authority(name: &str) -> Authority {
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap_or_else(|e| panic!("{e}"));
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name.push(DnType::CommonName, name);
    let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().unwrap_or_else(|e| panic!("{e}"))).unwrap_or_else(|e| panic!("{e}"));
    let key = KeyPair::generate().unwrap_or_else(|e| panic!("{e}"));
    let leaf = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
        .and_then(|params| params.signed_by(&key, &ca))
        .unwrap_or_else(|e| panic!("{e}"));
    #[expect(deprecated, reason = "the build's one provider, as in the binary")]
    let ring = rustls::crypto::ring::default_provider();
    let server = rustls::ServerConfig::builder_with_provider(Arc::new(ring))
        .with_safe_default_protocol_versions()
        .unwrap_or_else(|e| panic!("{e}"))
        .with_no_client_auth()
        .with_single_cert(vec![CertificateDer::from(leaf.der().to_vec())], PrivatePkcs8KeyDer::from(key.serialize_der()).into())
        .unwrap_or_else(|e| panic!("{e}"));
    Authority { ca_pem: ca.pem(), cert_pem: leaf.pem(), key_pem: key.serialize_pem(), server: Arc::new(server) }
}

/// An HTTPS face for a plain test server: terminates TLS with `authority`'s certificate on a
/// port of 127.0.0.1 and passes the bytes on to `backend`. Returns that port.
async fn tls_front(authority: &Authority, backend: SocketAddr) -> u16 {
    let acceptor = tokio_rustls::TlsAcceptor::from(authority.server.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap_or_else(|e| panic!("{e}"));
    let port = listener.local_addr().map_or_else(|e| panic!("{e}"), |a| a.port());
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(stream).await else { return };
                let Ok(mut plain) = tokio::net::TcpStream::connect(backend).await else { return };
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
            });
        }
    });
    port
}

/// A Redis server that speaks TLS only, on a free port, with `authority`'s certificate; killed
/// when the returned child is.
async fn redis_over_tls(dir: &Path, authority: &Authority) -> (Child, u16) {
    for (file, pem) in [("redis.crt", &authority.cert_pem), ("redis.key", &authority.key_pem), ("redis-ca.crt", &authority.ca_pem)] {
        std::fs::write(dir.join(file), pem).unwrap_or_else(|e| panic!("{e}"));
    }
    let port = binary::free_port();
    let path = |file: &str| dir.join(file).display().to_string();
    let mut child = Command::new("redis-server")
        .args(["--port", "0", "--tls-port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
        .args(["--tls-cert-file", &path("redis.crt"), "--tls-key-file", &path("redis.key"), "--tls-ca-cert-file", &path("redis-ca.crt")])
        .args(["--tls-auth-clients", "no"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("redis-server: {e}"));
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
            return (child, port);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("redis-server did not listen on {port}");
}

fn config(provider: u16, rogue: u16, mcp: u16) -> String {
    format!(
        r#"
[[providers]]
name = "openai"
base_url = "https://localhost:{provider}/v1"
api_key = "sk-upstream-over-tls"
max_retries = 0

[[providers]]
name = "rogue"
kind = "openai"
base_url = "https://localhost:{rogue}/v1"
api_key = "sk-must-never-leave"
max_retries = 2

[pricing.models."openai/mock"]
input = 0
output = 1000

[pricing.models."rogue/mock"]
input = 0
output = 1000

[[mcp_clients]]
name = "tickets"
connection_type = "http"
connection_string = "https://localhost:{mcp}/mcp"

[[roles]]
name = "tls"

[[access_profiles]]
name = "Encrypted"
budgets = [{{ max_limit = 1, reset_duration = "1d" }}]
provider_configs = [{{ provider_name = "openai", allowed_models = ["mock"] }}, {{ provider_name = "rogue", allowed_models = ["mock"] }}]
  [[access_profiles.roles]]
  role = "tls"
  default = true
  apply_to_existing = true

[[users]]
name = "Tls"
email = "{EMAIL}"
role = "tls"
"#
    )
}

async fn chat(http: &reqwest::Client, port: u16, key: &str, model: &str) -> (u16, Value) {
    let reply = http
        .post(format!("http://127.0.0.1:{port}/v1/chat/completions"))
        .bearer_auth(key)
        .json(&json!({"model": model, "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    (reply.status().as_u16(), reply.json().await.unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn providers_mcp_servers_and_redis_are_reached_over_tls_and_an_untrusted_certificate_is_refused() {
    let trusted = authority("Tollgate test authority");
    let stranger = authority("Nobody's authority");
    let mock = MockUpstream::start().await;
    let provider = tls_front(&trusted, mock.addr).await;
    let rogue = tls_front(&stranger, mock.addr).await;
    let (mcp_url, _mcp) = serve_http(Fixture::default()).await.unwrap_or_else(|e| panic!("{e}"));
    let mcp_addr: SocketAddr =
        mcp_url.trim_start_matches("http://").trim_end_matches("/mcp").parse().unwrap_or_else(|e| panic!("{mcp_url}: {e}"));
    let mcp = tls_front(&trusted, mcp_addr).await;

    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let (mut redis, redis_port) = redis_over_tls(dir.path(), &trusted).await;
    std::fs::write(dir.path().join("tollgate.toml"), config(provider, rogue, mcp)).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(dir.path().join("ca.pem"), &trusted.ca_pem).unwrap_or_else(|e| panic!("{e}"));
    let port = binary::free_port();
    let env = [
        ("SSL_CERT_FILE", dir.path().join("ca.pem").display().to_string()),
        ("TOLLGATE_REDIS_URL", format!("rediss://localhost:{redis_port}")),
    ];
    // Ready means the counters answer, which here means Redis over TLS.
    let mut tollgate = binary::start(dir.path(), port, &env).await;
    let http = reqwest::Client::new();
    let key = binary::key_of(&http, port, EMAIL).await;

    let (status, answer) = chat(&http, port, &key, "openai/mock").await;
    assert_eq!(status, 200, "{answer}");
    let received = mock.last_request().unwrap_or_else(|| panic!("the provider behind TLS was not called"));
    assert_eq!(received.header("authorization"), "Bearer sk-upstream-over-tls");

    let calls = mock.calls();
    let (status, refused) = chat(&http, port, &key, "rogue/mock").await;
    assert_eq!(status, 502, "{refused}");
    let message = refused["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("TLS certificate that is not trusted"), "{refused}");
    assert_eq!(mock.calls(), calls, "nothing reached the server whose certificate was refused, not once (no retries)");

    let mut state = Value::Null;
    for _ in 0..100 {
        state = binary::admin(&http, port, reqwest::Method::GET, "/api/mcp/client/tickets").await;
        if state["state"] == "connected" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(state["state"], "connected", "{state}");
    assert!(state["tools"].as_array().is_some_and(|tools| !tools.is_empty()), "{state}");

    // Usage reaches the database (and the API) with the writer's next flush.
    let mut copy = Value::Null;
    for _ in 0..50 {
        copy = binary::copy_of(&http, port, EMAIL).await.1;
        if copy["budgets"][0]["current_usage"] == json!(0.01) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = tollgate.kill();
    let _ = tollgate.wait();
    let _ = redis.kill();
    let _ = redis.wait();
    assert_eq!(copy["budgets"][0]["current_usage"], json!(0.01), "the call over TLS was charged, the refused one was not: {copy}");
}
