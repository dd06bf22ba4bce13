//! Sharing equal parts between copies while a snapshot is built: one `Arc` per distinct name,
//! model list and set of MCP grants.

use std::hash::Hash;
use std::sync::Arc;

use hashbrown::HashSet;

use super::copy::{McpGrants, Models};

/// The distinct parts seen so far in one build.
#[derive(Debug, Default)]
pub struct Interner {
    texts: HashSet<Arc<str>>,
    models: HashSet<Arc<Models>>,
    mcp: HashSet<Arc<McpGrants>>,
}

/// The known `Arc` equal to `value`, or `value` made into one and remembered.
fn shared<T: Hash + Eq>(seen: &mut HashSet<Arc<T>>, value: T) -> Arc<T> {
    if let Some(known) = seen.get(&value) {
        return Arc::clone(known);
    }
    let made = Arc::new(value);
    seen.insert(Arc::clone(&made));
    made
}

impl Interner {
    pub fn text(&mut self, text: &str) -> Arc<str> {
        if let Some(known) = self.texts.get(text) {
            return Arc::clone(known);
        }
        let made: Arc<str> = Arc::from(text);
        self.texts.insert(Arc::clone(&made));
        made
    }

    pub fn models(&mut self, models: Models) -> Arc<Models> {
        shared(&mut self.models, models)
    }

    pub fn mcp(&mut self, grants: McpGrants) -> Arc<McpGrants> {
        shared(&mut self.mcp, grants)
    }
}
