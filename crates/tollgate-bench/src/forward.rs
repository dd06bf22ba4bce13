//! The floor: a bare pass-through forwarder on Tollgate's HTTP stack (axum 0.8 + a pooled reqwest client, TCP_NODELAY).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::serve::ListenerExt;
use tokio::net::TcpListener;

#[derive(Debug)]
struct Upstream {
    client: reqwest::Client,
    /// Parsed once, as Tollgate parses a provider's chat URL once: the floor must not pay for a
    /// parse per request that the gateway does not.
    url: reqwest::Url,
}

/// Serves until the process ends; `announce` gets the bound address.
pub async fn serve(listen: &str, upstream: &str, announce: fn(SocketAddr)) -> Result<(), String> {
    let client = reqwest::Client::builder().tcp_nodelay(true).build().map_err(|e| format!("forwarder: client: {e}"))?;
    let url = format!("{}/v1/chat/completions", upstream.trim_end_matches('/'));
    let url = reqwest::Url::parse(&url).map_err(|e| format!("forwarder: upstream URL {url}: {e}"))?;
    let listener = TcpListener::bind(listen).await.map_err(|e| format!("forwarder: bind {listen}: {e}"))?;
    announce(listener.local_addr().map_err(|e| e.to_string())?);
    let app = Router::new().route("/v1/chat/completions", post(forward)).with_state(Arc::new(Upstream { client, url }));
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, app).await.map_err(|e| format!("forwarder: {e}"))
}

/// Sends the body on with its content type and credentials; relays status, content type and the
/// body as it arrives.
async fn forward(State(upstream): State<Arc<Upstream>>, headers: HeaderMap, body: Bytes) -> Response {
    let mut request = upstream.client.post(upstream.url.clone()).body(body);
    for name in [header::CONTENT_TYPE, header::AUTHORIZATION] {
        if let Some(value) = headers.get(&name) {
            request = request.header(name, value.clone());
        }
    }
    match request.send().await {
        Ok(answer) => {
            let status = answer.status();
            let content_type = answer.headers().get(header::CONTENT_TYPE).cloned();
            let mut response = Response::new(Body::from_stream(answer.bytes_stream()));
            *response.status_mut() = status;
            if let Some(value) = content_type {
                response.headers_mut().insert(header::CONTENT_TYPE, value);
            }
            response
        }
        Err(e) => (StatusCode::BAD_GATEWAY, format!("upstream: {e}")).into_response(),
    }
}
