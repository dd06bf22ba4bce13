-- Users, roles, per-user copies of access profiles and the managed virtual keys they produce,
-- budget overrides and the usage rows that copies read their current usage from.

ALTER TABLE roles ADD COLUMN description TEXT NOT NULL DEFAULT '';
ALTER TABLE roles ADD COLUMN is_system_role BIGINT NOT NULL DEFAULT 0;
ALTER TABLE roles ADD COLUMN dac TEXT NOT NULL DEFAULT 'all-data';
ALTER TABLE roles ADD COLUMN created_at TEXT NOT NULL DEFAULT '1970-01-01T00:00:00.000000Z';
ALTER TABLE roles ADD COLUMN updated_at TEXT NOT NULL DEFAULT '1970-01-01T00:00:00.000000Z';

INSERT INTO id_sequences (name, next_value) VALUES ('role', 100), ('user_copy', 1);
INSERT INTO roles (id, name, description, is_system_role, dac) VALUES
    (1, 'admin', 'Every permission', 1, 'all-data'),
    (2, 'developer', 'Build with the gateway', 1, 'all-data'),
    (3, 'viewer', 'Read only', 1, 'all-data');

CREATE TABLE users (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    email TEXT NOT NULL,
    email_key TEXT NOT NULL UNIQUE,
    role_id BIGINT REFERENCES roles (id),
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX users_by_role ON users (role_id);

ALTER TABLE user_access_profiles ADD COLUMN name TEXT NOT NULL DEFAULT '';
ALTER TABLE user_access_profiles ADD COLUMN is_active BIGINT NOT NULL DEFAULT 1;
ALTER TABLE user_access_profiles ADD COLUMN expires_at TEXT;
ALTER TABLE user_access_profiles ADD COLUMN policy TEXT NOT NULL DEFAULT '{}';
-- The role whose default (or apply_to_existing) produced the copy; NULL for a direct assignment.
ALTER TABLE user_access_profiles ADD COLUMN source_role_id BIGINT;
ALTER TABLE user_access_profiles ADD COLUMN version BIGINT NOT NULL DEFAULT 1;
ALTER TABLE user_access_profiles ADD COLUMN updated_at TEXT NOT NULL DEFAULT '1970-01-01T00:00:00.000000Z';
CREATE UNIQUE INDEX user_access_profiles_one_per_user ON user_access_profiles (user_id, parent_profile_id);

CREATE TABLE virtual_keys (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    name_key TEXT NOT NULL UNIQUE,
    description TEXT,
    value_hash TEXT NOT NULL UNIQUE,
    value_sealed TEXT NOT NULL,
    value_masked TEXT NOT NULL,
    user_id TEXT NOT NULL,
    -- The copy that issued the key; NULL for an extra key minted for the user.
    copy_id BIGINT,
    is_active BIGINT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX virtual_keys_by_user ON virtual_keys (user_id);

CREATE TABLE budget_overrides (
    budget_id TEXT PRIMARY KEY,
    copy_id BIGINT NOT NULL,
    amount BIGINT NOT NULL,
    mode TEXT NOT NULL,
    cycles_total BIGINT,
    anchor_reset TEXT NOT NULL,
    created_at TEXT NOT NULL
);

CREATE TABLE budget_usage (
    budget_id TEXT PRIMARY KEY,
    current_usage BIGINT NOT NULL,
    last_reset TEXT NOT NULL
);

CREATE TABLE rate_limit_usage (
    rate_limit_id TEXT PRIMARY KEY,
    token_usage BIGINT NOT NULL,
    request_usage BIGINT NOT NULL,
    token_last_reset TEXT NOT NULL,
    request_last_reset TEXT NOT NULL
);

CREATE TABLE settings (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
