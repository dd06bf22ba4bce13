-- The request log summed per hour by the columns a wide search narrows by (provider, model,
-- route, status, denial; '' for none), kept in the transaction that writes the rows and pruned
-- with them in whole hours: the stats of a search over days read these sums instead of every row.
CREATE TABLE request_log_hours (
    hour TEXT NOT NULL,
    provider TEXT NOT NULL,
    model TEXT NOT NULL,
    route TEXT NOT NULL,
    status BIGINT NOT NULL,
    denial TEXT NOT NULL,
    requests BIGINT NOT NULL,
    latency_ms BIGINT NOT NULL,
    tokens BIGINT NOT NULL,
    cost BIGINT NOT NULL,
    PRIMARY KEY (hour, provider, model, route, status, denial)
);
-- The rows already logged (the same statement as `SqlStore::rebuild_log_hours`).
INSERT INTO request_log_hours (hour, provider, model, route, status, denial, requests, latency_ms, tokens, cost)
SELECT substr(created_at, 1, 13) || ':00:00.000000Z', provider, model, route, status, COALESCE(denial, ''), COUNT(*),
       SUM(latency_ms), SUM(prompt_tokens + completion_tokens), SUM(cost)
FROM request_logs
GROUP BY substr(created_at, 1, 13), provider, model, route, status, COALESCE(denial, '');
