-- What the log API filters and reports on: the route family, the copy that governed a request,
-- its template and the role that gave it, and for a refused request the rule and its wording.
ALTER TABLE request_logs ADD COLUMN route TEXT NOT NULL DEFAULT '';
ALTER TABLE request_logs ADD COLUMN copy_id BIGINT;
ALTER TABLE request_logs ADD COLUMN profile_id BIGINT;
ALTER TABLE request_logs ADD COLUMN role_id BIGINT;
ALTER TABLE request_logs ADD COLUMN denial TEXT;
ALTER TABLE request_logs ADD COLUMN error TEXT;
-- One index per filter a search narrows by, each ending in the time, so a filtered page is read
-- newest first straight off it and the distinct values of a column come from its first part.
CREATE INDEX request_logs_by_user ON request_logs (user_id, created_at);
CREATE INDEX request_logs_by_key ON request_logs (virtual_key_id, created_at);
CREATE INDEX request_logs_by_provider ON request_logs (provider, created_at);
CREATE INDEX request_logs_by_model ON request_logs (model, created_at);
CREATE INDEX request_logs_by_profile ON request_logs (profile_id, created_at);
CREATE INDEX request_logs_by_copy ON request_logs (copy_id, created_at);
CREATE INDEX request_logs_by_denial ON request_logs (denial, created_at) WHERE denial IS NOT NULL;
-- A tool call is charged to the same budgets, so spend reports group it by role too.
ALTER TABLE mcp_tool_calls ADD COLUMN role_id BIGINT;
CREATE INDEX mcp_tool_calls_by_user ON mcp_tool_calls (user_id, created_at);
