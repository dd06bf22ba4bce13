-- Key lifecycle: an expiry an operator may give a key, and scheduled rotation. A rotated key keeps
-- the hash of its previous value, which authenticates until `previous_value_expires_at` (the
-- grace period); `rotated_at` is when the current value replaced it.
ALTER TABLE virtual_keys ADD COLUMN expires_at TEXT;
ALTER TABLE virtual_keys ADD COLUMN rotated_at TEXT;
ALTER TABLE virtual_keys ADD COLUMN previous_value_hash TEXT;
ALTER TABLE virtual_keys ADD COLUMN previous_value_expires_at TEXT;
CREATE INDEX virtual_keys_by_copy ON virtual_keys (copy_id);
CREATE INDEX access_profiles_by_next_rotation ON access_profiles (next_rotation_at);
