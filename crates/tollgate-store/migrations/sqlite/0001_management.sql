-- Management plane of Tollgate: access-profile templates, their versions and audit trail,
-- management API keys and the admin credential. Timestamps are RFC 3339 UTC text with
-- microseconds, so text order is time order on every backend.

CREATE TABLE id_sequences (
    name TEXT PRIMARY KEY,
    next_value INTEGER NOT NULL
);
INSERT INTO id_sequences (name, next_value) VALUES ('access_profile', 1), ('provider_config', 1), ('api_key', 1);

CREATE TABLE access_profiles (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    name_key TEXT NOT NULL UNIQUE,
    description TEXT,
    is_active INTEGER NOT NULL,
    version INTEGER NOT NULL,
    tags TEXT NOT NULL,
    policy TEXT NOT NULL,
    auto_rotation_interval INTEGER NOT NULL,
    next_rotation_at TEXT,
    last_rotation_at TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

CREATE TABLE access_profile_tags (
    profile_id INTEGER NOT NULL REFERENCES access_profiles (id) ON DELETE CASCADE,
    tag TEXT NOT NULL,
    PRIMARY KEY (profile_id, tag)
);
CREATE INDEX access_profile_tags_by_tag ON access_profile_tags (tag);

CREATE TABLE access_profile_versions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    access_profile_id INTEGER NOT NULL REFERENCES access_profiles (id) ON DELETE CASCADE,
    version INTEGER NOT NULL,
    name TEXT NOT NULL,
    description TEXT,
    snapshot TEXT NOT NULL,
    changed_by TEXT NOT NULL,
    created_at TEXT NOT NULL,
    UNIQUE (access_profile_id, version)
);

-- No foreign key: the trail outlives the profile it speaks of.
CREATE TABLE access_profile_audit_logs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    access_profile_id INTEGER,
    user_id TEXT,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    previous_values TEXT,
    new_values TEXT,
    metadata TEXT,
    created_at TEXT NOT NULL
);
CREATE INDEX access_profile_audit_logs_by_profile ON access_profile_audit_logs (access_profile_id, id);

-- Roles and per-user copies are filled by the role/assignment use cases; the template
-- rules (detail view, guarded delete) already read them.
CREATE TABLE roles (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE
);

CREATE TABLE access_profile_roles (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    access_profile_id INTEGER NOT NULL REFERENCES access_profiles (id) ON DELETE CASCADE,
    role_id INTEGER NOT NULL REFERENCES roles (id) ON DELETE CASCADE,
    is_default INTEGER NOT NULL,
    UNIQUE (access_profile_id, role_id)
);

CREATE TABLE user_access_profiles (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id TEXT NOT NULL,
    parent_profile_id INTEGER REFERENCES access_profiles (id) ON DELETE RESTRICT,
    created_at TEXT NOT NULL
);
CREATE INDEX user_access_profiles_by_parent ON user_access_profiles (parent_profile_id);

CREATE TABLE api_keys (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    name_key TEXT NOT NULL UNIQUE,
    key_prefix TEXT NOT NULL,
    key_hash TEXT NOT NULL UNIQUE,
    description TEXT,
    scopes TEXT NOT NULL,
    created_by_user_id TEXT,
    expires_at TEXT,
    last_used_at TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

CREATE TABLE admin_credentials (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    username TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
