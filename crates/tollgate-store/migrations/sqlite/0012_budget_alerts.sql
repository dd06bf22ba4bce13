-- Budget alerts: rules on access profiles (thresholds, a webhook and its sealed signing secret)
-- and the events they fire. An event row is the claim that makes an alert fire once per rule,
-- copy, budget line, window and threshold across instances (the UNIQUE key), and its delivery
-- state, so a pending alert survives a restart.
CREATE TABLE budget_alert_rules (
    id INTEGER PRIMARY KEY,
    access_profile_id INTEGER NOT NULL REFERENCES access_profiles (id) ON DELETE CASCADE,
    thresholds TEXT NOT NULL,
    webhook_url TEXT NOT NULL,
    secret TEXT NOT NULL,
    enabled INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX budget_alert_rules_by_profile ON budget_alert_rules (access_profile_id, id);

-- No foreign key: an event outlives its rule (delivery then fails, and says why).
CREATE TABLE budget_alert_events (
    id TEXT PRIMARY KEY,
    rule_id INTEGER NOT NULL,
    access_profile_id INTEGER NOT NULL,
    copy_id INTEGER NOT NULL,
    user_id TEXT NOT NULL,
    budget_id TEXT NOT NULL,
    window_start TEXT NOT NULL,
    threshold INTEGER NOT NULL,
    body TEXT NOT NULL,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    next_attempt_at TEXT NOT NULL,
    lease_until TEXT,
    last_error TEXT,
    created_at TEXT NOT NULL,
    finished_at TEXT,
    UNIQUE (rule_id, copy_id, budget_id, window_start, threshold)
);
CREATE INDEX budget_alert_events_due ON budget_alert_events (state, next_attempt_at);

INSERT INTO id_sequences (name, next_value) VALUES ('budget_alert', 1);
