-- Postgres keeps its plain time index: widened to (created_at, cost, latency_ms, id), as on
-- SQLite, it planned a day sorted by cost at 794 ms against 161 (decision 215). The file keeps
-- the two backends' migration numbers in step.
SELECT 1;
