-- One number every instance raises after it commits a governance write (keys, copies,
-- overrides, profiles, providers), so the others' periodic check can tell in one read whether
-- their snapshot may be stale.
CREATE TABLE governance_generation (
    id INTEGER PRIMARY KEY,
    n BIGINT NOT NULL
);
INSERT INTO governance_generation (id, n) VALUES (1, 0);
CREATE INDEX budget_overrides_by_copy ON budget_overrides (copy_id);
