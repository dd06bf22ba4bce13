-- The time index also carries cost, latency and id, so a page sorted by cost or latency over a
-- time range picks its rows from the index alone and reads only those rows (decision 215). It
-- replaces the plain time index, whose every use (ranges, pruning) it serves as well.
DROP INDEX request_logs_by_time;
CREATE INDEX request_logs_by_time ON request_logs (created_at, cost, latency_ms, id);
