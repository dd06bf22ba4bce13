//! Which tools a caller may see and call: the union of what the caller's live copies grant
//! (whole clients, Virtual MCPs, included tools, less excluded ones), cut to each client's own
//! baseline, then narrowed — never widened — by the request's include headers or a slug.

use std::collections::{BTreeMap, BTreeSet};

use tollgate_core::mcp::{McpCatalog, ToolSelection, split_tool_name};
use tollgate_core::profile::OverrideAction;
use tollgate_governance::snapshot::McpGrants;

/// Tools of one client a grant holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tools {
    /// Every tool, but these.
    AllBut(BTreeSet<String>),
    Only(BTreeSet<String>),
}

impl Tools {
    pub fn allows(&self, tool: &str) -> bool {
        match self {
            Tools::AllBut(out) => !out.contains(tool),
            Tools::Only(names) => names.contains(tool),
        }
    }

    pub fn of(selection: &ToolSelection) -> Tools {
        match selection {
            ToolSelection::All => Tools::AllBut(BTreeSet::new()),
            ToolSelection::None => Tools::Only(BTreeSet::new()),
            ToolSelection::Only(names) => Tools::Only(names.clone()),
        }
    }

    fn union(&mut self, other: &Tools) {
        *self = match (&*self, other) {
            (Tools::AllBut(a), Tools::AllBut(b)) => Tools::AllBut(a.intersection(b).cloned().collect()),
            (Tools::AllBut(out), Tools::Only(names)) | (Tools::Only(names), Tools::AllBut(out)) => {
                Tools::AllBut(out.difference(names).cloned().collect())
            }
            (Tools::Only(a), Tools::Only(b)) => Tools::Only(a.union(b).cloned().collect()),
        };
    }

    fn intersect(&mut self, other: &Tools) {
        *self = match (&*self, other) {
            (Tools::AllBut(a), Tools::AllBut(b)) => Tools::AllBut(a.union(b).cloned().collect()),
            (Tools::AllBut(out), Tools::Only(names)) | (Tools::Only(names), Tools::AllBut(out)) => {
                Tools::Only(names.difference(out).cloned().collect())
            }
            (Tools::Only(a), Tools::Only(b)) => Tools::Only(a.intersection(b).cloned().collect()),
        };
    }

    fn remove(&mut self, tool: &str) {
        match self {
            Tools::AllBut(out) => {
                out.insert(tool.to_owned());
            }
            Tools::Only(names) => {
                names.remove(tool);
            }
        }
    }

    fn is_empty(&self) -> bool {
        matches!(self, Tools::Only(names) if names.is_empty())
    }
}

/// What one caller may reach, by client id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Grant {
    pub clients: BTreeMap<String, Tools>,
}

impl Grant {
    /// The grant of a caller whose live copies hold `copies` (their MCP grants), over `catalog`.
    pub fn of(copies: &[&McpGrants], catalog: &McpCatalog) -> Grant {
        let mut clients: BTreeMap<String, Tools> = BTreeMap::new();
        let mut named: BTreeSet<&str> = BTreeSet::new();
        for copy in copies {
            for (client, tools) in copy_grant(copy, catalog) {
                clients.entry(client).and_modify(|t| t.union(&tools)).or_insert(tools);
            }
            named.extend(copy.servers.iter().map(|s| s.mcp_server_id.as_str()));
            named.extend(copy.tool_overrides.iter().map(|o| o.mcp_client_id.as_str()));
        }
        for client in &catalog.clients {
            if client.allow_on_all_virtual_keys && !named.contains(client.client_id.as_str()) && !clients.contains_key(&client.client_id) {
                clients.insert(client.client_id.clone(), Tools::AllBut(BTreeSet::new()));
            }
        }
        // Each client's own baseline bounds every grant; a disabled or unknown client grants nothing.
        clients.retain(|id, tools| match catalog.clients.iter().find(|c| &c.client_id == id) {
            Some(client) if !client.disabled => {
                tools.intersect(&Tools::of(&client.tools_to_execute));
                !tools.is_empty()
            }
            _ => false,
        });
        Grant { clients }
    }

    pub fn allows(&self, client_id: &str, tool: &str) -> bool {
        self.clients.get(client_id).is_some_and(|t| t.allows(tool))
    }

    /// Adds `tools` of `client` to what the grant holds.
    pub fn add(&mut self, client: &str, tools: Tools) {
        if !tools.is_empty() {
            self.clients.entry(client.to_owned()).and_modify(|t| t.union(&tools)).or_insert(tools);
        }
    }

    /// Keeps only what `other` also allows.
    pub fn narrow(&mut self, other: &Grant) {
        self.clients.retain(|id, tools| match other.clients.get(id) {
            Some(theirs) => {
                tools.intersect(theirs);
                !tools.is_empty()
            }
            None => false,
        });
    }

    /// Narrows by the request's headers: `x-bf-mcp-include-clients` (client names, `*` all; an
    /// empty value: nothing) and `x-bf-mcp-include-tools` (`client-tool` or `client-*`; empty:
    /// nothing). A header can only take away.
    pub fn narrow_by_headers(&mut self, clients: Option<&str>, tools: Option<&str>, catalog: &McpCatalog) {
        let id_of = |name: &str| catalog.clients.iter().find(|c| c.name == name).map(|c| c.client_id.clone());
        if let Some(list) = clients {
            let names: Vec<&str> = list.split(',').map(str::trim).filter(|s| !s.is_empty()).collect();
            if !names.contains(&"*") {
                let keep: BTreeSet<String> = names.iter().filter_map(|n| id_of(n)).collect();
                self.clients.retain(|id, _| keep.contains(id));
            }
        }
        if let Some(list) = tools {
            let mut allowed = Grant::default();
            for entry in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                let Some((client, tool)) = split_tool_name(entry) else { continue };
                let Some(id) = id_of(client) else { continue };
                let tools = if tool == "*" { Tools::AllBut(BTreeSet::new()) } else { Tools::Only(BTreeSet::from([tool.to_owned()])) };
                allowed.add(&id, tools);
            }
            self.narrow(&allowed);
        }
    }
}

/// What one copy grants: its whole clients, its Virtual MCPs' tools (enabled ones), its included
/// tools; then its excluded tools are taken away from whichever of those brought them.
fn copy_grant(copy: &McpGrants, catalog: &McpCatalog) -> BTreeMap<String, Tools> {
    let mut grant: BTreeMap<String, Tools> = BTreeMap::new();
    let mut add = |client: &str, tools: Tools| {
        grant.entry(client.to_owned()).and_modify(|t| t.union(&tools)).or_insert(tools);
    };
    for server in &copy.servers {
        add(&server.mcp_server_id, Tools::AllBut(BTreeSet::new()));
    }
    for link in &copy.tool_groups {
        let group = catalog.virtual_mcps.iter().find(|v| u64::try_from(v.id).ok() == Some(link.tool_group_id) && v.enabled);
        for part in group.map(|g| g.tools.as_slice()).unwrap_or_default() {
            add(&part.mcp_client_id, Tools::of(&part.tool_names));
        }
    }
    for o in copy.tool_overrides.iter().filter(|o| o.action == OverrideAction::Include) {
        add(&o.mcp_client_id, Tools::Only(BTreeSet::from([o.tool_name.clone()])));
    }
    for o in copy.tool_overrides.iter().filter(|o| o.action == OverrideAction::Exclude) {
        if let Some(tools) = grant.get_mut(&o.mcp_client_id) {
            tools.remove(&o.tool_name);
        }
    }
    grant
}

#[cfg(test)]
#[path = "grant_tests.rs"]
mod tests;
