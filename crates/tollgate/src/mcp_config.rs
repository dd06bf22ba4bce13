//! The `[mcp]` section (which stdio commands the management API may register, how long a tool
//! call may take) and the
//! `[[mcp_clients]]` the config file declares (policy as code, applied at start-up).

use tollgate_core::mcp_clients::McpClientRequest;

/// Longest wait for a tool call's answer that may be configured.
const MAX_CALL_TIMEOUT_SECS: u64 = 3600;

/// MCP settings of the config file.
#[derive(Debug, Clone)]
pub struct McpConfig {
    /// Commands a stdio client registered through the API may run (exact paths or names).
    pub stdio_commands: Vec<String>,
    /// Longest wait for one tool call's answer (`call_timeout_secs`, 60 by default).
    pub call_timeout: std::time::Duration,
    /// Clients the file declares, in the management API's request shape.
    pub clients: Vec<McpClientRequest>,
}

impl Default for McpConfig {
    fn default() -> Self {
        McpConfig { stdio_commands: Vec::new(), call_timeout: std::time::Duration::from_mins(1), clients: Vec::new() }
    }
}

impl McpConfig {
    /// Names of the declared clients (the API may not take or change them).
    pub fn declared_names(&self) -> Vec<String> {
        self.clients.iter().filter_map(|c| c.name.clone()).collect()
    }
}

/// Reads `[mcp]` and `[[mcp_clients]]`; every problem goes to `problems`.
pub fn parse(section: Option<&toml::Value>, clients: Option<&toml::Value>, problems: &mut Vec<String>) -> McpConfig {
    let mut config = McpConfig::default();
    if let Some(section) = section {
        match section.as_table() {
            Some(table) => {
                for (key, value) in table {
                    match key.as_str() {
                        "stdio_commands" => {
                            match value.as_array().map(|a| a.iter().map(|v| v.as_str().map(str::to_owned)).collect::<Option<Vec<_>>>()) {
                                Some(Some(commands)) => config.stdio_commands = commands,
                                _ => problems.push("mcp.stdio_commands: must be an array of strings".to_owned()),
                            }
                        }
                        "call_timeout_secs" => {
                            match value.as_integer().and_then(|n| u64::try_from(n).ok()).filter(|n| (1..=MAX_CALL_TIMEOUT_SECS).contains(n))
                            {
                                Some(secs) => config.call_timeout = std::time::Duration::from_secs(secs),
                                None => problems
                                    .push(format!("mcp.call_timeout_secs: must be a whole number from 1 to {MAX_CALL_TIMEOUT_SECS}")),
                            }
                        }
                        _ => problems.push(format!("mcp.{key}: unknown setting")),
                    }
                }
            }
            None => problems.push("mcp: must be a table".to_owned()),
        }
    }
    if let Some(clients) = clients {
        let Some(items) = clients.as_array() else {
            problems.push("mcp_clients: must be an array of tables".to_owned());
            return config;
        };
        for (i, item) in items.iter().enumerate() {
            match item.clone().try_into::<McpClientRequest>() {
                Ok(client) if client.name.is_none() => problems.push(format!("mcp_clients[{i}].name: is required")),
                Ok(client) => {
                    if config.clients.iter().any(|c| c.name == client.name) {
                        problems.push(format!("mcp_clients[{i}].name: declared twice"));
                    }
                    config.clients.push(client);
                }
                Err(e) => problems.push(format!("mcp_clients[{i}]: {}", e.message())),
            }
        }
    }
    config
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str) -> (McpConfig, Vec<String>) {
        let table: toml::Table = text.parse().unwrap_or_default();
        let mut problems = Vec::new();
        let config = parse(table.get("mcp"), table.get("mcp_clients"), &mut problems);
        (config, problems)
    }

    #[test]
    fn declared_clients_and_the_stdio_allow_list_are_read() {
        let (config, problems) = read(
            "[mcp]\nstdio_commands = [\"/usr/bin/files\"]\ncall_timeout_secs = 5\n\n[[mcp_clients]]\nname = \"docs\"\nconnection_type = \"http\"\nconnection_string = \"https://x/mcp\"\n",
        );
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(config.stdio_commands, ["/usr/bin/files"]);
        assert_eq!(config.call_timeout, std::time::Duration::from_secs(5));
        assert_eq!(config.declared_names(), ["docs"]);
    }

    #[test]
    fn unknown_members_wrong_types_and_duplicates_are_reported() {
        let (_, problems) = read(
            "[mcp]\nnope = 1\ncall_timeout_secs = 0\n\n[[mcp_clients]]\nname = \"a\"\ncolour = \"red\"\n\n[[mcp_clients]]\nconnection_type = \"http\"\n",
        );
        assert_eq!(problems.len(), 4, "{problems:?}");
        let (_, twice) = read("[[mcp_clients]]\nname = \"a\"\n\n[[mcp_clients]]\nname = \"a\"\n");
        assert_eq!(twice, ["mcp_clients[1].name: declared twice"]);
    }
}
