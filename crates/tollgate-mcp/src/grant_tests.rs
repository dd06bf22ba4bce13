//! How grants combine: union over copies, exclusions per copy, client baselines, header narrowing.

use std::collections::BTreeSet;

use tollgate_core::mcp::{McpCatalog, McpClientSpec, McpEndpoint, ToolSelection, VirtualMcpSpec, VirtualMcpTools};
use tollgate_core::profile::{McpServerLink, McpToolGroupLink, McpToolOverride, OverrideAction};
use tollgate_governance::snapshot::McpGrants;

use super::{Grant, Tools};

fn client(id: &str, tools: ToolSelection) -> McpClientSpec {
    McpClientSpec {
        client_id: id.to_owned(),
        name: format!("{id}_name"),
        endpoint: McpEndpoint::Http { url: "http://127.0.0.1:1/mcp".into(), headers: Vec::new() },
        tools_to_execute: tools,
        allow_on_all_virtual_keys: false,
        tool_sync_interval: None,
        tool_pricing: std::collections::BTreeMap::default(),
        disabled: false,
    }
}

fn catalog() -> McpCatalog {
    McpCatalog {
        clients: vec![client("a", ToolSelection::All), client("b", ToolSelection::All), client("c", ToolSelection::from_list(["x", "y"]))],
        virtual_mcps: vec![VirtualMcpSpec {
            id: 7,
            name: "group".into(),
            endpoint_slug: "group".into(),
            enabled: true,
            tools: vec![VirtualMcpTools { mcp_client_id: "b".into(), tool_names: ToolSelection::from_list(["g1", "g2"]) }],
        }],
    }
}

fn servers(ids: &[&str]) -> Vec<McpServerLink> {
    ids.iter().map(|id| McpServerLink { mcp_server_id: (*id).to_owned() }).collect()
}

fn rule(client: &str, tool: &str, action: OverrideAction) -> McpToolOverride {
    McpToolOverride { mcp_client_id: client.into(), tool_name: tool.into(), action }
}

fn only(names: &[&str]) -> Tools {
    Tools::Only(names.iter().map(|n| (*n).to_owned()).collect())
}

#[test]
fn a_whole_server_and_one_included_tool_of_another_are_exactly_what_is_granted() {
    let copy =
        McpGrants { servers: servers(&["a"]), tool_overrides: vec![rule("b", "one", OverrideAction::Include)], ..McpGrants::default() };
    let grant = Grant::of(&[&copy], &catalog());
    assert!(grant.allows("a", "anything"));
    assert!(grant.allows("b", "one"));
    assert!(!grant.allows("b", "two"));
    assert!(!grant.allows("c", "x"));
}

#[test]
fn an_exclude_removes_a_tool_a_virtual_mcp_brought_in_the_same_copy() {
    let copy = McpGrants {
        tool_groups: vec![McpToolGroupLink { tool_group_id: 7 }],
        tool_overrides: vec![rule("b", "g1", OverrideAction::Exclude)],
        ..McpGrants::default()
    };
    let grant = Grant::of(&[&copy], &catalog());
    assert_eq!(grant.clients.get("b"), Some(&only(&["g2"])));
}

#[test]
fn an_exclude_in_one_copy_does_not_take_away_what_another_copy_grants() {
    let first =
        McpGrants { servers: servers(&["a"]), tool_overrides: vec![rule("a", "secret", OverrideAction::Exclude)], ..McpGrants::default() };
    let second = McpGrants { tool_overrides: vec![rule("a", "secret", OverrideAction::Include)], ..McpGrants::default() };
    assert!(!Grant::of(&[&first], &catalog()).allows("a", "secret"));
    assert!(Grant::of(&[&first, &second], &catalog()).allows("a", "secret"));
}

#[test]
fn a_disabled_virtual_mcp_grants_nothing() {
    let mut cat = catalog();
    cat.virtual_mcps[0].enabled = false;
    let copy = McpGrants { tool_groups: vec![McpToolGroupLink { tool_group_id: 7 }], ..McpGrants::default() };
    assert!(Grant::of(&[&copy], &cat).clients.is_empty());
}

#[test]
fn a_clients_own_tool_list_bounds_every_grant() {
    let copy =
        McpGrants { servers: servers(&["c"]), tool_overrides: vec![rule("c", "z", OverrideAction::Include)], ..McpGrants::default() };
    let grant = Grant::of(&[&copy], &catalog());
    assert_eq!(grant.clients.get("c"), Some(&only(&["x", "y"])));
}

#[test]
fn a_disabled_or_unknown_client_grants_nothing() {
    let mut cat = catalog();
    cat.clients[0].disabled = true;
    let copy = McpGrants { servers: servers(&["a", "nobody"]), ..McpGrants::default() };
    assert!(Grant::of(&[&copy], &cat).clients.is_empty());
}

#[test]
fn a_client_open_to_all_keys_is_granted_whole_unless_a_copy_names_it() {
    let mut cat = catalog();
    cat.clients[1].allow_on_all_virtual_keys = true;
    let none = McpGrants::default();
    assert!(Grant::of(&[&none], &cat).allows("b", "whatever"));
    let narrowed = McpGrants { tool_overrides: vec![rule("b", "one", OverrideAction::Include)], ..McpGrants::default() };
    let grant = Grant::of(&[&narrowed], &cat);
    assert!(grant.allows("b", "one"));
    assert!(!grant.allows("b", "whatever"));
}

#[test]
fn headers_narrow_by_client_name_and_by_tool_with_wildcards_but_never_widen() {
    let copy =
        McpGrants { servers: servers(&["a"]), tool_overrides: vec![rule("b", "one", OverrideAction::Include)], ..McpGrants::default() };
    let cat = catalog();
    let mut by_client = Grant::of(&[&copy], &cat);
    by_client.narrow_by_headers(Some("a_name, c_name"), None, &cat);
    assert_eq!(by_client.clients.keys().collect::<Vec<_>>(), ["a"]);

    let mut by_tool = Grant::of(&[&copy], &cat);
    by_tool.narrow_by_headers(None, Some("a_name-read,b_name-*,c_name-x"), &cat);
    assert_eq!(by_tool.clients.get("a"), Some(&only(&["read"])));
    assert_eq!(by_tool.clients.get("b"), Some(&only(&["one"])));
    assert!(!by_tool.allows("c", "x"));

    let mut everything = Grant::of(&[&copy], &cat);
    everything.narrow_by_headers(Some("*"), None, &cat);
    assert_eq!(everything, Grant::of(&[&copy], &cat));

    let mut empty = Grant::of(&[&copy], &cat);
    empty.narrow_by_headers(None, Some(""), &cat);
    assert!(empty.clients.is_empty());
}

#[test]
fn the_union_of_all_but_and_only_keeps_what_either_allows() {
    let mut all_but = Tools::AllBut(BTreeSet::from(["x".to_owned(), "y".to_owned()]));
    all_but.union(&only(&["x"]));
    assert_eq!(all_but, Tools::AllBut(BTreeSet::from(["y".to_owned()])));
    let mut narrowed = Tools::AllBut(BTreeSet::from(["y".to_owned()]));
    narrowed.intersect(&only(&["x", "y"]));
    assert_eq!(narrowed, only(&["x"]));
}
