//! `GET /metrics`: the Prometheus text exposition, for an allow-listed scrape address without a
//! credential, otherwise for the admin or a management API key holding `Observability:View`.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::Router;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use ipnet::IpNet;

use crate::AdminState;
use crate::error::ApiError;

/// Renders the exposition (the binary owns the recorder; this surface only serves its text).
pub type Render = Arc<dyn Fn() -> String + Send + Sync>;

/// What `/metrics` serves and who may read it without a credential.
#[derive(Clone)]
pub struct MetricsEndpoint {
    pub render: Render,
    /// Scrape addresses that need no credential.
    pub allow: Vec<Network>,
}

impl std::fmt::Debug for MetricsEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricsEndpoint").field("allow", &self.allow).finish_non_exhaustive()
    }
}

/// An address block written `address/prefix` (a bare address is the block of just it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Network(IpNet);

impl Network {
    /// Reads `10.0.0.0/8`, `::1/128` or `127.0.0.1`; bits set past the prefix are refused, as a
    /// sign the block is not what was meant.
    pub fn parse(text: &str) -> Result<Network, String> {
        let text = text.trim();
        let net = match text.parse::<IpNet>() {
            Ok(net) => net,
            Err(_) if !text.contains('/') => {
                IpNet::from(text.parse::<IpAddr>().map_err(|_| format!("'{text}' is not an IP address or address/prefix block"))?)
            }
            Err(_) => return Err(format!("'{text}' is not an address/prefix block (the prefix must fit the address)")),
        };
        if net.trunc() != net {
            return Err(format!("'{text}' has address bits set past its prefix"));
        }
        Ok(Network(net))
    }

    /// Whether `ip` is in the block (an IPv4-mapped IPv6 address counts as its IPv4 address).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            IpAddr::V4(_) => ip,
        };
        self.0.contains(&ip)
    }
}

pub(crate) fn routes() -> Router<AdminState> {
    Router::new().route("/metrics", get(scrape))
}

/// The exposition, for an allowed address or an authorized caller; 404 when the server serves
/// no metrics.
async fn scrape(State(state): State<AdminState>, request: Request) -> Result<Response, ApiError> {
    let Some(endpoint) = &state.metrics else {
        return Err(ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such route"));
    };
    let client = request.extensions().get::<ConnectInfo<SocketAddr>>().map(|info| info.0.ip());
    if !client.is_some_and(|ip| endpoint.allow.iter().any(|n| n.contains(ip))) {
        let principal = crate::auth::authenticate(&state, request.headers(), client).await?;
        crate::extract::Caller(principal).require("Observability", "View")?;
    }
    let text = (endpoint.render)();
    let mut response = text.into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"));
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    #[test]
    fn a_block_holds_exactly_the_addresses_under_its_prefix() {
        let block = Network::parse("10.1.0.0/16").unwrap_or_else(|e| panic!("{e}"));
        assert!(block.contains(ip("10.1.255.7")));
        assert!(!block.contains(ip("10.2.0.1")));
        assert!(block.contains(ip("::ffff:10.1.0.9")), "an IPv4-mapped address is its IPv4 address");
        let one = Network::parse("::1").unwrap_or_else(|e| panic!("{e}"));
        assert!(one.contains(ip("::1")) && !one.contains(ip("127.0.0.1")));
        assert!(Network::parse("0.0.0.0/0").unwrap_or_else(|e| panic!("{e}")).contains(ip("192.0.2.1")));
    }

    #[test]
    fn blocks_that_do_not_read_as_meant_are_refused() {
        for bad in ["10.1.0.1/16", "10.0.0.0/33", "localhost", "::1/129", "1.2.3.4/x"] {
            assert!(Network::parse(bad).is_err(), "{bad} was accepted");
        }
    }
}
