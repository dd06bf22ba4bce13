-- Upstream providers managed through /api/providers, and their API keys (secrets sealed).
CREATE TABLE providers (
    name TEXT PRIMARY KEY,
    network_config TEXT NOT NULL,
    custom_provider_config TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

CREATE TABLE provider_keys (
    id TEXT PRIMARY KEY,
    provider TEXT NOT NULL REFERENCES providers (name) ON DELETE CASCADE,
    name TEXT NOT NULL UNIQUE,
    value_sealed TEXT NOT NULL,
    value_redacted TEXT NOT NULL,
    env_var TEXT NOT NULL,
    models TEXT NOT NULL,
    weight DOUBLE PRECISION NOT NULL,
    enabled BIGINT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX provider_keys_by_provider ON provider_keys (provider);
