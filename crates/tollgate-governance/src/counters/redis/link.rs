//! The connection to the counters' Redis: one server (`redis://`, `rediss://`, `redis+unix://`),
//! or a Redis Cluster or Valkey cluster (`redis+cluster://host:port,host:port`, TLS:
//! `rediss+cluster://`), both behind one `ConnectionLike` that reconnects on its own.

use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, ErrorKind, Pipeline, RedisFuture, RedisResult, Script, ServerErrorKind, Value};

/// How long one Redis call may take before the request it serves is refused (fail closed).
pub(super) const RESPONSE_TIMEOUT: Duration = Duration::from_secs(1);
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(2);

/// A connection to one Redis or to a cluster; cheap to clone (clones share the connection).
#[derive(Clone)]
pub(super) enum Link {
    One(ConnectionManager),
    Cluster(ClusterConnection),
}

/// The seed nodes of a cluster URL (`redis+cluster://[user:password@]host:port,host:port[/]`),
/// each as a plain node URL carrying the same credentials; `None` for a single-server URL.
pub(super) fn cluster_nodes(url: &str) -> Option<Vec<String>> {
    let (scheme, rest) = match url.split_once("://")? {
        ("redis+cluster", rest) => ("redis", rest),
        ("rediss+cluster", rest) => ("rediss", rest),
        _ => return None,
    };
    let rest = rest.trim_end_matches('/');
    let (credentials, hosts) = match rest.rsplit_once('@') {
        Some((credentials, hosts)) => (format!("{credentials}@"), hosts),
        None => (String::new(), rest),
    };
    Some(hosts.split(',').filter(|h| !h.trim().is_empty()).map(|host| format!("{scheme}://{credentials}{}", host.trim())).collect())
}

impl Link {
    /// Connects to the server or cluster `url` names.
    pub(super) async fn open(url: &str) -> Result<Link, String> {
        if let Some(nodes) = cluster_nodes(url) {
            if nodes.is_empty() {
                return Err("redis url: a cluster URL names no node".to_owned());
            }
            let client = ClusterClientBuilder::new(nodes)
                .response_timeout(RESPONSE_TIMEOUT)
                .connection_timeout(CONNECTION_TIMEOUT)
                .retries(2)
                .build()
                .map_err(|e| format!("redis cluster url: {e}"))?;
            let connection = client.get_async_connection().await.map_err(|e| format!("redis cluster: {e}"))?;
            return Ok(Link::Cluster(connection));
        }
        let client = redis::Client::open(url).map_err(|e| format!("redis url: {e}"))?;
        let config = ConnectionManagerConfig::new()
            .set_response_timeout(Some(RESPONSE_TIMEOUT))
            .set_connection_timeout(Some(CONNECTION_TIMEOUT))
            .set_number_of_retries(2);
        let connection = client.get_connection_manager_with_config(config).await.map_err(|e| format!("redis: {e}"))?;
        Ok(Link::One(connection))
    }

    /// Sends `call`, an `EVALSHA` of `script`; if Redis does not know the script (it restarted, or
    /// this node never ran it), loads it and sends the call once more.
    /// Its round trips and failures are metrics.
    pub(super) async fn evalsha(&mut self, script: &Script, call: &Cmd) -> RedisResult<Value> {
        let started = std::time::Instant::now();
        let reply = match call.query_async(self).await {
            Err(e) if e.kind() == ErrorKind::Server(ServerErrorKind::NoScript) => {
                script.prepare_invoke().load_async(self).await?;
                call.query_async(self).await
            }
            other => other,
        };
        metrics::histogram!(crate::meters::REDIS).record(started.elapsed().as_secs_f64());
        if reply.is_err() {
            metrics::counter!(crate::meters::REDIS_ERRORS).increment(1);
        }
        reply
    }
}

impl ConnectionLike for Link {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Link::One(c) => c.req_packed_command(cmd),
            Link::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(&'a mut self, pipeline: &'a Pipeline, offset: usize, count: usize) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Link::One(c) => c.req_packed_commands(pipeline, offset, count),
            Link::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Link::One(c) => c.get_db(),
            Link::Cluster(c) => c.get_db(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::cluster_nodes;

    #[test]
    fn a_cluster_url_names_every_seed_node_with_its_credentials() {
        assert_eq!(cluster_nodes("redis://127.0.0.1:6379"), None, "a single server");
        assert_eq!(
            cluster_nodes("redis+cluster://127.0.0.1:7000,127.0.0.1:7001/"),
            Some(vec!["redis://127.0.0.1:7000".to_owned(), "redis://127.0.0.1:7001".to_owned()])
        );
        assert_eq!(
            cluster_nodes("rediss+cluster://user:p%40ss@a.example:7000, b.example:7000"),
            Some(vec!["rediss://user:p%40ss@a.example:7000".to_owned(), "rediss://user:p%40ss@b.example:7000".to_owned()])
        );
    }
}
