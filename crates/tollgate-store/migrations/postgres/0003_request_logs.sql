-- One row per governed inference request, kept for a configurable number of days.
CREATE TABLE request_logs (
    id BIGSERIAL PRIMARY KEY,
    created_at TEXT NOT NULL,
    user_id TEXT,
    virtual_key_id TEXT,
    provider TEXT NOT NULL,
    model TEXT NOT NULL,
    prompt_tokens BIGINT NOT NULL,
    completion_tokens BIGINT NOT NULL,
    cost BIGINT NOT NULL,
    status BIGINT NOT NULL,
    latency_ms BIGINT NOT NULL,
    streamed BIGINT NOT NULL
);
CREATE INDEX request_logs_by_time ON request_logs (created_at);
