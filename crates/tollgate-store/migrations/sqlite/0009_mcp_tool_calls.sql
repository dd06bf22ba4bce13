-- The audit of MCP tool calls: one row per call (answered, failed or refused), never the
-- arguments or the result themselves, only their sizes. Pruned with the request log.
CREATE TABLE mcp_tool_calls (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created_at TEXT NOT NULL,
    user_id TEXT,
    virtual_key_id TEXT,
    copy_id BIGINT,
    profile_id BIGINT,
    client_id TEXT NOT NULL,
    tool TEXT NOT NULL,
    outcome TEXT NOT NULL,
    latency_ms BIGINT NOT NULL,
    argument_bytes BIGINT NOT NULL,
    result_bytes BIGINT NOT NULL,
    cost BIGINT NOT NULL
);
CREATE INDEX mcp_tool_calls_by_time ON mcp_tool_calls (created_at);
