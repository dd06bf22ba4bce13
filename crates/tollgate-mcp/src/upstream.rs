//! The upstream MCP clients Tollgate keeps connected: one `Link` per enabled client, started,
//! replaced or stopped as the catalog changes (a client whose settings did not change keeps its
//! connection), and the catalog itself, swapped as a unit.

mod link;

use std::collections::HashMap;
use std::sync::Arc;

use arc_swap::ArcSwap;
use tokio_util::sync::CancellationToken;
use tollgate_core::mcp::McpCatalog;

pub use link::{CallError, Link, State, Status};

/// A link and what stops its task.
#[derive(Debug)]
struct Running {
    link: Arc<Link>,
    stop: CancellationToken,
}

/// The catalog and a link per client, by client id.
#[derive(Debug, Default)]
pub struct Upstreams {
    catalog: ArcSwap<McpCatalog>,
    links: ArcSwap<HashMap<String, Arc<Link>>>,
    running: std::sync::Mutex<HashMap<String, Running>>,
}

impl Upstreams {
    pub fn catalog(&self) -> Arc<McpCatalog> {
        self.catalog.load_full()
    }

    pub fn link(&self, client_id: &str) -> Option<Arc<Link>> {
        self.links.load().get(client_id).cloned()
    }

    /// Installs a new catalog: links of removed or changed clients stop, new and changed ones
    /// start. Must be called within a Tokio runtime.
    pub fn install(&self, catalog: McpCatalog) {
        let Ok(mut running) = self.running.lock() else { return };
        running.retain(|id, r| {
            let keep = catalog.clients.iter().any(|c| &c.client_id == id && *c == r.link.spec);
            if !keep {
                r.stop.cancel();
            }
            keep
        });
        for spec in &catalog.clients {
            if !running.contains_key(&spec.client_id) {
                let stop = CancellationToken::new();
                let link = Link::start(spec.clone(), stop.clone());
                running.insert(spec.client_id.clone(), Running { link, stop });
            }
        }
        let links: HashMap<String, Arc<Link>> = running.iter().map(|(id, r)| (id.clone(), Arc::clone(&r.link))).collect();
        self.links.store(Arc::new(links));
        self.catalog.store(Arc::new(catalog));
    }

    /// Stops every link (their child processes end with them).
    pub fn shutdown(&self) {
        if let Ok(mut running) = self.running.lock() {
            for (_, r) in running.drain() {
                r.stop.cancel();
            }
        }
        self.links.store(Arc::default());
    }
}
