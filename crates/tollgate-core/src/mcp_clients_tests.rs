//! Validation of MCP client and Virtual MCP requests, sealing and masking of their secrets, and
//! the catalog opened from stored records.

use std::collections::BTreeMap;

use super::*;
use crate::error::CoreError;

fn http(name: &str) -> McpClientRequest {
    McpClientRequest {
        name: Some(name.into()),
        connection_type: Some("http".into()),
        connection_string: Some("https://mcp.example.com/mcp".into()),
        headers: Some(BTreeMap::from([("Authorization".to_owned(), "Bearer upstream-secret-token".to_owned())])),
        ..McpClientRequest::default()
    }
}

fn problems(req: McpClientRequest, rules: &McpRules) -> Vec<String> {
    let mut p = Problems::default();
    checked_client(req, "id".into(), rules, false, &mut p);
    match p.into_result(()) {
        Err(CoreError::Validation(errors)) => errors.into_iter().map(|e| e.param).collect(),
        _ => Vec::new(),
    }
}

#[test]
fn a_hyphenated_name_sse_and_a_missing_url_are_refused() {
    let rules = McpRules::default();
    assert_eq!(problems(http("my-docs"), &rules), ["name"]);
    let sse = McpClientRequest { connection_type: Some("sse".into()), ..http("docs") };
    assert_eq!(problems(sse, &rules), ["connection_type"]);
    let no_url = McpClientRequest { connection_string: None, ..http("docs") };
    assert_eq!(problems(no_url, &rules), ["connection_string"]);
    let metadata = McpClientRequest { connection_string: Some("http://169.254.169.254/mcp".into()), ..http("docs") };
    assert_eq!(problems(metadata, &rules), ["connection_string"]);
    let bad_header = McpClientRequest { headers: Some(BTreeMap::from([("x y".to_owned(), "v".to_owned())])), ..http("docs") };
    assert_eq!(problems(bad_header, &rules), ["headers.x y"]);
}

#[test]
fn a_stdio_command_is_accepted_only_when_the_operator_lists_it_unless_the_file_declares_it() {
    let stdio = || McpClientRequest {
        name: Some("files".into()),
        connection_type: Some("stdio".into()),
        stdio_config: Some(StdioConfig { command: "/usr/bin/mcp-files".into(), args: vec![], envs: BTreeMap::new() }),
        ..McpClientRequest::default()
    };
    assert_eq!(problems(stdio(), &McpRules::default()), ["stdio_config.command"]);
    let allowed = McpRules { stdio_commands: vec!["/usr/bin/mcp-files".into()], ..McpRules::default() };
    assert!(problems(stdio(), &allowed).is_empty());
    let mut p = Problems::default();
    let declared = checked_client(stdio(), "files".into(), &McpRules::default(), true, &mut p);
    assert!(p.into_result(()).is_ok());
    assert!(declared.declared);
}

#[test]
fn secrets_are_sealed_at_rest_masked_when_served_and_opened_only_into_the_catalog() {
    let sealer = Sealer::new(&Sealer::generate_key());
    let mut p = Problems::default();
    let mut client = checked_client(http("docs"), "docs".into(), &McpRules::default(), false, &mut p);
    seal_secrets(&mut client, None, &sealer).expect("sealed");
    let stored = client.headers["Authorization"].clone();
    assert!(!stored.contains("upstream-secret-token"));
    let served = masked(client.clone(), &sealer);
    assert!(!serde_json::to_string(&served).unwrap_or_default().contains("upstream-secret-token"));
    // A masked value sent back keeps the secret.
    let mut again = served.clone();
    seal_secrets(&mut again, Some(&client), &sealer).expect("sealed");
    assert_eq!(again.headers["Authorization"], stored);
    let catalog = open_catalog(&[client], &[], &sealer);
    match &catalog.clients[0].endpoint {
        McpEndpoint::Http { headers, .. } => {
            assert_eq!(headers, &[("Authorization".to_owned(), "Bearer upstream-secret-token".to_owned())]);
        }
        McpEndpoint::Stdio { .. } => panic!("an http client"),
    }
}

#[test]
fn a_client_sealed_under_another_key_is_left_out_of_the_catalog() {
    let sealer = Sealer::new(&Sealer::generate_key());
    let other = Sealer::new(&Sealer::generate_key());
    let mut p = Problems::default();
    let mut client = checked_client(http("docs"), "docs".into(), &McpRules::default(), false, &mut p);
    seal_secrets(&mut client, None, &other).expect("sealed");
    assert!(open_catalog(&[client], &[], &sealer).clients.is_empty());
}

#[test]
fn a_virtual_mcp_must_name_existing_clients_once_and_a_proper_slug() {
    let sealer_free = McpRules::default();
    let mut p = Problems::default();
    let client = checked_client(http("docs"), "docs".into(), &sealer_free, false, &mut p);
    let part = |id: &str| VirtualMcpTools { mcp_client_id: id.into(), tool_names: ToolSelection::All };
    let req = VirtualMcpRequest {
        name: Some("Group".into()),
        endpoint_slug: Some("Bad Slug".into()),
        enabled: None,
        tools: Some(vec![part("docs"), part("docs"), part("nobody")]),
    };
    let mut p = Problems::default();
    let group = checked_group(req, 1, &[client], &mut p);
    assert!(group.enabled, "enabled by default");
    let params: Vec<String> = match p.into_result(()) {
        Err(CoreError::Validation(errors)) => errors.into_iter().map(|e| e.param).collect(),
        _ => Vec::new(),
    };
    assert_eq!(params, ["endpoint_slug", "tools[1].mcp_client_id", "tools[2].mcp_client_id"]);
}
