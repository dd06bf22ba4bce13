-- Reservations still open at a usage flush (JSON: the rows charging each would add). A crash
-- leaves them here, and the next start charges them; a settled one is deleted at the next flush.
CREATE TABLE open_reservations (
    id TEXT PRIMARY KEY,
    lines TEXT NOT NULL
);
