-- MCP clients (upstream MCP servers) managed through /api/mcp/client, each stored as one JSON
-- document whose header and environment values are sealed, and Virtual MCPs (tool groups).
CREATE TABLE mcp_clients (
    client_id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    config TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

CREATE TABLE virtual_mcps (
    id BIGINT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    endpoint_slug TEXT NOT NULL UNIQUE,
    enabled INTEGER NOT NULL,
    tools TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

INSERT INTO id_sequences (name, next_value) VALUES ('virtual_mcp', 1);
