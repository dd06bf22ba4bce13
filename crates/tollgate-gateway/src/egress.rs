//! Where upstream calls may connect: the HTTP client's name resolver keeps only the addresses the
//! operator's `EgressPolicy` allows, so a provider host that resolves (or is re-pointed) to a
//! cloud-metadata, link-local or — when refused — private address is never connected to. IP
//! literals in a base URL are checked where the URL is accepted (management API, config file,
//! snapshot), because the client does not resolve them.

use std::net::SocketAddr;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use tollgate_core::egress::EgressPolicy;

/// A resolver over the system's (`getaddrinfo`, as reqwest's default) that drops refused addresses.
#[derive(Debug, Clone, Copy)]
pub struct GuardedResolver {
    policy: EgressPolicy,
}

impl GuardedResolver {
    pub fn new(policy: EgressPolicy) -> Self {
        Self { policy }
    }
}

/// A name whose every address the policy refuses.
#[derive(Debug, thiserror::Error)]
#[error("{host} resolves only to refused addresses ({why})")]
struct Refused {
    host: String,
    why: &'static str,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.policy;
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let found: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let (allowed, refused): (Vec<SocketAddr>, Vec<SocketAddr>) = found.into_iter().partition(|a| policy.refusal(a.ip()).is_none());
            if let Some(first) = refused.first()
                && allowed.is_empty()
            {
                let why = policy.refusal(first.ip()).unwrap_or("refused");
                tracing::warn!(host = %host, address = %first.ip(), why, "upstream address refused");
                return Err(Box::new(Refused { host, why }) as Box<dyn std::error::Error + Send + Sync>);
            }
            if !refused.is_empty() {
                tracing::warn!(host = %host, refused = refused.len(), "upstream name also resolves to refused addresses; they are skipped");
            }
            Ok(Box::new(allowed.into_iter()) as Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn resolve(policy: EgressPolicy, host: &str) -> Result<Vec<SocketAddr>, String> {
        let name: Name = host.parse().map_err(|_| "bad name".to_owned())?;
        GuardedResolver::new(policy).resolve(name).await.map(Iterator::collect).map_err(|e| e.to_string())
    }

    #[tokio::test]
    async fn names_resolving_to_refused_addresses_are_not_connected_to() {
        let closed = EgressPolicy { block_private: true };
        let refused = resolve(closed, "localhost").await;
        assert!(refused.as_ref().is_err_and(|e| e.contains("refused addresses")), "{refused:?}");
        let open = resolve(EgressPolicy::default(), "localhost").await.unwrap_or_default();
        assert!(!open.is_empty() && open.iter().all(|a| a.ip().is_loopback()), "{open:?}");
    }
}
